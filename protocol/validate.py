"""Validation of single values and timestamps, shared by edge agent and hub.

Rules (README, "Readings and what is rejected"):

- values: finite numbers; JSON booleans become 1.0/0.0; strings are parsed
  only when they are strict ASCII decimals (``-12.5``, ``1e3``, ``"06"``),
  never ``"22,0"``; ``"nan"``/``"inf"`` strings are ``non_finite_value`` like
  the bare tokens; ``null`` means "no value" and is skipped without a reject.
- timestamps: epoch numbers whose unit is told by magnitude (below 1e11
  seconds, below 1e14 milliseconds, below 1e17 microseconds, else
  nanoseconds), or ISO 8601 strings with a zone (``Z``/``z``, ``+01:00``,
  ``+0100``, ``+01``). A time without a zone is rejected unless the caller
  gives a zone for it. Integers convert exactly; digits below the
  microsecond are truncated (ISO fractions of 7 to 9 digits, integer ns);
  float epochs are rounded to the nearest µs, because a float rarely holds
  the decimal it was printed from (``1796040000.123456`` is stored as
  ``1796040000.1234560013...``) and truncating would lose a µs.
- time policy: a timestamp before 2000 comes from a clock that was never set:
  the reading is kept, stamped with the receive time and flagged; one further
  ahead of the receiver's clock than the allowed skew is rejected.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, tzinfo
from typing import Any

from protocol.const import CLOCK_FLOOR_US, FLAG_SERVER_TIME, RejectReason
from protocol.errors import DecodeError

#: Set by :mod:`protocol.codec` for bare ``nan``/``inf`` tokens it tolerated.
NON_FINITE_MARK = "\x00sf-non-finite:"

# ASCII only: float() would also take "٣" (Arabic-Indic three) and "1_000".
_DECIMAL_RE = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$", re.ASCII)
_INTEGER_RE = re.compile(r"^\s*[+-]?\d+\s*$", re.ASCII)
# Quoted non-finite words: the same sensor fault as the bare tokens of C01.
_NON_FINITE_WORDS = frozenset(
    sign + word for sign in ("", "+", "-") for word in ("nan", "inf", "infinity")
)
# ISO 8601 basic-format offsets (+0100) that fromisoformat would read but older
# Pythons would not; normalise them to extended form first.
_BASIC_OFFSET_RE = re.compile(r"([+-]\d{2})(\d{2})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_value(raw: Any, field: str = "value") -> float | None:
    """Turn a raw JSON value into a finite float.

    Returns:
        The value, or None for ``null`` (no value: skipped, not rejected).

    Raises:
        DecodeError: with reason ``non_finite_value``, ``non_numeric_string``
            or ``bad_value_type``, naming ``field``.
    """
    if raw is None:
        return None
    if raw is True or raw is False:
        return 1.0 if raw else 0.0
    if isinstance(raw, float | int):
        try:
            value = float(raw)
        except OverflowError:  # an int beyond the float range
            value = math.inf
        if not math.isfinite(value):
            raise DecodeError(RejectReason.NON_FINITE_VALUE, field, repr(raw))
        return value
    if isinstance(raw, str):
        return _parse_numeric_string(raw, field)
    raise DecodeError(RejectReason.BAD_VALUE_TYPE, field, type(raw).__name__)


def _parse_numeric_string(raw: str, field: str) -> float:
    if raw.startswith(NON_FINITE_MARK):
        token = raw[len(NON_FINITE_MARK) :]
        raise DecodeError(RejectReason.NON_FINITE_VALUE, field, token)
    if not _DECIMAL_RE.match(raw):
        if raw.strip().lower() in _NON_FINITE_WORDS:
            raise DecodeError(RejectReason.NON_FINITE_VALUE, field, repr(raw[:40]))
        raise DecodeError(RejectReason.NON_NUMERIC_STRING, field, repr(raw[:40]))
    value = float(raw)
    if not math.isfinite(value):
        raise DecodeError(RejectReason.NON_FINITE_VALUE, field, repr(raw[:40]))
    return value


def epoch_to_us(raw: float, field: str = "ts") -> int:
    """Convert an epoch number in s, ms, µs or ns (by magnitude) to µs.

    Raises:
        DecodeError: ``bad_timestamp`` for negative or non-finite numbers.
    """
    if isinstance(raw, int):
        # Integers keep their exact value: no float rounding of any unit.
        if raw < 0:
            raise DecodeError(RejectReason.BAD_TIMESTAMP, field, repr(raw))
        if raw < 10**11:
            return raw * 1_000_000
        if raw < 10**14:
            return raw * 1_000
        return raw if raw < 10**17 else raw // 1_000
    if not math.isfinite(raw) or raw < 0:
        raise DecodeError(RejectReason.BAD_TIMESTAMP, field, repr(raw))
    if raw < 1e11:
        scaled = raw * 1e6
    elif raw < 1e14:
        scaled = raw * 1e3
    elif raw < 1e17:
        scaled = raw
    else:
        scaled = raw / 1e3
    return round(scaled)


def parse_timestamp(raw: Any, field: str = "ts", naive_tz: tzinfo | None = None) -> int:
    """Parse a timestamp (epoch number or ISO 8601 string) into epoch µs.

    Args:
        raw: the JSON value.
        field: the field path named in a reject.
        naive_tz: the zone to read a string without an offset in; when None,
            such a string is rejected as ``naive_timestamp``.

    Raises:
        DecodeError: ``bad_timestamp`` or ``naive_timestamp``.
    """
    if isinstance(raw, bool) or raw is None:
        raise DecodeError(RejectReason.BAD_TIMESTAMP, field, repr(raw))
    if isinstance(raw, int | float):
        return epoch_to_us(raw, field)
    if isinstance(raw, str):
        return _parse_iso(raw, field, naive_tz)
    raise DecodeError(RejectReason.BAD_TIMESTAMP, field, type(raw).__name__)


def _parse_iso(raw: str, field: str, naive_tz: tzinfo | None) -> int:
    text = raw.strip()
    if _INTEGER_RE.match(text):
        return epoch_to_us(int(text), field)
    if _DECIMAL_RE.match(text):
        return epoch_to_us(float(text), field)
    if text.endswith("z"):  # RFC 3339 5.6 allows a lower-case "z"
        text = text[:-1] + "Z"
    text = _BASIC_OFFSET_RE.sub(r"\1:\2", text) if "T" in text else text
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DecodeError(RejectReason.BAD_TIMESTAMP, field, repr(raw[:40])) from None
    if parsed.tzinfo is None:
        if naive_tz is None:
            raise DecodeError(RejectReason.NAIVE_TIMESTAMP, field, repr(raw[:40]))
        parsed = parsed.replace(tzinfo=naive_tz)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def apply_time_policy(
    ts_us: int, received_us: int, max_future_skew_s: float, field: str = "ts"
) -> tuple[int, int]:
    """Apply the clock rules to a parsed timestamp.

    Returns:
        The timestamp to store and the flags to set on the reading.

    Raises:
        DecodeError: ``future_timestamp`` when ``ts_us`` is further ahead of
            ``received_us`` than the allowed skew.
    """
    if ts_us < CLOCK_FLOOR_US:
        return received_us, FLAG_SERVER_TIME
    if ts_us - received_us > max_future_skew_s * 1_000_000:
        ahead = (ts_us - received_us) / 1e6
        raise DecodeError(RejectReason.FUTURE_TIMESTAMP, field, f"{ahead:.0f} s ahead")
    return ts_us, 0


def now_us() -> int:
    """The current time in epoch microseconds."""
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def us_to_datetime(ts_us: int) -> datetime:
    """Epoch microseconds as an aware UTC datetime (exact, no float rounding)."""
    from datetime import timedelta

    return _EPOCH + timedelta(microseconds=ts_us)
