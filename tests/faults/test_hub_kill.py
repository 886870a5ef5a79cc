"""The hub killed with SIGKILL mid-replay, twice: nothing lost or doubled.

What makes it exact: the hub PUBACKs a message and acks a batch only after
the transaction holding its readings committed, the broker keeps the hub's
persistent session while it is down, and the edge agent sends every unacked
batch again; the hub's (gateway, seq) key skips the copies already stored.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.e2e.harness import (
    DataSlice,
    Site,
    assert_exact_accounting,
    fault_seed,
    fault_times,
    sleep_until,
)

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.broker, pytest.mark.slow]

SEED = fault_seed(20040306)
DELIVERY_TIMEOUT_S = 60.0


@pytest.mark.parametrize(
    "store_url", [pytest.param("timescaledb", marks=pytest.mark.db)], indirect=True
)
def test_hub_killed_twice_stores_exact_readings(
    site: Site, intel_slice: DataSlice, request
):
    """Two SIGKILLs of the hub at seeded random instants lose and double nothing."""
    kills = fault_times(SEED, 2, first_s=1.5, last_s=12.0, gap_s=1.0)
    downtimes = [round(random.Random(SEED + i).uniform(0.5, 2.0), 2) for i in (1, 2)]
    site.start(intel_slice.path)
    started = time.monotonic()
    for at_s, down_s in zip(kills, downtimes, strict=True):
        sleep_until(started, at_s)
        site.kill_hub()
        time.sleep(down_s)
        site.start_hub()
    site.wait_delivered(intel_slice, DELIVERY_TIMEOUT_S)
    out = site.finish()
    print(
        f"{request.node.name}: seed={SEED} kills_at_s={kills} down_s={downtimes} "
        f"{out.figures(intel_slice)}"
    )

    assert (site.hub.kills, site.hub.runs) == (2, 3)
    assert_exact_accounting(out, intel_slice)
