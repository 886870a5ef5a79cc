"""The ``tasmota`` adapter (protocol.adapters.tasmota)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import orjson
import pytest

from protocol.adapters.tasmota import TasmotaAdapter
from protocol.batch import Limits
from protocol.const import FLAG_SERVER_TIME, Notice
from protocol.const import RejectReason as R
from protocol.readings import Reading
from tests.protocol.helpers import us

RECEIVED = us("2026-11-30T12:00:05Z")
T0 = us("2026-11-30T12:00:00Z")

STATE = {
    "Time": "2026-11-30T12:00:00",
    "Uptime": "0T00:00:20",
    "UptimeSec": 20,
    "Heap": 25,
    "SleepMode": "Dynamic",
    "Sleep": 50,
    "LoadAvg": 19,
    "MqttCount": 1,
    "POWER": "ON",
    "Wifi": {
        "AP": 1,
        "SSId": "site",
        "BSSId": "AA:BB:CC:DD:EE:FF",
        "Channel": 6,
        "Mode": "11n",
        "RSSI": 100,
        "Signal": -46,
        "LinkCount": 1,
        "Downtime": "0T00:00:03",
    },
}


def _adapt(payload, topic="tele/dev-a01/SENSOR", adapter=None):
    if not isinstance(payload, bytes):
        payload = orjson.dumps(payload)
    return (adapter or TasmotaAdapter()).adapt(topic, payload, RECEIVED, Limits())


def test_sensor_readings_with_units():
    """SENSOR fields flatten with dots, at the device's Time, with Tasmota's units."""
    doc = {
        "Time": "2026-11-30T12:00:00",
        "DHT11": {"Temperature": 21.4, "Humidity": 48.0, "DewPoint": 10.1},
        "BMP280": {"Pressure": 1013.2},
        "ENERGY": {"Power": 7, "Factor": 0.2, "Voltage": [230, 231]},
        "TempUnit": "C",
        "PressureUnit": "hPa",
    }
    msg = _adapt(doc)
    assert msg.source == "dev-a01"
    assert [(r.metric, r.value, r.unit) for r in msg.readings] == [
        ("DHT11.Temperature", 21.4, "°C"),
        ("DHT11.Humidity", 48.0, "%"),
        ("DHT11.DewPoint", 10.1, "°C"),
        ("BMP280.Pressure", 1013.2, "hPa"),
        ("ENERGY.Power", 7.0, "W"),
        ("ENERGY.Factor", 0.2, ""),
        ("ENERGY.Voltage[0]", 230.0, "V"),
        ("ENERGY.Voltage[1]", 231.0, "V"),
    ]
    assert {(r.ts_us, r.flags, r.device) for r in msg.readings} == {(T0, 0, "dev-a01")}
    assert (msg.rejects, msg.notices) == ([], {})


def test_fahrenheit_unit():
    """TempUnit F is attached as °F."""
    msg = _adapt({"DS18B20": {"Id": "0316A2", "Temperature": 70.1}, "TempUnit": "F"})
    assert [(r.metric, r.unit) for r in msg.readings] == [("DS18B20.Temperature", "°F")]


@pytest.mark.parametrize("temp_unit", [["C"], {"a": 1}, 5, None, "x" * 40])
def test_odd_temp_unit_ignored(temp_unit):
    """A TempUnit that is not a short string leaves temperatures without a unit."""
    msg = _adapt({"DHT11": {"Temperature": 21.4}, "TempUnit": temp_unit})
    assert [(r.metric, r.unit) for r in msg.readings] == [("DHT11.Temperature", "")]
    assert msg.rejects == []


def test_state_topic_numeric_fields():
    """STATE gives its numeric health fields; text is ignored, POWER is a state."""
    msg = _adapt(STATE, topic="tele/dev-a01/STATE")
    assert [(r.metric, r.value, r.unit) for r in msg.readings] == [
        ("UptimeSec", 20.0, ""),
        ("Heap", 25.0, ""),
        ("Sleep", 50.0, ""),
        ("LoadAvg", 19.0, ""),
        ("MqttCount", 1.0, ""),
        ("Wifi.AP", 1.0, ""),
        ("Wifi.Channel", 6.0, ""),
        ("Wifi.RSSI", 100.0, "%"),
        ("Wifi.Signal", -46.0, "dBm"),
        ("Wifi.LinkCount", 1.0, ""),
    ]
    assert (msg.rejects, msg.notices) == ([], {Notice.STATE_VALUE: 1})


@pytest.mark.parametrize(
    "topic",
    [
        "tele/dev-a01/LWT",
        "tele/dev-a01/INFO1",
        "tele/dev-a01/HASS_STATE",
        "tele/dev-a01/RESULT",
        "stat/dev-a01/RESULT",
        "cmnd/dev-a01/POWER",
        "tele/SENSOR",
        "tele//SENSOR",
        "tele/a/b/SENSOR",
        "tele/dev-a01/sensor",
    ],
)
def test_other_topics_ignored(topic):
    """Topics other than tele/{dev}/SENSOR and STATE are not data: None."""
    assert _adapt({"Temperature": 1}, topic=topic) is None


def test_strings_never_rejected():
    """Tasmota text fields are ignored, never non_numeric_string."""
    doc = {"Switch1": "ON", "Switch2": "OFF", "ENERGY": {"TotalStartTime": "x"}}
    msg = _adapt({**doc, "IR": {"Protocol": "NEC", "Bits": 32}})
    assert [(r.metric, r.value) for r in msg.readings] == [("IR.Bits", 32.0)]
    assert (msg.rejects, msg.notices) == ([], {Notice.STATE_VALUE: 2})


def test_numeric_strings_coerced():
    """A numeric string is a reading, as with the other adapters."""
    assert [r.value for r in _adapt({"ANALOG": {"A0": "512"}}).readings] == [512.0]


def test_naive_time_in_device_zone():
    """Time is read in naive_tz: Berlin noon in winter is 11:00Z."""
    adapter = TasmotaAdapter(naive_tz=ZoneInfo("Europe/Berlin"))
    msg = _adapt({"Time": "2026-11-30T13:00:00", "A": 1}, adapter=adapter)
    assert [r.ts_us for r in msg.readings] == [T0]


def test_time_with_offset_honoured():
    """A Time with an offset is taken as it is, whatever naive_tz says."""
    adapter = TasmotaAdapter(naive_tz=ZoneInfo("America/Chicago"))
    msg = _adapt({"Time": "2026-11-30T13:00:00+01:00", "A": 1}, adapter=adapter)
    assert [r.ts_us for r in msg.readings] == [T0]


def test_dst_repeated_hour_first_occurrence():
    """The repeated autumn hour is read as its first occurrence (fold=0)."""
    adapter = TasmotaAdapter(naive_tz=ZoneInfo("Europe/Berlin"))
    msg = _adapt({"Time": "2026-10-25T02:30:00", "A": 1}, adapter=adapter)
    assert [r.ts_us for r in msg.readings] == [us("2026-10-25T00:30:00Z")]


def test_no_time_is_receive_time():
    """Without Time the readings get the receive time and FLAG_SERVER_TIME."""
    msg = _adapt({"A": 1})
    expected = Reading("dev-a01", "A", RECEIVED, 1.0, "", FLAG_SERVER_TIME)
    assert msg.readings == [expected]


def test_bad_time_rejected_once():
    """An unreadable Time is one bad_timestamp reject naming Time."""
    msg = _adapt({"Time": "136T17:56:23", "A": 1, "B": 2})
    assert [(r.reason, r.field) for r in msg.rejects] == [(R.BAD_TIMESTAMP, "Time")]
    assert msg.readings == []


@pytest.mark.parametrize("payload", [b"[]", b'"x"', b"1", b"null"])
def test_not_object_rejected(payload):
    """A SENSOR payload that is not an object is payload_not_object."""
    msg = _adapt(payload)
    assert [r.reason for r in msg.rejects] == [R.PAYLOAD_NOT_OBJECT]


def test_empty_payload_not_alive():
    """A zero-length SENSOR payload is a notice, not device activity."""
    msg = _adapt(b"")
    assert (msg.alive, msg.rejects) == (False, [])
    assert msg.notices == {Notice.EMPTY_PAYLOAD: 1}


def test_custom_prefix():
    """A configured prefix replaces tele in topics and filters."""
    adapter = TasmotaAdapter(prefix="tasmota")
    assert adapter.default_filters() == ["tasmota/+/SENSOR", "tasmota/+/STATE"]
    assert _adapt({"A": 1}, topic="tele/d/SENSOR", adapter=adapter) is None
    msg = _adapt({"A": 1}, topic="tasmota/d/SENSOR", adapter=adapter)
    assert [r.device for r in msg.readings] == ["d"]
