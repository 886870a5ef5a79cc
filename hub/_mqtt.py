"""The hub side's MQTT client: one way to build and connect it from the settings.

The hub and the monitor are separate processes on the same broker; both
connect with a persistent session (MQTT 3.1.1 ``clean_session=False``, MQTT 5
``clean_start=False`` with a session expiry), so that the broker keeps their
QoS 1 messages while they restart, with the settings' credentials and TLS.
"""

from __future__ import annotations

from paho.mqtt.client import Client, MQTTv5, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub import const
from hub.config import HubSettings


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
