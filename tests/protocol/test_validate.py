"""Values, timestamps and the clock policy (protocol.validate)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from protocol.const import CLOCK_FLOOR_US, FLAG_SERVER_TIME, RejectReason
from protocol.errors import DecodeError
from protocol.validate import (
    NON_FINITE_MARK,
    apply_time_policy,
    epoch_to_us,
    parse_timestamp,
    parse_value,
    us_to_datetime,
)
from tests.protocol.helpers import bits, us

NOON = us("2026-11-30T12:00:00Z")  # 1796040000 s


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (21.5, 21.5),
        (0, 0.0),
        (-0.0, -0.0),
        (87, 87.0),
        (True, 1.0),
        (False, 0.0),
        (2**63, 9.223372036854775808e18),
        (1.7976931348623157e308, 1.7976931348623157e308),
        (5e-324, 5e-324),
        ("22.0", 22.0),
        ("06", 6.0),
        ("10.5", 10.5),
        ("-12.5", -12.5),
        ("+3", 3.0),
        ("1e3", 1000.0),
        ("1E-2", 0.01),
        ("317.3988", 317.3988),
        (" 7 ", 7.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("-0", -0.0),
    ],
)
def test_parse_value_good(raw, expected):
    """Numbers, booleans and strict decimal strings become the exact float."""
    assert bits(parse_value(raw, "f")) == bits(expected)


def test_parse_value_null_is_none():
    """A JSON null is no value: None, not a reject and not 0 (C03 item 3)."""
    assert parse_value(None, "away_setting") is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("22,0", RejectReason.NON_NUMERIC_STRING),
        ("abc", RejectReason.NON_NUMERIC_STRING),
        ("", RejectReason.NON_NUMERIC_STRING),
        (" ", RejectReason.NON_NUMERIC_STRING),
        ("1_000", RejectReason.NON_NUMERIC_STRING),
        ("0x10", RejectReason.NON_NUMERIC_STRING),
        ("1,000.5", RejectReason.NON_NUMERIC_STRING),
        ("12 °C", RejectReason.NON_NUMERIC_STRING),
        ("\u0663", RejectReason.NON_NUMERIC_STRING),  # Arabic-Indic three
        ("\uff11\uff12", RejectReason.NON_NUMERIC_STRING),  # full-width 12
        ("1e400", RejectReason.NON_FINITE_VALUE),
        ("nan", RejectReason.NON_FINITE_VALUE),
        ("NaN", RejectReason.NON_FINITE_VALUE),
        ("-inf", RejectReason.NON_FINITE_VALUE),
        ("+Infinity", RejectReason.NON_FINITE_VALUE),
        (NON_FINITE_MARK + "nan", RejectReason.NON_FINITE_VALUE),
        (float("nan"), RejectReason.NON_FINITE_VALUE),
        (float("-inf"), RejectReason.NON_FINITE_VALUE),
        (10**400, RejectReason.NON_FINITE_VALUE),
        ([1], RejectReason.BAD_VALUE_TYPE),
        ({"a": 1}, RejectReason.BAD_VALUE_TYPE),
    ],
)
def test_parse_value_bad(raw, reason):
    """Malformed, non-finite and non-scalar values raise with the field named."""
    with pytest.raises(DecodeError) as info:
        parse_value(raw, "DHT11.Temperature")
    assert info.value.reason is reason
    assert info.value.field == "DHT11.Temperature"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # seconds, below 1e11
        (0, 0),
        (1796040000, NOON),
        (1796040000.25, NOON + 250_000),
        (1796040000.123456, NOON + 123_456),
        (99_999_999_999, 99_999_999_999_000_000),
        (99_999_999_999.5, 99_999_999_999_500_000),
        # milliseconds, from 1e11 below 1e14
        (100_000_000_000, 100_000_000_000_000),
        (1e11, 100_000_000_000_000),
        (1796040000000, NOON),
        (1796040000000.5, NOON + 500),
        (99_999_999_999_999, 99_999_999_999_999_000),
        # microseconds, from 1e14 below 1e17
        (100_000_000_000_000, 100_000_000_000_000),
        (1796040000000000, NOON),
        (99_999_999_999_999_999, 99_999_999_999_999_999),
        # nanoseconds, from 1e17; integer ns are truncated to the µs
        (100_000_000_000_000_000, 100_000_000_000_000),
        (1796040000000000000, NOON),
        (1796040000123456789, NOON + 123_456),
        (1.796040000123456e18, NOON + 123_456),
    ],
)
def test_epoch_units_by_magnitude(raw, expected):
    """Each epoch unit is told by magnitude, exactly at the 1e11/1e14/1e17 bounds."""
    assert epoch_to_us(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1796040000", NOON),
        ("1796040000.25", NOON + 250_000),
        ("1796040000000", NOON),
        ("1796040000000000", NOON),
        ("1796040000123456789", NOON + 123_456),
    ],
)
def test_parse_timestamp_epoch_string(raw, expected):
    """Epoch numbers sent as strings follow the same units, integers exactly."""
    assert parse_timestamp(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-30T12:00:00Z", NOON),
        ("2026-11-30T12:00:00z", NOON),
        ("2026-11-30t12:00:00Z", NOON),
        ("2026-11-30 12:00:00Z", NOON),
        ("2026-11-30T12:00:00+00:00", NOON),
        ("2026-11-30T12:00:00-00:00", NOON),
        ("2026-11-30T13:00:00+01:00", NOON),
        ("2026-11-30T13:00:00+0100", NOON),
        ("2026-11-30T13:00:00+01", NOON),
        ("2026-11-30T07:00:00-05:00", NOON),
        ("2026-11-30T06:30:00-0530", NOON),
        ("2026-11-30T17:45:00+05:45", NOON),
        ("20261130T120000Z", NOON),
        ("20261130T130000+0100", NOON),
        ("2026-11-30T12:00Z", NOON),
        (" 2026-11-30T12:00:00Z ", NOON),
        ("2026-11-30T12:00:00,5Z", NOON + 500_000),
        ("2026-11-30T12:00:00.5Z", NOON + 500_000),
        ("2026-11-30T12:00:00.50Z", NOON + 500_000),
        ("2026-11-30T12:00:00.507Z", NOON + 507_000),
        ("2026-11-30T12:00:00.5075Z", NOON + 507_500),
        ("2026-11-30T12:00:00.50756Z", NOON + 507_560),
        ("2026-11-30T12:00:00.507569Z", NOON + 507_569),
        ("2026-11-30T12:00:00.5075699Z", NOON + 507_569),
        ("2026-11-30T12:00:00.50756999Z", NOON + 507_569),
        ("2026-11-30T12:00:00.999999999Z", NOON + 999_999),
        ("2026-11-30T06:32:07.507569+00:00", us("2026-11-30T06:32:07.507569Z")),
        ("2026-11-30T07:55:31+0100", us("2026-11-30T06:55:31Z")),
    ],
)
def test_parse_timestamp_iso_forms(raw, expected):
    """Every ISO 8601 form with a zone gives the exact µs; ns digits truncated."""
    assert parse_timestamp(raw) == expected


@pytest.mark.parametrize(
    "raw", ["2026-11-30T12:00:00", "2026-11-30 12:00", "2026-11-30", "2026-W49-1"]
)
def test_parse_timestamp_naive_rejected(raw):
    """A time without an offset, and no zone given for it, is naive_timestamp."""
    with pytest.raises(DecodeError) as info:
        parse_timestamp(raw, "Time")
    assert info.value.reason is RejectReason.NAIVE_TIMESTAMP
    assert info.value.field == "Time"


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("UTC", NOON),
        ("Europe/Berlin", NOON - 3_600_000_000),
        ("America/Chicago", NOON + 6 * 3_600_000_000),
    ],
)
def test_parse_timestamp_naive_in_zone(zone, expected):
    """A naive time is read in the zone the caller gives."""
    assert parse_timestamp("2026-11-30T12:00:00", "Time", ZoneInfo(zone)) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "30/11/2026 06:32",
        "",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-11-30T24:00:00Z",
        "2026-11-30T12:00:60Z",  # leap second: not representable, rejected
        "2026-11-30T12:00:00+25:00",
        NON_FINITE_MARK + "nan",
        None,
        True,
        [],
        {},
        -1,
        -0.5,
        float("nan"),
        float("inf"),
        "-5",
    ],
)
def test_parse_timestamp_bad(raw):
    """Unreadable, negative and non-finite times are bad_timestamp (C05 item 6)."""
    with pytest.raises(DecodeError) as info:
        parse_timestamp(raw, "timestamp")
    assert info.value.reason is RejectReason.BAD_TIMESTAMP
    assert info.value.field == "timestamp"


@pytest.mark.parametrize(
    "ts_us",
    [0, 3_000_000, us("1999-12-31T23:59:59.999999Z"), -62_135_596_800_000_000],
)
def test_time_policy_before_2000_is_server_time(ts_us):
    """A time before 2000 is replaced by the receive time and flagged (C07)."""
    assert apply_time_policy(ts_us, NOON, 300.0) == (NOON, FLAG_SERVER_TIME)


@pytest.mark.parametrize(
    "ts_us",
    [CLOCK_FLOOR_US, NOON - 86_400_000_000 * 365, NOON, NOON + 300_000_000],
)
def test_time_policy_keeps_device_time(ts_us):
    """From 2000 up to the allowed skew ahead, the device's time is kept as is."""
    assert apply_time_policy(ts_us, NOON, 300.0) == (ts_us, 0)


def test_time_policy_future_rejected():
    """One µs past the allowed skew is future_timestamp, naming the field."""
    with pytest.raises(DecodeError) as info:
        apply_time_policy(NOON + 300_000_001, NOON, 300.0, "ts")
    assert info.value.reason is RejectReason.FUTURE_TIMESTAMP
    assert info.value.field == "ts"


@pytest.mark.parametrize("ts_us", [0, NOON + 507_569, 253_402_300_799_999_999])
def test_us_to_datetime_exact(ts_us):
    """us_to_datetime is exact to the µs, up to year 9999."""
    assert us(us_to_datetime(ts_us).isoformat()) == ts_us
