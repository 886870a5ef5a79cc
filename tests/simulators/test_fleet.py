"""The synthetic fleet: reproducible values, injected faults, live pacing."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from simulators.fleet import (
    NO_FAULTS,
    FaultRates,
    FleetGenerator,
    FleetSpec,
    simulate,
)
from tests.simulators.helpers import ListSink

S = 1_000_000
START = 1_800_000_000 * S


def _ticks(spec: FleetSpec, n: int):
    gen = FleetGenerator(spec, START)
    return gen, [r for k in range(n) for r in gen.tick(k)]


def test_fleet_device_ids():
    """Devices are named after their gateway, numbered from 001."""
    spec = FleetSpec(gateways=2, devices=2)
    assert spec.device_ids() == [
        ("sim-gw-1", "sim-gw-1-dev-001"),
        ("sim-gw-1", "sim-gw-1-dev-002"),
        ("sim-gw-2", "sim-gw-2-dev-001"),
        ("sim-gw-2", "sim-gw-2-dev-002"),
    ]


def test_fleet_tick_spreads_devices_over_interval():
    """One tick has every device's metrics, stamped across the interval."""
    gen = FleetGenerator(FleetSpec(gateways=1, devices=4, faults=NO_FAULTS), START)
    readings = gen.tick(1)
    assert [(r.device[-3:], r.metric, r.ts_us - START) for r in readings] == [
        ("001", "temperature", 10 * S),
        ("001", "humidity", 10 * S),
        ("002", "temperature", 12_500_000),
        ("002", "humidity", 12_500_000),
        ("003", "temperature", 15 * S),
        ("003", "humidity", 15 * S),
        ("004", "temperature", 17_500_000),
        ("004", "humidity", 17_500_000),
    ]


def test_fleet_same_seed_same_readings():
    """The same spec and start give the same readings, value for value."""
    spec = FleetSpec(faults=FaultRates(spike=0.05, stuck=0.01, dropout=0.01))
    assert _ticks(spec, 50)[1] == _ticks(spec, 50)[1]


def test_fleet_other_seed_other_values():
    """Another seed gives other values at the same instants."""
    a = _ticks(FleetSpec(seed=1), 5)[1]
    b = _ticks(FleetSpec(seed=2), 5)[1]
    assert [r.ts_us for r in a] == [r.ts_us for r in b]
    assert [r.value for r in a] != [r.value for r in b]


def test_fleet_no_faults_no_events_all_readings():
    """Without faults every device reports every metric at every tick."""
    gen, readings = _ticks(FleetSpec(gateways=2, devices=5, faults=NO_FAULTS), 100)
    assert len(readings) == 2 * 5 * 2 * 100
    assert gen.all_faults() == []


def test_fleet_values_plausible_without_faults():
    """Clean temperatures and humidities stay in a plausible room range."""
    _, readings = _ticks(FleetSpec(devices=20, faults=NO_FAULTS), 50)
    temps = [r.value for r in readings if r.metric == "temperature"]
    humid = [r.value for r in readings if r.metric == "humidity"]
    assert min(temps) > 10
    assert max(temps) < 32
    assert min(humid) > 20
    assert max(humid) < 70


def test_fleet_spikes_recorded_where_values_jump():
    """Every recorded spike is a reading 25 C away from the device's median."""
    spec = FleetSpec(gateways=1, devices=3, faults=FaultRates(0.02, 0, 1, 0, 1))
    gen, readings = _ticks(spec, 200)
    spikes = [e for e in gen.all_faults() if e.kind == "spike"]
    assert spikes
    temps = {
        (r.device, r.ts_us): r.value for r in readings if r.metric == "temperature"
    }
    for event in (e for e in spikes if e.metric == "temperature"):
        series = sorted(v for (d, _), v in temps.items() if d == event.device)
        median = series[len(series) // 2]
        assert abs(temps[(event.device, event.start_us)] - median) > 15


def test_fleet_stuck_device_repeats_values():
    """A stuck device sends the same values for exactly stuck_ticks reports."""
    spec = FleetSpec(gateways=1, devices=2, faults=FaultRates(0, 0.05, 7, 0, 1))
    gen, readings = _ticks(spec, 300)
    event = next(e for e in gen.all_faults() if e.kind == "stuck")
    window = [
        r.value
        for r in readings
        if r.device == event.device
        and r.metric == "temperature"
        and event.start_us <= r.ts_us <= event.end_us
    ]
    assert len(window) == 7
    assert len(set(window)) == 1


def test_fleet_dropout_removes_reports():
    """A silent device sends nothing for exactly dropout_ticks reports."""
    spec = FleetSpec(gateways=1, devices=2, faults=FaultRates(0, 0, 1, 0.05, 9))
    gen, readings = _ticks(spec, 300)
    events = [e for e in gen.all_faults() if e.kind == "dropout"]
    missing: Counter[str] = Counter()
    for e in events:
        missing[e.device] += round((e.end_us - e.start_us) / (10 * S)) + 1
    per_device = Counter(r.device for r in readings if r.metric == "temperature")
    for device in ("sim-gw-1-dev-001", "sim-gw-1-dev-002"):
        assert per_device[device] + missing[device] == 300
    assert all(round((e.end_us - e.start_us) / (10 * S)) + 1 <= 9 for e in events)


def test_fleet_bad_rate_refused():
    """A rate outside 0-1 is refused, naming it."""
    with pytest.raises(ValueError, match="spike rate 2"):
        FaultRates(spike=2)


def test_simulate_count_bound_live():
    """simulate sends exactly --count readings, paced live by the interval."""

    sink = ListSink()
    spec = FleetSpec(gateways=1, devices=5, interval_s=0.1, faults=NO_FAULTS)
    started = time.monotonic()
    result = simulate(spec, sink, count=30, start_us=START)
    took = time.monotonic() - started
    assert (result.summary.sent, result.summary.stopped) == (30, "limit")
    assert len(sink.readings) == 30
    # 30 readings = 3 ticks of 10: the last is due 0.28 s after the start.
    assert 0.2 <= took < 1.5


def test_simulate_unbounded_refused():
    """simulate without a duration, count or stop event is refused."""
    with pytest.raises(ValueError, match="needs a duration"):
        simulate(FleetSpec(), sink=ListSink())
