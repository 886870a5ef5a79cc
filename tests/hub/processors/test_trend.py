"""The trend processor: window slopes, rates with hysteresis, the Intel lab."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.processors import registry
from hub.processors.base import SeriesKey
from hub.processors.errors import ProcessorConfigError
from hub.processors.events import EventKind, EventState
from hub.processors.trend import TrendConfig, TrendProcessor, window_fits
from protocol.readings import Reading, group_readings
from simulators.datasets import SHIPPED_DATA, LoadReport, read_intel
from tests.hub.processors.helpers import HOUR, MINUTE, SECOND, T0, batch, ctx

KEY = SeriesKey("dev-1", "temperature")


def ramp(slope_per_h: float, minutes: int, step_s: int = 30, start: float = 20.0):
    """A straight line sampled every ``step_s`` for ``minutes``."""
    ts = [T0 + i * step_s * SECOND for i in range(minutes * 60 // step_s + 1)]
    values = [start + slope_per_h * (t - T0) / HOUR for t in ts]
    return ts, values


def states(events) -> list[tuple[str, str]]:
    return [(e.state.value, e.rule) for e in events]


@settings(max_examples=300)
@given(
    a=st.integers(-(10**6), 10**6),
    m=st.integers(-(10**6), 10**6).filter(bool),
    n=st.integers(3, 400),
    step_s=st.integers(1, 600),
    start=st.integers(0, 10**17 - 10**12),
    window_s=st.integers(60, 86_400),
    split=st.floats(0, 1),
)
def test_window_fits_exact_on_lines(a, m, n, step_s, start, window_s, split):
    """For any line a + b·t (noise 0), each window's slope is b to 1e-9.

    The line is one floats hold exactly (a whole, b a multiple of 2^-20 per
    second), so that any error is the fit's, not the input's rounding.
    """
    seconds = np.arange(n, dtype=np.int64) * step_s
    ts = start + seconds * SECOND
    values = a + (m * seconds).astype(np.float64) * 2.0**-20
    b = m * 2.0**-20 * 3600  # per hour
    k = int(split * n)  # readings already in the ring: irrelevant to the fit
    fit = window_fits(ts[:k], values[:k], ts[k:], values[k:], window_s * SECOND)
    assert len(fit.slope) == n - k
    ok = fit.points >= 2
    got = fit.slope[ok]
    assert np.all(np.abs(got - b) <= 1e-9 * abs(b)), (got[:5], b)
    assert np.all(np.isnan(fit.slope[~ok]))


@settings(max_examples=100)
@given(
    b=st.floats(-50, 50, allow_nan=False).filter(lambda x: abs(x) >= 1e-3),
    sizes=st.lists(st.integers(1, 97), min_size=1, max_size=12),
)
def test_processor_slope_exact_fed_in_any_batches(b, sizes):
    """Fed a line in batches of any sizes, the state's slope is b to 1e-9."""
    p = TrendProcessor(rates={"*": 1e9})
    ts, values = ramp(b, minutes=90, step_s=20)
    i = 0
    for size in itertools.cycle(sizes):
        if i >= len(ts):
            break
        p.process(batch(ts[i : i + size], values[i : i + size]), ctx())
        i += size
    state = p.state_of(KEY)
    assert state is not None
    assert math.isclose(state.slope, b, rel_tol=1e-9)
    assert state.points == 3600 // 20 + 1  # the one-hour window
    assert math.isclose(state.change, b, rel_tol=1e-9)  # b per hour over 1 h


@settings(max_examples=50)
@given(
    steps=st.lists(st.floats(-0.2, 0.2), min_size=50, max_size=400),
    cuts=st.lists(st.integers(1, 400), max_size=10),
)
def test_trend_events_do_not_depend_on_batching(steps, cuts):
    """A noisy series gives the same events whole or cut into batches."""
    ts = [T0 + i * 30 * SECOND for i in range(len(steps))]
    values = list(itertools.accumulate(steps, initial=20.0))[1:]
    whole = TrendProcessor(rates={"*": 2.0}, min_points=3)
    expected = whole.process(batch(ts, values), ctx()).events
    cut = TrendProcessor(rates={"*": 2.0}, min_points=3)
    got = []
    bounds = [0, *sorted(set(cuts)), len(ts)]
    for lo, hi in itertools.pairwise(bounds):
        if lo < hi:
            got += cut.process(batch(ts[lo:hi], values[lo:hi]), ctx()).events
    key = [(e.state, e.rule, e.ts_us) for e in expected]
    assert [(e.state, e.rule, e.ts_us) for e in got] == key


