"""The uplink: the agent's session on the hub's broker.

On every connect it subscribes (QoS 1) to its ack topic and its downlinks,
and publishes its birth; its will, set before connecting, is the retained
``offline`` state on ``sf/v1/gw/{gw}/up/state``. Batches go out at QoS 1.
Which batches to send, and when to send them again, is the worker's business
(:mod:`edge_agent.inflight`); this module only moves messages.

paho calls the handlers below from its network thread.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from edge_agent.client import Backoff, Session, tls_context
from edge_agent.config import EdgeSettings
from edge_agent.const import WARNING_INTERVAL_S
from edge_agent.relay import Relay
from protocol import topics
from protocol.models import BatchAck
from protocol.ratelimit import WarningLimiter

_LOGGER = logging.getLogger(__name__)

_QOS = 1
# Room in paho's window for state messages beside a full window of batches.
_EXTRA_INFLIGHT = 4


class UplinkHandler(Protocol):
    """What the uplink tells its owner (from paho's thread)."""

    def uplink_connected(self, session_present: bool) -> None:
        """The session is up and subscribed."""

    def uplink_disconnected(self) -> None:
        """The session went down; paho reconnects."""

    def uplink_ack(self, ack: BatchAck) -> None:
        """The hub committed the batches in ``ack.seqs``."""

    def uplink_puback(self, mid: int) -> None:
        """The broker took the message ``mid`` (not a delivery guarantee)."""


class Uplink:
    """The session on the hub broker.

    Args:
        settings: the agent's settings.
        handler: gets connection events, acks and PUBACKs.
        relay: gets the downlinks.
        will: the offline state payload, published by the broker if the
            agent vanishes.

    Raises:
        OSError: a TLS file cannot be read.
        ssl.SSLError: a TLS file is not valid PEM.
    """

    def __init__(
        self,
        settings: EdgeSettings,
        handler: UplinkHandler,
        relay: Relay,
        will: bytes,
    ) -> None:
        gw = settings.gateway_id
        self._handler = handler
        self._relay = relay
        self._warnings = WarningLimiter(_LOGGER, WARNING_INTERVAL_S)
        self.batch_topic = topics.batch(gw)
        self.state_topic = topics.state(gw)
        self.ack_topic = topics.ack(gw)
        self.downlink_filter = topics.downlink_filter(gw)

        hub = settings.hub
        context = None
        if hub.tls:
            context = tls_context(
                _path(settings.tls_ca_file),
                _path(settings.tls_cert_file),
                _path(settings.tls_key_file),
            )
        self.session = Session(
            "uplink",
            hub,
            settings.uplink_client_id,
            version=settings.mqtt_version,
            keepalive_s=settings.keepalive_s,
            backoff=Backoff(settings.reconnect_min_s, settings.reconnect_max_s),
            session_expiry_s=settings.session_expiry_s,
            username=settings.username,
            password=settings.password,
            tls=context,
            tls_insecure=settings.tls_insecure,
        )
        client = self.session.client
        client.will_set(self.state_topic, will, qos=_QOS, retain=True)
        client.max_inflight_messages_set(settings.inflight_batches + _EXTRA_INFLIGHT)
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self.session.on_connected = self._on_connected
        self.session.on_disconnected = handler.uplink_disconnected

    @property
    def connected(self) -> bool:
        """Whether the hub broker session is up."""
        return self.session.connected

    def start(self) -> None:
        """Connect in the background."""
        self.session.start()

    def stop(self) -> None:
        """Disconnect cleanly; the will is not published."""
        self.session.stop()

    def publish_batch(self, payload: bytes) -> int:
        """Publish a batch at QoS 1 and return its message id.

        paho keeps a QoS 1 message it could not write yet and sends it once
        connected, so the id is valid even while the session is down.
        """
        info = self.session.client.publish(self.batch_topic, payload, qos=_QOS)
        _LOGGER.debug(
            "batch published topic=%s mid=%d bytes=%d rc=%s",
            self.batch_topic,
            info.mid,
            len(payload),
            info.rc,
        )
        return int(info.mid)

    def publish_state(self, payload: bytes) -> mqtt.MQTTMessageInfo:
        """Publish the gateway state, retained, at QoS 1."""
        info = self.session.client.publish(
            self.state_topic, payload, qos=_QOS, retain=True
        )
        _LOGGER.debug("state published topic=%s mid=%d", self.state_topic, info.mid)
        return info

    def _on_connected(self, session_present: bool) -> None:
        # Subscribe on every connect: a broker that lost the session (amqtt
        # restarted, an expired session) has lost the subscriptions too.
        self.session.client.subscribe(
            [(self.ack_topic, _QOS), (self.downlink_filter, _QOS)]
        )
        self._handler.uplink_connected(session_present)

    def _on_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        topic, payload = message.topic, bytes(message.payload)
        _LOGGER.debug(
            "received topic=%s qos=%d mid=%d payload=%.80r",
            topic,
            message.qos,
            message.mid,
            payload,
        )
        if topic == self.ack_topic:
            self._take_ack(payload)
        elif topics.matches(self.downlink_filter, topic):
            self._relay.handle(topic, payload)
        else:
            _LOGGER.debug("unexpected message on uplink topic=%s", topic)

    def _take_ack(self, payload: bytes) -> None:
        try:
            ack = BatchAck.model_validate_json(payload)
        except ValidationError as exc:
            self._warnings.warn(
                "bad_ack",
                "hub ack ignored topic=%s reason=%s",
                self.ack_topic,
                exc.errors()[0]["msg"],
            )
            return
        self._handler.uplink_ack(ack)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        if reason_code.is_failure:
            # MQTT 5 brokers may refuse a publish (quota, size, not
            # authorised): the batch stays unacked and is sent again later.
            self._warnings.warn(
                "puback_failure",
                "broker refused publish mid=%d reason=%s",
                mid,
                reason_code,
            )
            return
        self._handler.uplink_puback(mid)


def _path(value: object) -> str | None:
    return None if value is None else str(value)
