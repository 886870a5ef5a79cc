"""The anomaly processor on synthetic series with a daily cycle and noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from hub.processors.anomaly import PRODUCTION, AnomalyConfig, AnomalyProcessor
from hub.processors.events import EventKind, EventState
from protocol.readings import Reading
from tests.hub.processors.helpers import DAY, HOUR, MINUTE, T0, HistoryStore, batch, ctx

STEP = 5 * MINUTE
PER_DAY = DAY // STEP


def _daily(days: float, seed: int = 1) -> tuple[list[int], list[float]]:
    """5-minute readings: 20 + 5 sin(time of day) + normal noise of 0.2."""
    rng = np.random.default_rng(seed)
    n = int(days * PER_DAY)
    ts = [T0 + i * STEP for i in range(n)]
    values = [
        20 + 5 * math.sin(2 * math.pi * (t % DAY) / DAY) + float(rng.normal(0, 0.2))
        for t in ts
    ]
    return ts, values


def _summary(events):
    return [(e.kind, e.state, e.ts_us, e.past) for e in events]


def test_anomaly_daily_cycle_and_noise_raise_nothing():
    """Five days of a daily cycle with noise: the model learns it, no event."""
    ts, values = _daily(5)

    out = AnomalyProcessor().process(batch(ts, values), ctx())

    assert out.events == []


def test_anomaly_level_shift_raises_once_then_clears():
    """A lasting shift of 25 noise deviations raises at once, and clears later."""
    ts, values = _daily(5)
    shift = 3 * PER_DAY + PER_DAY // 2
    values[shift:] = [v + 5.0 for v in values[shift:]]

    out = AnomalyProcessor().process(batch(ts, values), ctx())

    raised, cleared = out.events
    assert _summary([raised]) == [
        (EventKind.ANOMALY, EventState.RAISED, ts[shift], False)
    ]
    assert raised.details["z"] > PRODUCTION.z_raise
    assert cleared.state is EventState.CLEARED
    # Cleared only once the adapted model has been quiet for quiet_s.
    assert cleared.ts_us >= ts[shift] + 3 * HOUR


def test_anomaly_nothing_during_the_warm_up():
    """A spike in the first day is learned from, not reported."""
    ts, values = _daily(0.9)
    values[100] += 50.0

    out = AnomalyProcessor().process(batch(ts, values), ctx())

    assert out.events == []


def test_anomaly_batches_of_any_size_give_the_same_events():
    """Fed in 100-reading batches, the detector finds what it finds in one."""
    ts, values = _daily(4)
    values[3 * PER_DAY + 7] += 10.0
    whole = AnomalyProcessor()
    chunked = AnomalyProcessor()

    expected = whole.process(batch(ts, values), ctx()).events
    got = []
    for i in range(0, len(ts), 100):
        got += chunked.process(
            batch(ts[i : i + 100], values[i : i + 100]), ctx()
        ).events

    assert _summary(got) == _summary(expected)
    assert [e.state for e in got] == [EventState.RAISED, EventState.CLEARED]


def test_anomaly_restart_rebuilds_the_model_from_the_store():
    """After a restart the warm-up replays the history: the same events follow."""
    ts, values = _daily(1.8)
    shift = int(1.5 * PER_DAY)
    values[shift:] = [v + 5.0 for v in values[shift:]]
    restart = int(1.3 * PER_DAY)
    store = HistoryStore(
        [Reading("dev-1", "temperature", t, v) for t, v in zip(ts, values, strict=True)]
    )
    before = AnomalyProcessor()
    before.process(batch(ts[:restart], values[:restart]), ctx())

    uninterrupted = AnomalyProcessor().process(batch(ts, values), ctx()).events
    after = AnomalyProcessor().process(
        batch(ts[restart:], values[restart:]), ctx(store=store)
    )

    assert _summary(after.events) == _summary(uninterrupted)
    assert _summary(after.events)[0] == (
        EventKind.ANOMALY,
        EventState.RAISED,
        ts[shift],
        False,
    )


def test_anomaly_leaves_out_impossible_values():
    """A 200 °C reading is a broken sensor (quality's to report), not an anomaly."""
    ts, values = _daily(3)
    values[2 * PER_DAY + 10] = 200.0

    kept = AnomalyProcessor(skip_impossible=False).process(batch(ts, values), ctx())
    skipped = AnomalyProcessor().process(batch(ts, values), ctx())

    assert [(e.state, e.ts_us) for e in kept.events][:1] == [
        (EventState.RAISED, ts[2 * PER_DAY + 10])
    ]
    assert skipped.events == []


def test_anomaly_config_production_is_the_default():
    """The processor built without options runs the production configuration."""
    assert AnomalyProcessor().detector.config == PRODUCTION == AnomalyConfig()


def test_anomaly_config_unknown_option_refused():
    """A misspelt option fails instead of being ignored."""
    with pytest.raises(ValueError, match="z_rise"):
        AnomalyProcessor(z_rise=3.0)


def test_anomaly_values_near_the_float_limit_leave_the_model_finite():
    """±1.7e308 (finite, but overflowing any difference) cannot poison the state."""
    ts, values = _daily(3)
    values[2 * PER_DAY] = 1.7e308
    values[2 * PER_DAY + 1] = -1.7e308
    proc = AnomalyProcessor(skip_impossible=False)

    out = proc.process(batch(ts, values, metric="power"), ctx())

    state = proc.state_of(batch([T0], [0.0], metric="power").key)
    assert state is not None
    learned = [state.level, state.spread, *state.season, *state.envelope]
    assert all(math.isfinite(v) for v in learned)
    assert [(e.state, e.ts_us) for e in out.events][:1] == [
        (EventState.RAISED, ts[2 * PER_DAY])
    ]


@pytest.mark.parametrize("bins", [7, 11, 1000])
def test_anomaly_season_bins_must_divide_the_day(bins):
    """A profile whose bins are not whole seconds is refused, with the count."""
    with pytest.raises(ValidationError, match=f"{bins} bins do not divide the day"):
        AnomalyConfig(season_bins=bins)


@pytest.mark.parametrize("bins", [1, 24, 96, 1440])
def test_anomaly_season_bins_divisors_are_taken(bins):
    """Divisors of 86400 are accepted as they are."""
    assert AnomalyConfig(season_bins=bins).season_bins == bins
