"""The hub process: one MQTT client feeding the ingest pipeline.

The client keeps a persistent session (MQTT 3.1.1 ``clean_session=False``,
MQTT 5 ``clean_start=False`` with a session expiry), so that the broker holds
the hub's QoS 1 messages while it restarts, and acknowledges by hand
(``manual_ack``): a message is PUBACKed only once its transaction committed.

Run it with ``streamflow hub`` or ``python -m hub.service``; SIGTERM and
SIGINT stop it cleanly (drain, commit, ack, disconnect).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
from paho.mqtt.client import (
    Client,
    MQTTMessage,
    MQTTMessageInfo,
)

from hub import const
from hub._errors import BrokerUnreachable, ConfigError, StoreUnreachable
from hub._mqtt import BrokerSession
from hub.config import HubSettings, redact_url
from hub.ingest import IngestPipeline
from hub.metrics import IngestMetrics
from hub.monitor.figures import HubFigures, StatsPublisher, stats_topic
from hub.processors.errors import ProcessorError
from hub.processors.host import ProcessorHost
from hub.storage import Store, open_store
from protocol.adapters.base import Adapter
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

#: Ack publishes remembered, to wait for at stop.
_RECENT_PUBLISHES = 256


#: Sensor conventions whose device times have no zone (README, adapters).
_NAIVE_TIME_CONVENTIONS = frozenset({"tasmota"})


def load_adapters(settings: HubSettings) -> list[tuple[str, Adapter]]:
    """The (filter, adapter) pairs the settings name.

    Conventions whose device times carry no zone by design (Tasmota's
    ``Time``) read them in ``naive_time_zone``. Everywhere else a time without
    a zone is a ``naive_timestamp`` reject, as at the edge agent: guessing a
    zone would store readings hours off without anyone noticing.

    Raises:
        ConfigError: an adapter name or option is unknown.
    """
    from protocol.adapters import get_adapter

    out: list[tuple[str, Adapter]] = []
    for route in settings.adapters:
        options: dict[str, Any] = dict(route.options)
        if route.adapter in _NAIVE_TIME_CONVENTIONS:
            options.setdefault("naive_tz", settings.zone)
        try:
            adapter = get_adapter(route.adapter, **options)
        except ValueError as exc:
            raise ConfigError(f"invalid setting adapters: {exc}") from None
        out.append((route.filter, adapter))
    return out


class HubService:
    """The hub: an MQTT client with a persistent session and the pipeline."""

    def __init__(
        self,
        settings: HubSettings,
        store: Store,
        adapters: list[tuple[str, Adapter]] | None = None,
        metrics: IngestMetrics | None = None,
        status_path: Path | None = None,
    ) -> None:
        """Build the service; :meth:`start` connects it.

        Args:
            settings: the hub's settings.
            store: an open, migrated store.
            adapters: (filter, adapter) pairs; from the settings when None.
            metrics: counters to update; a new set when None.
            status_path: file to write the status and counters to, for the
                API's /healthz in another process; none when None.
        """
        self.settings = settings
        self.store = store
        self.metrics = metrics or IngestMetrics()
        self.pipeline = IngestPipeline(
            settings,
            store,
            self,
            adapters if adapters is not None else load_adapters(settings),
            self.metrics,
        )
        self._status_path = status_path
        # The broker session: subscribed again on every connect, with the
        # shared-subscription prefix when hubs share the load.
        group = settings.shared_group
        prefix = f"$share/{group}/" if group else ""
        self._session = BrokerSession(
            settings,
            settings.client_id,
            [(prefix + f, const.QOS) for f in self.pipeline.filters],
            manual_ack=True,
        )
        self._client = self._session.client
        self._client.on_message = self._on_message

        # Processors, fed each commit's new readings (hub/processors).
        self.processors: ProcessorHost | None = None
        if settings.processors_enabled:
            try:
                self.processors = ProcessorHost(
                    settings.processors, store, self.publish
                )
            except ProcessorError as exc:
                raise ConfigError(f"invalid setting processors.routes: {exc}") from None
            self.pipeline.on_committed.append(self.processors.on_committed)

        # The hub's figures for the monitor, on sf/v1/hub/{client_id}/stats
        # (hub/monitor/figures.py says why), QoS 0 every few seconds.
        self.figures = HubFigures(
            self.metrics, settings.client_id, settings.queue_max_messages
        )
        self.pipeline.on_committed.append(self.figures.on_committed)
        self._stats: StatsPublisher | None = None
        if settings.monitor.stats_interval_s > 0:
            self._stats = StatsPublisher(
                self.figures,
                lambda topic, payload, qos: self._client.publish(topic, payload, qos),
                stats_topic(settings.client_id),
                settings.monitor.stats_interval_s,
            )

        self._recent: deque[MQTTMessageInfo] = deque(maxlen=_RECENT_PUBLISHES)

        # Status file writer.
        self._status_stop = threading.Event()
        self._status_thread: threading.Thread | None = None

    @property
    def broker(self) -> str:
        """The broker URL, without a password (for logs and errors)."""
        return self._session.broker

    @property
    def connected(self) -> bool:
        """Whether the client is connected and subscribed."""
        return self._session.connected

    @property
    def subscriptions(self) -> list[str]:
        """The filters subscribed to, with the shared-subscription prefix."""
        return [f for f, _qos in self._session.subscriptions]

    # ------------------------------------------------------------- life cycle

    def start(self, timeout_s: float = const.CONNECT_TIMEOUT_S) -> None:
        """Start the writer, connect, subscribe; return once subscribed.

        Raises:
            BrokerUnreachable: the broker cannot be reached, refused the
                connection, or did not answer within ``timeout_s``.
        """
        if self.processors is not None:
            self.processors.start()
        self.pipeline.start()
        try:
            self._session.open(timeout_s)
        except BrokerUnreachable:
            self.pipeline.stop(0)
            self._stop_processors(0)
            raise
        self._start_status()
        if self._stats is not None:
            self._stats.start()

    def stop(self, grace_s: float = const.STOP_GRACE_S) -> bool:
        """Drain the queue into the store, ack, then disconnect.

        Returns:
            Whether everything received was committed and acked.
        """
        deadline = time.monotonic() + grace_s
        self._session.stopping = True
        drained = self.pipeline.stop(grace_s)
        # What the drain committed goes through the processors, whose events
        # are published before the client disconnects; a second at least,
        # since a commit's events exist nowhere else yet.
        self._stop_processors(max(1.0, deadline - time.monotonic()))
        # The acks are QoS 1: wait (briefly) until the broker has them, so
        # that a gateway does not resend a batch that is already committed.
        for info in list(self._recent):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                info.wait_for_publish(min(remaining, 2.0))
            except (RuntimeError, ValueError):
                break
        if self._stats is not None:
            self._stats.stop()
        self._client.disconnect()
        self._client.loop_stop()
        self._stop_status()
        self.write_status("stopped")
        self.pipeline.log_counters()
        _LOGGER.info("hub stopped broker=%s drained=%s", self.broker, drained)
        return drained

    def _stop_processors(self, grace_s: float) -> None:
        if self.processors is not None:
            self.processors.stop(grace_s)

    # ------------------------------------------------------- paho's callbacks

    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        # msg.topic decodes strictly and raises on invalid UTF-8; the raw
        # bytes let the pipeline count such a topic as bad_topic (case C09).
        raw_topic: bytes = msg._topic
        payload = bytes(msg.payload)  # already bytes: no copy
        self.pipeline.receive(raw_topic, payload, msg.mid, msg.qos, msg.retain)

    # ---------------------------------------------------------- the Transport

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish a message (the pipeline's batch acks)."""
        self._recent.append(self._client.publish(topic, payload, qos))

    def puback(self, mid: int, qos: int) -> None:
        """Acknowledge a received QoS 1 message to the broker."""
        if qos > 0:
            self._client.ack(mid, qos)

    # ------------------------------------------------------------ status file

    def status(self, state: str = "running") -> dict[str, Any]:
        """The service's status and counters, as the status file holds them."""
        return {
            "pid": os.getpid(),
            "state": state,
            "client_id": self.settings.client_id,
            "broker": self.broker,
            "connected": self.connected,
            "store": self.store.kind,
            "updated_us": now_us(),
            "counters": self.metrics.snapshot(),
            "processors": (
                None if self.processors is None else self.processors.figures()
            ),
        }

    def write_status(self, state: str = "running") -> None:
        """Write the status file atomically, if the service has one."""
        if self._status_path is None:
            return
        tmp = self._status_path.with_suffix(".tmp")
        try:
            tmp.write_bytes(orjson.dumps(self.status(state)))
            os.replace(tmp, self._status_path)
        except OSError as exc:
            _LOGGER.warning("status file not written path=%s error=%s", tmp, exc)

    def _start_status(self) -> None:
        if self._status_path is None:
            return
        self.write_status()

        def loop() -> None:
            while not self._status_stop.wait(const.STATUS_INTERVAL_S):
                self.write_status()

        self._status_thread = threading.Thread(
            target=loop, name="streamflow-status", daemon=True
        )
        self._status_thread.start()

    def _stop_status(self) -> None:
        self._status_stop.set()
        if self._status_thread is not None:
            self._status_thread.join(5)


