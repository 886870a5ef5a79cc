"""The hub killed with SIGKILL mid-replay, twice: nothing lost or doubled.

What makes it exact: the hub PUBACKs a message and acks a batch only after
the transaction holding its readings committed, the broker keeps the hub's
persistent session while it is down, and the edge agent sends every unacked
batch again; the hub's (gateway, seq) key skips the copies already stored.
"""

from __future__ import annotations

import pytest

from tests.e2e.harness import (
    DataSlice,
    Site,
    assert_exact_accounting,
    fault_seed,
    kill_and_restart_twice,
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
    faults = kill_and_restart_twice(
        site, intel_slice, SEED, site.kill_hub, site.start_hub
    )
    site.wait_delivered(intel_slice, DELIVERY_TIMEOUT_S)
    out = site.finish()
    print(f"{request.node.name}: {faults} {out.figures(intel_slice)}")

    assert (site.hub.kills, site.hub.runs) == (2, 3)
    assert_exact_accounting(out, intel_slice)
