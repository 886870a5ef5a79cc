"""PostgreSQL restarted during ingest, twice: the hub holds its acks and resumes.

While the database is down the hub's writes fail: it retries the group
without acking, so the batches stay on the edge's disk; once the database is
back the hub commits them and acks. Nothing may be lost (an ack before the
commit would lose the batch) or doubled (the resent copies hit the
(gateway, seq) key).

The restart command is ``STREAMFLOW_TEST_PG_RESTART`` (tests/services.md).
It restarts the whole server: other tests using it at that moment fail.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.e2e.harness import (
    AckWatch,
    DataSlice,
    PgWatch,
    Site,
    assert_exact_accounting,
    fault_seed,
    fault_times,
    run_command,
    sleep_until,
)

pytestmark = [
    pytest.mark.fault,
    pytest.mark.e2e,
    pytest.mark.broker,
    pytest.mark.db,
    pytest.mark.slow,
    # It restarts the PostgreSQL server every other test shares.
    pytest.mark.serial,
]

SEED = fault_seed(20040308)
DELIVERY_TIMEOUT_S = 60.0
#: Acks published this soon after the server went down may be of a commit
#: that ended just before.
ACK_MARGIN_S = 0.1
PG_RESTART = os.environ.get(
    "STREAMFLOW_TEST_PG_RESTART", "pg_ctlcluster 15 main restart"
)


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("store_url", ["timescaledb"], indirect=True)
def test_pg_restarted_twice_hub_survives_and_stores_exact_readings(
    site: Site, intel_slice: DataSlice, request
):
    """Two PostgreSQL restarts: the hub lives on, acks nothing while it is down."""
    restarts = fault_times(SEED, 2, first_s=1.5, last_s=11.0, gap_s=3.0)
    site.start(intel_slice.path)
    hub_pid = site.hub.pid
    acks, pg = AckWatch(site.hub_broker), PgWatch(site.db_url)
    started = time.monotonic()
    try:
        for at_s in restarts:
            sleep_until(started, at_s)
            run_command(PG_RESTART)
        site.wait_delivered(intel_slice, DELIVERY_TIMEOUT_S)
    finally:
        acks.stop()
        pg.stop()
    out = site.finish()
    outages = pg.outages()
    # A commit can end just as the server starts refusing connections; its
    # ack follows within milliseconds. Later in an outage nothing can commit.
    held = [acks.between(first + ACK_MARGIN_S, last) for first, last in outages]
    print(
        f"{request.node.name}: seed={SEED} restarts_at_s={restarts} "
        f"outages_s={[round(last - first, 2) for first, last in outages]} "
        f"acks_total={len(acks.times)} {out.figures(intel_slice)}"
    )

    assert (site.hub.runs, site.hub.kills, set(out.hub_counters)) == (1, 0, {hub_pid})
    assert len(outages) >= len(restarts)
    assert held == [[] for _ in outages]
    assert_exact_accounting(out, intel_slice)


PG_STOP = os.environ.get("STREAMFLOW_TEST_PG_STOP", "pg_ctlcluster 15 main stop")
PG_START = os.environ.get("STREAMFLOW_TEST_PG_START", "pg_ctlcluster 15 main start")
#: Longer than the store pool's 10 s connection wait, so that the hub's writes
#: fail and take the retry path; a shorter outage only makes a write wait.
OUTAGE_S = 12.0


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("store_url", ["timescaledb"], indirect=True)
def test_pg_down_for_seconds_hub_retries_without_acking(
    site: Site, intel_slice: DataSlice, request
):
    """PostgreSQL down for 12 s: writes fail, nothing is acked, then all is stored."""
    (at_s,) = fault_times(SEED + 1, 1, first_s=2.0, last_s=6.0, gap_s=1.0)
    site.start(intel_slice.path)
    acks, pg = AckWatch(site.hub_broker), PgWatch(site.db_url)
    started = time.monotonic()
    try:
        sleep_until(started, at_s)
        run_command(PG_STOP)
        time.sleep(OUTAGE_S)
        run_command(PG_START)
        site.wait_delivered(intel_slice, DELIVERY_TIMEOUT_S)
    finally:
        acks.stop()
        pg.stop()
    out = site.finish()
    outages = pg.outages()
    held = [acks.between(first + ACK_MARGIN_S, last) for first, last in outages]
    errors = sum(c.get("store_errors", 0) for c in out.hub_counters.values())
    print(
        f"{request.node.name}: seed={SEED + 1} stop_at_s={at_s:.2f} "
        f"outages_s={[round(last - first, 2) for first, last in outages]} "
        f"{out.figures(intel_slice)}"
    )

    assert (site.hub.runs, site.hub.kills) == (1, 0)
    assert len(outages) == 1
    assert outages[0][1] - outages[0][0] >= OUTAGE_S - 0.5
    assert errors >= 1
    assert held == [[]]
    assert_exact_accounting(out, intel_slice)
