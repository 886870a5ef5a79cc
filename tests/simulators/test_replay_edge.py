"""Replay through real edge agents into a real hub: stored equals sent."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest

from hub.config import HubSettings
from hub.service import HubService, load_adapters
from hub.storage import open_store
from protocol.readings import Reading
from protocol.validate import now_us
from simulators.datasets import LoadReport
from simulators.gateways import EdgeGatewaySink, gateway_ids
from simulators.replay import (
    DEMO_GATEWAY,
    DEMO_ORDER,
    ReplayOptions,
    demo_segments,
    replay_path,
    run_demo,
)
from tests.services import wait_for

pytestmark = [
    pytest.mark.broker,
    pytest.mark.e2e,
]


@pytest.fixture
def store(tmp_path):
    """A migrated SQLite store for the hub."""
    s = open_store(f"sqlite:///{tmp_path}/hub.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def hub(amqtt_broker, store, tmp_path):
    """A real hub on the embedded broker, writing to SQLite."""
    settings = HubSettings(
        mqtt_url=amqtt_broker.url,
        client_id=f"hub-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "hub",
        write_max_delay_s=0.01,
    )
    service = HubService(settings, store, adapters=load_adapters(settings))
    service.start()
    yield service
    service.stop(5)


def test_replay_edge_fast_all_stored(amqtt_broker, hub, store, intel_head, tmp_path):
    """Speed-up 0 through three edge agents: the hub stores exactly what was sent."""
    sink = EdgeGatewaySink(gateway_ids(3, "t-gw"), amqtt_broker.url, tmp_path / "edge")
    summary = replay_path(intel_head, sink, "intel", ReplayOptions(speedup=0))
    assert (summary.sent, summary.unconfirmed) == (1184, 0)
    assert store.count_readings() == 1184


def test_replay_edge_devices_round_robin(
    amqtt_broker, hub, store, intel_head, tmp_path
):
    """The 52 motes are spread over three gateways, 18/17/17, in first-seen order."""
    sink = EdgeGatewaySink(gateway_ids(3, "t-gw"), amqtt_broker.url, tmp_path / "edge")
    replay_path(intel_head, sink, "intel", ReplayOptions(speedup=0))
    assert Counter(sink.assignment.values()) == {
        "t-gw-1": 18,
        "t-gw-2": 17,
        "t-gw-3": 17,
    }
    assert sink.assignment["mote-43"] == "t-gw-1"  # the file's first line
    gateways = {d.id: d.gateway for d in store.list_devices()}
    assert gateways == sink.assignment


def test_run_demo_streams_until_stopped(amqtt_broker, hub, store, tmp_path):
    """The demo replays live through demo-gw until its stop event is set."""
    stop = threading.Event()
    started_us = now_us()
    demo = threading.Thread(
        target=run_demo, args=(amqtt_broker.url, tmp_path / "demo", 600.0, stop)
    )
    demo.start()
    try:
        wait_for(lambda: store.count_readings() >= 200, timeout=20, what="200 rows")
    finally:
        stop.set()
        demo.join(30)
    assert not demo.is_alive()
    assert store.get_gateway(DEMO_GATEWAY) is not None
    # The first slice's first reading is re-stamped one lag before the start.
    sent = first_demo_reading()
    first = store.readings(sent.device, sent.metric, limit=1)[0]
    assert started_us - 2_000_000 <= first.ts_us <= started_us
    assert first.value == sent.value
    assert (tmp_path / "demo" / "edge" / DEMO_GATEWAY / "buffer.sqlite").is_file()


def first_demo_reading() -> Reading:
    """The first reading of the slice the demo plays first (DEMO_ORDER[0])."""
    first_slice = demo_segments()[0]
    assert first_slice.path.name.startswith(DEMO_ORDER[0])
    return next(iter(first_slice.open(LoadReport())))
