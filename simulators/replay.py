"""Replay of recorded datasets as a live site: paced, re-stamped, counted.

The readings of a dataset (one or more files, each a segment of the
timeline, see :mod:`simulators.timeline`) are handed to a sink in time order:
by default real edge agents in this process, one per simulated gateway
(:class:`~simulators.gateways.EdgeGatewaySink`), or a broker as plain JSON
sensors (:class:`~simulators.sinks.MqttSensorSink`).

Pacing: with a speed-up of 60 an hour of data takes a minute; with 0 the
readings go as fast as the sink takes them. Stamping: ``original`` keeps the
recorded times; ``now`` makes the first reading ``lag`` seconds old at the
start and compresses time by the speed-up, so that each reading is sent when
its new timestamp arrives (plus the lag), as from a live site.

A replay stops at the end of the data (unless it loops), after ``limit``
readings, after ``duration_s`` seconds, or when its stop event is set.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from protocol.readings import Reading
from protocol.validate import now_us
from simulators.datasets import (
    SHIPPED_DATA,
    DatasetFormat,
    LoadReport,
    dataset_files,
    read_file,
)
from simulators.progress import LiveProgress
from simulators.sinks import Sink
from simulators.timeline import (
    DEFAULT_LAG_US,
    Restamper,
    SegmentOpener,
    TimestampMode,
    positions,
    scan,
)

_LOGGER = logging.getLogger(__name__)

#: The gateway the demo (``streamflow up --demo``) replays through.
DEMO_GATEWAY: Final = "demo-gw"
#: Readings handed to the sink at once when they are due together.
DEFAULT_CHUNK: Final = 500
#: The longest sleep between two checks of the stop event and the deadline.
_MAX_SLEEP_S: Final = 0.25


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """How to replay.

    Attributes:
        speedup: data seconds per wall second; 0 = as fast as possible.
        timestamps: ``now`` (shifted to a live clock) or ``original``.
        duration_s: stop after this many wall seconds.
        limit: stop after this many readings sent.
        loop: start again at the beginning when the data ends (needs a
            speed-up above 0, so that time keeps moving forward).
        lag_us: how old a re-stamped reading is when it is sent.
        chunk: the most readings handed to the sink in one call.
        start_us: the wall clock the replay starts at (epoch µs); None = now.
            Fixing it makes ``now`` stamps reproducible.
        progress: draw a live progress bar.
    """

    speedup: float = 60.0
    timestamps: TimestampMode = TimestampMode.NOW
    duration_s: float | None = None
    limit: int | None = None
    loop: bool = False
    lag_us: int = DEFAULT_LAG_US
    chunk: int = DEFAULT_CHUNK
    start_us: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if self.speedup < 0:
            raise ValueError(f"speedup {self.speedup!r}: expected 0 or more")
        if self.loop and self.speedup == 0:
            raise ValueError("loop needs a speedup above 0: time must move forward")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit {self.limit!r}: expected 0 or more")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration_s {self.duration_s!r}: expected above 0")
        if self.chunk < 1:
            raise ValueError(f"chunk {self.chunk!r}: expected 1 or more")


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did, with exact counts.

    Attributes:
        read: readings taken from the data.
        sent: readings handed to the sink.
        report: the loaders' counts: lines, rejects by reason, missing fields.
        laps: passes over the data started (1 without looping).
        stopped: why it ended: ``end``, ``limit``, ``duration`` or ``stop``.
        first_us: the timestamp of the first reading sent, or None.
        last_us: the timestamp of the last reading sent, or None.
        elapsed_s: wall seconds taken.
        unconfirmed: what the sink still held unconfirmed when it closed
            (readings not acked by the hub, messages without PUBACK).
    """

    label: str = "replay"
    read: int = 0
    sent: int = 0
    report: LoadReport = field(default_factory=LoadReport)
    laps: int = 0
    stopped: str = "end"
    first_us: int | None = None
    last_us: int | None = None
    elapsed_s: float = 0.0
    unconfirmed: int = 0

    @property
    def rate(self) -> float:
        """Readings sent per wall second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        """The final summary line: exact counts, skips by reason."""
        skipped = " ".join(f"{k}={v}" for k, v in sorted(self.report.rejected.items()))
        missing = " ".join(f"{k}={v}" for k, v in sorted(self.report.missing.items()))
        return (
            f"{self.label} {self.stopped}: read={self.read} sent={self.sent}"
            f" skipped={sum(self.report.rejected.values())} ({skipped or 'none'})"
            f" missing_fields={sum(self.report.missing.values())}"
            f" ({missing or 'none'}) unconfirmed={self.unconfirmed} laps={self.laps}"
            f" elapsed={self.elapsed_s:.1f}s rate={self.rate:.0f}/s"
        )


class Segment(Protocol):
    """A stretch of recorded data: one file, or readings held in memory."""

    def open(self, report: LoadReport) -> Iterator[Reading]:
        """A fresh iterator over the segment's readings, counting into ``report``."""
        ...


