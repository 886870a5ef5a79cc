"""C04: epoch seconds where milliseconds are expected (thingsboard#1754).

Protocol level: the unit is told by magnitude, so payloads A, B and C give the
same (device, metric, ts) keys. That B and C then store 0 new rows is the
store's dedupe, checked at hub level.
"""

from __future__ import annotations

import pytest

from protocol import codec
from protocol.adapters import get_adapter
from protocol.batch import Limits, decode_batch
from protocol.const import CLOCK_FLOOR_US, FLAG_SERVER_TIME, Notice
from protocol.const import RejectReason as R
from tests.protocol.helpers import us

TOPIC = "edge/gw-01/batch"
PAYLOAD_A = (
    b'[{"ts":1796040000,"values":{"key1":1000,"key2":3}},'
    b'{"ts":1796040001,"values":{"key1":20000,"key2":3}}]'
)
PAYLOAD_B = (
    b'[{"ts":1796040000000,"values":{"key1":1000,"key2":3}},'
    b'{"ts":1796040001000,"values":{"key1":20000,"key2":3}}]'
)
PAYLOAD_C = (
    b'[{"ts":1796040000000000,"values":{"key1":1000,"key2":3}},'
    b'{"ts":1796040001000000,"values":{"key1":20000,"key2":3}}]'
)
T0 = us("2026-11-30T12:00:00Z")
RECEIVED = us("2026-11-30T12:00:05Z")


def _adapt(payload):
    return get_adapter("json").adapt(TOPIC, payload, RECEIVED, Limits())


def _keys(payload):
    return [(r.device, r.metric, r.ts_us, r.value) for r in _adapt(payload).readings]


def test_c04_payload_a_four_readings():
    """Item 1: payload A gives 4 readings at 12:00:00Z and 12:00:01Z, exactly."""
    assert _keys(PAYLOAD_A) == [
        ("batch", "key1", T0, 1000.0),
        ("batch", "key2", T0, 3.0),
        ("batch", "key1", T0 + 1_000_000, 20000.0),
        ("batch", "key2", T0 + 1_000_000, 3.0),
    ]


def test_c04_nothing_in_1970():
    """Item 1: no reading of A, B or C lands before 2000 or on the server clock."""
    for payload in (PAYLOAD_A, PAYLOAD_B, PAYLOAD_C):
        msg = _adapt(payload)
        assert all(r.ts_us >= CLOCK_FLOOR_US and r.flags == 0 for r in msg.readings)
        assert msg.notices == {}


@pytest.mark.parametrize("payload", [PAYLOAD_B, PAYLOAD_C])
def test_c04_other_units_same_keys(payload):
    """Item 3: B (ms) and C (µs) give exactly A's keys, so the store dedupes them."""
    assert _keys(payload) == _keys(PAYLOAD_A)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (b"1796040000", T0),
        (b"1796040000000", T0),
        (b"1796040000000000", T0),
        (b"1796040000000000000", T0),
        (b'"1796040000000"', T0),
        (b"1796040000.25", T0 + 250_000),
        (b"1796040000000.25", T0 + 250),
        (b"99999999999", 99_999_999_999_000_000),
        (b"99999999999999", 99_999_999_999_999_000),
        (b"99999999999999999", 99_999_999_999_999_999),
    ],
)
def test_c04_unit_by_magnitude(ts, expected):
    """Item 2: below 1e11 s, below 1e14 ms, below 1e17 µs, else ns (exact ints)."""
    msg = get_adapter("json").adapt(
        TOPIC, b'{"ts":' + ts + b',"k":1}', 99_999_999_999_000_000, Limits()
    )
    assert [r.ts_us for r in msg.readings] == [expected]


def test_c04_unit_boundaries_are_clock_floor_for_small_values():
    """Item 2: 1e11 read as ms is 1973, so it falls to the clock rule, not 1970."""
    msg = get_adapter("json").adapt(
        TOPIC, b'{"ts":100000000000,"k":1}', RECEIVED, Limits()
    )
    assert [(r.ts_us, r.flags) for r in msg.readings] == [(RECEIVED, FLAG_SERVER_TIME)]


def test_c04_float_seconds():
    """Item 4: ts 1796040000.25 is 12:00:00.250000Z."""
    msg = _adapt(b'{"ts":1796040000.25,"values":{"k":1}}')
    assert [r.ts_us for r in msg.readings] == [us("2026-11-30T12:00:00.250000Z")]


def test_c04_report_value_read_as_seconds():
    """Item 2: the report's 1559206140 is read as seconds, 2019-05-30T08:49:00Z."""
    msg = _adapt(b'[{"ts":1559206140,"values":{"k":1}}]')
    assert [(r.ts_us, r.flags) for r in msg.readings] == [
        (us("2019-05-30T08:49:00Z"), 0)
    ]


def test_c04_before_floor_after_inference():
    """Item 5: a ts before 2000 after inference follows C07: receive time, flagged."""
    msg = _adapt(b'{"ts":1559206.14,"k":1}')
    assert [(r.ts_us, r.flags) for r in msg.readings] == [(RECEIVED, FLAG_SERVER_TIME)]
    assert msg.notices == {Notice.CLOCK_NOT_SET: 1}


def test_c04_future_after_inference_rejected():
    """Item 5: a time past the allowed skew after inference is future_timestamp."""
    msg = _adapt(b'[{"ts":1896040000,"values":{"k":1}}]')
    assert [(r.reason, r.field) for r in msg.rejects] == [
        (R.FUTURE_TIMESTAMP, "[0].ts")
    ]
    assert msg.readings == []


@pytest.mark.parametrize("ts", [1796040000, 1796040000000, 1796040000000000000])
def test_c04_batch_envelope_units(ts):
    """Item 2, whole kind: a v1 batch's ts in s, ms or ns give the same µs."""
    envelope = {
        "v": 1,
        "gw": "gw-01",
        "seq": 1,
        "sent": RECEIVED,
        "series": [{"dev": "d", "metric": "key1", "ts": [ts], "values": [1000]}],
    }
    out = decode_batch(codec.dumps(envelope), RECEIVED)
    assert out.blocks[0].ts_us == [T0]
