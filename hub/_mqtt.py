"""The hub side's MQTT client: one way to build and connect it from the settings.

The hub and the monitor are separate processes on the same broker; both
connect with a persistent session (MQTT 3.1.1 ``clean_session=False``, MQTT 5
``clean_start=False`` with a session expiry), so that the broker keeps their
QoS 1 messages while they restart, with the settings' credentials and TLS.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from paho.mqtt.client import (
    Client,
    ConnectFlags,
    DisconnectFlags,
    MQTTv5,
    MQTTv311,
)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub import const
from hub._errors import BrokerUnreachable
from hub.config import HubSettings, redact_url

_LOGGER = logging.getLogger(__name__)


def make_client(
    settings: HubSettings, client_id: str, manual_ack: bool = False
) -> Client:
    """A paho client for the settings' broker, not yet connected.

    Args:
        settings: the broker's version, credentials and TLS files.
        client_id: the persistent session's id (one per process).
        manual_ack: PUBACK only when the caller says so (the hub's ingest).

    Returns:
        The client; the caller sets its callbacks.
    """
    s = settings
    v5 = s.mqtt_version == "5"
    client = Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        # MQTT 5 sets clean_start at connect instead.
        clean_session=None if v5 else False,
        protocol=MQTTv5 if v5 else MQTTv311,
        manual_ack=manual_ack,
    )
    if s.mqtt_username is not None:
        client.username_pw_set(s.mqtt_username, s.mqtt_password)
    if s.mqtt_tls:
        client.tls_set(
            ca_certs=str(s.tls.ca_file) if s.tls.ca_file else None,
            certfile=str(s.tls.cert_file) if s.tls.cert_file else None,
            keyfile=str(s.tls.key_file) if s.tls.key_file else None,
        )
        client.tls_insecure_set(s.tls.insecure)
    client.reconnect_delay_set(const.RECONNECT_MIN_DELAY_S, const.RECONNECT_MAX_DELAY_S)
    return client


def connect(client: Client, settings: HubSettings) -> None:
    """Connect ``client`` to the settings' broker, keeping its session.

    Raises:
        OSError: the broker refused the TCP connection, the host is unknown,
            or the connection timed out.
    """
    s = settings
    if s.mqtt_version == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = const.SESSION_EXPIRY_S
        client.connect(
            s.mqtt_host,
            s.mqtt_port,
            const.KEEPALIVE_S,
            clean_start=False,
            properties=props,
        )
    else:
        client.connect(s.mqtt_host, s.mqtt_port, const.KEEPALIVE_S)


class BrokerSession:
    """A client of the hub side and its session state, as paho reports it.

    It subscribes again on every connect (a broker that lost the session,
    restarted without persistence, would otherwise send nothing), logs
    refusals, and is ready once the broker answered the subscription. The
    owner sets ``client.on_message`` and sets ``stopping`` before it
    disconnects, so that the disconnect is not logged as a lost connection.

    Args:
        settings: the broker's URL, version, credentials and TLS files.
        client_id: the persistent session's id.
        subscriptions: the filters and their QoS.
        manual_ack: PUBACK only when the owner says so (the hub's ingest).
    """

    def __init__(
        self,
        settings: HubSettings,
        client_id: str,
        subscriptions: list[tuple[str, int]],
        manual_ack: bool = False,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.subscriptions = subscriptions
        #: The broker URL without a password, for logs and errors.
        self.broker = redact_url(settings.mqtt_url)
        self.client = make_client(settings, client_id, manual_ack)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect

        # Set from paho's network thread.
        self.ready = threading.Event()
        self.error: str | None = None
        self.stopping = False

    @property
    def connected(self) -> bool:
        """Whether the client is connected and subscribed."""
        return self.ready.is_set() and self.client.is_connected()

    def open(self, timeout_s: float) -> None:
        """Connect, start paho's loop, and wait until subscribed.

        Raises:
            BrokerUnreachable: the broker cannot be reached, refused the
                connection, or did not answer within ``timeout_s`` (the loop
                is stopped again then).
        """
        try:
            connect(self.client, self.settings)
        except OSError as exc:  # refused, unknown host, timed out
            raise BrokerUnreachable(
                self.broker, str(exc) or type(exc).__name__
            ) from exc
        self.client.loop_start()
        if not self.ready.wait(timeout_s) or self.error:
            detail = self.error or f"no answer after {timeout_s:g} s"
            self.client.loop_stop()
            raise BrokerUnreachable(self.broker, detail)

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self.error = f"refused: {reason_code}"
            _LOGGER.error(
                "broker refused broker=%s reason=%s", self.broker, reason_code
            )
            self.ready.set()
            return
        self.error = None
        _LOGGER.info(
            "connected broker=%s client_id=%s session_present=%s",
            self.broker,
            self.client_id,
            flags.session_present,
        )
        client.subscribe(self.subscriptions)

    def _on_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        filters = [f for f, _qos in self.subscriptions]
        for topic_filter, code in zip(filters, reason_codes, strict=False):
            if code.is_failure:
                _LOGGER.error(
                    "subscription refused filter=%s reason=%s", topic_filter, code
                )
        _LOGGER.info("subscriptions ready filters=%s", ",".join(filters))
        self.ready.set()

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self.stopping:
            _LOGGER.info("disconnected broker=%s", self.broker)
        else:
            _LOGGER.warning(
                "connection lost, reconnecting broker=%s reason=%s",
                self.broker,
                reason_code,
            )