@dataclass(frozen=True, slots=True)
class FileSegment:
    """One data file of a known format."""

    path: Path
    fmt: DatasetFormat

    def open(self, report: LoadReport) -> Iterator[Reading]:
        """The file's readings, in file order."""
        return read_file(self.path, self.fmt, report)


def segments_for(path: Path, fmt: DatasetFormat | str = "auto") -> list[FileSegment]:
    """One segment per data file that ``path`` names, in name order.

    Raises:
        DatasetError: no data file found, or a file's format is unknown.
    """
    return [FileSegment(p, f) for p, f in dataset_files(path, fmt)]


def _openers(segments: Sequence[Segment], report: LoadReport) -> list[SegmentOpener]:
    return [functools.partial(segment.open, report) for segment in segments]


def replay(
    segments: Sequence[Segment],
    sink: Sink,
    options: ReplayOptions = ReplayOptions(),
    stop: threading.Event | None = None,
) -> ReplaySummary:
    """Replay segments into a started sink (the caller starts and closes it).

    Args:
        segments: the data, as from :func:`segments_for`.
        sink: where readings go.
        options: pacing, stamping and bounds.
        stop: set it to end the replay early.

    Returns:
        The exact counts.

    Raises:
        SinkError: the sink failed.
    """
    stop = stop if stop is not None else threading.Event()
    summary = ReplaySummary()

    # A first pass gives the progress bar its total, and speed-up 0 with
    # "now" stamps the position to end at; a loop has neither.
    total, end_position = None, 0
    if not options.loop:
        scratch = LoadReport(quiet=True)
        total, end_position = scan(_openers(segments, scratch), options.limit)
    # Taken after the first pass, so that its time does not add to the lag.
    wall_start = options.start_us if options.start_us is not None else now_us()
    stamper = Restamper(
        options.timestamps, options.speedup, wall_start, options.lag_us, end_position
    )
    _LOGGER.info(
        "replay starting segments=%d speedup=%s timestamps=%s loop=%s readings=%s",
        len(segments),
        options.speedup,
        options.timestamps.value,
        options.loop,
        total if total is not None else "-",
    )
    with LiveProgress("replay", total, options.progress) as progress:
        stream = positions(_openers(segments, summary.report), options.loop)
        pace(stream, sink, options, stamper, stop, summary, progress)
    return summary


def pace(
    stream: Iterator[tuple[int, int, Reading]],
    sink: Sink,
    options: ReplayOptions,
    stamper: Restamper,
    stop: threading.Event,
    summary: ReplaySummary,
    progress: LiveProgress,
) -> None:
    """Send a stream of (position, lap, reading) to a sink, each when it is due.

    Readings due together go to the sink in one call, in chunks of about
    ``options.chunk`` that never split one device's instant; counts go into
    ``summary``.

    Raises:
        SinkError: the sink failed.
    """
    started = time.monotonic()
    deadline = started + options.duration_s if options.duration_s else None
    pending: list[Reading] = []
    data_us: int | None = None  # the recorded time of the last reading taken

    def flush() -> None:
        if pending:
            sink.send(pending)
            summary.sent += len(pending)
            if summary.first_us is None:
                summary.first_us = pending[0].ts_us
            summary.last_us = pending[-1].ts_us
            pending.clear()
            progress.update(summary.sent, data_us)

    for position, lap, reading in stream:
        summary.laps = lap + 1
        due = started + stamper.due_s(position)
        if due > time.monotonic():
            flush()
            summary.stopped = _sleep_until(due, deadline, stop)
            if summary.stopped != "end":
                break
        summary.read += 1
        restamped = stamper.restamp(position, reading)
        # A chunk ends only between two instants, so that the readings of one
        # device and instant stay one sensor message (MqttSensorSink).
        if len(pending) >= options.chunk and _new_instant(pending[-1], restamped):
            flush()
        pending.append(restamped)
        data_us = reading.ts_us
        summary.stopped = _check_bounds(summary, pending, options, deadline, stop)
        if summary.stopped != "end":
            break
    flush()
    progress.update(summary.sent, data_us, force=True)
    summary.elapsed_s = time.monotonic() - started


