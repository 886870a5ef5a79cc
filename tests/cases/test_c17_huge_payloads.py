"""C17: huge payloads and the hub's own size cap (mosquitto#265, paho#640).

Protocol level: 262,144 bytes are accepted whole, 262,145 are refused as
``payload_too_large`` before any parsing, and a small message after a huge
one is read. Broker limits, the hub's RSS and connection under M3, and the
edge agent's replay in batches under the limit (item 5) are checked at
hub/e2e level.
"""

from __future__ import annotations

import functools

import orjson
import pytest

from protocol import codec
from protocol.adapters import get_adapter
from protocol.batch import Limits, decode_batch
from protocol.const import RejectReason as R
from protocol.errors import DecodeError
from tests.protocol.helpers import us

TOPIC = "edge/gw-01/batch"
LIMIT = 262_144
LIMITS = Limits(max_payload_bytes=LIMIT)
T0 = us("2026-11-30T12:00:00Z")
RECEIVED = us("2026-11-30T12:10:00Z")
M4 = (
    b'{"device":"dev-q17","readings":'
    b'[{"ts":"2026-11-30T12:00:00Z","temperature":20.0}]}'
)


@functools.cache
def _readings_batch(size: int) -> tuple[bytes, int]:
    """A readings batch for dev-q17 padded with whitespace to exactly ``size``."""
    head, tail = b'{"device":"dev-q17","readings":[', b"]}"
    items: list[bytes] = []
    length = len(head) + len(tail)
    while True:
        n = len(items)
        item = orjson.dumps({"ts": T0 + n * 1000, "temperature": 20.0 + n})
        if length + len(item) + 1 > size:
            break
        items.append(item)
        length += len(item) + 1
    body = head + b",".join(items) + tail
    return body[:-1] + b" " * (size - len(body)) + b"}", len(items)


def _batch_envelope(size: int) -> tuple[bytes, int]:
    """A v1 batch envelope for dev-q17 padded to exactly ``size`` bytes."""
    count = (size - 200) // 40
    doc = {
        "v": 1,
        "gw": "gw-01",
        "seq": 1,
        "sent": RECEIVED,
        "series": [
            {
                "dev": "dev-q17",
                "metric": "temperature",
                "ts": [T0 + i for i in range(count)],
                "values": [20.5] * count,
            }
        ],
    }
    body = codec.dumps(doc)
    return body[:-1] + b" " * (size - len(body)) + b"}", count


def _adapt(payload):
    return get_adapter("json").adapt(TOPIC, payload, RECEIVED, LIMITS)


def test_c17_m1_exact_limit_accepted():
    """Item 1: M1 of exactly 262,144 bytes is accepted whole (inclusive bound)."""
    payload, count = _readings_batch(LIMIT)
    assert len(payload) == LIMIT
    msg = _adapt(payload)
    assert (len(msg.readings), msg.rejects) == (count, [])
    assert msg.readings[-1].value == 20.0 + count - 1


def test_c17_m1_batch_envelope_accepted():
    """Item 1: a v1 batch envelope of exactly 262,144 bytes is decoded whole."""
    payload, count = _batch_envelope(LIMIT)
    assert len(payload) == LIMIT
    out = decode_batch(payload, RECEIVED, LIMITS)
    assert (out.accepted, out.rejects) == (count, [])


def test_c17_m2_one_byte_over_rejected():
    """Item 2: M2 of 262,145 bytes is payload_too_large with its size, no reading."""
    payload, _ = _readings_batch(LIMIT + 1)
    msg = _adapt(payload)
    assert [(r.reason, r.detail) for r in msg.rejects] == [
        (R.PAYLOAD_TOO_LARGE, "262145 bytes > 262144")
    ]
    assert msg.readings == []


def test_c17_m2_refused_before_parsing():
    """Item 2: 262,145 non-JSON bytes are payload_too_large, not invalid_json."""
    payload = b"\xff{" * 131_072 + b"x"
    assert len(payload) == LIMIT + 1
    msg = _adapt(payload)
    assert [r.reason for r in msg.rejects] == [R.PAYLOAD_TOO_LARGE]


def test_c17_m2_batch_envelope_refused():
    """Item 2: decode_batch refuses 262,145 bytes before parsing, too."""
    with pytest.raises(DecodeError) as info:
        decode_batch(b"[" * (LIMIT + 1), RECEIVED, LIMITS)
    assert info.value.reason is R.PAYLOAD_TOO_LARGE


def test_c17_m3_eight_mib_refused_unparsed(monkeypatch):
    """Item 3: an 8 MiB batch is refused without the JSON parser ever running."""

    def no_parse(_body):
        raise AssertionError("parsed a payload over the limit")

    payload = b'{"device":"dev-q17","readings":[' + b" " * (8 * 1024 * 1024) + b"]}"
    monkeypatch.setattr(codec.orjson, "loads", no_parse)
    msg = _adapt(payload)
    assert [(r.reason, r.detail) for r in msg.rejects] == [
        (R.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes > 262144")
    ]


def test_c17_m4_after_m3_stored():
    """Item 4: right after M3, the small M4 gives its 1 reading."""
    _adapt(b"[" * (8 * 1024 * 1024))
    msg = _adapt(M4)
    assert [(r.device, r.metric, r.ts_us, r.value) for r in msg.readings] == [
        ("dev-q17", "temperature", T0, 20.0)
    ]


def test_c17_compressed_bomb_refused():
    """Item 3, whole kind: a body under the cap inflating past 4 MiB is refused."""
    body = codec.compress(b"[" + b" " * (5 * 1024 * 1024) + b"]", "zstd")
    assert len(body) < LIMIT
    msg = _adapt(body)
    assert [r.reason for r in msg.rejects] == [R.BAD_COMPRESSION]


def test_c17_cap_is_on_wire_size():
    """Item 1: the cap counts bytes on the wire; a gzip body may inflate past it."""
    payload, count = _readings_batch(2 * LIMIT)
    body = codec.compress(payload, "gzip")
    assert len(body) < LIMIT
    assert len(_adapt(body).readings) == count
