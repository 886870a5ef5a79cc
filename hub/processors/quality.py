"""Data quality per series: impossible values, spikes, stuck sensors, gaps.

Four checks, each learning what is normal for the series itself:

``impossible`` (raised / cleared)
    A value outside the physical range of its metric (``ranges``, by metric
    name pattern, case-insensitive). Defaults: temperature -40..85 °C (the
    range of common sensor chips; -40..185 in °F), relative humidity 0..100 %,
    a supply voltage 0.5..1000 V (a device reporting under 0.5 V cannot be
    running). The Intel lab's mote 8 sent humidity -8983 % and 0.03 V in one
    packet (2004-03-06 23:15:40). Such readings feed no other check.
``spike`` (instant)
    A change from the last good value larger than ``spike_factor`` times the
    largest change seen recently (a max that halves every
    ``stats_half_life_s``), allowed to grow with the square root of the time
    since that value (a random walk's reach). A spike does not become the
    reference: if the next reading returns, it was a spike; if it stays near
    the spiked value, the level moved and is taken as the new reference.
``stuck`` (raised / cleared)
    The same value repeated for longer than ``stuck_factor`` times the
    longest flat run seen recently, and at least ``stuck_min_s``: a light
    sensor dark all night has long runs, a thermometer does not.
``gap`` (instant)
    Readings missing: the time since the last reading is over ``gap_factor``
    times the series' interval (its registry ``expected_interval_s``, else
    the learned one) and at least ``gap_min_s``. Found when the next reading
    arrives; a device that stays silent is the monitor's to find (offline).

Spike, stuck and gap wait for ``warm_up_s`` of data and ``min_samples``
readings before they judge; impossible values are judged from the first.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.processors.base import (
    Bools,
    Context,
    Floats,
    Int64s,
    SeriesBatch,
    SeriesKey,
    SeriesProcessor,
)
from hub.processors.events import Event, EventKind, EventState, Severity

_LOGGER = logging.getLogger(__name__)

_FAHRENHEIT_UNITS = frozenset({"F", "°F", "degF"})
#: A change this many times the largest recent one is a broken reading.
_ABSURD_STEP = 1e6
#: Fewer readings than this left in a batch: the loop is cheaper than numpy.
_BULK_MIN = 8
#: The most readings one bulk stretch looks at.
_BULK_WINDOW = 1024
#: Readings judged one by one after a bulk stretch that stopped short.
_LOOP_STRETCH = 32
#: New largest changes a bulk stretch follows before it hands over to the loop
#: (each costs a round of numpy: a series whose changes keep growing).
_BULK_RESETS = 8
#: Time differences below this are exact as float64.
_EXACT_SPAN_US = 2**53

_Found = tuple[EventKind, EventState, int, float | None, str, dict[str, Any]]


class ValueRange(BaseModel):
    """The physically possible values of a metric, inclusive; None: unbounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check_order(self) -> ValueRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min!r} is above max {self.max!r}")
        return self

    def contains(self, value: float) -> bool:
        """Tell whether ``value`` is possible."""
        return (self.min is None or value >= self.min) and (
            self.max is None or value <= self.max
        )


def _default_ranges() -> dict[str, ValueRange]:
    temperature = ValueRange(min=-40.0, max=85.0)
    humidity = ValueRange(min=0.0, max=100.0)
    voltage = ValueRange(min=0.5, max=1000.0)
    return {
        "temperature": temperature,
        "*.temperature": temperature,
        "*_temperature": temperature,
        "humidity": humidity,
        "*.humidity": humidity,
        "*_humidity": humidity,
        "voltage": voltage,
        "*.voltage": voltage,
        "*_voltage": voltage,
    }


