"""Per-reading flags in a batch envelope (FLAG_SERVER_TIME set at the edge)."""

from __future__ import annotations

import orjson

from protocol import decode_batch
from protocol.const import FLAG_LATE, FLAG_SERVER_TIME, RejectReason

T0 = 1_796_040_000_000_000
RECEIVED = T0 + 60_000_000


def envelope(series: dict, late: bool = False) -> bytes:
    doc = {"v": 1, "gw": "gw-1", "seq": 1, "sent": T0, "late": late}
    return orjson.dumps(doc | {"series": [series]})


def test_flags_travel_to_the_decoded_block():
    """Flags from the edge are kept reading by reading."""
    payload = envelope(
        {
            "dev": "d",
            "metric": "m",
            "ts": [T0, T0 + 1],
            "values": [1, 2],
            "flags": [1, 0],
        }
    )
    (block,) = decode_batch(payload, RECEIVED).blocks
    assert block.flags == [FLAG_SERVER_TIME, 0]


def test_flags_combine_with_the_late_batch_flag_on_the_slow_path():
    """A late batch adds FLAG_LATE; a string value takes the slow path, same flags."""
    payload = envelope(
        {
            "dev": "d",
            "metric": "m",
            "ts": [T0, T0 + 1],
            "values": ["1", 2],
            "flags": [1, 0],
        },
        late=True,
    )
    (block,) = decode_batch(payload, RECEIVED).blocks
    assert block.flags == [FLAG_SERVER_TIME | FLAG_LATE, FLAG_LATE]


def test_flags_outside_the_edge_bits_are_ignored():
    """An edge may set only FLAG_SERVER_TIME: FLAG_LATE comes from the batch."""
    payload = envelope(
        {
            "dev": "d",
            "metric": "m",
            "ts": [T0],
            "values": [1.0],
            "flags": [FLAG_LATE | 64],
        }
    )
    (block,) = decode_batch(payload, RECEIVED).blocks
    assert block.flags == [0]


def test_flags_of_the_wrong_length_reject_the_series():
    """Flags that do not pair with the timestamps reject the series, naming flags."""
    payload = envelope(
        {"dev": "d", "metric": "m", "ts": [T0, T0 + 1], "values": [1, 2], "flags": [1]}
    )
    decoded = decode_batch(payload, RECEIVED)
    assert decoded.blocks == []
    assert [(r.reason, r.field) for r in decoded.rejects] == [
        (RejectReason.LENGTH_MISMATCH, "series[0].flags")
    ]
