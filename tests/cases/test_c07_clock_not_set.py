"""C07: device clock not set, 1970 time with a nested ENERGY object (Tasmota#2571).

Protocol level: the readings are kept at the receive time with
FLAG_SERVER_TIME (``ts_source=server``) and counted as ``clock_not_set``; no
reading is before 2000. The absence of 1970 rows and chunks in TimescaleDB
(item 3) and the REST "latest" (item 5) are checked at hub level.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from protocol import codec
from protocol.adapters import get_adapter
from protocol.adapters.tasmota import TasmotaAdapter
from protocol.batch import Limits, decode_batch
from protocol.const import CLOCK_FLOOR_US, FLAG_SERVER_TIME, Notice
from tests.protocol.helpers import us

TOPIC = "tele/dev-g07/SENSOR"
PAYLOAD_1 = (
    b'{"Time":"1970-01-01T00:00:03","ENERGY":{"Total":25,"Yesterday":3,"Today":2,'
    b'"Power":7,"Factor":0.20,"Voltage":246,"Current":0}}'
)
PAYLOAD_2 = (
    b'{"Time":"2026-11-30T12:05:00","ENERGY":{"Total":25.01,"Yesterday":3,'
    b'"Today":2.01,"Power":8,"Factor":0.21,"Voltage":245,"Current":0.035}}'
)
RECEIVED_1 = us("2026-11-30T12:00:05Z")
RECEIVED_2 = us("2026-11-30T12:05:00Z")


def _tasmota(payload, received, adapter=None):
    return (adapter or TasmotaAdapter()).adapt(TOPIC, payload, received, Limits())


def test_c07_nested_energy_seven_readings():
    """Item 1: payload 1 gives 7 dotted ENERGY readings, ints as doubles, 0 kept."""
    msg = _tasmota(PAYLOAD_1, RECEIVED_1)
    assert [(r.metric, r.value) for r in msg.readings] == [
        ("ENERGY.Total", 25.0),
        ("ENERGY.Yesterday", 3.0),
        ("ENERGY.Today", 2.0),
        ("ENERGY.Power", 7.0),
        ("ENERGY.Factor", 0.2),
        ("ENERGY.Voltage", 246.0),
        ("ENERGY.Current", 0.0),
    ]
    assert msg.rejects == []


def test_c07_stamped_with_receive_time():
    """Item 2: all 7 are at 12:00:05Z with FLAG_SERVER_TIME (ts_source=server)."""
    msg = _tasmota(PAYLOAD_1, RECEIVED_1)
    assert {(r.ts_us, r.flags) for r in msg.readings} == {
        (RECEIVED_1, FLAG_SERVER_TIME)
    }


def test_c07_clock_not_set_counted():
    """Item 2: clock_not_set is counted once per reading kept (as decode_batch)."""
    assert _tasmota(PAYLOAD_1, RECEIVED_1).notices == {Notice.CLOCK_NOT_SET: 7}


def test_c07_nothing_before_2000():
    """Item 3, protocol part: no reading carries a time before 2000."""
    msg = _tasmota(PAYLOAD_1, RECEIVED_1)
    assert min(r.ts_us for r in msg.readings) >= CLOCK_FLOOR_US


def test_c07_after_ntp_device_time():
    """Item 4: payload 2 gives 7 readings at 12:05:00Z with the device's time."""
    msg = _tasmota(PAYLOAD_2, RECEIVED_2)
    assert [(r.metric, r.ts_us, r.value, r.flags) for r in msg.readings] == [
        ("ENERGY.Total", RECEIVED_2, 25.01, 0),
        ("ENERGY.Yesterday", RECEIVED_2, 3.0, 0),
        ("ENERGY.Today", RECEIVED_2, 2.01, 0),
        ("ENERGY.Power", RECEIVED_2, 8.0, 0),
        ("ENERGY.Factor", RECEIVED_2, 0.21, 0),
        ("ENERGY.Voltage", RECEIVED_2, 245.0, 0),
        ("ENERGY.Current", RECEIVED_2, 0.035, 0),
    ]
    assert msg.notices == {}


def test_c07_unset_clock_in_device_zone():
    """Item 2: with a device zone east of UTC, 1970 local is still an unset clock."""
    adapter = TasmotaAdapter(naive_tz=ZoneInfo("Europe/Berlin"))
    msg = _tasmota(PAYLOAD_1, RECEIVED_1, adapter)
    assert {(r.ts_us, r.flags) for r in msg.readings} == {
        (RECEIVED_1, FLAG_SERVER_TIME)
    }


@pytest.mark.parametrize(
    ("name", "topic", "payload"),
    [
        ("json", "sensor/x", b'{"ts":3,"a":1}'),
        ("json", "sensor/x", b'{"ts":"1970-01-01T00:00:03Z","a":1}'),
        ("json", "sensor/x", b'{"ts":"1999-12-31T23:59:59.999999Z","a":1}'),
        ("zigbee2mqtt", "zigbee2mqtt/x", b'{"last_seen":3000,"a":1}'),
        ("tasmota", TOPIC, b'{"Time":"1999-12-31T23:59:59","a":1}'),
    ],
)
def test_c07_every_unset_clock(name, topic, payload):
    """Item 2, whole kind: any time before 2000, any form, gets the receive time."""
    msg = get_adapter(name).adapt(topic, payload, RECEIVED_1, Limits())
    assert [(r.ts_us, r.flags) for r in msg.readings] == [
        (RECEIVED_1, FLAG_SERVER_TIME)
    ]
    assert msg.notices == {Notice.CLOCK_NOT_SET: 1}


def test_c07_batch_envelope_clock_not_set():
    """Item 2, whole kind: a v1 batch reading from 1970 is kept at receive time."""
    envelope = {
        "v": 1,
        "gw": "gw-01",
        "seq": 1,
        "sent": 3_000_000,
        "series": [{"dev": "dev-g07", "metric": "p", "ts": [3_000_000], "values": [7]}],
    }
    out = decode_batch(codec.dumps(envelope), RECEIVED_1)
    assert (out.blocks[0].ts_us, out.blocks[0].flags) == (
        [RECEIVED_1],
        [FLAG_SERVER_TIME],
    )
    assert out.notices == {Notice.CLOCK_NOT_SET: 1}
