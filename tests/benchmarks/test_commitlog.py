"""The hub's commit log: records written by the hook, read back as latencies."""

from __future__ import annotations

import numpy as np

from benchmarks._commitlog import CommitLog, CommitRecorder, read_logs, samples
from hub.storage.base import WriteResult
from protocol.readings import SeriesBlock


def _block(first_us: int, n: int, step_us: int) -> SeriesBlock:
    ts = [first_us + i * step_us for i in range(n)]
    return SeriesBlock("dev-1", "temp", "C", ts, [1.0] * n, [0] * n)


def test_recorder_writes_one_record_per_block(tmp_path):
    """Each new block of a commit is one record: commit time, count, first, last."""
    path = tmp_path / "log.bin"
    recorder = CommitRecorder(path)
    recorder(WriteResult(new=[_block(1_000, 3, 10), _block(5_000, 2, 100)]))
    recorder(WriteResult(new=[SeriesBlock("dev-2", "temp")]))  # empty: skipped
    recorder.flush()
    log = CommitLog.read(path)
    assert len(log) == 2
    assert log.count.tolist() == [3, 2]
    assert log.first_us.tolist() == [1_000, 5_000]
    assert log.last_us.tolist() == [1_020, 5_100]
    assert log.readings == 5


def test_read_skips_partial_record(tmp_path):
    """A record still being written (a partial one at the end) is left out."""
    path = tmp_path / "log.bin"
    data = np.asarray([[10, 1, 5, 5], [20, 2, 6, 7]], dtype=np.int64).tobytes()
    path.write_bytes(data[:-3])
    assert CommitLog.read(path).count.tolist() == [1]


def test_reading_times_spread_in_block():
    """A block's readings are spread evenly between its first and last time."""
    log = CommitLog(
        np.array([1_000_000]), np.array([3]), np.array([100_000]), np.array([500_000])
    )
    ts, committed = log.reading_times()
    assert ts.tolist() == [100_000.0, 300_000.0, 500_000.0]
    assert committed.tolist() == [1_000_000.0] * 3
    assert log.latencies_s().tolist() == [0.9, 0.7, 0.5]


def test_samples_per_second_bins():
    """Samples count the readings committed in each one-second bin."""
    log = CommitLog(
        np.array([1_500_000, 1_700_000, 2_100_000]),
        np.array([2, 2, 1]),
        np.array([1_000_000, 1_200_000, 2_000_000]),
        np.array([1_000_000, 1_200_000, 2_000_000]),
    )
    got = samples(log, "ingest", zero_us=0)
    assert [(s.t_s, s.readings_per_s) for s in got] == [(1.0, 4.0), (2.0, 1.0)]
    assert got[0].latency_p50_s == 0.5
    assert got[1].latency_p99_s == 0.1


def test_read_logs_joins_runs(tmp_path):
    """The logs of a hub's runs read as one, in order; none gives an empty log."""
    paths = []
    for run in (1, 2):
        path = tmp_path / f"log-{run}.bin"
        rec = np.asarray([[run * 10, run, 1, 1]], dtype=np.int64)
        path.write_bytes(rec.tobytes())
        paths.append(path)
    assert read_logs(paths).count.tolist() == [1, 2]
    assert read_logs([]).readings == 0