class QualityConfig(BaseModel):
    """The checks' parameters (a route's ``options``).

    ``ranges`` are added to the defaults (a pattern given replaces the
    default of the same pattern); a pattern mapped to ``{}`` switches a
    default off.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ranges: dict[str, ValueRange] = Field(default_factory=dict)
    spike_factor: float = Field(default=4.0, gt=1)
    stuck_factor: float = Field(default=3.0, gt=1)
    stuck_min_s: float = Field(default=3600.0, gt=0)
    gap_factor: float = Field(default=10.0, gt=1)
    gap_min_s: float = Field(default=300.0, ge=0)
    stats_half_life_s: float = Field(default=7 * 86_400.0, gt=0)
    warm_up_s: float = Field(default=86_400.0, ge=0)
    min_samples: int = Field(default=30, ge=2)
    severity_impossible: Severity = Severity.WARNING
    severity_spike: Severity = Severity.WARNING
    severity_stuck: Severity = Severity.WARNING
    severity_gap: Severity = Severity.INFO

    def range_for(self, metric: str, unit: str = "") -> ValueRange | None:
        """The range of a metric: its first matching pattern, given ones first."""
        name = metric.lower()
        merged = {**_default_ranges(), **self.ranges}
        for pattern in sorted(merged, key=lambda p: (p not in self.ranges, p)):
            if fnmatch.fnmatchcase(name, pattern.lower()):
                found = merged[pattern]
                if found.min is None and found.max is None:
                    return None
                if pattern not in self.ranges and "temperature" in pattern:
                    return _in_fahrenheit(found) if unit in _FAHRENHEIT_UNITS else found
                return found
        return None


_DEFAULTS = QualityConfig()


@functools.lru_cache(maxsize=4096)
def default_range(metric: str, unit: str = "") -> ValueRange | None:
    """The default physical range of a metric (no site ranges), looked up once."""
    return _DEFAULTS.range_for(metric, unit)


def _in_fahrenheit(celsius: ValueRange) -> ValueRange:
    def f(c: float | None) -> float | None:
        return None if c is None else c * 9 / 5 + 32

    return ValueRange(min=f(celsius.min), max=f(celsius.max))


@dataclass(slots=True)
class _Decaying:
    """A maximum that halves every half-life: "the largest seen recently"."""

    value: float = 0.0
    at_us: int = 0

    def get(self, now_us: int, half_life_us: float) -> float:
        if self.value <= 0.0:
            return 0.0
        decay: float = 0.5 ** (max(0, now_us - self.at_us) / half_life_us)
        return self.value * decay

    def offer(self, value: float, now_us: int, half_life_us: float) -> None:
        current = self.get(now_us, half_life_us)
        self.value, self.at_us = max(current, value), now_us


@dataclass(slots=True)
class QualityState:
    """One series' learned figures and open conditions."""

    range: ValueRange | None = None
    range_known: bool = False
    n: int = 0
    first_us: int = 0
    last_us: int | None = None
    interval_s: float = 0.0
    intervals: int = 0
    impossible: bool = False
    # Spike: the last good value, the largest recent change, a spike pending.
    good_value: float | None = None
    good_us: int = 0
    step_max: _Decaying = field(default_factory=_Decaying)
    pending: float | None = None
    # Stuck: the current flat run and the longest recent one.
    run_value: float | None = None
    run_start_us: int = 0
    run_last_us: int = 0
    run_n: int = 0
    run_max: _Decaying = field(default_factory=_Decaying)
    stuck: bool = False


@dataclass(frozen=True, slots=True)
class _FlatRuns:
    """The flat runs of a bulk stretch, for the state after it.

    Attributes:
        starts: each reading's run, as the index of its first reading; -1
            for the run the state held.
        start_us: the time of that first reading.
        ends: the readings that end a run (they start the next).
        longest: the longest recent run as each end finds it (before its offer).
        run_us: the length of the run each end closes.
    """

    starts: Int64s
    start_us: Int64s
    ends: Int64s
    longest: Floats
    run_us: Floats


