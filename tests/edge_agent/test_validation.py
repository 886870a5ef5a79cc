"""Checks of readings handed to the agent and of JSON-lines objects."""

from __future__ import annotations

import math

import pytest

from edge_agent.validation import check_reading, reading_from_line
from protocol.const import FLAG_SERVER_TIME, RejectReason
from protocol.errors import DecodeError
from protocol.readings import Reading

NOW = 1_796_040_000_000_000


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (Reading("bad id", "t", NOW, 1.0), RejectReason.BAD_DEVICE_ID),
        (Reading("d", "", NOW, 1.0), RejectReason.BAD_METRIC),
        (Reading("d", "a\nb", NOW, 1.0), RejectReason.BAD_METRIC),
        (Reading("d", "t", NOW, 1.0, unit="u" * 33), RejectReason.BAD_METRIC),
        (Reading("d", "t", NOW, math.nan), RejectReason.NON_FINITE_VALUE),
        (Reading("d", "t", NOW, -math.inf), RejectReason.NON_FINITE_VALUE),
        (Reading("d", "t", NOW, "1"), RejectReason.BAD_VALUE_TYPE),  # type: ignore[arg-type]
        (Reading("d", "t", NOW, True), RejectReason.BAD_VALUE_TYPE),
        (Reading("d", "t", NOW + 301_000_000, 1.0), RejectReason.FUTURE_TIMESTAMP),
        (Reading("d", "t", -1, 1.0), RejectReason.BAD_TIMESTAMP),
    ],
)
def test_check_reading_bad(reading, reason):
    """Each bad reading is rejected with the reason naming what is wrong."""
    assert check_reading(reading, NOW, 300.0) == reason


def test_check_reading_good_passes_unchanged():
    """A good reading is returned as it is."""
    r = Reading("dev-1", "temp", NOW - 5, 21.5, "°C")
    assert check_reading(r, NOW, 300.0) is r


def test_check_reading_unset_clock_restamped():
    """A reading from before 2000 is kept with the receive time and flagged."""
    got = check_reading(Reading("d", "t", 5_000_000, 1), NOW, 300.0)
    assert got == Reading("d", "t", NOW, 1.0, "", FLAG_SERVER_TIME)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {"dev": "d", "metric": "t", "ts": 1796040000, "value": 2, "unit": "C"},
            Reading("d", "t", NOW, 2.0, "C"),
        ),
        (
            {"dev": "d", "metric": "t", "ts": "2026-11-30T12:00:00Z", "value": "3.5"},
            Reading("d", "t", NOW, 3.5),
        ),
        (
            {"dev": "d", "metric": "t", "value": 1},
            Reading("d", "t", NOW, 1.0, "", FLAG_SERVER_TIME),
        ),
        ({"dev": "d", "metric": "t", "ts": NOW, "value": None}, None),
    ],
)
def test_reading_from_line(doc, expected):
    """JSON-lines objects become readings; a null value is no reading."""
    assert reading_from_line(doc, NOW, 300.0) == expected


@pytest.mark.parametrize(
    ("doc", "reason", "field"),
    [
        ([1, 2], RejectReason.PAYLOAD_NOT_OBJECT, ""),
        ({"dev": "a b", "metric": "t", "value": 1}, RejectReason.BAD_DEVICE_ID, "dev"),
        ({"dev": "d", "metric": 5, "value": 1}, RejectReason.BAD_METRIC, "metric"),
        (
            {"dev": "d", "metric": "t", "value": "22,0"},
            RejectReason.NON_NUMERIC_STRING,
            "value",
        ),
        (
            {"dev": "d", "metric": "t", "ts": "30/11/2026", "value": 1},
            RejectReason.BAD_TIMESTAMP,
            "ts",
        ),
        (
            {"dev": "d", "metric": "t", "ts": "2026-11-30T12:00:00", "value": 1},
            RejectReason.NAIVE_TIMESTAMP,
            "ts",
        ),
    ],
)
def test_reading_from_line_bad(doc, reason, field):
    """A bad object gives the reason and the field it concerns."""
    got = reading_from_line(doc, NOW, 300.0)
    assert isinstance(got, DecodeError)
    assert (got.reason, got.field) == (reason, field)
