"""Live first: after an outage fresh readings do not wait behind the backlog."""

from __future__ import annotations

import time

import pytest

from protocol.readings import Reading
from protocol.validate import now_us
from tests.edge_agent.conftest import edge_settings
from tests.services import wait_for

pytestmark = [pytest.mark.broker]


@pytest.fixture
def outage(tmp_path, broker, responder, start_agent):
    """An agent whose hub stopped acking while 6,000 readings came in, then resumed.

    Returns the agent, the stand-in hub and the monotonic time of the resume.
    """
    settings = edge_settings(
        tmp_path,
        broker.url,
        batch_max_readings=500,
        inflight_batches=2,
        late_after_s=1.0,
        backlog_rate=2000.0,
        ack_timeout_s=30.0,
    )
    agent = start_agent(settings)
    responder.pause()
    base = now_us() - 5_000_000
    for i in range(0, 6000, 1000):
        agent.submit(
            [Reading("outage", "temp", base + i + j, -1.0) for j in range(1000)]
        )
    time.sleep(settings.late_after_s + 0.2)
    responder.resume()
    return agent, responder, time.monotonic()


def _feed_fresh(agent, seconds: float) -> None:
    """Submit 50 fresh readings every 0.1 s; each value is its submit time."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        submitted = time.monotonic()
        agent.submit(
            [Reading("fresh", "temp", now_us() + j, submitted) for j in range(50)]
        )
        time.sleep(0.1)


def _batches_of(hub, dev: str):
    return [r for r in hub.distinct() if any(row[0] == dev for row in r.readings)]


def test_live_first_fresh_acked_before_backlog_drained(outage):
    """Fresh readings are acked within 0.5 s while the backlog is still draining."""
    agent, hub, resumed = outage
    _feed_fresh(agent, 1.0)
    wait_for(lambda: agent.stats.readings == 0, timeout=20, what="drain")
    backlog_done = max(hub.acked[r.seq] for r in _batches_of(hub, "outage"))
    fresh = _batches_of(hub, "fresh")
    latencies = [hub.acked[r.seq] - min(row[3] for row in r.readings) for r in fresh]
    assert backlog_done - resumed >= 1.0  # paced by backlog_rate
    assert len(fresh) >= 8
    assert max(latencies) < 0.5
    assert sum(1 for r in fresh if hub.acked[r.seq] < backlog_done) >= 5


def test_live_first_backlog_batches_are_late(outage):
    """Backlog batches carry late=true; the two sent before the outage and the
    fresh ones do not."""
    agent, hub, _ = outage
    _feed_fresh(agent, 0.3)
    wait_for(lambda: agent.stats.readings == 0, timeout=20, what="drain")
    outage_flags = [r.late for r in _batches_of(hub, "outage")]
    assert outage_flags == [False, False] + [True] * 10
    assert {r.late for r in _batches_of(hub, "fresh")} == {False}
    assert len(hub.stored()) == 6000 + sum(
        len(r.readings) for r in _batches_of(hub, "fresh")
    )