def test_trend_raises_on_rate_and_clears_with_hysteresis():
    """4 °C/h raises a rising trend; 2.5 °C/h keeps it; 1 °C/h clears it."""
    p = TrendProcessor()
    ts1, v1 = ramp(4.0, minutes=120)
    found = p.process(batch(ts1, v1), ctx()).events
    assert states(found) == [("raised", "rising")]
    raised = found[0]
    assert raised.kind == EventKind.TREND
    # Judged once the window is half full (min_span_factor 0.5): 30 minutes.
    assert raised.ts_us == T0 + 30 * MINUTE
    assert raised.details["points"] == 61
    assert raised.details["slope_per_h"] == pytest.approx(4.0, rel=1e-9)
    assert raised.details["change"] == pytest.approx(2.0, rel=1e-9)
    assert raised.details["window_s"] == 3600.0

    # Then slower: 2.5 °C/h stays over 0.7 * 3 = 2.1, so nothing changes ...
    start = v1[-1]
    ts2 = [ts1[-1] + i * 30 * SECOND for i in range(1, 241)]
    v2 = [start + 2.5 * (t - ts1[-1]) / HOUR for t in ts2]
    assert p.process(batch(ts2, v2), ctx()).events == []
    # ... and 1 °C/h falls under it.
    ts3 = [ts2[-1] + i * 30 * SECOND for i in range(1, 241)]
    v3 = [v2[-1] + 1.0 * (t - ts2[-1]) / HOUR for t in ts3]
    cleared = p.process(batch(ts3, v3), ctx()).events
    assert states(cleared) == [("cleared", "rising")]
    assert cleared[0].details["slope_per_h"] < 2.1


def test_trend_turning_past_rate_clears_then_raises_falling():
    """A rise that turns into a fall past the rate is two conditions."""
    p = TrendProcessor(rates={"temperature": 3.0}, clear_factor=0.5)
    ts, up = ramp(6.0, minutes=60)
    down = [up[-1] - 12.0 * (t - ts[-1]) / HOUR for t in ts[1:]]
    ts_down = [t + 60 * MINUTE for t in ts[1:]]
    found = p.process(batch(ts + ts_down, up + down), ctx()).events
    assert states(found) == [
        ("raised", "rising"),
        ("cleared", "rising"),
        ("raised", "falling"),
    ]


def test_trend_no_rate_no_events():
    """A metric without a rate is tracked but raises nothing."""
    p = TrendProcessor()
    ts, values = ramp(100.0, minutes=60)
    assert p.process(batch(ts, values, metric="light"), ctx()).events == []
    state = p.state_of(SeriesKey("dev-1", "light"))
    assert state is not None
    assert state.slope == pytest.approx(100.0, rel=1e-9)


def test_trend_rate_in_fahrenheit():
    """The default temperature rate is 5.4 °F/h for a series in °F."""
    p = TrendProcessor()
    ts, values = ramp(5.0, minutes=60)
    assert p.process(batch(ts, values, unit="°F"), ctx()).events == []
    ts, values = ramp(6.0, minutes=60)
    got = p.process(batch(ts, values, device="dev-2", unit="°F"), ctx()).events
    assert states(got) == [("raised", "rising")]
    assert got[0].details["rate_per_h"] == pytest.approx(5.4)


def test_trend_window_per_metric():
    """A metric's own window is used for its fit and reported."""
    p = TrendProcessor(rates={"co2": 100.0}, windows={"co2": 600.0})
    ts, values = ramp(200.0, minutes=20, step_s=10)
    got = p.process(batch(ts, values, metric="co2"), ctx()).events
    assert states(got) == [("raised", "rising")]
    assert got[0].details["window_s"] == 600.0
    assert got[0].ts_us == T0 + 5 * MINUTE  # half of the 10-minute window


