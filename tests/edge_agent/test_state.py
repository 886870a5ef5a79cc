"""The gateway state: birth, periodic state, offline on stop, the will on a kill."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys

import pytest

from edge_agent import EdgeAgent
from protocol import topics
from protocol.models import GatewayState
from protocol.readings import Reading
from protocol.validate import now_us
from tests.edge_agent.conftest import GW, edge_settings
from tests.services import wait_for

pytestmark = [pytest.mark.broker]


def states(sub) -> list[GatewayState]:
    return [GatewayState.model_validate_json(p) for p in sub.payloads()]


def test_state_birth_online_retained(tmp_path, broker, subscribe, start_agent):
    """On connect the agent publishes a retained online state with its version."""
    start_agent(edge_settings(tmp_path, broker.url))
    late_sub = subscribe(broker, topics.state(GW))
    wait_for(lambda: late_sub.messages, timeout=10, what="retained state")
    first = late_sub.messages[0]
    state = GatewayState.model_validate_json(first.payload)
    assert first.retain
    assert (state.gw, state.status) == (GW, "online")
    assert state.agent.startswith("streamflow-edge/")


def test_state_reports_depth_and_counters(tmp_path, broker, subscribe, start_agent):
    """The periodic state carries buffer depth, oldest time and reject counters."""
    sub = subscribe(broker, topics.state(GW))
    settings = edge_settings(
        tmp_path,
        broker.url,
        state_interval_s=0.3,
        batch_max_age_s=60.0,
        send_when_idle=False,
        stop_grace_s=0.1,
    )
    agent = start_agent(settings)
    before = now_us()
    agent.submit(
        [
            Reading("dev-1", "temp", before, 1.0),
            Reading("dev-1", "temp", before + 1, math.nan),
            Reading("bad id", "temp", before, 2.0),
        ]
    )
    wait_for(
        lambda: any(s.buffer.readings == 1 for s in states(sub)),
        timeout=10,
        what="state with depth",
    )
    state = next(s for s in states(sub) if s.buffer.readings == 1)
    assert state.rejected == {"non_finite_value": 1, "bad_device_id": 1}
    assert state.dropped == {}
    assert state.buffer.batches == 0
    assert before <= state.buffer.oldest_us <= now_us()


def test_state_offline_on_stop(tmp_path, broker, subscribe):
    """A clean stop leaves the retained state offline."""
    agent = EdgeAgent(edge_settings(tmp_path, broker.url))
    agent.start()
    wait_for(lambda: agent.stats.connected, timeout=10, what="connect")
    agent.stop()
    sub = subscribe(broker, topics.state(GW))
    wait_for(lambda: sub.messages, timeout=10, what="retained state")
    assert states(sub)[-1].status == "offline"


@pytest.mark.e2e
@pytest.mark.fault
def test_state_will_offline_on_kill(tmp_path, broker, subscribe):
    """Killing the agent with SIGKILL makes the broker publish the offline will."""
    sub = subscribe(broker, topics.state(GW))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "--gateway-id",
            GW,
            "--hub-url",
            broker.url,
            "--data-dir",
            str(tmp_path / "edge"),
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: any(s.status == "online" for s in states(sub)),
            timeout=15,
            what="birth",
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        wait_for(lambda: states(sub)[-1].status == "offline", timeout=10, what="will")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    will = states(sub)[-1]
    assert (will.gw, will.ts) == (GW, None)
    retained = subscribe(broker, topics.state(GW))
    wait_for(lambda: retained.messages, timeout=10, what="retained will")
    assert states(retained)[-1].status == "offline"
