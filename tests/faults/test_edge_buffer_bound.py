"""The edge buffer at its size bound, under each drop policy: every drop counted.

The hub's broker is down while the replay runs, so the agent forms no batch
and everything waits in ``pending``; the bound (64 KiB, the least allowed)
holds about a quarter of the slice. ``drop_oldest`` deletes the oldest
pending readings to make room, ``drop_newest`` refuses new ones; either way
each dropped reading is counted as ``dropped:buffer_full`` in the buffer, in
the gateway's retained state and so in the hub's accounting. Then the broker
and the hub come up and the agent delivers what it kept.

The accounting: the store holds exactly the readings the buffer kept (read
from the buffer file before the hub starts), once, and stored + dropped ==
readings produced.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.e2e.harness import DataSlice, Row, Site
from tests.services import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.broker, pytest.mark.slow]

#: The least bound the settings allow; the slice needs about four times it.
MAX_BYTES = 64 * 1024
#: Batches of 4 KiB at most (the bound must be at least two batches).
BATCH_MAX_BYTES = 4096
DELIVERY_TIMEOUT_S = 60.0


def kept_rows(site: Site) -> tuple[list[Row], int]:
    """The readings pending in the edge buffer (in arrival order), and the
    ``dropped:buffer_full`` counter."""
    db = sqlite3.connect(
        f"file:{site.edge_dir / 'buffer.sqlite'}?mode=ro", uri=True, timeout=10
    )
    try:
        rows = db.execute(
            "SELECT dev, metric, ts_us, value FROM pending ORDER BY id"
        ).fetchall()
        batches = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
        dropped = db.execute(
            "SELECT COALESCE(MAX(value), 0) FROM meta WHERE key = 'dropped:buffer_full'"
        ).fetchone()[0]
    finally:
        db.close()
    assert batches == 0, "no batch can form while the hub broker is down"
    return [tuple(r) for r in rows], int(dropped)


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_edge_buffer_at_bound_counts_every_drop(
    site: Site, intel_slice: DataSlice, policy: str, request
):
    """Stored + dropped == produced; the store holds exactly what was kept."""
    site.edge.env.update(
        {
            "STREAMFLOW_EDGE_BUFFER_MAX_BYTES": str(MAX_BYTES),
            "STREAMFLOW_EDGE_BUFFER_FULL_POLICY": policy,
            "STREAMFLOW_EDGE_BATCH_MAX_BYTES": str(BATCH_MAX_BYTES),
        }
    )
    produced = intel_slice.loaded
    site.hub_broker.stop()
    site.edge.start()
    site.edge.wait_log("local subscriptions ready")
    site.start_replay(intel_slice.path, speedup=0)
    assert site.replay is not None
    assert site.replay.wait_exit(30) == 0

    # Every reading published is either pending or counted as dropped.
    def settled() -> bool:
        rows, dropped = kept_rows(site)
        return len(rows) + dropped == produced

    wait_for(settled, timeout=30, interval=0.2, what="the buffer taking everything")
    kept, dropped = kept_rows(site)

    site.hub_broker.start()
    site.start_hub()
    wait_for(
        lambda: site.stored_count() >= len(kept),
        timeout=DELIVERY_TIMEOUT_S,
        interval=0.2,
        what=f"{len(kept)} readings in the store",
    )
    wait_for(
        lambda: site.edge_buffer().pending + site.edge_buffer().batches == 0,
        timeout=DELIVERY_TIMEOUT_S,
        interval=0.2,
        what="an empty edge buffer",
    )
    # The drop counters reached the hub in the agent's state on connect.
    out = site.finish()
    print(
        f"{request.node.name}: produced={produced} kept={len(kept)} "
        f"dropped={dropped} {out.figures(intel_slice)}"
    )

    assert dropped > 0
    assert len(kept) + dropped == produced
    assert len(set(kept)) == len(kept)
    assert set(kept) <= intel_slice.rows
    # The store: exactly the kept readings, each once.
    assert out.rows == sorted(kept)
    assert out.total == len(kept)
    assert out.hub_received == len(kept)
    assert out.hub_rejects == {}
    # Every drop counted by reason: in the buffer and in the hub's accounting.
    assert out.edge.dropped == {"buffer_full": dropped}
    assert out.hub_dropped == {"buffer_full": dropped}
    assert (out.edge.pending, out.edge.batches) == (0, 0)
    assert out.edge.acked_readings == len(kept)
    assert out.replay.sent == produced
    # The policy: drop_oldest keeps the newest arrivals, drop_newest the first.
    order = arrival_order(intel_slice)
    if policy == "drop_oldest":
        assert set(kept) == set(order[-len(kept) :])
    else:
        assert set(kept) == set(order[: len(kept)])


def arrival_order(data: DataSlice) -> list[Row]:
    """The slice's readings in the order the replay publishes them."""
    from simulators.datasets import LoadReport, read_intel

    seen: set[Row] = set()
    order: list[Row] = []
    for r in read_intel(data.path, LoadReport(quiet=True)):
        row = (r.device, r.metric, r.ts_us, r.value)
        if row not in seen:
            seen.add(row)
            order.append(row)
    return order
