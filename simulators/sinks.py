"""Where simulated readings go: plain MQTT sensors or in-process edge agents.

A :class:`Sink` takes lists of readings in time order. Two kinds exist:

- :class:`MqttSensorSink` acts as a fleet of plain JSON sensors: each device
  publishes ``{"ts": <epoch µs>, "<metric>": value, ...}`` per sampling
  instant on ``sf/v1/dev/{dev}/up/telemetry``, QoS 1, all from one paho
  client with a persistent session (clean_session=False), so that a broker
  restart loses nothing the client has not had acknowledged.
- :class:`simulators.gateways.EdgeGatewaySink` runs real edge agents in this
  process and submits the readings to them.
- :class:`simulators.http_sink.HttpIngestSink` POSTs batch envelopes to the
  API's ``/v1/ingest``, one gateway id per simulated gateway (``--via http``).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import unquote, urlsplit

from protocol import codec, topics
from protocol.readings import Reading
from simulators.errors import SinkError

_LOGGER = logging.getLogger(__name__)

_SCHEMES: Final = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}
#: Messages published but not yet acknowledged before send() waits.
DEFAULT_MAX_UNACKED: Final = 2_000
DEFAULT_CONNECT_TIMEOUT_S: Final = 10.0
#: How long :func:`check_reachable` waits for a TCP connection.
DEFAULT_CHECK_TIMEOUT_S: Final = 5.0
DEFAULT_ACK_TIMEOUT_S: Final = 30.0


class Sink(Protocol):
    """Something simulated readings are handed to."""

    def start(self) -> None:
        """Connect or start; raise :class:`SinkError` if that fails."""
        ...

    def send(self, readings: list[Reading]) -> None:
        """Hand on readings, in time order; raise :class:`SinkError` on failure."""
        ...

    def close(self, timeout: float = DEFAULT_ACK_TIMEOUT_S) -> int:
        """Wait up to ``timeout`` s for what was sent, then stop.

        Returns:
            How many readings or messages were still unconfirmed.
        """
        ...


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where an MQTT broker listens, parsed from ``mqtt://[user[:pw]@]host[:port]``.

    ``mqtts://`` (or ``ssl://``) turns TLS on with the system's CAs.
    """

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Parse a broker URL.

        Raises:
            ValueError: the scheme is not mqtt, mqtts, tcp or ssl, or the URL
                has no host.
        """
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValueError(
                f"bad broker URL {redact(url)!r}: expected mqtt://host[:port]"
            )
        tls = _SCHEMES[parts.scheme]
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        # Never the password: this goes into logs.
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def check_reachable(
    url: str, timeout: float = DEFAULT_CHECK_TIMEOUT_S
) -> BrokerAddress:
    """Check that something accepts TCP connections at a broker URL.

    The in-process edge agents reconnect with back-off forever, as a gateway
    must; a command that feeds them checks the hub's broker once up front, so
    that a wrong URL fails in seconds rather than after the whole run.

    Args:
        url: the broker, ``mqtt://host[:port]`` (or ``mqtts://``).
        timeout: seconds to wait for the connection.

    Returns:
        The parsed address.

    Raises:
        SinkError: the URL is not a broker URL, or nothing accepted the
            connection within ``timeout`` (the message gives the reason, as
            ``cannot connect to mqtt://host:port: Connection refused``).
    """
    try:
        address = BrokerAddress.parse(url)
    except ValueError as exc:
        raise SinkError(str(exc)) from exc
    try:
        with socket.create_connection((address.host, address.port), timeout):
            pass
    except OSError as exc:
        raise SinkError(f"cannot connect to {address}: {os_reason(exc)}") from exc
    return address


def os_reason(exc: OSError) -> str:
    """The reason of a socket error without its errno (``Connection refused``)."""
    if isinstance(exc, TimeoutError) and not exc.strerror:
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__


def telemetry_messages(readings: list[Reading]) -> list[tuple[str, bytes]]:
    """Group readings per device and instant into plain JSON sensor messages.

    Returns:
        (topic, payload) pairs in the order each (device, ts) first appears.
    """
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for r in readings:
        doc = groups.get((r.device, r.ts_us))
        if doc is None:
            doc = groups[(r.device, r.ts_us)] = {"ts": r.ts_us}
        doc[r.metric] = r.value
    return [
        (topics.telemetry(dev), codec.dumps(doc)) for (dev, _), doc in groups.items()
    ]


def assign_gateway(
    assignment: dict[str, str], gateways: Sequence[str], device: str
) -> str:
    """The gateway of ``device``: as assigned, else the next one round-robin.

    A device seen for the first time is added to ``assignment``, so that it
    stays on its gateway for the rest of the run.
    """
    gw = assignment.get(device)
    if gw is None:
        gw = gateways[len(assignment) % len(gateways)]
        assignment[device] = gw
    return gw


class MqttSensorSink:
    """Publishes readings as plain JSON sensors, from one paho client.

    Args:
        url: the broker, ``mqtt://[user[:password]@]host[:port]``.
        client_id: the client id; kept stable so the persistent session of
            a previous run is resumed.
        qos: the publish QoS (1: the broker acknowledges each message).
        max_unacked: published messages without PUBACK before send() waits.
        username: the broker user; overrides one in the URL.
        password: its password; overrides one in the URL (never logged).
    """

    def __init__(
        self,
        url: str,
        client_id: str = "sf-sim-sensors",
        qos: int = 1,
        max_unacked: int = DEFAULT_MAX_UNACKED,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.address = BrokerAddress.parse(url)
        self.client_id = client_id
        self.qos = qos
        self.max_unacked = max_unacked

        # Counters shared with paho's network thread, under one condition.
        self._cond = threading.Condition()
        self._published = 0
        self._acked = 0
        self._connected = False
        self._connect_error: str | None = None

        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        # paho's own backoff between reconnects (1 s doubling to 30 s).
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        # Paho's queue limit must not be the bottleneck: our own bound is.
        self._client.max_inflight_messages_set(min(max_unacked, 1000))
        user = username or self.address.username
        if user:
            self._client.username_pw_set(user, password or self.address.password)
        if self.address.tls:
            self._client.tls_set()
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    @property
    def messages_published(self) -> int:
        """Messages handed to paho so far."""
        return self._published

    @property
    def messages_acked(self) -> int:
        """Messages the broker has acknowledged (PUBACK) so far."""
        return self._acked

    def start(self, timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
        """Connect and wait for the broker's CONNACK.

        Raises:
            SinkError: the broker refused the connection or did not answer in
                ``timeout`` seconds.
        """
        try:
            # A blocking first connect, so that a refused port fails at once;
            # after that paho's network thread reconnects by itself.
            self._client.connect(self.address.host, self.address.port, 30)
        except OSError as exc:
            raise SinkError(
                f"cannot connect to {self.address}: {os_reason(exc)}"
            ) from exc
        except ValueError as exc:
            raise SinkError(f"cannot connect to {self.address}: {exc}") from exc
        self._client.loop_start()
        with self._cond:
            self._cond.wait_for(
                lambda: self._connected or self._connect_error is not None, timeout
            )
            error, connected = self._connect_error, self._connected
        if not connected:
            self._client.loop_stop()
            raise SinkError(
                f"no connection to {self.address} after {timeout} s: {error or '-'}"
            )

    def send(self, readings: list[Reading]) -> None:
        """Publish the readings, one message per device and instant.

        Readings are grouped within one call only: keep an instant's readings
        in the same call (the replay's chunks do).

        Waits while ``max_unacked`` messages lack their PUBACK.

        Raises:
            SinkError: the broker acknowledged nothing for
                ``DEFAULT_ACK_TIMEOUT_S`` while the window was full.
        """
        for topic, payload in telemetry_messages(readings):
            with self._cond:
                room = self._cond.wait_for(
                    lambda: self._published - self._acked < self.max_unacked,
                    DEFAULT_ACK_TIMEOUT_S,
                )
                if not room:
                    raise SinkError(
                        f"broker {self.address} acknowledged nothing for"
                        f" {DEFAULT_ACK_TIMEOUT_S} s"
                        f" unacked={self._published - self._acked}"
                    )
                self._published += 1
            # A QoS 1 message published while disconnected stays in paho's
            # queue and goes out after the reconnect, so rc is not checked.
            info = self._client.publish(topic, payload, qos=self.qos)
            _LOGGER.debug(
                "publish topic=%s qos=%d mid=%d bytes=%d",
                topic,
                self.qos,
                info.mid,
                len(payload),
            )

    def close(self, timeout: float = DEFAULT_ACK_TIMEOUT_S) -> int:
        """Wait for the PUBACKs of everything published, then disconnect.

        Returns:
            Messages still unacknowledged when the wait ended.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._acked >= self._published, timeout)
            unacked = self._published - self._acked
        if unacked:
            _LOGGER.warning(
                "closing with unacknowledged messages broker=%s unacked=%d",
                self.address,
                unacked,
            )
        self._client.disconnect()
        self._client.loop_stop()
        return unacked

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        with self._cond:
            if reason.is_failure:
                self._connect_error = str(reason)
                _LOGGER.error(
                    "broker refused connection broker=%s reason=%s",
                    self.address,
                    reason,
                )
            else:
                self._connected = True
                _LOGGER.info(
                    "connected broker=%s client_id=%s session_present=%s",
                    self.address,
                    self.client_id,
                    flags.session_present,
                )
            self._cond.notify_all()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        with self._cond:
            self._connected = False
        if reason.is_failure:
            _LOGGER.warning(
                "disconnected broker=%s reason=%s: paho reconnects",
                self.address,
                reason,
            )

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        with self._cond:
            self._acked += 1
            self._cond.notify_all()
