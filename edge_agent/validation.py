"""Checks of readings handed to the agent, before they reach the buffer.

Readings come from adapters (already validated by protocol rules), from the
in-process API and from JSON lines. All pass the same cheap checks, because a
bad value must become a counted reject and never fail the buffer's write of a
whole group: an id or metric outside the v1 grammar, a value that is not a
finite number, a timestamp further ahead than the allowed skew. A timestamp
before 2000 is kept, stamped with the receive time and flagged (the clock
rule of :func:`protocol.validate.apply_time_policy`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from protocol.const import FLAG_SERVER_TIME, RejectReason
from protocol.errors import DecodeError
from protocol.readings import Reading
from protocol.topics import is_valid_id
from protocol.validate import apply_time_policy, parse_timestamp, parse_value

# The bounds of protocol.models.MetricName and Unit.
_METRIC_RE = re.compile(r"^[^\x00-\x1f]{1,128}$")
_UNIT_RE = re.compile(r"^[^\x00-\x1f]{0,32}$")


def check_reading(
    reading: Reading, received_us: int, max_future_skew_s: float
) -> Reading | RejectReason:
    """Check one reading as it would be stored.

    Args:
        reading: the reading handed in.
        received_us: its receive time, epoch µs.
        max_future_skew_s: how far ahead of ``received_us`` a timestamp may be.

    Returns:
        The reading to buffer (restamped if its clock was never set), or the
        reason it is rejected.
    """
    if not isinstance(reading.device, str) or not is_valid_id(reading.device):
        return RejectReason.BAD_DEVICE_ID
    if not isinstance(reading.metric, str) or not _METRIC_RE.match(reading.metric):
        return RejectReason.BAD_METRIC
    if not isinstance(reading.unit, str) or not _UNIT_RE.match(reading.unit):
        return RejectReason.BAD_METRIC
    value = reading.value
    if isinstance(value, bool) or not isinstance(value, float | int):
        return RejectReason.BAD_VALUE_TYPE
    if not math.isfinite(value):
        return RejectReason.NON_FINITE_VALUE
    ts = reading.ts_us
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0 or ts >= 10**17:
        return RejectReason.BAD_TIMESTAMP
    try:
        ts_us, flags = apply_time_policy(ts, received_us, max_future_skew_s)
    except DecodeError as exc:
        return exc.reason
    if flags or type(value) is not float:
        return Reading(
            reading.device,
            reading.metric,
            ts_us,
            float(value),
            reading.unit,
            reading.flags | flags,
        )
    return reading


def screen(
    readings: Iterable[Reading], received_us: int, max_future_skew_s: float
) -> tuple[list[Reading], Counter[str]]:
    """Check readings; return the good ones and the rejects counted by reason."""
    good: list[Reading] = []
    rejects: Counter[str] = Counter()
    for reading in readings:
        checked = check_reading(reading, received_us, max_future_skew_s)
        if isinstance(checked, Reading):
            good.append(checked)
        else:
            rejects[checked.value] += 1
    return good, rejects


def reading_from_line(
    doc: Any, received_us: int, max_future_skew_s: float
) -> Reading | DecodeError | None:
    """Turn one JSON-lines object into a reading.

    The object is ``{"dev", "metric", "ts", "value", "unit"}``; ``ts`` is any
    form :func:`protocol.validate.parse_timestamp` reads and, when missing,
    the receive time (flagged as server time); ``unit`` may be left out.

    Returns:
        The reading; None for a ``null`` value (no value, not a reject); or
        the error naming the reason and the field.
    """
    if not isinstance(doc, dict):
        return DecodeError(RejectReason.PAYLOAD_NOT_OBJECT, "", type(doc).__name__)
    try:
        value = parse_value(doc.get("value"), "value")
        if value is None:
            return None
        dev, metric, unit = doc.get("dev"), doc.get("metric"), doc.get("unit", "")
        if not isinstance(dev, str) or not is_valid_id(dev):
            raise DecodeError(RejectReason.BAD_DEVICE_ID, "dev", repr(dev)[:80])
        if not isinstance(metric, str) or not _METRIC_RE.match(metric):
            raise DecodeError(RejectReason.BAD_METRIC, "metric", repr(metric)[:80])
        if not isinstance(unit, str) or not _UNIT_RE.match(unit):
            raise DecodeError(RejectReason.BAD_METRIC, "unit", repr(unit)[:80])
        if doc.get("ts") is None:
            return Reading(dev, metric, received_us, value, unit, FLAG_SERVER_TIME)
        ts_us = parse_timestamp(doc["ts"], "ts")
        ts_us, flags = apply_time_policy(ts_us, received_us, max_future_skew_s)
    except DecodeError as exc:
        return exc
    return Reading(dev, metric, ts_us, value, unit, flags)