def test_trend_two_close_readings_judge_nothing():
    """A steep step between two readings is not a trend: too few, too short."""
    p = TrendProcessor()
    got = p.process(batch([T0, T0 + 30 * SECOND], [20.0, 20.5]), ctx()).events
    assert got == []


def test_trend_past_lane_marks_events_past():
    """A backlog older than the live data goes to the past lane, marked past."""
    p = TrendProcessor()
    live_ts, live = ramp(0.0, minutes=30)
    live_ts = [t + 10 * HOUR for t in live_ts]
    assert p.process(batch(live_ts, live), ctx()).events == []
    ts, values = ramp(5.0, minutes=60)
    got = p.process(batch(ts, values), ctx()).events
    assert states(got) == [("raised", "rising")]
    assert got[0].past is True


def test_trend_late_readings_mark_events_past():
    """Late readings (FLAG_LATE or old) update the live state; their events are past."""
    p = TrendProcessor()
    ts, values = ramp(5.0, minutes=60)
    got = p.process(batch(ts, values, past=[True] * len(ts)), ctx()).events
    assert [(e.state, e.past) for e in got] == [(EventState.RAISED, True)]


def test_trend_warm_up_rebuilds_window():
    """After a restart the window is replayed from the store, without events."""
    ts, values = ramp(5.0, minutes=120)

    class Store:
        def readings(self, device, metric=None, from_us=None, to_us=None, limit=0):
            return [
                Reading(device, metric, t, v, "C")
                for t, v in zip(ts, values, strict=True)
                if from_us <= t < to_us
            ]

        def get_device(self, device):
            return None

    p = TrendProcessor()
    later = ts[-1] + 30 * SECOND
    got = p.process(batch([later], [values[-1] + 5 / 120]), ctx(store=Store())).events
    assert got == []  # the trend was raised before the restart
    state = p.state_of(KEY)
    assert state is not None
    assert state.open == "rising"
    assert state.slope == pytest.approx(5.0, rel=1e-6)


def test_trend_options_checked():
    """Unknown or invalid options are refused at build time."""
    with pytest.raises(ProcessorConfigError):
        registry.create_processor("trend", {"rate": 3})
    with pytest.raises(ProcessorConfigError):
        registry.create_processor("trend", {"clear_factor": 1.5})
    assert TrendConfig(rates={"temperature": 0}).rate_for("temperature") is None


def test_trend_is_built_in():
    """trend is a built-in processor; it is not on the default routes."""
    from hub.processors.config import ProcessorsConfig

    assert isinstance(registry.create_processor("trend"), TrendProcessor)
    assert "trend" not in [r.processor for r in ProcessorsConfig().routes]


def _intel_trends():
    path = SHIPPED_DATA / "intel_lab_2004-03-05_0630-0845.txt.gz"
    readings = list(read_intel(path, LoadReport(quiet=True)))
    p = TrendProcessor()
    events = []
    for block in group_readings(readings):
        if block.metric != "temperature":
            continue
        # In batches of 20 readings, as a live hub sees them.
        for i in range(0, len(block), 20):
            part = batch(
                block.ts_us[i : i + 20],
                block.values[i : i + 20],
                device=block.device,
                unit=block.unit,
            )
            events += p.process(part, ctx()).events
    motes = sorted({b.device for b in group_readings(readings)})
    return events, motes


def _numbered(devices) -> list[int]:
    return sorted(int(d.split("-")[1]) for d in devices)


def test_trend_on_the_intel_lab_morning():
    """The lab's morning, 06:30-08:45 on 2004-03-05, at 3 °C/h over one hour.

    The lab warms up after 07:00: 47 of the 52 motes raise a rising trend.
    Motes 12, 13, 14, 16 and 17 stay under the rate. From about 08:05
    motes 34-36, then from 08:33 motes 44-52, cool faster than 3 °C/h.
    """
    events, motes = _intel_trends()
    raised = {e.device for e in events if e.state is EventState.RAISED}
    rising = {e.device for e in events if e.rule == "rising"}
    falling = {e.device for e in events if e.rule == "falling"}
    assert len(motes) == 52
    assert _numbered(set(motes) - raised) == [12, 13, 14, 16, 17]
    assert rising == raised
    assert _numbered(falling) == [34, 35, 36, *range(44, 53)]
    assert all(e.details["points"] >= 5 for e in events)
