"""The monitor's checks on a real store, driven by a clock (no broker needed).

The service is built but not started: its MQTT client never connects, and
its publishes wait in paho's queue; the store is what these tests read.
"""

from __future__ import annotations

import orjson
import pytest

from hub.config import load_settings
from hub.monitor.service import MonitorService
from hub.storage import DeviceInfo, IngestItem, open_store
from protocol.readings import SeriesBlock

S = 1_000_000
T0 = 1_800_000_000 * S


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/monitor.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def service(store, clock, tmp_path):
    settings = load_settings(
        data_dir=tmp_path,
        monitor={"metrics_port": 0, "min_silence_s": 60, "offline_factor": 5},
    )
    built = MonitorService(settings, store, clock=clock, channels=[])
    built._started_us = clock()
    return built


def _arrive(store, device: str, at_us: int, gateway: str = "gw-1") -> None:
    """One reading of ``device`` received at ``at_us`` (its reading time too)."""
    block = SeriesBlock(device, "temperature", "C", [at_us], [20.0], [0])
    store.write([IngestItem(gateway, None, [block], at_us)])


def _stats(service: MonitorService, at_us: int) -> None:
    body = {"lag_p99_s": 0.5, "queue_fill": 0.0, "shed_per_s": 0.0}
    service.handle_message("sf/v1/hub/hub-1/stats", orjson.dumps(body), at_us)


def _active(store) -> list[str]:
    return sorted(a.fingerprint for a in store.active_alerts())


def test_silent_device_is_offline_in_the_store_then_resolved(service, store, clock):
    """Expected interval 10 s, 60 s floor: offline after 60 s; data resolves it."""
    store.upsert_device(DeviceInfo(id="d1", gateway="gw-1", expected_interval_s=10))
    _arrive(store, "d1", T0)
    _stats(service, T0)

    clock.now = T0 + 59 * S
    _stats(service, clock.now)
    service.tick()
    assert _active(store) == []

    clock.now = T0 + 61 * S
    service.tick()
    assert _active(store) == ["device/d1/offline/"]
    (alert,) = store.active_alerts()
    assert (alert.kind, alert.device, alert.gateway) == ("offline", "d1", "gw-1")

    _arrive(store, "d1", T0 + 70 * S)
    clock.now = T0 + 71 * S
    _stats(service, clock.now)
    service.tick()
    assert _active(store) == []
    assert store.get_alert(alert.id).state == "resolved"


def test_no_device_judged_before_a_hub_is_heard(service, store, clock):
    """Just started, no stats yet: a long silence is not judged for 15 s."""
    store.upsert_device(DeviceInfo(id="d1", expected_interval_s=10))
    _arrive(store, "d1", T0 - 3600 * S)

    clock.now = T0 + 14 * S
    service.tick()
    assert _active(store) == []

    clock.now = T0 + 16 * S
    service.tick()
    assert _active(store) == ["device/d1/offline/"]


def test_hub_down_is_one_alert_not_one_per_device(service, store, clock):
    """The hub stops reporting: hub-silent, and its 20 silent devices get none."""
    for i in range(20):
        store.upsert_device(DeviceInfo(id=f"d{i}", expected_interval_s=10))
        _arrive(store, f"d{i}", T0)
    _stats(service, T0)

    clock.now = T0 + 31 * S
    service.tick()
    clock.now = T0 + 3600 * S
    service.tick()

    assert _active(store) == ["hub/hub-1/service/hub-silent"]
    (alert,) = store.active_alerts()
    assert (alert.kind, alert.metric, alert.severity) == (
        "service",
        "stats_age_s",
        "warning",
    )


def test_gateway_will_hides_its_devices(service, store, clock):
    """A gateway's will: one alert naming its 3 devices, none for them."""
    for i in range(3):
        store.upsert_device(DeviceInfo(id=f"d{i}", expected_interval_s=10))
        _arrive(store, f"d{i}", T0, gateway="gw-7")
    _stats(service, T0)
    service.tick()
    will = b'{"v":1,"gw":"gw-7","status":"offline","agent":"streamflow-edge/1"}'

    service.handle_message("sf/v1/gw/gw-7/up/state", will, T0 + S)
    clock.now = T0 + 600 * S
    _stats(service, clock.now)
    service.tick()

    assert _active(store) == ["gateway/gw-7/offline/"]
    (alert,) = store.active_alerts()
    assert alert.details == {"devices_hidden": 3, "reason": "lwt"}


def test_gateway_drops_raise_edge_drops(service, store, clock):
    """A gateway whose drop counter grows: edge-drops; 5 quiet minutes clear it."""

    def state(at_us: int, dropped: int) -> None:
        body = {
            "v": 1,
            "gw": "gw-3",
            "status": "online",
            "ts": at_us,
            "buffer": {"readings": 10},
            "dropped": {"buffer_full": dropped},
        }
        service.handle_message("sf/v1/gw/gw-3/up/state", orjson.dumps(body), at_us)

    state(T0, 100)
    assert _active(store) == []
    state(T0 + 2 * S, 130)
    assert _active(store) == ["gateway/gw-3/service/edge-drops"]
    (alert,) = store.active_alerts()
    assert (alert.gateway, alert.details["value"]) == ("gw-3", 30.0)

    state(T0 + 400 * S, 130)
    assert _active(store) == []