class QualityProcessor(SeriesProcessor[QualityState]):
    """Impossible, spike, stuck and gap events (module docstring).

    Readings are judged one by one (:meth:`_reading`), except quiet stretches
    (in range, no gap, no spike, no flat run near stuck_min_s), which
    :meth:`_bulk` applies with numpy, computing the same floats in the same
    order: the same events and state, bit for bit, at a tenth of the cost.

    Args:
        options: :class:`QualityConfig` fields.

    Raises:
        pydantic.ValidationError: an unknown or invalid option.
    """

    name: ClassVar[str] = "quality"

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.config = QualityConfig(**options)
        self.warm_up_s = self.config.warm_up_s
        self._half_life_us = self.config.stats_half_life_s * 1e6
        # Ranges by (metric, unit): a new fleet brings a series per device,
        # and each lookup builds and matches every pattern.
        self._ranges: dict[tuple[str, str], ValueRange | None] = {}

    def range_for(self, metric: str, unit: str) -> ValueRange | None:
        """The configured range of a metric, looked up once per metric and unit."""
        key = (metric, unit)
        if key not in self._ranges:
            self._ranges[key] = self.config.range_for(metric, unit)
        return self._ranges[key]

    def new_state(self, key: SeriesKey) -> QualityState:
        """A series with nothing learned."""
        return QualityState()

    def fork(self, live: QualityState, key: SeriesKey) -> QualityState:
        """The live figures with no condition open: a backlog starts from them."""
        state = copy.deepcopy(live)
        state.impossible = state.stuck = False
        state.pending = None
        state.last_us = None
        state.run_value = None
        return state

    def step(
        self, state: QualityState, batch: SeriesBatch, ctx: Context, past: bool
    ) -> list[Event]:
        """Run the four checks over the readings, in time order."""
        return self._step(state, batch, ctx, past, bulk=True)

    def _step_loop(
        self, state: QualityState, batch: SeriesBatch, ctx: Context, past: bool
    ) -> list[Event]:
        """:meth:`step` reading by reading: the reference the bulk path equals."""
        return self._step(state, batch, ctx, past, bulk=False)

    def _step(
        self,
        state: QualityState,
        batch: SeriesBatch,
        ctx: Context,
        past: bool,
        bulk: bool,
    ) -> list[Event]:
        if not state.range_known:
            # Known from the first batch on: the unit decides °C or °F.
            state.range = self.range_for(batch.metric, batch.unit)
            state.range_known = True
        info = ctx.device(batch.device)
        expected_s = info.expected_interval_s if info is not None else None
        return [
            Event(
                kind=kind,
                state=st,
                device=batch.device,
                metric=batch.metric,
                ts_us=int(batch.ts_us[i]),
                value=value,
                severity=self._severity(kind),
                rule=rule,
                past=past,
                details=details,
                detected_us=ctx.now_us,
            )
            for kind, st, i, value, rule, details in self._scan(
                state, batch.ts_us, batch.values, expected_s, bulk
            )
        ]

    def _scan(
        self,
        state: QualityState,
        ts_us: Int64s,
        values: Floats,
        expected_s: float | None,
        bulk: bool,
    ) -> list[_Found]:
        """The findings of a batch: (kind, state, index, value, rule, details)."""
        n = len(ts_us)
        # As lists only if some reading is looped over.
        ts: list[int] = []
        xs: list[float] = []
        found: list[_Found] = []
        i = 0
        while i < n:
            stretch = 1
            if not bulk or n - i < _BULK_MIN:
                stretch = n - i
            elif self._bulk_ready(state):
                # A window at a time: a stop costs the set-up of one window,
                # not of the rest of a warm-up's 50 000 readings.
                window = min(n, i + _BULK_WINDOW)
                done = self._bulk(state, ts_us[i:window], values[i:window], expected_s)
                i += done
                if i == window:
                    continue
                # A stretch that stopped short: its numpy set-up is not worth
                # paying again at once (a stuck run stops it at every reading).
                stretch = 1 if done >= _BULK_MIN else _LOOP_STRETCH
            if not ts and i < n:
                ts, xs = ts_us.tolist(), values.tolist()
            for j in range(i, min(n, i + stretch)):
                for kind, st, value, rule, details in self._reading(
                    state, ts[j], xs[j], expected_s
                ):
                    found.append((kind, st, j, value, rule, details))
            i += stretch
        return found

    def _severity(self, kind: EventKind) -> Severity:
        c = self.config
        return {
            EventKind.IMPOSSIBLE: c.severity_impossible,
            EventKind.SPIKE: c.severity_spike,
            EventKind.STUCK: c.severity_stuck,
        }.get(kind, c.severity_gap)

    def _reading(
        self, state: QualityState, t: int, x: float, expected_s: float | None
    ) -> list[tuple[EventKind, EventState, float | None, str, dict[str, Any]]]:
        out: list[tuple[EventKind, EventState, float | None, str, dict[str, Any]]] = []
        if state.n == 0:
            state.first_us = t
        state.n += 1
        gap = self._gap(state, t, expected_s)
        if gap is not None:
            out.append((EventKind.GAP, EventState.INSTANT, None, "", gap))

        rng = state.range
        if rng is not None and not rng.contains(x):
            if not state.impossible:
                state.impossible = True
                details = {"min": rng.min, "max": rng.max}
                out.append(
                    (EventKind.IMPOSSIBLE, EventState.RAISED, x, "range", details)
                )
            return out
        if state.impossible:
            state.impossible = False
            out.append((EventKind.IMPOSSIBLE, EventState.CLEARED, x, "range", {}))

        warm = state.n > self.config.min_samples and (
            t - state.first_us >= self.config.warm_up_s * 1e6
        )
        spike = self._spike(state, t, x, warm)
        if spike is not None:
            out.append((EventKind.SPIKE, EventState.INSTANT, x, "", spike))
            return out
        out.extend(self._stuck(state, t, x, warm))
        return out

    def _gap(
        self, state: QualityState, t: int, expected_s: float | None
    ) -> dict[str, Any] | None:
        last, state.last_us = state.last_us, t
        if last is None:
            return None
        dt = (t - last) / 1e6
        interval = expected_s or (state.interval_s if state.intervals >= 10 else 0.0)
        # The learned interval follows the typical spacing, not the gaps.
        if state.intervals == 0:
            state.interval_s = dt
        else:
            state.interval_s += 0.05 * (
                min(dt, 3 * state.interval_s) - state.interval_s
            )
        state.intervals += 1
        c = self.config
        if interval <= 0 or dt < c.gap_min_s or dt <= c.gap_factor * interval:
            return None
        return {
            "gap_start_us": last,
            "gap_s": dt,
            "expected_interval_s": interval,
            # Bounded: an interval of 1e-300 s must not overflow round().
            "missing": max(0, round(min(dt / interval, 1e15)) - 1),
        }

    def _spike(
        self, state: QualityState, t: int, x: float, warm: bool
    ) -> dict[str, Any] | None:
        if state.good_value is None:
            state.good_value, state.good_us = x, t
            return None
        step_max = state.step_max.get(t, self._half_life_us)
        reach = math.sqrt(
            max(1.0, (t - state.good_us) / 1e6 / max(state.interval_s, 1e-6))
        )
        allowance = self.config.spike_factor * step_max * reach
        if state.pending is not None:
            pending, state.pending = state.pending, None
            if abs(x - pending) <= allowance:
                # The spiked value held: the level moved; start from it.
                state.good_value, state.good_us = x, t
                return None
        delta = abs(x - state.good_value)
        # A change a million times the largest known one (or one that
        # overflows) is a broken reading: never learned from, even in the
        # warm-up, or it would hide every real spike for weeks.
        absurd = not math.isfinite(delta) or (
            step_max > 0 and delta > _ABSURD_STEP * step_max
        )
        if warm and step_max > 0 and (absurd or delta > allowance):
            state.pending = x
            return {
                "previous": state.good_value,
                "delta": delta if math.isfinite(delta) else None,
                "allowance": allowance,
            }
        if absurd:
            return None
        state.step_max.offer(delta, t, self._half_life_us)
        state.good_value, state.good_us = x, t
        return None

    def _stuck(
        self, state: QualityState, t: int, x: float, warm: bool
    ) -> list[tuple[EventKind, EventState, float | None, str, dict[str, Any]]]:
        if state.run_value is not None and x == state.run_value:
            state.run_n += 1
            state.run_last_us = t
            duration_s = (t - state.run_start_us) / 1e6
            normal_s = state.run_max.get(t, self._half_life_us) / 1e6
            limit_s = max(self.config.stuck_min_s, self.config.stuck_factor * normal_s)
            if warm and not state.stuck and duration_s > limit_s:
                state.stuck = True
                details = {
                    "since_us": state.run_start_us,
                    "duration_s": duration_s,
                    "normal_max_s": normal_s,
                }
                return [(EventKind.STUCK, EventState.RAISED, x, "", details)]
            return []
        out: list[tuple[EventKind, EventState, float | None, str, dict[str, Any]]] = []
        if state.run_value is not None:
            run_us = state.run_last_us - state.run_start_us
            if state.stuck:
                state.stuck = False
                details = {"since_us": state.run_start_us, "duration_s": run_us / 1e6}
                out.append((EventKind.STUCK, EventState.CLEARED, x, "", details))
            else:
                # A stuck run is not a normal one: it does not raise the bar.
                state.run_max.offer(float(run_us), t, self._half_life_us)
        state.run_value, state.run_start_us, state.run_last_us, state.run_n = x, t, t, 1
        return out

    # The bulk path. Each helper reproduces, for readings known to be quiet,
    # the float operations of the loop in the loop's order (IEEE +, -, *, /,
    # sqrt and comparisons give the same bits in numpy as in Python; powers
    # are left to Python, one per distinct time step), and returns the
    # number of leading readings it can vouch for.

    @staticmethod
    def _bulk_ready(state: QualityState) -> bool:
        """Tell whether the state has nothing open that a bulk step skips."""
        return (
            state.n > 0
            and state.last_us is not None
            and state.intervals > 0
            and state.good_value is not None
            and state.run_value is not None
            and state.pending is None
            and not state.impossible
            and not state.stuck
        )

    def _bulk(
        self, state: QualityState, ts: Int64s, xs: Floats, expected_s: float | None
    ) -> int:
        """Apply the leading quiet readings of a batch; return how many."""
        last, good = state.last_us, state.good_value
        m = len(ts)
        if (
            last is None
            or good is None
            or int(ts[0]) < last
            or int(ts[-1]) - last >= _EXACT_SPAN_US
            or not np.greater_equal(ts[1:], ts[:-1]).all()
        ):
            # Time steps as exact integers and floats, never backwards.
            return 0
        steps_us = np.empty(m, np.int64)
        steps_us[0] = int(ts[0]) - last
        np.subtract(ts[1:], ts[:-1], out=steps_us[1:])
        # Overflows (a value near the float limit) make inf, as in Python.
        with np.errstate(all="ignore"):
            # The change from the last good value: the one before, when quiet.
            delta = np.empty(m)
            delta[0] = good
            delta[1:] = xs[:-1]
            np.subtract(xs, delta, out=delta)
            np.abs(delta, out=delta)
            return self._stretch(state, ts, xs, steps_us, delta, expected_s)

    def _stretch(
        self,
        state: QualityState,
        ts: Int64s,
        xs: Floats,
        steps_us: Int64s,
        delta: Floats,
        expected_s: float | None,
    ) -> int:
        """Cut the stretch at the first reading that might not be quiet, apply it."""
        dts = (steps_us / 1e6).tolist()
        m = self._plain(state, xs, dts, delta, expected_s)
        intervals = None
        if m > 0 and not expected_s and max(dts) >= self.config.gap_min_s:
            intervals = _intervals(state.interval_s, dts[:m])
            m = self._before_gap(state.intervals, dts[:m], intervals)
        runs = None
        repeats = self._repeats(state, xs[:m], delta[:m]) if m > 0 else None
        if repeats is not None:
            if int(ts[m - 1]) - state.run_start_us >= _EXACT_SPAN_US:
                return 0
            m, runs = self._flat_runs(state, ts[:m], repeats)
        if m == 0:
            return 0
        steps = steps_us[1:m].tolist()
        decays = self._span_decays(int(ts[0]) - state.step_max.at_us, steps)
        m, step_max, news = _step_maxima(state.step_max.value, decays, delta[:m])
        # The allowance is at least spike_factor times the step maximum (the
        # reach is at least 1), and so is an absurd change: either is a new
        # maximum, and a smaller change needs no more.
        factor = min(self.config.spike_factor, _ABSURD_STEP)
        if news and (delta[:m] > factor * step_max[:m]).any():
            intervals = intervals or _intervals(state.interval_s, dts[:m])
            m = self._before_spike(state, ts[:m], dts, intervals, step_max, delta)
        if m > 0:
            if intervals is None:
                intervals = _intervals(state.interval_s, dts[:m])
            interval_s = intervals[m]
            self._apply(state, ts, xs, interval_s, step_max, delta, m)
            if runs is None:
                self._apply_single_runs(state, ts, xs, decays, m)
            else:
                self._apply_runs(state, ts, xs, runs, m)
        return m

    def _plain(
        self,
        state: QualityState,
        xs: Floats,
        dts: list[float],
        delta: Floats,
        expected_s: float | None,
    ) -> int:
        """Readings before the first that is out of range, broken or a gap."""
        good = state.good_value
        if good is None:
            return 0
        c = self.config
        rng = state.range
        low = -math.inf if rng is None or rng.min is None else rng.min
        high = math.inf if rng is None or rng.max is None else rng.max
        gap_s = expected_s if expected_s and not expected_s <= 0 else None
        # The usual case in a few reductions (a NaN fails them all); changes
        # between values in a finite range are finite.
        if (
            low <= xs.min()
            and xs.max() <= high
            and (
                (math.isfinite(high - low) and low <= good <= high)
                or math.isfinite(delta.max())
            )
            and (
                gap_s is None
                or max(dts) < c.gap_min_s
                or max(dts) <= c.gap_factor * gap_s
            )
        ):
            return len(xs)
        stop = ~np.isfinite(delta)
        stop |= ~((xs >= low) & (xs <= high))
        if gap_s is not None:
            dt = np.array(dts)
            stop |= ~(dt < c.gap_min_s) & ~(dt <= c.gap_factor * gap_s)
        return _first(stop)

    @staticmethod
    def _repeats(state: QualityState, xs: Floats, delta: Floats) -> Bools | None:
        """Which readings repeat the value before them; None if none does.

        The changes are finite here: one is 0 exactly when the value repeats.
        """
        first = float(xs[0]) == state.run_value
        if not first and (len(xs) == 1 or delta[1:].min() > 0.0):
            return None
        repeats = np.empty(len(xs), np.bool_)
        repeats[0] = first
        np.equal(xs[1:], xs[:-1], out=repeats[1:])
        return repeats

    def _flat_runs(
        self, state: QualityState, ts: Int64s, repeats: Bools
    ) -> tuple[int, _FlatRuns]:
        """Flat runs in a stretch: readings before the first that might be stuck.

        A repeated value extends a run; it cannot raise stuck before the run
        is ``stuck_min_s`` long (the limit is never below it) or before the
        warm-up. Every other reading ends a run and offers its length to the
        longest recent one.
        """
        m = len(ts)
        starts = np.where(repeats, -1, np.arange(m))
        np.maximum.accumulate(starts, out=starts)
        start_us = np.where(starts >= 0, ts[np.maximum(starts, 0)], state.run_start_us)
        stop = repeats & ((ts - start_us) / 1e6 > self.config.stuck_min_s)
        stop[: self._warm_from(state, ts)] = False
        ends = np.flatnonzero(~repeats)
        # The run each end closes: from its start to the reading before.
        run_us = np.empty(len(ends))
        if len(ends):
            first_us = ts[ends[0]]
            closed = ends[ends > 0]
            run_us[len(ends) - len(closed) :] = ts[closed - 1] - start_us[closed - 1]
            if ends[0] == 0:
                run_us[0] = float(state.run_last_us - state.run_start_us)
            spans = np.diff(ts[ends]).tolist()
            decays = self._span_decays(int(first_us) - state.run_max.at_us, spans)
            known, longest, _ = _step_maxima(state.run_max.value, decays, run_us)
            if known < len(ends):
                stop[int(ends[known]) :] = True
        else:
            longest = run_us
        return _first(stop), _FlatRuns(starts, start_us, ends, longest, run_us)

    def _before_gap(
        self, intervals_seen: int, dts: list[float], intervals: list[float]
    ) -> int:
        """Readings before the first gap by the learned interval."""
        c = self.config
        dt, learned = np.array(dts), np.array(intervals[: len(dts)])
        # The learned interval counts after 10 of them.
        stop = ~(learned <= 0) & ~(dt < c.gap_min_s) & ~(dt <= c.gap_factor * learned)
        stop[: max(0, 10 - intervals_seen)] = False
        return _first(stop)

    def _span_decays(self, first_us: int, steps_us: list[int]) -> Floats:
        """The decays of a maximum offered at each of a series of times.

        As :meth:`_Decaying.get`: ``first_us`` from the last offer to the
        first time, then the steps between the times.
        """
        half_life_us = self._half_life_us
        m = len(steps_us) + 1
        out = np.empty(m)
        out[0] = 0.5 ** (max(0, first_us) / half_life_us)
        if steps_us and steps_us.count(steps_us[0]) == m - 1:
            out[1:] = 0.5 ** (steps_us[0] / half_life_us)
        elif steps_us:
            unique, where = np.unique(steps_us, return_inverse=True)
            powers = [0.5 ** (u / half_life_us) for u in unique.tolist()]
            out[1:] = np.array(powers)[where]
        return out

    def _before_spike(
        self,
        state: QualityState,
        ts: Int64s,
        dts: list[float],
        intervals: list[float],
        step_max: Floats,
        delta: Floats,
    ) -> int:
        """Readings before the first spike or broken change (absurdly large)."""
        m = len(ts)
        step_max = step_max[:m]
        delta = delta[:m]
        known = step_max > 0
        stop = known & (delta > _ABSURD_STEP * step_max)
        warm = self._warm_from(state, ts)
        if warm < m and known[warm:].any():
            since = np.array(dts[warm:m])
            if warm == 0:
                since[0] = (int(ts[0]) - state.good_us) / 1e6
            spacing = np.maximum(np.array(intervals[warm + 1 : m + 1]), 1e-6)
            # fmax: Python's max(1.0, nan) is 1.0.
            reach = np.sqrt(np.fmax(1.0, since / spacing))
            allowance = self.config.spike_factor * step_max[warm:] * reach
            stop[warm:] |= known[warm:] & (delta[warm:] > allowance)
        return _first(stop)

    def _warm_from(self, state: QualityState, ts: Int64s) -> int:
        """The first reading judged after the warm-up (len(ts) if none)."""
        m = len(ts)
        first = max(0, self.config.min_samples - state.n)
        warm_us = self.config.warm_up_s * 1e6
        if not math.isfinite(warm_us):
            return m
        # An integer compared with a float is exact in Python: t - first_us
        # >= warm_us exactly when t >= first_us + ceil(warm_us).
        target = state.first_us + math.ceil(warm_us)
        if target > int(ts[-1]):
            return m
        if target > int(ts[0]):
            first = max(first, int(np.searchsorted(ts, target)))
        return min(first, m)

    def _apply(
        self,
        state: QualityState,
        ts: Int64s,
        xs: Floats,
        interval_s: float,
        step_max: Floats,
        delta: Floats,
        m: int,
    ) -> None:
        """Update the state as the loop would after ``m`` quiet readings."""
        t, x = int(ts[m - 1]), float(xs[m - 1])
        state.n += m
        state.last_us = t
        state.interval_s = interval_s
        state.intervals += m
        state.good_value, state.good_us = x, t
        # Each quiet reading offers its change to the step maximum.
        high, change = float(step_max[m - 1]), float(delta[m - 1])
        state.step_max.value, state.step_max.at_us = max(high, change), t

    def _apply_single_runs(
        self, state: QualityState, ts: Int64s, xs: Floats, decays: Floats, m: int
    ) -> None:
        """Update the flat runs after ``m`` quiet readings, none repeated."""
        t, x = int(ts[m - 1]), float(xs[m - 1])
        # Each ends a flat run: the first the state held, then runs of one
        # reading (0 µs), which only decay the longest.
        run_us = float(state.run_last_us - state.run_start_us)
        longest = max(state.run_max.get(int(ts[0]), self._half_life_us), run_us)
        if longest > 0 and m > 1:
            run = decays[1:m].copy()
            run[0] *= longest
            longest = float(np.multiply.accumulate(run)[-1])
        state.run_max.value, state.run_max.at_us = longest, t
        state.run_value, state.run_start_us, state.run_last_us = x, t, t
        state.run_n = 1

    @staticmethod
    def _apply_runs(
        state: QualityState, ts: Int64s, xs: Floats, runs: _FlatRuns, m: int
    ) -> None:
        """Update the flat runs as the loop would after ``m`` quiet readings."""
        ended = int(np.searchsorted(runs.ends, m))
        if ended:
            longest = float(runs.longest[ended - 1])
            state.run_max.value = max(longest, float(runs.run_us[ended - 1]))
            state.run_max.at_us = int(ts[runs.ends[ended - 1]])
        last = m - 1
        start = int(runs.starts[last])
        state.run_value = float(xs[last])
        state.run_start_us = int(runs.start_us[last])
        state.run_last_us = int(ts[last])
        state.run_n = last - start + 1 if start >= 0 else state.run_n + m


