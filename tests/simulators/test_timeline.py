"""Replay time: positions of segments on the timeline and re-stamping."""

from __future__ import annotations

import pytest

from protocol.readings import Reading
from simulators.timeline import (
    SEGMENT_GAP_US,
    Restamper,
    TimestampMode,
    positions,
    scan,
)

S = 1_000_000
WALL = 1_800_000_000 * S  # the replay's start on the wall clock


def _segment(device: str, *ts_s: int):
    readings = [Reading(device, "t", t * S, float(i)) for i, t in enumerate(ts_s)]
    return lambda: iter(readings)


@pytest.mark.parametrize(
    ("speedup", "position_s", "expected_s"),
    [
        (60.0, 0, -1),  # the first reading is one lag old at the start
        (60.0, 3600, 59),  # an hour of data later: one minute of wall time
        (1.0, 10, 9),
        (0.5, 10, 19),  # slow motion stretches time
    ],
)
def test_restamp_now_compresses_time(speedup, position_s, expected_s):
    """With "now", stamps start one lag before the start and run speedup-fold."""
    stamper = Restamper(TimestampMode.NOW, speedup, WALL, lag_us=1 * S)
    assert stamper.stamp(position_s * S, 123) == WALL + expected_s * S


@pytest.mark.parametrize(("speedup", "position_s", "due_s"), [(60.0, 3600, 60.0)])
def test_restamp_due_is_stamp_plus_lag(speedup, position_s, due_s):
    """A reading is due when its new timestamp plus the lag arrives."""
    stamper = Restamper(TimestampMode.NOW, speedup, WALL, lag_us=1 * S)
    assert stamper.due_s(position_s * S) == due_s
    assert stamper.stamp(position_s * S, 0) + 1 * S == WALL + round(due_s * S)


def test_restamp_original_keeps_timestamps():
    """With "original", the recorded timestamp is kept whatever the position."""
    stamper = Restamper(TimestampMode.ORIGINAL, 60.0, WALL)
    assert stamper.stamp(3600 * S, 1_078_387_200_154_051) == 1_078_387_200_154_051


def test_restamp_speedup_zero_ends_at_start():
    """With speed-up 0 the data keeps its spacing and ends one lag before now."""
    stamper = Restamper(TimestampMode.NOW, 0.0, WALL, lag_us=S, end_position_us=100 * S)
    assert [stamper.stamp(p * S, 0) for p in (0, 40, 100)] == [
        WALL - 101 * S,
        WALL - 61 * S,
        WALL - S,
    ]
    assert stamper.due_s(100 * S) == 0.0


def test_restamp_negative_speedup_raises():
    """A negative speed-up is refused, naming the value."""
    with pytest.raises(ValueError, match="speedup -1"):
        Restamper(TimestampMode.NOW, -1, WALL)


def test_restamp_reading_keeps_fields():
    """Re-stamping changes the timestamp only."""
    stamper = Restamper(TimestampMode.NOW, 1.0, WALL, lag_us=0)
    got = stamper.restamp(5 * S, Reading("mote-1", "humidity", 7, -8983.13, "%", 0))
    assert got == Reading("mote-1", "humidity", WALL + 5 * S, -8983.13, "%", 0)


def test_positions_segments_back_to_back():
    """The second segment starts one gap after the first one's last reading."""
    got = [
        (p, lap)
        for p, lap, _ in positions([_segment("a", 100, 130), _segment("b", 9000, 9010)])
    ]
    assert got == [
        (0, 0),
        (30 * S, 0),
        (30 * S + SEGMENT_GAP_US, 0),
        (40 * S + SEGMENT_GAP_US, 0),
    ]


def test_positions_keep_silence_inside_a_segment():
    """A gap inside a segment (a silent mote) keeps its real length."""
    got = [p for p, _, _ in positions([_segment("a", 0, 2400)])]
    assert got == [0, 2400 * S]


def test_positions_loop_moves_forward():
    """Each lap starts one gap after the previous lap's end, so time only grows."""
    stream = positions([_segment("a", 50, 60)], loop=True)
    got = [(next(stream)[:2]) for _ in range(5)]
    lap = 10 * S + SEGMENT_GAP_US
    assert got == [(0, 0), (10 * S, 0), (lap, 1), (lap + 10 * S, 1), (2 * lap, 2)]


def test_positions_loop_of_no_data_ends():
    """Looping over empty data ends instead of spinning."""
    assert list(positions([lambda: iter([])], loop=True)) == []


def test_scan_counts_and_end():
    """A scan gives the readings of one pass and the last position."""
    segments = [_segment("a", 0, 10), _segment("b", 500, 520)]
    assert scan(segments) == (4, 30 * S + SEGMENT_GAP_US)
    assert scan(segments, limit=3) == (3, 10 * S + SEGMENT_GAP_US)