def open_checked_store(settings: HubSettings, migrate: bool = True) -> Store:
    """Open (and migrate) the store the settings name.

    Raises:
        StoreUnreachable: the store cannot be opened or migrated; the message
            names the URL without its password.
    """
    if settings.sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not settings.sqlite:
            _probe_postgres(settings.db)
        store = open_store(settings.db)
        if migrate:
            applied = store.migrate()
            if applied:
                _LOGGER.info("store migrated store=%s versions=%s", store.kind, applied)
    except Exception as exc:  # psycopg, sqlite3 and OSError alike
        raise StoreUnreachable(redact_url(settings.db), _first_line(exc)) from exc
    return store


def _probe_postgres(url: str) -> None:
    # One plain connection first: its error names the cause (refused, bad
    # password, no such database), where a pool only reports a time-out.
    import psycopg

    with psycopg.connect(url, connect_timeout=const.DB_PROBE_TIMEOUT_S):
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact_url(text[0]) if text else type(exc).__name__


def run_hub(settings: HubSettings, stop: threading.Event | None = None) -> bool:
    """Run the hub until ``stop`` is set, or SIGTERM/SIGINT when it is None.

    Returns:
        Whether the stop drained everything.

    Raises:
        StoreUnreachable: the store cannot be opened.
        BrokerUnreachable: the broker cannot be reached.
        ConfigError: an adapter name is unknown.
    """
    store = open_checked_store(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        service = HubService(
            settings,
            store,
            status_path=settings.data_dir / const.STATUS_FILE_NAME,
        )
        event = stop or _signal_event()
        service.start()
        _LOGGER.info(
            "hub running broker=%s store=%s filters=%s",
            service.broker,
            redact_url(settings.db),
            ",".join(service.subscriptions),
        )
        event.wait()
        return service.stop()
    finally:
        store.close()


def _signal_event() -> threading.Event:
    event = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        _LOGGER.info("signal received signal=%s, stopping", signal.Signals(signum).name)
        event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return event


def main() -> None:
    """Entry point of ``python -m hub.service [--config FILE] [-v]``.

    The same as ``streamflow [--config FILE] [-v] hub``.
    """
    from hub.cli import main as cli_main

    cli_main([*sys.argv[1:], "hub"])


if __name__ == "__main__":
    main()
