"""Data quality: impossible values, spikes, stuck sensors and gaps.

Crafted series for each check, and the real glitch of the Intel lab's mote 8
(2004-03-06 23:15:40 PST: temperature 0.016, humidity -8983.13, voltage 0.03)
from the slice shipped in simulators/data.
"""

from __future__ import annotations

import math

import pydantic
import pytest

from hub.processors.events import EventKind, EventState, Severity
from hub.processors.quality import QualityConfig, QualityProcessor
from hub.storage.base import DeviceInfo
from protocol.readings import group_readings
from simulators.datasets import SHIPPED_DATA, read_intel
from tests.hub.processors.helpers import DAY, MINUTE, SECOND, T0, batch, ctx

#: 2004-03-06T23:15:40.595268-08:00, the glitch of mote 8.
GLITCH_US = 1_078_643_740_595_268
#: Its next reading, 2004-03-06T23:16:05.941828-08:00.
AFTER_GLITCH_US = 1_078_643_765_941_828


def _wiggle(n: int, start: int = T0, step: int = MINUTE, base: float = 20.0):
    """A series that changes at every reading by up to 0.1: never flat, no spike."""
    ts = [start + i * step for i in range(n)]
    values = [base + 0.1 * math.sin(i * 0.7) for i in range(n)]
    return ts, values


def _events(out):
    return [(e.kind, e.state, e.ts_us, e.value) for e in out.events]


def test_impossible_humidity_raises_then_clears():
    """-5 % RH raises once, a second impossible value adds nothing, 40 % clears."""
    proc = QualityProcessor()
    ts = [T0 + i * MINUTE for i in range(4)]

    out = proc.process(batch(ts, [40.0, -5.0, 101.0, 40.5], metric="humidity"), ctx())

    assert _events(out) == [
        (EventKind.IMPOSSIBLE, EventState.RAISED, ts[1], -5.0),
        (EventKind.IMPOSSIBLE, EventState.CLEARED, ts[3], 40.5),
    ]
    assert out.events[0].details == {"min": 0.0, "max": 100.0}
    assert out.events[0].rule == "range"
    assert out.events[0].severity is Severity.WARNING


@pytest.mark.parametrize(
    ("metric", "unit", "value", "impossible"),
    [
        ("temperature", "C", 86.0, True),
        ("temperature", "C", -40.0, False),
        ("temperature", "°F", 100.0, False),
        ("temperature", "°F", 190.0, True),
        ("DHT11.Temperature", "C", -41.0, True),
        ("voltage", "V", 0.03, True),
        ("ENERGY.Voltage", "V", 231.0, False),
        ("humidity_ratio", "kg/kg", -1.0, False),
        ("co2", "ppm", -1.0, False),
    ],
)
def test_impossible_default_ranges(metric, unit, value, impossible):
    """Temperature (°C and °F), humidity and voltage have defaults; others none."""
    proc = QualityProcessor()

    out = proc.process(batch([T0], [value], metric=metric, unit=unit), ctx())

    assert (len(out.events) == 1) is impossible


def test_impossible_configured_range_replaces_the_default():
    """A site range for co2 applies, and {} switches the temperature default off."""
    proc = QualityProcessor(ranges={"co2": {"min": 300}, "temperature": {}})
    ts = [T0, T0 + MINUTE]

    co2 = proc.process(batch(ts, [400.0, 250.0], metric="co2"), ctx())
    temperature = proc.process(batch(ts, [20.0, 500.0]), ctx())

    assert _events(co2) == [(EventKind.IMPOSSIBLE, EventState.RAISED, ts[1], 250.0)]
    assert temperature.events == []


def test_value_range_min_above_max_is_refused():
    """A range whose min is above its max is a configuration error."""
    with pytest.raises(pydantic.ValidationError, match=r"min 5\.0 is above max 1\.0"):
        QualityConfig(ranges={"co2": {"min": 5, "max": 1}})


def test_spike_is_one_instant_event_and_not_the_new_reference():
    """A jump of 5 that comes back is one spike; the readings after are normal."""
    proc = QualityProcessor()
    ts, values = _wiggle(1500)
    values[1450] = values[1449] + 5.0

    out = proc.process(batch(ts, values), ctx())

    assert _events(out) == [
        (EventKind.SPIKE, EventState.INSTANT, ts[1450], values[1450])
    ]
    details = out.events[0].details
    assert details["previous"] == values[1449]
    assert details["delta"] == pytest.approx(5.0)
    assert details["allowance"] < 5.0


def test_spike_that_holds_is_a_level_shift_reported_once():
    """A step up that stays: one spike at the step, then the new level is normal."""
    proc = QualityProcessor()
    ts, values = _wiggle(1500)
    values[1450:] = [v + 5.0 for v in values[1450:]]

    out = proc.process(batch(ts, values), ctx())

    assert _events(out) == [
        (EventKind.SPIKE, EventState.INSTANT, ts[1450], values[1450])
    ]


def test_spike_not_judged_during_warm_up():
    """A jump in the first day is learned from, not reported."""
    proc = QualityProcessor()
    ts, values = _wiggle(600)
    values[300] += 5.0

    out = proc.process(batch(ts, values), ctx())

    assert out.events == []


