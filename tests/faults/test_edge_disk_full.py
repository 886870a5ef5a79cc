"""The edge agent's disk full mid-replay, then freed: nothing lost or doubled.

The agent's buffer folder is a tmpfs of :data:`DISK_KIB` KiB (mounted by the
test; it runs as root in CI). At a seeded instant a filler file takes all
but :data:`LEFT_KIB` KiB of it; the buffer's WAL soon needs more and every
write fails with SQLITE_FULL. While full, the agent:

- stays up, and its buffer stays intact (SQLite rolls each failed
  transaction back; ``PRAGMA integrity_check`` after the run);
- does not PUBACK the local messages it could not store: it holds the ones
  it has (at most the local broker's inflight window, 100 here) and writes
  them again every second; the local broker keeps the rest in the agent's
  persistent session;
- keeps the hub acks it could not record, to apply them once it can;
- counts it: the first failure is logged at ERROR, the recovery at INFO
  with the outage and the number of failed writes.

Then the filler goes, and every reading is delivered once: the exact
accounting of the other fault tests.

What is lost when the disk stays full (the one failure where loss is
allowed): nothing while the local broker can hold the agent's queue; once it
cannot, what it drops. Mosquitto keeps at most ``max_queued_messages`` per
session (1,000 by default, 100,000 in deploy/mosquitto and here) and drops
later QoS 1 messages for the session, so the sensors' newest readings beyond
that are lost, counted only by the broker. Readings handed in by
``submit()`` or the JSON-lines input are refused with ``BufferWriteError``,
so their caller knows. Batches already on disk are still sent and, once the
hub acks them, deleted as soon as the disk lets the agent write again.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    DataSlice,
    Site,
    assert_exact_accounting,
    fault_seed,
    fault_times,
    sleep_until,
)
from tests.faults.helpers import mount_tmpfs

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.broker, pytest.mark.slow]

SEED = fault_seed(20040309)
#: The edge's filesystem, and what the filler leaves free of it.
DISK_KIB, LEFT_KIB = 8192, 192
#: How long the disk stays full after the agent's first failed write.
HOLD_S = 4.0
DELIVERY_TIMEOUT_S = 60.0


@pytest.fixture
def edge_disk(site: Site) -> Iterator[Path]:
    """A small tmpfs as the edge's buffer folder; unmounted after the site."""
    mounted = mount_tmpfs(site.edge_dir, DISK_KIB)
    yield next(mounted)
    site.close()  # nothing may hold the folder when it is unmounted
    next(mounted, None)


def fill(folder: Path, leave_kib: int) -> Path:
    """Write a file that takes all but ``leave_kib`` KiB of the filesystem."""
    filler = folder / "filler"
    stat = os.statvfs(folder)
    size = stat.f_bavail * stat.f_frsize - leave_kib * 1024
    chunk = b"\0" * (64 * 1024)
    with open(filler, "wb") as out:
        try:
            while size > 0:
                size -= out.write(chunk[: min(len(chunk), size)])
        except OSError as exc:  # the agent took some meanwhile: full is fine
            if exc.errno != errno.ENOSPC:
                raise
    return filler


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_edge_disk_full_then_freed_stores_exact_readings(
    site: Site, intel_slice: DataSlice, edge_disk: Path, request
):
    """A full edge disk: no crash, no PUBACK of what it cannot store, then exact."""
    (at_s,) = fault_times(SEED, 1, first_s=1.5, last_s=4.0, gap_s=0.5)
    site.start(intel_slice.path)
    started = time.monotonic()
    sleep_until(started, at_s)
    filler = fill(edge_disk, LEFT_KIB)
    site.edge.wait_log("buffer write failed", timeout=20)
    full_at = time.monotonic()
    time.sleep(HOLD_S)
    held = site.edge.running
    filler.unlink()
    freed_at = time.monotonic()
    site.edge.wait_log("buffer writable again", timeout=20)
    site.wait_delivered(intel_slice, DELIVERY_TIMEOUT_S)
    out = site.finish()
    log = site.edge.all_logs().decode("utf-8", "replace")
    recovery = next(line for line in log.splitlines() if "writable again" in line)
    print(
        f"{request.node.name}: seed={SEED} fill_at_s={at_s} "
        f"first_failure_after_s={full_at - started - at_s:.2f} "
        f"full_s={freed_at - full_at:.1f} {recovery.split(' ', 4)[-1]} "
        f"{out.figures(intel_slice)}"
    )

    # The agent lived through it, in one run, and said so.
    assert held
    assert (site.edge.runs, site.edge.kills) == (1, 0)
    assert "database or disk is full" in log
    assert "Traceback" not in log
    # Its buffer is intact.
    db = sqlite3.connect(site.edge_dir / "buffer.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    assert_exact_accounting(out, intel_slice)
