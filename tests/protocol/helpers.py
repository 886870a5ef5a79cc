"""Helpers shared by the protocol and case tests: exact instants, reading views."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

from protocol.readings import Reading

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(text: str) -> int:
    """Epoch µs of an ISO 8601 instant with an offset, computed exactly."""
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None, text
    return (parsed - _EPOCH) // timedelta(microseconds=1)


def bits(value: float) -> bytes:
    """The IEEE 754 bytes of a float, so that -0.0 and 0.0 compare unequal."""
    return struct.pack("<d", value)


def triples(readings: list[Reading]) -> list[tuple[str, int, float]]:
    """(metric, ts_us, value) of each reading, in order."""
    return [(r.metric, r.ts_us, r.value) for r in readings]
