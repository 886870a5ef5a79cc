"""C12: duplicate and out-of-order readings after reconnect (tb-gateway#203).

Protocol level: the three payloads adapt to exact readings, and a redelivery
gives the very same (device, metric, ts) keys, whatever its packet id. The
dedupe itself (3 rows), the ``duplicate_readings`` count, the alert firing
once and the REST "latest" are checked at hub level.
"""

from __future__ import annotations

from protocol.adapters import get_adapter
from protocol.batch import Limits
from protocol.readings import Reading
from tests.protocol.helpers import us

TOPIC = "edge/gw-01/batch"
B1 = (
    b'{"device":"dev-l12","readings":[{"ts":"2026-11-30T12:00:00Z","temperature":21.0},'
    b'{"ts":"2026-11-30T12:00:10Z","temperature":21.1}]}'
)
B0 = (
    b'{"device":"dev-l12","readings":'
    b'[{"ts":"2026-11-30T12:00:05Z","temperature":35.0}]}'
)


def _adapt(payload, received):
    return get_adapter("json").adapt(TOPIC, payload, received, Limits())


def _reading(ts, value):
    return Reading("dev-l12", "temperature", us(ts), value)


def test_c12_b1_two_readings():
    """Item 1: B1 gives 21.0 at 12:00:00Z and 21.1 at 12:00:10Z for dev-l12."""
    msg = _adapt(B1, us("2026-11-30T12:00:11Z"))
    assert msg.readings == [
        _reading("2026-11-30T12:00:00Z", 21.0),
        _reading("2026-11-30T12:00:10Z", 21.1),
    ]


def test_c12_b0_older_accepted():
    """Item 2: B0, older than readings already seen, is read normally."""
    msg = _adapt(B0, us("2026-11-30T12:01:00Z"))
    assert (msg.readings, msg.rejects) == ([_reading("2026-11-30T12:00:05Z", 35.0)], [])


def test_c12_redelivery_same_keys():
    """Item 1: B1 redelivered later (DUP or replay) gives exactly the same readings."""
    first = _adapt(B1, us("2026-11-30T12:00:11Z")).readings
    again = _adapt(B1, us("2026-11-30T12:05:00Z")).readings
    assert again == first


def test_c12_sequence_has_three_keys():
    """Item 1: B1, B1, B0, B1 hold 7 readings but exactly 3 (device, metric, ts)."""
    received = us("2026-11-30T12:01:00Z")
    readings = [r for p in (B1, B1, B0, B1) for r in _adapt(p, received).readings]
    keys = {(r.device, r.metric, r.ts_us): r.value for r in readings}
    assert len(readings) == 7
    assert keys == {
        ("dev-l12", "temperature", us("2026-11-30T12:00:00Z")): 21.0,
        ("dev-l12", "temperature", us("2026-11-30T12:00:05Z")): 35.0,
        ("dev-l12", "temperature", us("2026-11-30T12:00:10Z")): 21.1,
    }
