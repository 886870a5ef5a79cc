"""Local input: the gateway's own broker, where the sensors publish.

The session has a fixed client id and is persistent, and the subscriptions
are QoS 1 with ``manual_ack``: a message is PUBACKed only once its readings
are committed to the disk buffer. So while the agent is down or restarting,
the local broker keeps what the sensors publish, and a message the agent took
but had not committed is redelivered (README, "Delivery guarantees").

Each message goes through the adapter of the first input whose filter matches
its topic (:mod:`protocol.adapters`). Device log records come on their own
topic, ``sf/v1/dev/{dev}/up/log`` (always subscribed): a record object, a
list of them, ``{"log": {...}}`` or ``{"logs": [...]}``, checked by
:mod:`protocol.logs` with the topic's device. The adapter's ``source`` is the device
id when it is a valid id; otherwise the message's readings are rejected as
``bad_device_id``. Rejects are counted, and logged at WARNING at most once per
reason and interval.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.client import Backoff, Session
from edge_agent.config import EdgeSettings
from edge_agent.const import REJECT_ADAPTER_ERROR, WARNING_INTERVAL_S
from edge_agent.validation import screen
from protocol import codec
from protocol.adapters.base import AdaptedMessage, Adapter
from protocol.batch import Limits
from protocol.const import RejectReason
from protocol.errors import DecodeError
from protocol.logs import LOCAL_LOG_FILTER, LogRecord, decode_logs, device_of_log_topic
from protocol.ratelimit import WarningLimiter
from protocol.readings import Reading
from protocol.topics import is_valid_id, matches
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

_QOS = 1

#: Finds the adapter of a convention by name (``protocol.adapters.get_adapter``).
AdapterLookup = Callable[[str], Adapter]


@dataclass(frozen=True, slots=True)
class LocalMessage:
    """One message from the local broker, adapted, waiting for the buffer.

    Attributes:
        topic: the topic it came on.
        mid: its packet id (for the PUBACK and to recognise a redelivery).
        qos: its QoS; 0 needs no PUBACK.
        dup: whether the broker marked it as a redelivery.
        digest: a digest of topic and payload.
        received_us: when it arrived, epoch µs.
        readings: its good readings.
        rejects: its rejects counted by reason.
        logs: its good device log records (a device's log topic).
    """

    topic: str
    mid: int
    qos: int
    dup: bool
    digest: bytes
    received_us: int
    readings: tuple[Reading, ...] = ()
    rejects: Counter[str] = field(default_factory=Counter)
    logs: tuple[LogRecord, ...] = ()


def message_digest(topic: str, payload: bytes) -> bytes:
    """A short digest of a message, to recognise the same message again."""
    h = hashlib.blake2b(digest_size=16)
    h.update(topic.encode())
    h.update(b"\0")
    h.update(payload)
    return h.digest()


class LocalInput:
    """The session on the local broker, turning messages into readings.

    Args:
        settings: the agent's settings (``local_url`` must be set).
        sink: takes each adapted message (from paho's thread); it must hand
            the message to the buffer and call :meth:`ack` once committed.
        adapters: finds an adapter by name.

    Raises:
        ValueError: ``local_url`` is not set, or an input names an adapter
            that does not exist.
    """

    def __init__(
        self,
        settings: EdgeSettings,
        sink: Callable[[LocalMessage], None],
        adapters: AdapterLookup,
    ) -> None:
        url = settings.local
        if url is None:
            raise ValueError("local input needs local_url")
        self._sink = sink
        self._inputs = [(i.filter, adapters(i.adapter)) for i in settings.inputs]
        self._limits = Limits(max_future_skew_s=settings.max_future_skew_s)
        self._skew = settings.max_future_skew_s
        self._warnings = WarningLimiter(_LOGGER, WARNING_INTERVAL_S)
        self.session = Session(
            "local",
            url,
            settings.local_session_id,
            version=settings.local_mqtt_version,
            keepalive_s=settings.keepalive_s,
            backoff=Backoff(settings.reconnect_min_s, settings.reconnect_max_s),
            session_expiry_s=settings.session_expiry_s,
            username=settings.local_username,
            password=settings.local_password,
            manual_ack=True,
        )
        self.session.client.on_message = self._on_message
        self.session.on_connected = self._on_connected

    @property
    def connected(self) -> bool:
        """Whether the local broker session is up."""
        return self.session.connected

    def start(self) -> None:
        """Connect in the background and subscribe on every connect."""
        self.session.start()

    def stop(self) -> None:
        """Disconnect; the broker keeps the session and what is not acked."""
        self.session.stop()

    def ack(self, mid: int, qos: int) -> None:
        """PUBACK a message whose readings are committed."""
        if qos > 0:
            self.session.client.ack(mid, qos)

    def publish(self, topic: str, payload: bytes) -> bool:
        """Publish on the local broker at QoS 1 (the downlink relay).

        Returns:
            Whether paho took the message (it sends it once connected).
        """
        info = self.session.client.publish(topic, payload, qos=_QOS)
        return info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)

    def _on_connected(self, session_present: bool) -> None:
        # Subscribing again on a present session is harmless, and needed when
        # the broker lost it (a restart without persistence).
        filters = [f for f, _ in self._inputs]
        if LOCAL_LOG_FILTER not in filters:
            filters.append(LOCAL_LOG_FILTER)
        self.session.client.subscribe([(f, _QOS) for f in filters])

    def _on_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        try:
            self._sink(self.adapt(message.topic, bytes(message.payload), message))
        except Exception:  # a bug must not stop the input: log it, go on
            _LOGGER.exception("local message failed topic=%s", message.topic)

    def adapt(
        self, topic: str, payload: bytes, message: mqtt.MQTTMessage | None = None
    ) -> LocalMessage:
        """Turn one local message into readings and rejects; never raises.

        Args:
            topic: the message's topic.
            payload: its payload.
            message: the paho message (packet id, QoS, DUP), if any.
        """
        received = now_us()
        readings: list[Reading] = []
        rejects: Counter[str] = Counter()
        logs: list[LogRecord] = []
        log_device = device_of_log_topic(topic)
        adapter = next((a for f, a in self._inputs if matches(f, topic)), None)
        if log_device is not None:
            # A device's log topic is never an adapter's, whatever the filters.
            adapter = None
            logs, rejects = self._logs(topic, payload, log_device, received)
        if adapter is None:
            _LOGGER.debug("no input matches topic=%s", topic)
        else:
            try:
                adapted = adapter.adapt(topic, payload, received, self._limits)
            except Exception:  # the adapter's bug: count it, keep the loop going
                _LOGGER.exception(
                    "adapter failed adapter=%s topic=%s", adapter.name, topic
                )
                rejects[REJECT_ADAPTER_ERROR] += 1
                adapted = None
            if adapted is not None:
                readings, rejects = self._resolve(topic, adapted, received)
        return LocalMessage(
            topic,
            message.mid if message is not None else 0,
            message.qos if message is not None else 0,
            bool(message.dup) if message is not None else False,
            message_digest(topic, payload),
            received,
            tuple(readings),
            rejects,
            tuple(logs),
        )

    def _logs(
        self, topic: str, payload: bytes, device: str, received: int
    ) -> tuple[list[LogRecord], Counter[str]]:
        rejects: Counter[str] = Counter()
        if not payload:  # a retained clear
            return [], rejects
        try:
            doc = codec.read_payload(
                payload,
                max_bytes=self._limits.max_payload_bytes,
                max_inflated=self._limits.max_inflated_bytes,
            )
        except DecodeError as exc:
            rejects[exc.reason.value] += 1
            self._warnings.warn(
                f"reject:{exc.reason.value}",
                "log message rejected topic=%s reason=%s detail=%.80s",
                topic,
                exc.reason.value,
                exc.detail,
            )
            return [], rejects
        if isinstance(doc, dict) and isinstance(doc.get("logs"), list):
            raw: Any = doc["logs"]
        elif isinstance(doc, dict) and isinstance(doc.get("log"), dict):
            raw = [doc["log"]]
        else:
            raw = doc if isinstance(doc, list) else [doc]
        decoded = decode_logs(
            raw, received, self._skew, device=device, stamp_missing=True
        )
        for r in decoded.rejects:
            rejects[r.reason.value] += 1
            self._warnings.warn(
                f"reject:{r.reason.value}",
                "log record rejected topic=%s reason=%s field=%s detail=%.80s",
                topic,
                r.reason.value,
                r.field,
                r.detail,
            )
        return decoded.records, rejects

    def _resolve(
        self, topic: str, adapted: AdaptedMessage, received: int
    ) -> tuple[list[Reading], Counter[str]]:
        rejects: Counter[str] = Counter(r.reason.value for r in adapted.rejects)
        for r in adapted.rejects:
            self._warnings.warn(
                f"reject:{r.reason.value}",
                "reading rejected topic=%s reason=%s field=%s detail=%.80s",
                topic,
                r.reason.value,
                r.field,
                r.detail,
            )
        if not is_valid_id(adapted.source):
            n = max(1, len(adapted.readings))
            rejects[RejectReason.BAD_DEVICE_ID.value] += n
            self._warnings.warn(
                "reject:bad_device_id",
                "readings rejected topic=%s reason=%s source=%.80r count=%d",
                topic,
                RejectReason.BAD_DEVICE_ID.value,
                adapted.source,
                n,
            )
            return [], rejects
        good, bad = screen(adapted.readings, received, self._skew)
        for reason in bad:
            self._warnings.warn(
                f"reject:{reason}", "reading rejected topic=%s reason=%s", topic, reason
            )
        rejects.update(bad)
        return good, rejects
