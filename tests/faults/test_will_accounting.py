"""The gateway's will must not reset the hub's baseline of its edge counters.

The agent's will (``offline``, published by the broker when the agent's
connection is lost, and by Mosquitto when it shuts down) carries no
counters: they are unknown when the will is set. The hub stores the counters
of each state as the baseline of the next increase, so a will in between
makes the next state count the gateway's edge drops and rejects again in the
accounting. Found by tests/faults/test_retained_flood.py, whose broker
restarts made the hub count 2,000 edge rejects for 1,000. The counts in the
edge buffer and in the gateway's states are right; only the hub's
accounting (``/v1/gateways/{id}/accounting``) doubles.
"""

from __future__ import annotations

import pytest

from protocol import topics
from tests.e2e.harness import Site
from tests.faults.helpers import Publisher, finish_without_replay
from tests.services import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.broker, pytest.mark.slow]

BAD = 20


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_gateway_will_then_state_counts_edge_rejects_once(site: Site):
    """Edge rejects are in the hub's accounting once, across the agent's will."""
    site.start_hub()
    site.start_edge()
    pub = Publisher(site.local)
    try:
        for i in range(BAD):
            pub.publish(topics.telemetry(f"bad-{i}"), b"{")
    finally:
        pub.close()

    def counted() -> bool:
        return site.store.accounting("gateway", site.gateway).rejected == {
            "invalid_json": BAD
        }

    wait_for(counted, timeout=20, interval=0.2, what="edge rejects at the hub")
    # SIGKILL: the broker publishes the will at once, while the hub listens.
    site.kill_edge()
    site.hub.wait_log("gateway state gateway=gw-e2e status=offline")
    site.start_edge()
    online = site.hub.run_log().count(b"status=online")
    wait_for(
        lambda: site.hub.run_log().count(b"status=online") > online,
        timeout=20,
        interval=0.2,
        what="the restarted agent's state at the hub",
    )
    out = finish_without_replay(site, BAD)

    assert out.edge.rejected == {"invalid_json": BAD}
    assert out.hub_rejects == {"invalid_json": BAD}
