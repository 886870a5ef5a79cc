"""The ``zigbee2mqtt`` adapter (protocol.adapters.zigbee2mqtt)."""

from __future__ import annotations

import orjson
import pytest

from protocol.adapters.zigbee2mqtt import Zigbee2MqttAdapter
from protocol.batch import Limits
from protocol.const import FLAG_SERVER_TIME, Notice
from protocol.const import RejectReason as R
from tests.protocol.helpers import us

RECEIVED = us("2026-11-30T12:00:05Z")
T0 = us("2026-11-30T12:00:00Z")


def _adapt(payload, topic="zigbee2mqtt/dev-1", adapter=None):
    if not isinstance(payload, bytes):
        payload = orjson.dumps(payload)
    return (adapter or Zigbee2MqttAdapter()).adapt(topic, payload, RECEIVED, Limits())


def test_state_readings_with_units():
    """Numbers are readings at the receive time with Zigbee2MQTT's fixed units."""
    doc = {"temperature": 21.5, "humidity": 48, "battery": 90, "voltage": 3000}
    msg = _adapt({**doc, "linkquality": 120})
    assert [(r.metric, r.value, r.unit) for r in msg.readings] == [
        ("temperature", 21.5, "°C"),
        ("humidity", 48.0, "%"),
        ("battery", 90.0, "%"),
        ("voltage", 3000.0, ""),
        ("linkquality", 120.0, ""),
    ]
    assert {(r.ts_us, r.flags, r.device) for r in msg.readings} == {
        (RECEIVED, FLAG_SERVER_TIME, "dev-1")
    }


def test_text_attributes_ignored():
    """Enum attributes' strings are text: neither readings nor rejects."""
    doc = {
        "system_mode": "heat",
        "running_state": "idle",
        "action": "single",
        "power_on_behavior": "previous",
        "color_mode": "xy",
        "update": {"state": "idle", "installed_version": 10},
        "sensitivity": "high",
    }
    msg = _adapt(doc)
    assert [(r.metric, r.value) for r in msg.readings] == [
        ("update.installed_version", 10.0)
    ]
    assert (msg.rejects, msg.notices) == ([], {})


def test_states_counted():
    """ON/OFF/LOCK states are state_value notices."""
    msg = _adapt({"state": "ON", "child_lock": "LOCK", "window": "CLOSED"})
    assert (msg.readings, msg.rejects) == ([], [])
    assert msg.notices == {Notice.STATE_VALUE: 3}


def test_booleans_and_nested_objects():
    """Booleans are 1.0/0.0 and nested objects flatten with dots."""
    msg = _adapt({"occupancy": True, "color": {"x": 0.3, "y": 0.4}})
    assert [(r.metric, r.value) for r in msg.readings] == [
        ("occupancy", 1.0),
        ("color.x", 0.3),
        ("color.y", 0.4),
    ]


def test_device_information_skipped():
    """The legacy device information object is not read."""
    doc = {"device": {"ieeeAddr": "0x00", "type": "EndDevice", "dateCode": 2019}}
    msg = _adapt({**doc, "temperature": 1})
    assert [r.metric for r in msg.readings] == ["temperature"]


@pytest.mark.parametrize(
    ("last_seen", "expected"),
    [
        ("2026-11-30T12:00:00.000Z", T0),
        ("2026-11-30T13:00:00+01:00", T0),
        (1796040000000, T0),
    ],
)
def test_last_seen_stamps_readings(last_seen, expected):
    """last_seen (ISO or epoch ms) is the readings' time, from the device clock."""
    msg = _adapt({"last_seen": last_seen, "temperature": 1})
    assert [(r.ts_us, r.flags) for r in msg.readings] == [(expected, 0)]


def test_bad_last_seen_rejected():
    """An unreadable last_seen rejects the message once, naming last_seen."""
    msg = _adapt({"last_seen": "soon", "temperature": 1})
    assert [(r.reason, r.field) for r in msg.rejects] == [
        (R.BAD_TIMESTAMP, "last_seen")
    ]
    assert msg.readings == []


@pytest.mark.parametrize(
    "topic",
    [
        "zigbee2mqtt/bridge/state",
        "zigbee2mqtt/bridge/devices",
        "zigbee2mqtt/bridge",
        "zigbee2mqtt/dev-1/availability",
        "zigbee2mqtt/dev-1/set",
        "zigbee2mqtt/dev-1/set/state",
        "zigbee2mqtt/dev-1/get",
        "zigbee2mqtt/dev-1/get/state",
        "zigbee2mqtt/dev-1/action",
        "zigbee2mqtt/",
        "zigbee2mqtt",
        "z2m/dev-1",
        "zigbee2mqttx/dev-1",
    ],
)
def test_non_device_topics_ignored(topic):
    """Bridge topics, device sub-topics and other bases give None."""
    assert _adapt({"temperature": 1}, topic=topic) is None


def test_friendly_name_with_slash():
    """A friendly name may group devices with slashes; it is kept whole."""
    msg = _adapt({"temperature": 1}, topic="zigbee2mqtt/floor1/kitchen/sensor")
    assert msg.source == "floor1/kitchen/sensor"


def test_custom_base_topic():
    """A configured base topic, possibly of several levels, is honoured."""
    adapter = Zigbee2MqttAdapter("home/z2m")
    assert adapter.default_filters() == ["home/z2m/#"]
    msg = _adapt({"temperature": 1}, topic="home/z2m/dev-1", adapter=adapter)
    assert msg.source == "dev-1"
    assert _adapt({"t": 1}, topic="home/z2m/bridge/state", adapter=adapter) is None


@pytest.mark.parametrize("payload", [b'""', b"[]", b"42", b"null", b'[{"t": 1}]'])
def test_not_object_rejected(payload):
    """Anything but an object is payload_not_object, lists of objects included."""
    msg = _adapt(payload)
    assert [(r.reason, r.field) for r in msg.rejects] == [(R.PAYLOAD_NOT_OBJECT, "")]
    assert msg.readings == []