def _new_instant(last: Reading, reading: Reading) -> bool:
    return (last.device, last.ts_us) != (reading.device, reading.ts_us)


def _sleep_until(due: float, deadline: float | None, stop: threading.Event) -> str:
    """Wait for ``due``; say why the wait ended early, or ``end`` if it did not."""
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return "duration"
        if now >= due:
            return "end"
        wake = min(due, deadline) if deadline is not None else due
        if stop.wait(min(wake - now, _MAX_SLEEP_S)):
            return "stop"


def _check_bounds(
    summary: ReplaySummary,
    pending: list[Reading],
    options: ReplayOptions,
    deadline: float | None,
    stop: threading.Event,
) -> str:
    if options.limit is not None and summary.sent + len(pending) >= options.limit:
        return "limit"
    if deadline is not None and time.monotonic() >= deadline:
        return "duration"
    if stop.is_set():
        return "stop"
    return "end"


def replay_path(
    path: Path,
    sink: Sink,
    fmt: DatasetFormat | str = "auto",
    options: ReplayOptions = ReplayOptions(),
    stop: threading.Event | None = None,
    close_timeout: float = 30.0,
) -> ReplaySummary:
    """Replay a data file or folder through a sink, starting and closing it.

    Raises:
        DatasetError: the path holds no readable dataset.
        SinkError: the sink could not start or failed.
    """
    segments = segments_for(path, fmt)
    sink.start()
    try:
        summary = replay(segments, sink, options, stop)
    except BaseException:
        sink.close(close_timeout)
        raise
    summary.unconfirmed = sink.close(close_timeout)
    _LOGGER.info("%s", summary.line())
    return summary


def run_demo(
    hub_url: str,
    data_dir: Path,
    speedup: float,
    stop: threading.Event,
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Replay the shipped Intel lab slices as a live site, until ``stop`` is set.

    One edge agent (gateway ``demo-gw``) buffers in ``data_dir/edge/demo-gw``
    and forwards to the hub's broker at ``hub_url``. The slices play in
    :data:`DEMO_ORDER`, the one with a real sensor glitch first. Timestamps
    are shifted to now and the data loops, re-stamped continuously so that
    time keeps moving forward. The agent is stopped cleanly before this
    returns.

    Args:
        hub_url: the hub's broker, ``mqtt://host:port``.
        data_dir: the folder ``streamflow up`` keeps its data in.
        speedup: data seconds per wall second (above 0).
        stop: set it to end the demo.
        settings: further edge agent settings (the broker login, when the
            broker checks logins).

    Raises:
        ValueError: ``speedup`` is not above 0.
        SinkError: the edge agent could not start.
    """
    from simulators.gateways import EdgeGatewaySink

    options = ReplayOptions(speedup=speedup, timestamps=TimestampMode.NOW, loop=True)
    sink = EdgeGatewaySink([DEMO_GATEWAY], hub_url, data_dir / "edge", settings)
    segments = demo_segments()
    # A short wait for the last acks: what is not acked stays in the buffer
    # for the next start, and ``streamflow up`` gives the demo 10 s to stop.
    sink.start()
    try:
        summary = replay(segments, sink, options, stop)
    except BaseException:
        sink.close(5.0)
        raise
    summary.unconfirmed = sink.close(5.0)
    _LOGGER.info("%s", summary.line())


#: The order the demo plays the shipped slices in (file name prefixes): mote
#: 8's glitch is 30 minutes into the evening slice, so at the default speed-up
#: of 60 the first alert opens half a minute after the start; motes 24 and 33
#: go silent in the morning slice a few minutes later; then the long night.
DEMO_ORDER: Final = (
    "intel_lab_2004-03-06_",
    "intel_lab_2004-03-05_",
    "intel_lab_2004-03-04_",
)


def demo_segments() -> list[FileSegment]:
    """The shipped slices in :data:`DEMO_ORDER` (others after, by name)."""

    def rank(segment: FileSegment) -> tuple[int, str]:
        name = segment.path.name
        first = [i for i, prefix in enumerate(DEMO_ORDER) if name.startswith(prefix)]
        return (first[0] if first else len(DEMO_ORDER), name)

    return sorted(segments_for(SHIPPED_DATA, DatasetFormat.INTEL), key=rank)
