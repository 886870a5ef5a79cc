"""The downlink relay: hub downlinks republished to devices on the local broker."""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.relay import Relay
from protocol import topics
from protocol.errors import TopicError
from tests.edge_agent.conftest import GW, edge_settings
from tests.services import wait_for

TEMPLATE = "sf/v1/dev/{dev}/down/{kind}"


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> bool:
        self.published.append((topic, payload))
        return True


@pytest.mark.parametrize(
    ("topic", "local"),
    [
        (f"sf/v1/gw/{GW}/down/dev/dev-1/alert", "sf/v1/dev/dev-1/down/alert"),
        (f"sf/v1/gw/{GW}/down/dev/a.b_c-9/cmd", "sf/v1/dev/a.b_c-9/down/cmd"),
        ("sf/v1/gw/other/down/dev/dev-1/alert", None),
        (f"sf/v1/gw/{GW}/down/ack", None),
    ],
)
def test_relay_local_topic(topic, local):
    """Downlinks of this gateway map to the template; other topics map to None."""
    assert Relay(GW, TEMPLATE, None).local_topic(topic) == local


@pytest.mark.parametrize(
    "topic",
    [
        f"sf/v1/gw/{GW}/down/dev/bad id/alert",
        f"sf/v1/gw/{GW}/down/dev/dev-1/al ert",
        f"sf/v1/gw/{GW}/down/dev/{'x' * 65}/alert",
    ],
)
def test_relay_local_topic_bad_id(topic):
    """An id outside the v1 grammar never becomes part of a local topic."""
    with pytest.raises(TopicError, match="invalid"):
        Relay(GW, TEMPLATE, None).local_topic(topic)


def test_relay_handle_publishes_payload_unchanged():
    """A downlink is published once at its local topic with the same bytes."""
    publish = Recorder()
    relay = Relay(GW, TEMPLATE, publish)
    payload = b'{"v":1,"dev":"dev-1","kind":"alert","ts":1,"body":{"on":true}}'
    relay.handle(f"sf/v1/gw/{GW}/down/dev/dev-1/alert", payload)
    assert publish.published == [("sf/v1/dev/dev-1/down/alert", payload)]
    assert (relay.relayed, relay.dropped) == (1, 0)


def test_relay_handle_bad_id_dropped_with_warning(caplog):
    """A downlink with a bad id is dropped and logged at WARNING."""
    publish = Recorder()
    relay = Relay(GW, TEMPLATE, publish)
    relay.handle(f"sf/v1/gw/{GW}/down/dev/bad id/alert", b"{}")
    assert publish.published == []
    assert relay.dropped == 1
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_relay_handle_without_local_broker_logs_info(caplog):
    """Without a local broker the downlink is dropped and logged at INFO."""
    caplog.set_level(logging.INFO, logger="edge_agent.relay")
    relay = Relay(GW, TEMPLATE, None)
    assert relay.handle(f"sf/v1/gw/{GW}/down/dev/dev-1/alert", b"{}") is None
    assert relay.dropped == 1
    assert "no local broker" in caplog.records[-1].getMessage()
    assert caplog.records[-1].levelno == logging.INFO


@pytest.mark.broker
def test_relay_end_to_end(
    tmp_path, amqtt_broker, mosquitto_broker, subscribe, start_agent
):
    """A downlink on the hub broker reaches the device topic on the local broker."""
    settings = edge_settings(tmp_path, amqtt_broker.url, local_url=mosquitto_broker.url)
    agent = start_agent(settings)
    device = subscribe(mosquitto_broker, "sf/v1/dev/+/down/+")
    hub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sf-test-hub-pub")
    hub.connect(amqtt_broker.host, amqtt_broker.port, keepalive=10)
    hub.loop_start()
    payload = b'{"v":1,"dev":"dev-9","kind":"alert","ts":1,"body":{}}'
    hub.publish(topics.downlink(GW, "dev-9", "alert"), payload, qos=1).wait_for_publish(
        5
    )
    hub.disconnect()
    hub.loop_stop()
    wait_for(lambda: device.messages, timeout=10, what="relayed downlink")
    got = device.messages[0]
    assert (got.topic, bytes(got.payload), got.qos) == (
        "sf/v1/dev/dev-9/down/alert",
        payload,
        1,
    )
    assert agent.relay.relayed == 1
