"""The fast anomaly detector against its plain formulation, bit for bit.

:meth:`AnomalyDetector.update` is written for speed (locals, inlined
``max``/``min``, skipped decays over no time, a cached decay factor). The
plain loop it replaced is kept here, as :func:`reference_update`, and the
property tests below feed both the same series, in the same batches, and ask
for the same findings and the same state, every float compared by its bits.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hub.evaluate import read_nab_csv
from hub.processors.anomaly import (
    PRODUCTION,
    AnomalyConfig,
    AnomalyDetector,
    AnomalyProcessor,
    AnomalyState,
    Finding,
)
from hub.processors.events import EventState
from tests.hub.processors.helpers import DAY, HOUR, MINUTE, SECOND, T0, batch, ctx

# The module's constants, repeated so that the reference stands on its own.
_DAY_US = 86_400_000_000
_SIGMA_PER_MAD = math.sqrt(math.pi / 2)
_SEASON_CLIP = 4.0
_Z_MAX = 1e300


def reference_update(
    config: AnomalyConfig, state: AnomalyState, ts_us: Any, values: Any
) -> list[Finding]:
    """``AnomalyDetector.update`` as it was before it was made fast."""
    c = config
    bins = c.season_bins
    bin_us = _DAY_US // bins
    half_life_us = c.envelope_half_life_s * 1e6
    warm_up_us = c.warm_up_s * 1e6
    quiet_us = c.quiet_s * 1e6
    season, season_n = state.season, state.season_n
    env, env_us = state.envelope, state.envelope_us
    found: list[Finding] = []

    for i, (t, x) in enumerate(zip(ts_us.tolist(), values.tolist(), strict=True)):
        if state.n == 0:
            state.n, state.first_us, state.level = 1, t, x
            continue
        b = (t % _DAY_US) // bin_us
        s = season[b] if season_n[b] >= 3 else 0.0
        expected = state.level + s
        r = x - expected
        floor = max(c.relative_floor * abs(state.level), c.absolute_floor)
        scale = _SIGMA_PER_MAD * state.spread + floor
        z = abs(r) / scale
        if not math.isfinite(z):
            warm = t - state.first_us >= warm_up_us
            if state.n > c.min_readings and warm and not state.active:
                state.active, state.quiet_since_us, state.raised_us = True, None, t
                found.append(Finding(i, EventState.RAISED, _Z_MAX, expected, scale))
            continue
        state.n += 1

        edge = 0.0
        for nb in (b - 1, b, (b + 1) % bins):
            if env[nb] > 0.0:
                env[nb] *= 0.5 ** ((t - env_us[nb]) / half_life_us)
                env_us[nb] = t
            edge = max(edge, env[nb])

        ready = state.n > c.min_readings and t - state.first_us >= warm_up_us
        if ready and not state.active:
            if z > c.z_raise and abs(r) > c.envelope_k * edge:
                state.active, state.quiet_since_us, state.raised_us = True, None, t
                found.append(Finding(i, EventState.RAISED, z, expected, scale))
        elif state.active:
            if z >= c.z_clear:
                state.quiet_since_us = None
            elif state.quiet_since_us is None:
                state.quiet_since_us = t
            elif t - state.quiet_since_us >= quiet_us:
                state.active = False
                found.append(Finding(i, EventState.CLEARED, z, expected, scale))

        env[b], env_us[b] = max(env[b], abs(r)), t
        limit = c.clip * scale
        rc = min(max(r, -limit), limit)
        state.level += c.level_rate * rc
        state.spread += c.spread_rate * (abs(rc) - state.spread)
        deviation = x - state.level
        if not season_n[b]:
            season[b] = deviation
        elif ready:
            bound = _SEASON_CLIP * limit
            change = min(max(deviation - season[b], -bound), bound)
            season[b] += c.season_rate * change
        else:
            season[b] += c.season_rate * (deviation - season[b])
        season_n[b] += 1
    return found


def _bits(value: Any) -> Any:
    """A value with every float replaced by its bytes: equal iff bit-identical."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, list | tuple):
        return [_bits(v) for v in value]
    if dataclasses.is_dataclass(value):
        return [
            (f.name, _bits(getattr(value, f.name))) for f in dataclasses.fields(value)
        ]
    return (type(value).__name__, value)


