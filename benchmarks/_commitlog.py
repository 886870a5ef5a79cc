"""The hub's commit log: when each stored series block was committed.

The benchmark's hub process (:mod:`benchmarks._hubproc`) hooks
:attr:`hub.ingest.IngestPipeline.on_committed` and appends, for every block
of new readings a commit stored, one record of four int64: the commit time,
the block's reading count, and its first and last reading times (epoch µs).
A flusher thread appends the records to a file every ``interval_s``, so that
the benchmark can read the lag while the hub runs.

The hook costs O(blocks) per commit, not O(readings): a reading's latency is
read from its block by spreading the block's readings evenly between its
first and last reading time, which is exact for the simulated devices (they
report at a fixed interval) and bounds it for any others.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.results import Sample
from hub.storage.base import WriteResult
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

#: Fields of one record: commit µs, readings, first reading µs, last reading µs.
RECORD_FIELDS = 4
_RECORD_BYTES = RECORD_FIELDS * 8


class CommitRecorder:
    """The ``on_committed`` hook: collects records, appends them to a file.

    Args:
        path: the file the records are appended to (created empty now).
        interval_s: how often the flusher thread appends what was collected.
    """

    def __init__(self, path: Path, interval_s: float = 0.5) -> None:
        self.path = path
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._rows: list[tuple[int, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="bench-commit-log", daemon=True
        )
        path.write_bytes(b"")

    def __call__(self, result: WriteResult) -> None:
        """Record the blocks of one commit (runs on the hub's writer thread)."""
        committed = now_us()
        rows = [
            (committed, len(b), min(b.ts_us), max(b.ts_us)) for b in result.new if b
        ]
        with self._lock:
            self._rows.extend(rows)

    def start(self) -> None:
        """Start the flusher thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the flusher and append what is left."""
        self._stop.set()
        self._thread.join(5)
        self.flush()

    def flush(self) -> None:
        """Append the records collected so far to the file."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return
        data = np.asarray(rows, dtype=np.int64).tobytes()
        with self.path.open("ab") as f:
            f.write(data)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.flush()
            except OSError as exc:  # a full disk must not stop the hub
                _LOGGER.warning(
                    "commit log not written path=%s error=%s", self.path, exc
                )


@dataclass(frozen=True, slots=True)
class CommitLog:
    """The records of a commit log, as columns (epoch µs)."""

    committed_us: np.ndarray
    count: np.ndarray
    first_us: np.ndarray
    last_us: np.ndarray

    @classmethod
    def read(cls, path: Path) -> CommitLog:
        """Read the records written so far (a record being written is skipped)."""
        data = path.read_bytes() if path.exists() else b""
        whole = len(data) - len(data) % _RECORD_BYTES
        rows = np.frombuffer(data[:whole], dtype=np.int64).reshape(-1, RECORD_FIELDS)
        return cls(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])

    def __len__(self) -> int:
        return len(self.committed_us)

    @property
    def readings(self) -> int:
        """Readings committed in all."""
        return int(self.count.sum())

    def select(self, mask: np.ndarray) -> CommitLog:
        """The records where ``mask`` is true."""
        return CommitLog(
            self.committed_us[mask],
            self.count[mask],
            self.first_us[mask],
            self.last_us[mask],
        )

    def readings_between(self, from_us: int, to_us: int) -> CommitLog:
        """The blocks whose first reading time is in ``[from_us, to_us)``."""
        return self.select((self.first_us >= from_us) & (self.first_us < to_us))

    def reading_times(self) -> tuple[np.ndarray, np.ndarray]:
        """Each reading's (reading time, commit time), spread in its block."""
        n = self.count.astype(np.int64)
        total = int(n.sum())
        if total == 0:
            empty = np.empty(0, dtype=np.float64)
            return empty, empty
        block = np.repeat(np.arange(len(n)), n)
        starts = np.cumsum(n) - n
        pos = np.arange(total) - starts[block]
        span = (self.last_us - self.first_us).astype(np.float64)
        step = np.where(n > 1, span / np.maximum(n - 1, 1), 0.0)
        ts = self.first_us[block] + pos * step[block]
        return ts, self.committed_us[block].astype(np.float64)

    def latencies_s(self) -> np.ndarray:
        """Each reading's latency, reading time to commit, in seconds."""
        ts, committed = self.reading_times()
        return np.asarray((committed - ts) / 1e6)


def samples(
    log: CommitLog, scenario: str, zero_us: int, bin_s: float = 1.0
) -> list[Sample]:
    """Throughput and latency of the log's commits in bins of ``bin_s``.

    Args:
        log: the commit log.
        scenario: the scenario the samples belong to.
        zero_us: the plot's time zero (the run's start), epoch µs.
        bin_s: the bin width.
    """
    ts, committed = log.reading_times()
    if len(ts) == 0:
        return []
    latency = (committed - ts) / 1e6
    bins = np.floor((committed - zero_us) / 1e6 / bin_s).astype(np.int64)
    order = np.argsort(bins, kind="stable")
    bins, latency = bins[order], latency[order]
    edges = np.flatnonzero(np.diff(bins)) + 1
    out: list[Sample] = []
    for part_bins, part in zip(
        np.split(bins, edges), np.split(latency, edges), strict=True
    ):
        out.append(
            Sample(
                scenario=scenario,
                t_s=float(part_bins[0] * bin_s),
                readings_per_s=len(part) / bin_s,
                latency_p50_s=float(np.percentile(part, 50)),
                latency_p99_s=float(np.percentile(part, 99)),
            )
        )
    return out


def read_logs(paths: list[Path]) -> CommitLog:
    """The records of several commit logs (a hub's runs), as one log."""
    logs = [CommitLog.read(p) for p in paths]
    if not logs:
        empty = np.empty(0, dtype=np.int64)
        return CommitLog(empty, empty, empty, empty)
    return CommitLog(
        np.concatenate([x.committed_us for x in logs]),
        np.concatenate([x.count for x in logs]),
        np.concatenate([x.first_us for x in logs]),
        np.concatenate([x.last_us for x in logs]),
    )