def _first(stop: Bools) -> int:
    """The index of the first true, or the length if none."""
    return int(stop.argmax()) if stop.any() else len(stop)


def _intervals(interval_s: float, dts: list[float]) -> list[float]:
    """The learned interval before each reading and after the last."""
    first = dts[0]
    third = 3 * interval_s
    if (
        dts.count(first) == len(dts)
        and interval_s + 0.05 * ((third if third < first else first) - interval_s)
        == interval_s
    ):
        # Settled on a fixed spacing: the average stays where it is.
        return [interval_s] * (len(dts) + 1)
    out = [interval_s]
    append = out.append
    for d in dts:
        # min(dt, 3 * interval_s), as _gap takes it.
        if 3 * interval_s < d:
            d = 3 * interval_s
        interval_s += 0.05 * (d - interval_s)
        append(interval_s)
    return out


def _step_maxima(
    value: float, decays: Floats, delta: Floats
) -> tuple[int, Floats, int]:
    """The largest recent change before each reading, as the loop finds it.

    Returns how many readings are known (a series whose changes keep growing
    hands over to the loop), the maxima, and how many new maxima there are.
    Between two new maxima it is a running product of the decays: one
    ``multiply.accumulate`` a stretch, sequential like the loop's.
    """
    m = len(decays)
    out = np.empty(m)
    start = 0
    for news in range(_BULK_RESETS):
        run = out[start:]
        run[:] = decays[start:]
        run[0] *= value
        np.multiply.accumulate(run, out=run)
        above = delta[start:] > run
        if not above.any():
            return m, out, news
        start += int(above.argmax()) + 1
        if start == m:
            return m, out, news + 1
        value = float(delta[start - 1])
    return start, out, _BULK_RESETS
