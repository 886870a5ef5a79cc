"""A gateway whose clock is days off, ahead and behind: each loss counted exactly.

Two kinds of local sensors publish through the skewed gateway:

- ``dev-own-clock`` stamps its readings with its own, right clock (``ts``);
- ``dev-no-clock`` sends no time, so the agent stamps the receive time, from
  the gateway's wrong clock (flagged as server time).

What each side does with the times (both check only the future, against their
own clock, with ``max_future_skew_s`` = 300 s; neither has a past bound):

| gateway clock | ``dev-own-clock`` (right time) | ``dev-no-clock`` (gateway time) |
| --- | --- | --- |
| 2 days ahead | stored | hub rejects ``future_timestamp`` |
| 3 days behind | edge rejects ``future_timestamp`` | stored, 3 days in the past |

Either way the reject is counted by reason: the hub's own rejects in its
accounting, the edge's in the buffer's counters and, through the gateway's
state, in the hub's accounting too. Nothing else is lost, nothing doubled;
the batches (seqs from the wrong clock) are acked and leave the disk.
"""

from __future__ import annotations

import time

import pytest

from protocol import topics
from tests.e2e.harness import Site
from tests.faults.helpers import Publisher, finish_without_replay, skew_edge_clock
from tests.services import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.broker, pytest.mark.slow]

DAY_S = 86_400.0
#: Messages of each sensor (one reading each).
MESSAGES = 150
OWN_CLOCK, NO_CLOCK = "dev-own-clock", "dev-no-clock"
DELIVERY_TIMEOUT_S = 40.0


@pytest.mark.parametrize(
    ("offset_s", "stored_dev", "rejected_at"),
    [
        pytest.param(2 * DAY_S, OWN_CLOCK, "hub", id="ahead-2d"),
        pytest.param(-3 * DAY_S, NO_CLOCK, "edge", id="behind-3d"),
    ],
)
@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_gateway_clock_far_off_rejects_counted_rest_stored(
    site: Site, offset_s: float, stored_dev: str, rejected_at: str, request
):
    """Readings the skew makes 'future' are rejected and counted; the rest stored."""
    skew_edge_clock(site, offset_s)
    site.start_hub()
    site.start_edge()
    before_us = time.time_ns() // 1000
    pub = Publisher(site.local)
    try:
        # Its own clock in ms, one ms apart at least: a (series, ts) pair is
        # one reading, a second one would be a duplicate.
        ts_ms = time.time_ns() // 1_000_000
        for i in range(MESSAGES):
            ts_ms = max(ts_ms + 1, time.time_ns() // 1_000_000)
            pub.publish(
                topics.telemetry(OWN_CLOCK), {"temperature": float(i), "ts": ts_ms}
            )
            pub.publish(topics.telemetry(NO_CLOCK), {"temperature": float(i)})
        pub.wait()
    finally:
        pub.close()
    after_us = time.time_ns() // 1000

    def delivered() -> bool:
        buf = site.edge_buffer()
        taken = buf.acked_readings + sum(buf.rejected.values())
        return taken == 2 * MESSAGES and buf.pending == buf.batches == 0

    wait_for(delivered, timeout=DELIVERY_TIMEOUT_S, interval=0.2, what="delivery")
    # The hub's rejects are acked with their batch: wait until they are in.
    wait_for(
        lambda: site.stored_count() == MESSAGES,
        timeout=DELIVERY_TIMEOUT_S,
        interval=0.2,
        what=f"{MESSAGES} readings stored",
    )
    out = finish_without_replay(site, 2 * MESSAGES)
    print(
        f"{request.node.name}: offset_s={offset_s:g} rows={out.total} "
        f"hub_rejects={out.hub_rejects} edge_rejected={out.edge.rejected}"
    )

    # Stored: exactly the one sensor's readings, once each, nothing else.
    assert {r[0] for r in out.rows} == {stored_dev}
    assert sorted(r[3] for r in out.rows) == [float(i) for i in range(MESSAGES)]
    assert out.total == out.hub_received == MESSAGES
    assert out.hub_duplicates == 0
    offset_us = int(offset_s * 1e6)
    if stored_dev == NO_CLOCK:  # stamped by the wrong clock, and kept so
        window = (before_us + offset_us, after_us + offset_us + 1_000_000)
    else:
        window = (before_us - 1000, after_us + MESSAGES * 1000)
    assert all(window[0] <= r[2] <= window[1] for r in out.rows)

    # Rejected: every reading of the other sensor, counted by reason once.
    assert out.hub_rejects == {"future_timestamp": MESSAGES}
    if rejected_at == "edge":
        assert out.edge.rejected == {"future_timestamp": MESSAGES}
        assert out.edge.acked_readings == MESSAGES
    else:
        assert out.edge.rejected == {}
        assert out.edge.acked_readings == 2 * MESSAGES
    assert out.edge.dropped == {}
    assert out.hub_dropped == {}
    assert (out.edge.pending, out.edge.batches) == (0, 0)
