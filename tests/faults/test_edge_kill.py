"""The edge agent killed with SIGKILL mid-replay, twice: nothing lost or doubled.

What makes it exact: the local broker keeps the agent's persistent session
(and so what the sensors publish while it is down), a local message is
PUBACKed only after its readings are on disk, and a batch leaves the disk
only when the hub's ack says it is committed.
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

SEED = fault_seed(20040305)
DELIVERY_TIMEOUT_S = 60.0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_edge_killed_twice_stores_exact_readings(
    site: Site, intel_slice: DataSlice, request
):
    """Two SIGKILLs of the edge agent at seeded random instants lose nothing."""
    faults = kill_and_restart_twice(
        site, intel_slice, SEED, site.kill_edge, site.start_edge
    )
    site.wait_delivered(intel_slice, DELIVERY_TIMEOUT_S)
    out = site.finish()
    print(f"{request.node.name}: {faults} {out.figures(intel_slice)}")

    assert (site.edge.kills, site.edge.runs) == (2, 3)
    assert_exact_accounting(out, intel_slice)
