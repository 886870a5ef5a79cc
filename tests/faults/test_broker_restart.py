"""The hub's broker restarted mid-replay, twice: nothing lost or doubled.

Mosquitto (persistence on) keeps the sessions and queued messages over a
restart; amqtt keeps them in memory only, so after its restart the hub and
the edge agent find no session, subscribe again, and the batches and acks
that were in the broker are gone: the edge agent's resend-until-acked must
still make the accounting exact.
"""

from __future__ import annotations

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

SEED = fault_seed(20040307)
DELIVERY_TIMEOUT_S = 60.0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_hub_broker_restarted_twice_stores_exact_readings(
    site: Site, intel_slice: DataSlice, request
):
    """Two restarts of the hub broker at seeded random instants lose nothing."""
    restarts = fault_times(SEED, 2, first_s=1.5, last_s=12.0, gap_s=1.5)
    site.start(intel_slice.path)
    started = time.monotonic()
    for at_s in restarts:
        sleep_until(started, at_s)
        site.hub_broker.restart()
    site.wait_delivered(intel_slice, DELIVERY_TIMEOUT_S)
    out = site.finish()
    print(
        f"{request.node.name}: seed={SEED} restarts_at_s={restarts} "
        f"{out.figures(intel_slice)}"
    )

    assert (site.hub.runs, site.edge.runs) == (1, 1)
    assert_exact_accounting(out, intel_slice)
