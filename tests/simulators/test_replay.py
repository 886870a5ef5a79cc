"""Replay: pacing, re-stamping, bounds and counts, into a collecting sink."""

from __future__ import annotations

import threading
import time

import pytest

from protocol.readings import Reading
from simulators.datasets import DatasetFormat, LoadReport, read_intel
from simulators.replay import FileSegment, ReplayOptions, replay, replay_path
from simulators.timeline import SEGMENT_GAP_US, TimestampMode
from tests.simulators.helpers import ListSink

S = 1_000_000
WALL = 1_800_000_000 * S


class MemorySegment:
    """Readings held in memory, as a replay segment."""

    def __init__(self, readings: list[Reading]) -> None:
        self.readings = readings

    def open(self, report: LoadReport):
        report.readings += len(self.readings)
        return iter(self.readings)


def _series(device: str, *ts_s: float) -> MemorySegment:
    return MemorySegment(
        [Reading(device, "t", round(t * S), float(i)) for i, t in enumerate(ts_s)]
    )


def test_replay_original_fast_sends_file_exactly(intel_head):
    """Speed-up 0 with original stamps sends the file's readings unchanged."""
    sink = ListSink()
    opts = ReplayOptions(speedup=0, timestamps=TimestampMode.ORIGINAL)
    summary = replay_path(intel_head, sink, "auto", opts)
    assert sink.readings == list(read_intel(intel_head))
    assert (summary.read, summary.sent, summary.stopped) == (1184, 1184, "end")
    assert dict(summary.report.missing) == {"light": 16}
    assert (sink.started, sink.closed) == (True, True)


def test_replay_summary_line_exact_counts(intel_head):
    """The summary line gives read, sent, skips and missing fields exactly."""
    summary = replay_path(intel_head, ListSink(), "intel", ReplayOptions(speedup=0))
    assert summary.line().startswith(
        "replay end: read=1184 sent=1184 skipped=0 (none)"
        " missing_fields=16 (light=16) unconfirmed=0 laps=1"
    )


def test_replay_now_fast_ends_one_lag_before_start(intel_head):
    """Speed-up 0 with "now" keeps the spacing and ends one lag before the start."""
    sink = ListSink()
    opts = ReplayOptions(speedup=0, start_us=WALL, lag_us=S)
    replay_path(intel_head, sink, "intel", opts)
    original = list(read_intel(intel_head))
    shift = WALL - S - original[-1].ts_us
    assert [r.ts_us for r in sink.readings] == [r.ts_us + shift for r in original]
    assert sink.readings[-1].ts_us == WALL - S


def test_replay_same_options_same_readings(intel_head):
    """Two replays with the same input and options send identical readings."""
    runs = []
    for _ in range(2):
        sink = ListSink()
        replay_path(intel_head, sink, "intel", ReplayOptions(speedup=0, start_us=WALL))
        runs.append(sink.readings)
    assert runs[0] == runs[1]
    assert len(runs[0]) == 1184


def test_replay_limit_stops_exactly(intel_head):
    """--limit sends exactly that many readings, the first ones of the file."""
    sink = ListSink()
    summary = replay_path(
        intel_head, sink, "intel", ReplayOptions(speedup=0, limit=101)
    )
    assert (summary.sent, summary.stopped) == (101, "limit")
    assert [r.value for r in sink.readings] == [
        r.value for r in list(read_intel(intel_head))[:101]
    ]


def test_replay_paced_by_speedup():
    """Ten data seconds at speed-up 20 take half a second, stamped live."""
    sink = ListSink()
    opts = ReplayOptions(speedup=20, start_us=WALL, lag_us=0)
    started = time.monotonic()
    summary = replay([_series("a", 0, 5, 10)], sink, opts)
    took = time.monotonic() - started
    assert 0.45 <= took < 1.5
    assert [r.ts_us for r in sink.readings] == [WALL, WALL + S // 4, WALL + S // 2]
    assert summary.sent == 3


def test_replay_segments_gap_compressed():
    """A second segment a day later follows after one gap, not a day."""
    sink = ListSink()
    opts = ReplayOptions(speedup=1000, start_us=WALL, lag_us=0)
    replay([_series("a", 0, 10), _series("a", 86_400, 86_410)], sink, opts)
    assert [r.ts_us - WALL for r in sink.readings] == [
        0,
        10 * S // 1000,
        (10 * S + SEGMENT_GAP_US) // 1000,
        (20 * S + SEGMENT_GAP_US) // 1000,
    ]


def test_replay_duration_stops():
    """--duration ends a slow replay after about that long."""
    sink = ListSink()
    opts = ReplayOptions(speedup=1, duration_s=0.3)
    started = time.monotonic()
    summary = replay([_series("a", 0, 0.1, 100)], sink, opts)
    assert time.monotonic() - started < 1.0
    assert (summary.sent, summary.stopped) == (2, "duration")


def test_replay_stop_event_ends_loop():
    """A looping replay keeps stamping forward until the stop event is set."""
    sink = ListSink()
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    opts = ReplayOptions(speedup=100, loop=True, start_us=WALL, lag_us=0)
    try:
        summary = replay([_series("a", 0, 1, 2)], sink, opts, stop)
    finally:
        timer.cancel()
    stamps = [r.ts_us for r in sink.readings]
    assert summary.stopped == "stop"
    assert summary.laps >= 2
    assert stamps == sorted(set(stamps))
    assert len(stamps) == summary.sent


def test_replay_loop_without_speedup_refused():
    """A loop at speed-up 0 is refused: its time could not move forward."""
    with pytest.raises(ValueError, match="loop needs a speedup"):
        ReplayOptions(speedup=0, loop=True)


def test_replay_chunks_bound_sink_calls(intel_head):
    """Readings due together go to the sink in chunks of at most 500."""
    sink = ListSink()
    replay_path(intel_head, sink, "intel", ReplayOptions(speedup=0))
    assert sink.calls == 3


def test_file_segment_counts_into_report(intel_head):
    """A file segment counts lines into the report it is opened with."""
    report = LoadReport()
    assert len(list(FileSegment(intel_head, DatasetFormat.INTEL).open(report))) == 1184
    assert report.lines == 300


def test_replay_warns_once_per_bad_line(tmp_path, caplog):
    """The first pass counts quietly: a bad line is warned about once, not twice."""
    path = tmp_path / "x.txt"
    path.write_text(
        "2004-03-04 00:00:00.154051 14284 43 19.5376 38.7698 28.52 2.62796\n"
        "2004-03-05 08:29:04.505813 18182 65407 294.251   0.0130561\n"
    )
    with caplog.at_level("WARNING", logger="simulators"):
        summary = replay_path(path, ListSink(), "intel", ReplayOptions(speedup=0))
    assert dict(summary.report.rejected) == {"bad_device_id": 1}
    assert [r.getMessage() for r in caplog.records] == [
        "dataset line rejected reason=bad_device_id field=moteid device=-"
        " detail=x.txt:2: '65407'"
    ]