def _run(update: Any, state: AnomalyState, ts: Any, values: Any) -> Any:
    """The findings, or the exception's type and text; the state either way."""
    try:
        outcome: Any = update(state, ts, values)
    except (ArithmeticError, IndexError, ValueError) as exc:
        outcome = (type(exc).__name__, str(exc))
    return _bits(outcome), _bits(state)


def _check_same(
    config: AnomalyConfig,
    ts: list[int],
    values: list[float],
    cuts: list[int],
    outcomes: list[str] | None = None,
) -> AnomalyState:
    """Both implementations over the series in batches cut at ``cuts``."""
    outcomes = [] if outcomes is None else outcomes
    detector = AnomalyDetector(config)
    fast, plain = detector.new_state(), detector.new_state()
    edges = [0, *sorted(cuts), len(ts)]
    for lo, hi in itertools.pairwise(edges):
        ts_a = np.asarray(ts[lo:hi], dtype=np.int64)
        values_a = np.asarray(values[lo:hi], dtype=np.float64)
        got = _run(detector.update, fast, ts_a, values_a)
        want = _run(
            lambda s, t, v: reference_update(config, s, t, v), plain, ts_a, values_a
        )
        assert got == want
        outcomes.append(repr(got[0]))
    return fast


def _note(outcomes: list[str]) -> None:
    """Statistics (``--hypothesis-show-statistics``): what the examples reach."""
    for word in ("RAISED", "CLEARED", "IndexError", "OverflowError"):
        if any(word in o for o in outcomes):
            event(word)


SPECIAL = [math.nan, -math.nan, math.inf, -math.inf, 1e300, -1e300, 1.7e308]
SPECIAL += [0.0, -0.0, 5e-324, 1e-300]


@st.composite
def configs(draw: st.DrawFn) -> AnomalyConfig:
    """Production, or a configuration with small warm-ups and odd bins."""
    if draw(st.booleans()):
        return PRODUCTION
    # Every count AnomalyConfig takes: the divisors of the day in seconds.
    bins = draw(st.sampled_from([n for n in range(1, 1441) if 86_400 % n == 0]))
    return AnomalyConfig(
        season_bins=bins,
        warm_up_s=draw(st.sampled_from([0.0, 1.0, 600.0, 3600.0, 86_400.0])),
        min_readings=draw(st.integers(2, 30)),
        quiet_s=draw(st.sampled_from([0.0, 30.0, 600.5, 3 * 3600.0])),
        z_raise=draw(st.sampled_from([0.5, 3.0, 6.0])),
        z_clear=draw(st.sampled_from([0.5, 3.5])),
        envelope_k=draw(st.sampled_from([0.0, 1.2, 3.0])),
        envelope_half_life_s=draw(
            st.sampled_from([1e-6, 1.0, 600.0, 86_400.0, 14 * 86_400.0, 1e300])
        ),
        clip=draw(st.sampled_from([1e-300, 0.5, 5.0, 1e300])),
        level_rate=draw(st.sampled_from([0.05, 0.5, 1.0])),
        spread_rate=draw(st.sampled_from([0.005, 0.3, 1.0])),
        season_rate=draw(st.sampled_from([0.1, 1.0])),
        relative_floor=draw(st.sampled_from([0.0, 1e-3])),
        absolute_floor=draw(st.sampled_from([5e-324, 1e-9, 1.0])),
    )


