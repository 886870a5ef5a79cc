"""Times at the API boundary: RFC 3339 strings in, epoch µs inside, and back.

Readings keep their microseconds and are shown in UTC with a ``Z``
(``2026-11-30T06:33:07.500000Z``, case C05); aggregate buckets are shown in
the requested zone with an explicit offset, so that the two 01:00 hours of a
fall-back day are two different strings (case C15).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from protocol.validate import us_to_datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_us(ts_us: int) -> str:
    """Epoch µs as RFC 3339 in UTC, always with six fraction digits and ``Z``."""
    return us_to_datetime(ts_us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_us_in_zone(ts_us: int, zone: ZoneInfo) -> str:
    """Epoch µs as RFC 3339 in ``zone`` with its offset at that instant."""
    return us_to_datetime(ts_us).astimezone(zone).isoformat()


def parse_rfc3339(text: str) -> int:
    """Parse an RFC 3339 time with a zone (``Z`` or ``±hh:mm``) into epoch µs.

    Raises:
        ValueError: the text is not a time, or has no zone.
    """
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"expected an RFC 3339 time such as 2026-11-30T06:00:00Z, got {text!r}"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone: add Z or an offset")
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
