"""Replay time: where a recorded reading falls when played back, and its stamp.

Recorded data comes in segments (one per data file, such as the shipped
slices of the Intel lab, hours or days apart). A replay plays them back to
back on one *timeline*: a reading's position is its time since its segment's
first reading, plus the lengths of the segments before it, each followed by
a gap of one sampling period. Looping adds the length of a whole lap. So the
silence between two slices is not replayed, while the silences inside a slice
(a mote that stops reporting) are, at their real length.

A :class:`Restamper` turns a position into the two things a replay needs: the
moment to send the reading (``due_s``, seconds after the replay started; the
speed-up compresses time) and its timestamp (``stamp``), either the original
one or one shifted to now. Both are pure functions of the options and the
start time, so the same input and options give the same readings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from protocol.readings import Reading

#: The pause put between segments (and laps): the Intel lab's sampling period.
SEGMENT_GAP_US: Final = 31_000_000
#: How far behind now a re-stamped reading is when it is sent (see Restamper).
DEFAULT_LAG_US: Final = 1_000_000

SegmentOpener = Callable[[], Iterator[Reading]]


class TimestampMode(StrEnum):
    """Which timestamps replayed readings carry."""

    ORIGINAL = "original"
    NOW = "now"


@dataclass(frozen=True, slots=True)
class Restamper:
    """Maps timeline positions to send times and timestamps.

    Attributes:
        mode: keep the original timestamps or shift them to now.
        speedup: data seconds per wall second; 0 sends as fast as possible.
        wall_start_us: the wall clock (epoch µs) when the replay started.
        lag_us: how far before its send time a re-stamped reading is stamped,
            so that no reading is ever ahead of the receiver's clock.
        end_position_us: the last position of the replay; needed only with
            ``speedup`` 0 and mode ``now``, where the data keeps its spacing
            and is shifted to end at ``wall_start_us - lag_us`` (compressing
            it to one instant would make every reading of a series collide).
    """

    mode: TimestampMode
    speedup: float
    wall_start_us: int
    lag_us: int = DEFAULT_LAG_US
    end_position_us: int = 0

    def __post_init__(self) -> None:
        if self.speedup < 0:
            raise ValueError(f"speedup {self.speedup!r}: expected 0 or more")
        if self.lag_us < 0:
            raise ValueError(f"lag_us {self.lag_us!r}: expected 0 or more")

    def due_s(self, position_us: int) -> float:
        """Seconds after the start at which the reading at ``position_us`` is due.

        With speed-up 0 everything is due at once (0.0).
        """
        if self.speedup == 0:
            return 0.0
        return position_us / self.speedup / 1e6

    def stamp(self, position_us: int, original_us: int) -> int:
        """The timestamp (epoch µs) of the reading at ``position_us``."""
        if self.mode == TimestampMode.ORIGINAL:
            return original_us
        base = self.wall_start_us - self.lag_us
        if self.speedup == 0:
            return base - (self.end_position_us - position_us)
        return base + round(position_us / self.speedup)

    def restamp(self, position_us: int, reading: Reading) -> Reading:
        """The reading with its replay timestamp."""
        ts_us = self.stamp(position_us, reading.ts_us)
        if ts_us == reading.ts_us:
            return reading
        return Reading(
            reading.device, reading.metric, ts_us, reading.value, reading.unit
        )


def positions(
    segments: Sequence[SegmentOpener],
    loop: bool = False,
    gap_us: int = SEGMENT_GAP_US,
) -> Iterator[tuple[int, int, Reading]]:
    """Play segments back to back and yield (position µs, lap, reading).

    Each segment opener is called once per lap for a fresh iterator. A reading
    earlier than its segment's first one (out-of-order data) gets a position
    before the segment's start; the segment's length is its latest reading.

    Args:
        segments: callables that each return a segment's readings in order.
        loop: start again from the first segment after the last, for ever.
        gap_us: the pause after each segment.
    """
    lap = 0
    lap_start = 0
    while True:
        offset = lap_start
        produced = False
        for open_segment in segments:
            first: int | None = None
            latest = 0
            for reading in open_segment():
                if first is None:
                    first = latest = reading.ts_us
                latest = max(latest, reading.ts_us)
                produced = True
                yield offset + (reading.ts_us - first), lap, reading
            if first is not None:
                offset += latest - first + gap_us
        # An empty lap would spin for ever: a loop of no data ends at once.
        if not loop or not produced:
            return
        lap += 1
        lap_start = offset


def scan(
    segments: Sequence[SegmentOpener],
    limit: int | None = None,
    gap_us: int = SEGMENT_GAP_US,
) -> tuple[int, int]:
    """Count the readings of one pass and find the last position.

    Args:
        segments: as for :func:`positions`.
        limit: stop counting after this many readings.
        gap_us: the pause after each segment.

    Returns:
        The number of readings (at most ``limit``) and the largest position.
    """
    count = 0
    end = 0
    for position, _lap, _reading in positions(segments, gap_us=gap_us):
        if limit is not None and count >= limit:
            break
        count += 1
        end = max(end, position)
    return count, end
