"""The agent's MQTT sessions: paho clients for the hub and the local broker.

Both sessions are persistent (MQTT 3.1.1 ``clean_session=False``, MQTT 5
``clean_start=False`` with a session expiry), so that a broker keeps QoS 1
messages for the agent while it is away: the hub's acks on the uplink, the
sensors' readings on the local broker.

Reconnects: paho's own network thread (``loop_start``) reconnects, but its
back-off doubles with no jitter, so a hub broker restart would see every
gateway of a site come back in the same instant. After each failure the next
delay is computed here (exponential, "equal jitter": half fixed, half random,
between ``reconnect_min_s`` and ``reconnect_max_s``) and handed to paho with
``reconnect_delay_set(delay, delay)``, which makes its next wait exactly that.
Keeping paho's thread rather than a loop of our own keeps ``publish`` safe to
call from the agent's worker thread.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import SecretStr

from edge_agent.config import BrokerUrl, MqttVersion

_LOGGER = logging.getLogger(__name__)


class Backoff:
    """Exponential reconnect delays with jitter.

    Args:
        min_s: the first delay, and the least any delay can be.
        max_s: the cap of the doubling.
        rng: a source of floats in [0, 1).
    """

    def __init__(
        self, min_s: float, max_s: float, rng: Callable[[], float] = random.random
    ) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"expected 0 < min_s <= max_s, got {min_s!r}, {max_s!r}")
        self.min_s = min_s
        self.max_s = max_s
        self._rng = rng
        self._failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one failure."""
        ceiling = min(self.max_s, self.min_s * 2.0 ** min(self._failures, 30))
        self._failures += 1
        return max(self.min_s, ceiling / 2 + self._rng() * ceiling / 2)

    def reset(self) -> None:
        """Start again from the first delay (after a successful connect)."""
        self._failures = 0


def _drop_not_connected(record: logging.LogRecord) -> bool:
    """Filter out paho's "Client is not connected" lines.

    paho 2.2 logs it at ERROR when its loop runs once more after our own
    disconnect, and at every failed attempt to connect: the first is no
    error, the second has our own line ("cannot connect ... retry_in_s"),
    which says what happens next. One function for every session, so that
    a logger shared by sessions of the same name holds it once (a filter
    bound to each session would pile up and keep every session alive).
    """
    return not record.getMessage().startswith("Client is not connected")


class Session:
    """One persistent MQTT session run by paho's network thread.

    Args:
        name: ``uplink`` or ``local``, for the logs.
        url: the broker address.
        client_id: the fixed client id that names the persistent session.
        version: ``3.1.1`` or ``5``.
        keepalive_s: the MQTT keepalive.
        backoff: the reconnect delays.
        session_expiry_s: MQTT 5 session expiry asked of the broker.
        username: the user name, if the broker wants one.
        password: its password.
        manual_ack: PUBACK incoming QoS 1 messages only when :meth:`ack` is
            called.
        tls: a TLS context (for ``mqtts://``), or None.
        tls_insecure: skip the broker host name check.
    """

    def __init__(
        self,
        name: str,
        url: BrokerUrl,
        client_id: str,
        *,
        version: MqttVersion,
        keepalive_s: int,
        backoff: Backoff,
        session_expiry_s: int = 86_400,
        username: str | None = None,
        password: SecretStr | None = None,
        manual_ack: bool = False,
        tls: ssl.SSLContext | None = None,
        tls_insecure: bool = False,
    ) -> None:
        self.name = name
        self.url = url
        self.client_id = client_id
        self.version = version
        self._keepalive = keepalive_s
        self._backoff = backoff
        self._expiry = session_expiry_s
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = False

        # Callbacks of the owner, called from paho's thread.
        self.on_connected: Callable[[bool], None] = lambda session_present: None
        self.on_disconnected: Callable[[], None] = lambda: None

        v5 = version == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if v5 else False,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            manual_ack=manual_ack,
        )
        paho_logger = logging.getLogger(f"{__name__}.paho.{name}")
        paho_logger.addFilter(_drop_not_connected)
        self.client.enable_logger(paho_logger)
        if username is not None:
            secret = password.get_secret_value() if password else None
            self.client.username_pw_set(username, secret)
        if tls is not None:
            self.client.tls_set_context(tls)
            self.client.tls_insecure_set(tls_insecure)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_subscribe = self._on_subscribe

    @property
    def connected(self) -> bool:
        """Whether the session is connected (CONNACK accepted)."""
        return self._connected.is_set()

    @property
    def subscribed(self) -> bool:
        """Whether the subscriptions of the current connection were granted."""
        return self._subscribed.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected; tell whether it is."""
        return self._connected.wait(timeout)

    def start(self) -> None:
        """Connect in the background; paho's thread keeps reconnecting."""
        properties = None
        if self.version == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self._expiry
        # MQTT 5: never a clean start, not even the first time, so that the
        # session of a previous run of the agent is picked up. (3.1.1 takes
        # clean_session=False from the constructor and ignores this.)
        v5 = self.version == "5"
        self.client.connect_async(
            self.url.host,
            self.url.port,
            keepalive=self._keepalive,
            clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        # The first delay also applies to a failed first attempt.
        delay = self._backoff.next_delay()
        self._backoff.reset()
        self.client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]
        self.client.loop_start()
        _LOGGER.info(
            "%s connecting url=%s client_id=%s version=%s",
            self.name,
            self.url,
            self.client_id,
            self.version,
        )

    def stop(self) -> None:
        """Disconnect cleanly (no will is published) and end paho's thread."""
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()
        _LOGGER.info("%s stopped url=%s", self.name, self.url)

    def _rearm(self) -> float:
        delay = self._backoff.next_delay()
        # paho types these as int but waits with floats; sub-second delays
        # matter for a local broker restart.
        self.client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]
        return delay

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            _LOGGER.error(
                "%s connection refused url=%s client_id=%s reason=%s",
                self.name,
                self.url,
                self.client_id,
                reason_code,
            )
            return
        self._backoff.reset()
        self._connected.set()
        _LOGGER.info(
            "%s connected url=%s client_id=%s session_present=%s",
            self.name,
            self.url,
            self.client_id,
            flags.session_present,
        )
        self.on_connected(bool(flags.session_present))

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        if self._stopping:
            _LOGGER.info("%s disconnected url=%s", self.name, self.url)
            return
        delay = self._rearm()
        if was:
            _LOGGER.warning(
                "%s disconnected url=%s reason=%s retry_in_s=%.2f",
                self.name,
                self.url,
                reason_code,
                delay,
            )
            self.on_disconnected()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            _LOGGER.error(
                "%s subscription refused url=%s reasons=%s",
                self.name,
                self.url,
                refused,
            )
            return
        self._subscribed.set()
        _LOGGER.info("%s subscriptions ready url=%s", self.name, self.url)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        delay = self._rearm()
        # A warning: nothing is delivered meanwhile (the backoff spaces them).
        _LOGGER.warning(
            "%s cannot connect url=%s retry_in_s=%.2f", self.name, self.url, delay
        )


def tls_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext:
    """A client TLS context verifying the broker (system CAs unless ``ca_file``).

    Raises:
        OSError: a file cannot be read.
        ssl.SSLError: a file is not a valid PEM certificate or key.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context
