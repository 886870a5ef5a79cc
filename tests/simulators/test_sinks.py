"""Sinks: broker URLs, plain JSON sensor messages, publishing over MQTT."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.readings import Reading
from simulators.errors import SinkError
from simulators.sinks import (
    BrokerAddress,
    MqttSensorSink,
    assign_gateway,
    redact,
    telemetry_messages,
)
from tests.services import free_port, wait_for


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1884", BrokerAddress("127.0.0.1", 1884)),
        ("mqtt://broker", BrokerAddress("broker", 1883)),
        ("mqtts://broker", BrokerAddress("broker", 8883, tls=True)),
        ("mqtt://u%40x:p%3Aw@h:1", BrokerAddress("h", 1, False, "u@x", "p:w")),
    ],
)
def test_broker_address_parse(url, expected):
    """Broker URLs give host, port, TLS and the unquoted credentials."""
    assert BrokerAddress.parse(url) == expected


@pytest.mark.parametrize("url", ["http://h:1", "mqtt://", "h:1883"])
def test_broker_address_parse_bad(url):
    """A URL that is not mqtt(s)://host is refused."""
    with pytest.raises(ValueError, match="bad broker URL"):
        BrokerAddress.parse(url)


def test_broker_address_str_hides_password():
    """The printable address has no credentials."""
    assert str(BrokerAddress.parse("mqtt://u:secret@h:2")) == "mqtt://h:2"


def test_redact_replaces_password():
    """redact() keeps the user and hides the password."""
    assert redact("mqtt://u:secret@h:2") == "mqtt://u:***@h:2"


def test_telemetry_messages_group_per_device_and_instant():
    """Readings of one device and instant become one JSON message."""
    readings = [
        Reading("mote-1", "temperature", 10, 19.5, "C"),
        Reading("mote-1", "humidity", 10, 38.0, "%"),
        Reading("mote-2", "temperature", 10, 18.0, "C"),
        Reading("mote-1", "temperature", 20, 19.6, "C"),
    ]
    got = [(t, orjson.loads(p)) for t, p in telemetry_messages(readings)]
    assert got == [
        (
            "sf/v1/dev/mote-1/up/telemetry",
            {"ts": 10, "temperature": 19.5, "humidity": 38.0},
        ),
        ("sf/v1/dev/mote-2/up/telemetry", {"ts": 10, "temperature": 18.0}),
        ("sf/v1/dev/mote-1/up/telemetry", {"ts": 20, "temperature": 19.6}),
    ]


def test_mqtt_sink_start_no_broker_raises():
    """Starting against a port nobody listens on fails within the timeout."""
    sink = MqttSensorSink(f"mqtt://127.0.0.1:{free_port()}")
    with pytest.raises(SinkError, match="cannot connect to"):
        sink.start(timeout=1.0)


@pytest.mark.broker
def test_mqtt_sink_publishes_acked(broker, subscribe):
    """Every message is acknowledged by the broker and reaches a subscriber."""
    sub = subscribe(broker, "sf/v1/dev/+/up/telemetry")
    sink = MqttSensorSink(broker.url, client_id="t-sink-acked")
    sink.start()
    sink.send(
        [Reading(f"d{i}", "t", 1_700_000_000_000_000 + i, float(i)) for i in range(50)]
    )
    assert sink.close(10) == 0
    assert (sink.messages_published, sink.messages_acked) == (50, 50)
    wait_for(lambda: sub.count() >= 50, timeout=10, what="50 messages")
    assert sorted(orjson.loads(p)["ts"] for _, p in sub.messages) == [
        1_700_000_000_000_000 + i for i in range(50)
    ]


@given(
    st.lists(st.sampled_from(["g1", "g2", "g3"]), min_size=1, max_size=3, unique=True),
    st.lists(st.text("abcdef", min_size=1, max_size=3), max_size=40),
)
def test_assign_gateway_round_robin_and_sticky(gateways, devices):
    """Devices go round-robin by first sight, and each keeps its gateway."""
    assignment: dict[str, str] = {}
    got = [assign_gateway(assignment, gateways, d) for d in devices]

    first_seen = list(dict.fromkeys(devices))
    expected = {d: gateways[i % len(gateways)] for i, d in enumerate(first_seen)}
    assert assignment == expected
    assert got == [expected[d] for d in devices]
    counts = Counter(assignment.values())
    assert not counts or max(counts.values()) - min(counts.values()) <= 1