@st.composite
def series(draw: st.DrawFn, ordered: bool = True) -> tuple[list[int], list[float]]:
    """Times (non-decreasing if ``ordered``) and values of many shapes."""
    n = draw(st.integers(0, 400))
    step = draw(st.sampled_from([0, 1, SECOND, 30 * SECOND, 5 * MINUTE, HOUR, DAY]))
    start = draw(st.sampled_from([T0, T0 - 1, 0, -DAY - 7, T0 + DAY - 3]))
    jitter = draw(st.sampled_from([0, 1, SECOND, step]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gaps = step + rng.integers(0, jitter + 1, n)
    if not ordered:
        gaps = gaps - rng.integers(0, 2 * step + 2, n)
    ts = (start + np.cumsum(gaps)).tolist()
    shape = draw(st.sampled_from(["walk", "daily", "step", "constant", "noise"]))
    t_day = (np.asarray(ts, dtype=np.float64) % DAY) / DAY
    if shape == "walk":
        values = 20 + np.cumsum(rng.normal(0, 1, n))
    elif shape == "daily":
        values = 20 + 5 * np.sin(2 * math.pi * t_day) + rng.normal(0, 0.2, n)
    elif shape == "step":
        values = rng.normal(0, 1, n) + np.where(np.arange(n) > n // 2, 50.0, 0.0)
    elif shape == "constant":
        values = np.full(n, draw(st.sampled_from([0.0, -0.0, 21.5, -3.0, 1e300])))
    else:
        values = rng.normal(0, draw(st.sampled_from([1e-9, 1.0, 1e6])), n)
    values = values.tolist()
    for _ in range(draw(st.integers(0, 8)) if n else 0):
        at = draw(st.integers(0, n - 1))
        values[at] = draw(st.sampled_from(SPECIAL) | st.floats(-1e6, 1e6) | st.floats())
    return ts, values


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=configs(),
    data=series(),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_fast_update_is_bit_identical_to_the_reference(config, data, cuts):
    """Any series, any batches: the same findings and state as the plain loop."""
    ts, values = data
    outcomes: list[str] = []
    _check_same(config, ts, values, [min(c, len(ts)) for c in cuts], outcomes)
    _note(outcomes)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=configs(),
    data=series(ordered=False),
    cuts=st.lists(st.integers(0, 400), max_size=3),
)
def test_fast_update_matches_the_reference_out_of_order(config, data, cuts):
    """Times out of order (against the contract) end the same way, errors too."""
    ts, values = data
    outcomes: list[str] = []
    _check_same(config, ts, values, [min(c, len(ts)) for c in cuts], outcomes)
    _note(outcomes)


@pytest.mark.parametrize("bins", [1, 2, 24, 1440])
def test_fast_update_on_a_long_daily_cycle_with_episodes(bins):
    """Four days at 5 minutes with a shift and outliers: episodes, same bits."""
    rng = np.random.default_rng(bins)
    ts = [T0 + i * 5 * MINUTE for i in range(4 * 288)]
    values = [
        20 + 5 * math.sin(2 * math.pi * (t % DAY) / DAY) + float(rng.normal(0, 0.2))
        for t in ts
    ]
    values[700:] = [v + 8.0 for v in values[700:]]
    values[400], values[900], values[901] = 1e300, math.nan, -math.inf
    config = AnomalyConfig(season_bins=bins)

    state = _check_same(config, ts, values, [1, 288, 289, 700, 1000])

    # The run is not trivial: the model learnt and the shift opened an episode.
    assert state.n == len(ts) - 2
    assert sum(state.season_n) == len(ts) - 3
    plain = AnomalyDetector(config).new_state()
    found = reference_update(
        config,
        plain,
        np.asarray(ts, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
    )
    assert EventState.RAISED in [f.state for f in found]


@pytest.mark.parametrize("times", [0, 1, 2, 4, 5])
def test_fast_update_with_unequal_lengths_fails_like_zip(times):
    """More or fewer values than times: the pairs are fed, then ValueError."""
    detector = AnomalyDetector()
    fast, plain = detector.new_state(), detector.new_state()
    ts = np.asarray([T0 + i * SECOND for i in range(times)], dtype=np.int64)
    values = np.asarray([1.0, 2.0, 3.0])

    got = _run(detector.update, fast, ts, values)
    want = _run(
        lambda s, t, v: reference_update(PRODUCTION, s, t, v), plain, ts, values
    )

    assert got == want
    assert got[0][0] == ("str", "ValueError")
    assert fast.n == min(times, 3)


def test_possible_keeps_a_batch_in_range_and_drops_nan_and_outliers():
    """The range filter: the batch itself when all is possible, else the rest."""
    processor = AnomalyProcessor()
    ts = [T0 + i * SECOND for i in range(4)]
    fine = batch(ts, [20.0, 21.0, 22.0, 23.0], unit="C")
    broken = batch(ts, [20.0, math.nan, 1e6, 23.0], unit="C")
    empty = batch([], [], unit="C")

    assert processor._possible(fine) is fine
    assert processor._possible(broken).values.tolist() == [20.0, 23.0]
    assert processor._possible(empty) is empty


def test_step_of_the_processor_feeds_only_possible_values():
    """An impossible value in a batch leaves the model as if it were not there."""
    ts = [T0 + i * 30 * SECOND for i in range(200)]
    values = [20.0 + 0.01 * (i % 7) for i in range(200)]
    with_broken = list(values)
    with_broken[50] = 1e6
    a, b = AnomalyProcessor(warm_up_s=0.0), AnomalyProcessor(warm_up_s=0.0)

    a.process(batch(ts, with_broken, unit="C"), ctx())
    b.process(batch(ts[:50] + ts[51:], values[:50] + values[51:], unit="C"), ctx())

    (state_a,) = a._live.values()
    (state_b,) = b._live.values()
    assert state_a.n == len(ts) - 1
    assert _bits(state_a) == _bits(state_b)


def test_fast_update_keeps_the_sign_of_zero():
    """Zeros of either sign reach the findings as the reference gives them."""
    # A clear at a residual of exactly -0.0: the reference reports z = +0.0.
    config = AnomalyConfig(
        season_bins=1,
        warm_up_s=0.0,
        min_readings=2,
        quiet_s=0.0,
        level_rate=1.0,
        season_rate=1.0,
        clip=1e300,
    )
    values = [0.0] * 10 + [1.0] + [-0.0] * 10
    ts = [T0 + i * SECOND for i in range(len(values))]
    outcomes: list[str] = []
    _check_same(config, ts, values, [], outcomes)
    assert "CLEARED" in outcomes[0]
    # A series of -0.0 then an overflow, in bins not yet learnt: the expected
    # value is -0.0 + 0.0, which is +0.0.
    config = AnomalyConfig(season_bins=1440, warm_up_s=0.0, min_readings=2)
    values = [-0.0] * 5 + [math.inf]
    ts = [T0 + i * MINUTE for i in range(len(values))]
    outcomes = []
    _check_same(config, ts, values, [], outcomes)
    assert "RAISED" in outcomes[0]


def test_fast_update_leaves_the_state_of_the_reference_on_overflow():
    """A decay that overflows (times out of order) stops at the same point."""
    # Bins of 4 hours, a half-life of 30 minutes. The reading far ahead (bin
    # 2) decays bin 1 (by 2 ** -1065, not to zero), not bin 0; the last one
    # decays its own bin 0 forward in time, then bin 1, whose envelope is
    # from 1025 half-lives later: 0.5 ** -1025 overflows.
    config = AnomalyConfig(season_bins=6, envelope_half_life_s=1800.0)
    minutes = [0, 60, 7 * 60, 539 * 60 + 30, 27 * 60]
    ts = [T0 - T0 % DAY + m * MINUTE for m in minutes]
    values = [20.0, 21.0, 25.0, 22.0, 23.0]
    outcomes: list[str] = []
    state = _check_same(config, ts, values, [], outcomes)
    assert "OverflowError" in outcomes[0]
    assert state.envelope_us[0] == ts[4]


NAB = Path(__file__).parents[1] / "data" / "nab"
NAB_FILES = sorted(NAB.glob("real*/*.csv"))


def test_the_bundled_nab_files_are_there():
    """Without them the test below would have no cases, and pytest would skip it."""
    assert [p.name for p in NAB_FILES] == [
        "iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
        "TravelTime_451.csv",
    ]


@pytest.mark.parametrize("csv", NAB_FILES, ids=lambda p: p.name)
def test_fast_update_on_the_bundled_nab_files(csv):
    """Real series (the files ``streamflow evaluate`` is tested on), same bits."""
    ts_us, values = read_nab_csv(csv)
    ts, vs = ts_us.tolist(), values.tolist()
    outcomes: list[str] = []
    # In batches of 100, and of 7 (under the threshold for numpy).
    _check_same(PRODUCTION, ts, vs, list(range(100, len(ts), 100)), outcomes)
    _check_same(PRODUCTION, ts, vs, list(range(0, len(ts), 7)), outcomes)
    assert any("RAISED" in o for o in outcomes)
