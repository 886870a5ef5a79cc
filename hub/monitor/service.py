"""The monitor process: events, silences and service figures in, alerts out.

One MQTT client (persistent session, so that QoS 1 events wait at the broker
while the monitor restarts) subscribes to

- ``sf/v1/events/#``: the processors' events (thresholds, anomalies, data
  quality), each a signal for the alert lifecycle;
- ``sf/v1/gw/+/up/state``: the gateways' retained states and wills (offline
  gateways, buffer depth, drops);
- ``sf/v1/hub/+/stats``: the hubs' figures (:mod:`hub.monitor.figures`).

Messages are queued by paho's network thread and handled by the monitor's
one loop thread, which also checks silences and service rules every
``monitor.tick_s``; the alert engine and the store are used from that thread
only. Every state change of an alert is published (QoS 1) on
``sf/v1/alerts/{subject}`` (the device, else the gateway, else ``hub``) as
:func:`~hub.alerts.notice.alert_json` plus ``change``, and for a device behind
a gateway also on its downlink; notices for people go to the dispatcher.

Run it with ``streamflow monitor``; SIGTERM and SIGINT stop it cleanly.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import orjson
from paho.mqtt.client import (
    Client,
    MQTTMessage,
)
from pydantic import ValidationError

from hub import const
from hub._mqtt import BrokerSession
from hub.alerts.dispatch import Dispatcher
from hub.alerts.downlink import DOWNLINK_QOS, downlink_for
from hub.alerts.lifecycle import AlertEngine, Signal, signal_from_event
from hub.alerts.notice import Change, Channel, alert_json
from hub.config import HubSettings
from hub.monitor._types import Finding
from hub.monitor.config import HUB_FIGURES
from hub.monitor.figures import STATS_FILTER
from hub.monitor.metrics import MonitorMetrics
from hub.monitor.offline import DeviceView, OfflineDetector, StoreIntervals
from hub.monitor.service_rules import DropWindow, ServiceRules, gateway_figures
from hub.processors.events import Event
from hub.storage.base import AlertRecord, Store
from protocol import topics
from protocol.const import TOPIC_ROOT
from protocol.errors import TopicError
from protocol.models import GatewayState
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

#: The monitor's subscriptions and their QoS (the stats are QoS 0 by design).
EVENTS_FILTER: Final = f"{TOPIC_ROOT}/events/#"
SUBSCRIPTIONS: Final = (
    (EVENTS_FILTER, 1),
    (topics.STATE_FILTER, 1),
    (STATS_FILTER, 0),
)
#: QoS of the alert publishes (the protocol's topic table).
ALERT_QOS: Final = 1
#: The status file ``streamflow up`` waits on.
STATUS_FILE_NAME: Final = "monitor-status.json"
#: How long a device's gateway is remembered for its events.
_GATEWAY_CACHE_S: Final = 60.0
#: Messages waiting for the loop; past this paho's thread waits (QoS 1 holds).
_INBOX_MAX: Final = 10_000


def alert_topic(alert: AlertRecord) -> str:
    """``sf/v1/alerts/{subject}``: the device, else the gateway, else ``hub``."""
    return topics.alert(alert.device or alert.gateway or "hub")


def alert_payload(alert: AlertRecord, change: Change) -> bytes:
    """The alert as published: :func:`alert_json` plus ``change``."""
    return orjson.dumps({**alert_json(alert), "change": change})


def signal_of(finding: Finding) -> Signal:
    """The lifecycle's signal of a detector's finding."""
    return Signal(**asdict(finding))


def build_channels(settings: HubSettings) -> list[Channel]:
    """The people channels the settings configure: email, then each webhook."""
    channels: list[Channel] = []
    if settings.email is not None and settings.email.enabled:
        from hub.alerts.email import EmailChannel

        channels.append(EmailChannel(settings.email))
    if settings.webhooks:
        from hub.alerts.webhook import WebhookChannel

        channels.extend(WebhookChannel(w) for w in settings.webhooks)
    return channels


class MonitorService:
    """The monitor (module docstring): start, run its loop, stop.

    Args:
        settings: the settings (``monitor``, ``alerts``, ``email``, ``webhooks``
            and the broker connection).
        store: an open, migrated store; alerts live there.
        clock: wall time, epoch µs (tests inject one).
        channels: the people channels; from the settings when None.
        status_path: file the status is written to for ``streamflow up``.
    """

    def __init__(
        self,
        settings: HubSettings,
        store: Store,
        *,
        clock: Callable[[], int] = now_us,
        channels: list[Channel] | None = None,
        status_path: Path | None = None,
    ) -> None:
        """Build the service; :meth:`start` connects it."""
        self.settings = settings
        self.config = settings.monitor
        self.store = store
        self._clock = clock
        self._status_path = status_path

        # Detectors, the lifecycle and the outputs.
        self.metrics = MonitorMetrics()
        self.offline = OfflineDetector(self.config)
        self.intervals = StoreIntervals(store, self.offline.learner, self.config)
        self.rules = ServiceRules(self.config.service_rules)
        self._channels = build_channels(settings) if channels is None else channels
        self.dispatcher = Dispatcher(self._channels)
        self.engine = AlertEngine(
            store,
            settings.alerts,
            on_change=self._on_change,
            notify=self.dispatcher.submit,
            clock=clock,
        )
        self.metrics_port: int | None = None

        # What the loop knows of the registry.
        self._devices: list[DeviceView] = []
        self._gateway_of: dict[str, tuple[str | None, float]] = {}
        self._drops: dict[str, DropWindow] = {}

        # The MQTT client and the loop.
        self._session = BrokerSession(
            settings, self.config.client_id, list(SUBSCRIPTIONS)
        )
        self._client = self._session.client
        self._client.on_message = self._on_message
        self._inbox: queue.Queue[tuple[str, bytes, int]] = queue.Queue(_INBOX_MAX)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_status = 0.0
        self._started_us = 0

    @property
    def broker(self) -> str:
        """The broker URL without a password."""
        return self._session.broker

    @property
    def connected(self) -> bool:
        """Whether the client is connected and subscribed."""
        return self._session.connected

    # ------------------------------------------------------------- life cycle

    def start(self, timeout_s: float = const.CONNECT_TIMEOUT_S) -> None:
        """Load the active alerts, connect, subscribe, start the loop.

        Raises:
            BrokerUnreachable: the broker cannot be reached or refused.
            OSError: the metrics port is taken.
        """
        self._started_us = self._clock()
        self.engine.load()
        active = self.store.active_alerts()
        self.metrics.load_alerts(active)
        self.offline.restore(active)
        self.rules.restore(active)
        if self.config.metrics_port:
            self.metrics_port = self.metrics.serve(
                self.config.metrics_host, self.config.metrics_port
            )
        self.dispatcher.start()
        self._thread = threading.Thread(
            target=self._run, name="streamflow-monitor", daemon=True
        )
        self._thread.start()
        try:
            self._session.open(timeout_s)
        except BaseException:
            self._shutdown(0.0)
            raise
        _LOGGER.info(
            "monitor running broker=%s metrics=%s channels=%s",
            self.broker,
            f"http://{self.config.metrics_host}:{self.metrics_port}/metrics"
            if self.metrics_port
            else "off",
            ",".join(self.dispatcher.channel_names) or "none",
        )

    def stop(self, grace_s: float = 5.0) -> None:
        """Finish the messages received, stop the loop, deliver notices, disconnect."""
        self._session.stopping = True
        self._shutdown(grace_s)
        self.write_status("stopped")
        _LOGGER.info("monitor stopped broker=%s stats=%s", self.broker, self.stats())

    def _shutdown(self, grace_s: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(grace_s + 5)
        self.dispatcher.stop(grace_s)
        self._client.disconnect()
        self._client.loop_stop()
        self.metrics.close()
        for channel in self._channels:
            close = getattr(channel, "close", None)
            if callable(close):
                close()

    def stats(self) -> dict[str, Any]:
        """The engine's counters and what is offline (for logs and status)."""
        return {
            "engine": {k: v for k, v in self.engine.stats.items() if v},
            "devices_offline": len(self.offline.offline_devices),
            "gateways_offline": len(self.offline.offline_gateways),
        }

    # ------------------------------------------------------- paho's callbacks

    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        _LOGGER.debug(
            "received topic=%s qos=%d mid=%d payload=%r",
            msg.topic,
            msg.qos,
            msg.mid,
            bytes(msg.payload[: const.LOG_PAYLOAD_PREVIEW]),
        )
        # Blocks paho's thread when the loop is far behind: QoS 1 messages
        # then wait at the broker instead of in memory.
        self._inbox.put((msg.topic, bytes(msg.payload), self._clock()))

    # ------------------------------------------------------------------ loop

    def _run(self) -> None:
        tick_s = self.config.tick_s
        next_tick = time.monotonic()
        while True:
            timeout = max(0.0, next_tick - time.monotonic())
            try:
                topic, payload, received_us = self._inbox.get(timeout=timeout)
            except queue.Empty:
                pass
            else:
                self._guarded(self.handle_message, topic, payload, received_us)
            if self._stop.is_set() and self._inbox.empty():
                return
            if time.monotonic() >= next_tick:
                self._guarded(self.tick)
                next_tick = time.monotonic() + tick_s

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception:  # one bad message or store hiccup must not stop it
            _LOGGER.exception("monitor step failed step=%s", step.__name__)

    def handle_message(self, topic: str, payload: bytes, received_us: int) -> None:
        """Handle one received message; from the loop's thread only."""
        try:
            parsed = topics.parse(topic)
        except TopicError:
            parsed = None
        if parsed is not None and parsed.kind is topics.TopicKind.EVENT:
            self._event(payload)
        elif parsed is not None and parsed.kind is topics.TopicKind.STATE:
            assert parsed.gateway is not None
            self._gateway_state(parsed.gateway, payload, received_us)
        elif topics.matches(STATS_FILTER, topic):
            self._hub_stats(topic.split("/")[3], payload, received_us)
        else:
            self.metrics.bad_messages.labels("topic").inc()
            _LOGGER.warning("message on an unknown topic skipped topic=%r", topic)

    def _event(self, payload: bytes) -> None:
        self.metrics.messages.labels("event").inc()
        try:
            event = Event.model_validate_json(payload)
        except ValidationError as exc:
            self.metrics.bad_messages.labels("event").inc()
            _LOGGER.warning("bad event skipped error=%s", str(exc).splitlines()[0])
            return
        self._handle(signal_from_event(event, self._gateway(event.device)))

    def _gateway_state(self, gateway: str, payload: bytes, received_us: int) -> None:
        self.metrics.messages.labels("state").inc()
        if not payload:
            return  # a retained state cleared by an operator
        try:
            state = GatewayState.model_validate_json(payload)
        except ValidationError as exc:
            self.metrics.bad_messages.labels("state").inc()
            _LOGGER.warning(
                "bad gateway state skipped gateway=%s error=%s",
                gateway,
                str(exc).splitlines()[0],
            )
            return
        behind = sum(1 for d in self._devices_now() if d.gateway == gateway)
        reason = "lwt" if state.status == "offline" and state.ts is None else "state"
        found = self.offline.gateway_state(
            gateway, state.status == "online", received_us, behind, reason
        )
        # The will carries no figures (its counters read zero): skip it.
        if state.ts is not None:
            drops = self._drops.setdefault(gateway, DropWindow())
            figures = gateway_figures(state, received_us, drops)
            self.metrics.gateway_figures(gateway, figures)
            found += self.rules.observe("gateway", gateway, figures, received_us)
        for finding in found:
            self._handle(signal_of(finding))

    def _hub_stats(self, hub: str, payload: bytes, received_us: int) -> None:
        self.metrics.messages.labels("stats").inc()
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            self.metrics.bad_messages.labels("stats").inc()
            _LOGGER.warning("bad hub stats skipped hub=%s", hub)
            return
        figures = {
            k: float(v)
            for k, v in body.items()
            if k in HUB_FIGURES and isinstance(v, int | float)
        }
        self.metrics.hub_figures(hub, figures)
        for finding in self.rules.observe("hub", hub, figures, received_us):
            self._handle(signal_of(finding))

    def tick(self) -> None:
        """Check silences and rules, let the lifecycle do what is due.

        Called by the loop every ``monitor.tick_s``; from its thread only.
        """
        started = time.monotonic()
        now = self._clock()
        found = self.rules.tick(now)
        hubs_seen = any(kind == "hub" for kind, _ in self.rules.latest)
        stale = self.rules.stale_hubs()
        hubs = [s for kind, s in self.rules.latest if kind == "hub"]
        self.offline.hub_reporting(not hubs_seen or len(stale) < len(hubs), now)
        devices = self._refresh_devices()
        self.intervals.refresh(now, devices)
        if not self._waiting_for_hubs(now, hubs_seen):
            found += self.offline.check(now, devices)
        for finding in found:
            self._handle(signal_of(finding))
        self.engine.tick()
        self.metrics.devices_offline.set(len(self.offline.offline_devices))
        self.metrics.gateways_offline.set(len(self.offline.offline_gateways))
        self.metrics.check_seconds.observe(time.monotonic() - started)
        if time.monotonic() >= self._next_status:
            self.write_status()
            self._next_status = time.monotonic() + const.STATUS_INTERVAL_S

    # ------------------------------------------------------------- internals

    def _waiting_for_hubs(self, now: int, hubs_seen: bool) -> bool:
        # Just started and no hub heard yet: a hub that is down would make
        # every device look silent, so wait a few stats intervals first.
        grace_us = int(3 * self.config.stats_interval_s * 1e6)
        return not hubs_seen and now - self._started_us < grace_us

    def _handle(self, signal: Signal) -> None:
        self.metrics.signals.labels(signal.kind, signal.state).inc()
        self.engine.handle(signal)

    def _on_change(self, alert: AlertRecord, change: Change) -> None:
        self.metrics.alert_changed(alert, change)
        topic = alert_topic(alert)
        self._client.publish(topic, alert_payload(alert, change), ALERT_QOS)
        self.metrics.publishes.labels("alert").inc()
        _LOGGER.info(
            "alert %s id=%s fingerprint=%s severity=%s topic=%s",
            change,
            alert.id,
            alert.fingerprint,
            alert.severity,
            topic,
        )
        if not self.config.downlink:
            return
        down = downlink_for(alert, change, self._clock())
        if down is not None:
            self._client.publish(down[0], down[1], DOWNLINK_QOS)
            self.metrics.publishes.labels("downlink").inc()

    def _refresh_devices(self) -> list[DeviceView]:
        self._devices = [
            DeviceView(d.id, d.gateway, d.last_seen_us, d.expected_interval_s)
            for d in self.store.list_devices()
        ]
        return self._devices

    def _devices_now(self) -> list[DeviceView]:
        return self._devices or self._refresh_devices()

    def _gateway(self, device: str) -> str | None:
        cached = self._gateway_of.get(device)
        if cached is not None and time.monotonic() - cached[1] < _GATEWAY_CACHE_S:
            return cached[0]
        info = self.store.get_device(device)
        gateway = info.gateway if info is not None else None
        self._gateway_of[device] = (gateway, time.monotonic())
        return gateway

    # ------------------------------------------------------------ status file

    def status(self, state: str = "running") -> dict[str, Any]:
        """The status ``streamflow up`` and people read."""
        return {
            "pid": os.getpid(),
            "state": state,
            "client_id": self.config.client_id,
            "broker": self.broker,
            "connected": self.connected,
            "updated_us": now_us(),
            "metrics_port": self.metrics_port,
            **self.stats(),
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


def run_monitor(settings: HubSettings, stop: threading.Event | None = None) -> None:
    """Run the monitor until ``stop`` is set, or SIGTERM/SIGINT when it is None.

    Raises:
        StoreUnreachable: the store cannot be opened.
        BrokerUnreachable: the broker cannot be reached.
        PortInUse: the metrics port is taken.
    """
    from hub._ports import ensure_port_free
    from hub.service import _signal_event, open_checked_store

    if settings.monitor.metrics_port:
        ensure_port_free(
            settings.monitor.metrics_host,
            settings.monitor.metrics_port,
            "monitor.metrics_port",
        )
    store = open_checked_store(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        service = MonitorService(
            settings, store, status_path=settings.data_dir / STATUS_FILE_NAME
        )
        event = stop or _signal_event()
        service.start()
        event.wait()
        service.stop()
    finally:
        store.close()


def main() -> None:
    """Entry point of ``python -m hub.monitor.service``: ``streamflow monitor``."""
    import sys

    from hub.cli import main as cli_main

    cli_main([*sys.argv[1:], "monitor"])


if __name__ == "__main__":
    main()
