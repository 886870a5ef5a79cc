"""The alert downlink: topic and payload, and end to end through a gateway."""

from __future__ import annotations

import logging

import orjson
import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent import EdgeAgent
from hub.alerts.downlink import DOWNLINK_QOS, MAX_PAYLOAD_BYTES, downlink_for
from hub.alerts.notice import alert_json
from protocol.models import DownlinkMessage
from tests.edge_agent.conftest import GW, Subscriber, edge_settings, ready
from tests.hub.alerts._notices import T0_US, make_alert
from tests.services import wait_for


def downlink(alert, change="opened", at_us=T0_US) -> tuple[str, bytes]:
    """downlink_for's result, which these alerts always have."""
    result = downlink_for(alert, change, at_us)
    assert result is not None
    return result


def test_downlink_topic_and_payload():
    """The topic names gateway and device; the body is the alert JSON + change."""
    alert = make_alert(8, state="acknowledged")
    topic, payload = downlink(alert, "acknowledged", T0_US + 5)

    assert topic == "sf/v1/gw/gw-1/down/dev/mote-8/alert"
    message = DownlinkMessage.model_validate_json(payload)
    assert (message.v, message.dev, message.kind, message.ts) == (
        1,
        "mote-8",
        "alert",
        T0_US + 5,
    )
    assert message.body == {**alert_json(alert), "change": "acknowledged"}
    assert "truncated" not in message.body


@pytest.mark.parametrize(
    "values", [{"device": None}, {"gateway": None}, {"device": "", "gateway": ""}]
)
def test_downlink_none_without_device_or_gateway(values):
    """An alert with no device or no gateway has no downlink."""
    assert downlink_for(make_alert(**values), "opened", T0_US) is None


def test_downlink_bad_id_skipped_with_warning(caplog):
    """An id outside the grammar gives no downlink and a warning."""
    alert = make_alert(device="mote/8/#")
    assert downlink_for(alert, "opened", T0_US) is None
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "alert=alert-8" in record.getMessage()


def test_downlink_large_details_dropped():
    """Over 4 KiB the details are dropped and the body says so."""
    alert = make_alert(details={"samples": list(range(2000))})
    _, payload = downlink(alert, "opened", T0_US)
    body = orjson.loads(payload)["body"]

    assert len(payload) <= MAX_PAYLOAD_BYTES
    assert body["details"] == {}
    assert body["truncated"] is True
    assert body["summary"] == alert.summary


def test_downlink_long_summary_cut():
    """A summary too long on its own is cut, so the payload still fits."""
    alert = make_alert(summary="x" * 10_000)
    _, payload = downlink(alert, "opened", T0_US)
    assert len(payload) <= MAX_PAYLOAD_BYTES
    assert orjson.loads(payload)["body"]["summary"] == "x" * 256


scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text()
# Flat values and lists of them, as details are (values, thresholds, samples):
# big enough to cross 4 KiB often, cheap to generate.
json_values = scalars | st.lists(scalars, max_size=60)


@given(details=st.dictionaries(st.text(max_size=30), json_values, max_size=20))
def test_downlink_any_details_fit(details):
    """Whatever the details, the payload is valid and at most 4 KiB."""
    alert = make_alert(details=details)
    _, payload = downlink(alert, "resolved", T0_US)
    message = DownlinkMessage.model_validate_json(payload)
    assert len(payload) <= MAX_PAYLOAD_BYTES
    assert message.body["details"] in (details, {})
    assert message.body["change"] == "resolved"


@pytest.fixture
def agents():
    """Start edge agents; stop them at the end."""
    started: list[EdgeAgent] = []

    def start(settings) -> EdgeAgent:
        agent = EdgeAgent(settings)
        agent.start()
        started.append(agent)
        wait_for(lambda: ready(agent), timeout=10, what="agent connected")
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def device_topic(mosquitto_broker):
    """A device's view of its local broker: every downlink relayed to it."""
    sub = Subscriber(mosquitto_broker.host, mosquitto_broker.port, "sf/v1/dev/+/down/+")
    yield sub
    sub.stop()


@pytest.mark.broker
def test_downlink_reaches_device_through_gateway(
    tmp_path, broker, mosquitto_broker, agents, device_topic
):
    """downlink_for's message, published on the hub broker, reaches the device."""
    agent = agents(edge_settings(tmp_path, broker.url, local_url=mosquitto_broker.url))
    alert = make_alert(3, gateway=GW)
    topic, payload = downlink(alert, "opened", T0_US)

    hub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sf-test-hub-alerts")
    hub.connect(broker.host, broker.port, keepalive=10)
    hub.loop_start()
    try:
        hub.publish(topic, payload, qos=DOWNLINK_QOS).wait_for_publish(5)
    finally:
        hub.disconnect()
        hub.loop_stop()

    wait_for(lambda: device_topic.messages, timeout=10, what="relayed alert")
    [got] = device_topic.messages
    assert (got.topic, got.qos) == ("sf/v1/dev/mote-3/down/alert", 1)
    message = DownlinkMessage.model_validate_json(bytes(got.payload))
    assert message.body == {**alert_json(alert), "change": "opened"}
    assert agent.relay.relayed == 1
