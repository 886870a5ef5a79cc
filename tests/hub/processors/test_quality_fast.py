"""Data quality's bulk path: the same events and state as the per-reading loop.

:meth:`QualityProcessor.step` applies quiet stretches with numpy and hands
anything else to the loop; :meth:`QualityProcessor._step_loop` is the loop
alone, the reference. Floats are compared by ``repr``: bit for bit, NaN
included.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.processors.base import SeriesKey
from hub.processors.events import EventKind, EventState
from hub.processors.quality import QualityProcessor, QualityState
from hub.storage.base import DeviceInfo
from tests.hub.processors.helpers import MINUTE, SECOND, T0, batch, ctx

KEY = SeriesKey("dev-1", "temperature")
#: What a stretch of values does.
VALUE_KINDS = (
    "walk",
    "walk",
    "walk",
    "flat",
    "quantised",
    "spike",
    "level",
    "impossible",
    "nan",
    "inf",
    "huge",
)
#: How a stretch's readings are spaced.
#: ("far": one jump of 2**53 µs, past which time steps are not exact floats.)
TIME_KINDS = ("fixed", "fixed", "jitter", "gap", "dense", "same", "back", "far")

CONFIGS = st.fixed_dictionaries(
    {
        "warm_up_s": st.sampled_from([0.0, 30.0, 600.0, 3600.0, 86_400.0]),
        "min_samples": st.sampled_from([2, 10, 30]),
        "stuck_min_s": st.sampled_from([0.5, 60.0, 3600.0]),
        "stuck_factor": st.sampled_from([1.5, 3.0]),
        "gap_min_s": st.sampled_from([0.0, 1.0, 300.0]),
        "gap_factor": st.sampled_from([1.5, 10.0]),
        "spike_factor": st.sampled_from([1.5, 4.0]),
        "stats_half_life_s": st.sampled_from([1.0, 3600.0, 7 * 86_400.0]),
    }
)
STRETCHES = st.lists(
    st.tuples(
        st.sampled_from(VALUE_KINDS),
        st.sampled_from(TIME_KINDS),
        st.integers(1, 120),
        st.floats(0.0, 3.0),
    ),
    min_size=1,
    max_size=12,
)


def _series(
    stretches: list[tuple[str, str, int, float]], spacing_us: int, seed: int
) -> tuple[list[int], list[float]]:
    """Readings made of stretches of values and of spacings."""
    rng = np.random.default_rng(seed)
    ts: list[int] = []
    values: list[float] = []
    t, level = T0, 20.0
    for kind, timing, n, size in stretches:
        for i in range(n):
            t += _spacing(timing, i, spacing_us, rng)
            ts.append(t)
            values.append(_value(kind, i, level, size, rng))
            if kind in ("walk", "level", "quantised") or (kind == "spike" and i > 0):
                level = values[-1]
    return ts, values


def _spacing(timing: str, i: int, spacing_us: int, rng: np.random.Generator) -> int:
    if timing == "jitter":
        return spacing_us + int(rng.integers(-(spacing_us // 10), spacing_us // 10 + 1))
    if timing == "gap" and i == 0:
        return spacing_us * int(rng.integers(2, 200))
    if timing == "dense":
        return 1
    if timing == "same":
        return int(rng.integers(0, 2))
    if timing == "back" and i == 0:
        return -spacing_us
    if timing == "far" and i == 0:
        return 2**53
    return spacing_us


def _value(
    kind: str, i: int, level: float, size: float, rng: np.random.Generator
) -> float:
    if kind == "walk":
        return round(level + float(rng.normal(0.0, size)), 3)
    if kind == "quantised":
        return round((level + float(rng.normal(0.0, size))) * 2) / 2
    if kind == "flat":
        return level
    if kind == "spike":
        return level + 50 * (size + 0.1) if i == 0 else level
    if kind == "level":
        return level + 20 * (size + 0.1) if i == 0 else level
    if kind == "impossible":
        return [200.0, -100.0, -8983.13, 0.03][i % 4]
    if kind == "nan":
        return math.nan if i % 2 == 0 else level
    if kind == "inf":
        return [math.inf, -math.inf, level][i % 3]
    return [1.7e308, -1.7e308, level, 1e300][i % 4]


def _found(events: list[Any]) -> list[str]:
    return [
        repr((e.kind, e.state, e.ts_us, e.value, e.rule, e.severity, e.details))
        for e in events
    ]


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    config=CONFIGS,
    stretches=STRETCHES,
    spacing_us=st.sampled_from([1, 1_000, SECOND, MINUTE, 10 * MINUTE]),
    seed=st.integers(0, 2**32 - 1),
    metric=st.sampled_from(["temperature", "co2", "humidity"]),
    expected_s=st.sampled_from([None, 0.0, 1e-3, 1.0, 60.0, 600.0]),
    cuts=st.lists(st.floats(0.0, 1.0), max_size=6),
    fork_at=st.none() | st.integers(0, 6),
)
def test_bulk_path_equals_the_loop(
    config: dict[str, Any],
    stretches: list[tuple[str, str, int, float]],
    spacing_us: int,
    seed: int,
    metric: str,
    expected_s: float | None,
    cuts: list[float],
    fork_at: int | None,
) -> None:
    """Any series, cut into batches anywhere: the same events, the same state."""
    proc = QualityProcessor(**config)
    ts, values = _series(stretches, spacing_us, seed)
    devices = {"dev-1": DeviceInfo("dev-1", expected_interval_s=expected_s)}
    context = ctx(devices=devices)
    bounds = sorted({0, len(ts), *(int(c * len(ts)) for c in cuts)})
    fast, slow = QualityState(), QualityState()

    for n, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        if n == fork_at:
            # The past lane starts from a fork of the live state.
            fast, slow = proc.fork(fast, KEY), proc.fork(slow, KEY)
        part = batch(ts[lo:hi], values[lo:hi], metric=metric)

        got = proc.step(fast, part, context, past=False)
        want = proc._step_loop(slow, part, context, past=False)

        assert _found(got) == _found(want)
        assert repr(fast) == repr(slow)


def _noise(n: int, start: int, seed: int) -> tuple[list[int], list[float]]:
    rng = np.random.default_rng(seed)
    ts = [start + i * MINUTE for i in range(n)]
    return ts, np.round(rng.normal(21.0, 1.5, n), 3).tolist()


@pytest.mark.parametrize("warm_up_s", [86_400.0, 0.0])
def test_ordinary_readings_take_the_bulk_path(monkeypatch, warm_up_s):
    """Normal noise at a fixed interval: few readings go through the loop."""
    proc = QualityProcessor(warm_up_s=warm_up_s)
    state = proc.new_state(KEY)
    looped = []
    reading = QualityProcessor._reading

    def counting(self, state, t, x, expected_s):
        looped.append(t)
        return reading(self, state, t, x, expected_s)

    monkeypatch.setattr(QualityProcessor, "_reading", counting)
    events = []
    for k in range(20):
        ts, values = _noise(100, T0 + k * 100 * MINUTE, seed=k)
        events += proc.step(state, batch(ts, values), ctx(), past=False)

    assert events == []
    assert state.n == 2000
    # The first reading of the series, and the rare repeated value.
    assert len(looped) < 100


def test_bulk_path_finds_a_spike_in_a_quiet_batch():
    """A spike amid quiet readings is found at its reading, as by the loop."""
    proc = QualityProcessor(warm_up_s=0)
    fast, slow = proc.new_state(KEY), proc.new_state(KEY)
    ts, values = _noise(400, T0, seed=7)
    values[300] += 40.0

    got = proc.step(fast, batch(ts, values), ctx(), past=False)
    want = proc._step_loop(slow, batch(ts, values), ctx(), past=False)

    assert [(e.kind, e.ts_us) for e in got] == [(EventKind.SPIKE, ts[300])]
    assert _found(got) == _found(want)
    assert repr(fast) == repr(slow)


def test_bulk_path_equals_the_loop_over_a_warm_up_sized_batch():
    """One long batch (a warm-up replay) with every kind of event in it."""
    proc = QualityProcessor(warm_up_s=3600, stuck_min_s=600)
    fast, slow = proc.new_state(KEY), proc.new_state(KEY)
    ts, values = _noise(5000, T0, seed=3)
    values[1200] += 55.0  # a spike once warm
    values[2000:2100] = [values[2000]] * 100  # stuck for 99 minutes
    values[3000] = 500.0  # impossible
    ts[4000:] = [t + 90 * MINUTE for t in ts[4000:]]  # a gap
    values[4500:] = [v + 50.0 for v in values[4500:]]  # a level shift

    got = proc.step(fast, batch(ts, values), ctx(), past=False)
    want = proc._step_loop(slow, batch(ts, values), ctx(), past=False)

    assert [(e.kind, e.state, e.ts_us) for e in got] == [
        (EventKind.SPIKE, EventState.INSTANT, ts[1200]),
        # 11 minutes flat: over stuck_min_s and 3 times the longest run.
        (EventKind.STUCK, EventState.RAISED, ts[2011]),
        (EventKind.STUCK, EventState.CLEARED, ts[2100]),
        (EventKind.IMPOSSIBLE, EventState.RAISED, ts[3000]),
        (EventKind.IMPOSSIBLE, EventState.CLEARED, ts[3001]),
        (EventKind.GAP, EventState.INSTANT, ts[4000]),
        (EventKind.SPIKE, EventState.INSTANT, ts[4500]),
    ]
    assert _found(got) == _found(want)
    assert repr(fast) == repr(slow)