def test_stuck_raises_after_an_hour_flat_and_clears_on_change():
    """Flat for over an hour (normal runs: one reading) raises; a change clears."""
    proc = QualityProcessor()
    ts, values = _wiggle(1440)
    # A day of changing readings, then 80 minutes of one value, then a change.
    ts += [T0 + i * MINUTE for i in range(1440, 1521)]
    values += [20.05] * 80 + [20.2]

    out = proc.process(batch(ts, values), ctx())

    # The run starts at ts[1440]; the first reading more than an hour later
    # is ts[1501].
    assert _events(out) == [
        (EventKind.STUCK, EventState.RAISED, ts[1501], 20.05),
        (EventKind.STUCK, EventState.CLEARED, ts[1520], 20.2),
    ]
    assert out.events[0].details["since_us"] == ts[1440]
    assert out.events[1].details["duration_s"] == 79 * 60.0


def test_stuck_threshold_follows_the_series_own_long_runs():
    """A series flat for 2 h every night is not stuck when flat for 2 h again."""
    proc = QualityProcessor()
    ts, values = [], []
    for day in range(3):
        start = T0 + day * DAY
        day_ts, day_values = _wiggle(1320, start=start)
        ts += day_ts + [start + (1320 + i) * MINUTE for i in range(120)]
        values += day_values + [0.0] * 120

    out = proc.process(batch(ts, values, metric="light"), ctx())

    assert out.events == []


def test_gap_reports_the_missing_readings_when_data_resumes():
    """A 20-minute silence in a 1-minute series is one gap event at the resume."""
    proc = QualityProcessor()
    ts, values = _wiggle(100)
    ts += [ts[-1] + 20 * MINUTE + i * MINUTE for i in range(3)]
    values += [20.0, 20.05, 20.02]

    out = proc.process(batch(ts, values), ctx())

    assert _events(out) == [(EventKind.GAP, EventState.INSTANT, ts[100], None)]
    assert out.events[0].details == {
        "gap_start_us": ts[99],
        "gap_s": 1200.0,
        "expected_interval_s": 60.0,
        "missing": 19,
    }
    assert out.events[0].severity is Severity.INFO


def test_gap_uses_the_registry_interval_when_set():
    """With expected_interval_s 10 s, 5 minutes of silence is a gap from the start."""
    proc = QualityProcessor()
    devices = {"dev-1": DeviceInfo("dev-1", expected_interval_s=10.0)}
    ts = [T0, T0 + 10 * SECOND, T0 + 10 * SECOND + 5 * MINUTE]

    out = proc.process(batch(ts, [1.0, 1.1, 1.2]), ctx(devices=devices))

    assert [(e.kind, e.details["missing"]) for e in out.events] == [(EventKind.GAP, 29)]


def test_quality_on_the_intel_lab_mote_8_glitch():
    """Mote 8's glitch: impossible humidity and voltage, a temperature spike."""
    readings = [
        r
        for r in read_intel(SHIPPED_DATA / "intel_lab_2004-03-06_2245-2345.txt.gz")
        if r.device == "mote-8"
    ]
    # The slice holds 18 temperature readings before the glitch: judge spikes
    # from the tenth on instead of after a day.
    proc = QualityProcessor(warm_up_s=0, min_samples=10)

    events = []
    for block in group_readings(readings):
        events += proc.process(
            batch(block.ts_us, block.values, "mote-8", block.metric), ctx()
        ).events

    assert sorted((e.metric, e.kind, e.state, e.ts_us, e.value) for e in events) == [
        (
            "humidity",
            EventKind.IMPOSSIBLE,
            EventState.CLEARED,
            AFTER_GLITCH_US,
            41.9483,
        ),
        ("humidity", EventKind.IMPOSSIBLE, EventState.RAISED, GLITCH_US, -8983.13),
        ("temperature", EventKind.SPIKE, EventState.INSTANT, GLITCH_US, 0.016),
        ("voltage", EventKind.IMPOSSIBLE, EventState.CLEARED, AFTER_GLITCH_US, 2.61639),
        ("voltage", EventKind.IMPOSSIBLE, EventState.RAISED, GLITCH_US, 0.0346855),
    ]


def test_quality_replays_a_day_after_a_restart():
    """The checks that learn replay a day of history after a restart."""
    assert QualityProcessor().warm_up_s == DAY / SECOND


def test_spike_checks_survive_values_near_the_float_limit():
    """1.7e308 and back is one spike; the next real spike is still found."""
    proc = QualityProcessor()
    ts, values = _wiggle(1500)
    values[100] = -1.7e308  # in the warm-up: neither reported nor learned
    values[1450] = 1.7e308
    values[1480] = values[1479] + 5.0

    out = proc.process(batch(ts, values, metric="power"), ctx())

    assert [(e.kind, e.ts_us) for e in out.events] == [
        (EventKind.SPIKE, ts[1450]),
        (EventKind.SPIKE, ts[1480]),
    ]


def test_quality_gap_with_a_tiny_expected_interval_counts_without_overflow():
    """expected_interval_s 1e-300 (valid: > 0) gives a gap, not an OverflowError."""
    proc = QualityProcessor(gap_min_s=0.0)
    info = DeviceInfo(id="dev-1", expected_interval_s=1e-300)
    out = proc.process(
        batch([T0, T0 + MINUTE], [20.0, 20.0]), ctx(devices={"dev-1": info})
    )

    (gap,) = [e for e in out.events if e.kind == EventKind.GAP]
    assert gap.details["missing"] == 10**15 - 1
    assert gap.details["gap_s"] == 60.0
