"""Trends per series: least-squares slope and change over a sliding window.

For every reading, the processor fits a line to the series' readings of the
last ``window_s`` in event time (the reading's own time, not the hub's) and
reports its slope in units per hour, and the change over the window (the
reading's value minus the window's first). A ``trend`` event is raised when
the slope's magnitude exceeds the metric's rate (``rates``, by metric name
pattern; by default temperature at 3 °C/h, 5.4 °F/h in °F) and cleared when
it falls back under ``clear_factor`` times the rate (the hysteresis), so a
slope that hovers at the rate does not flap. The rule is ``rising`` or
``falling``; a slope that turns from one to the other past the rate clears
the one and raises the other.

A fit needs ``min_points`` readings spanning at least ``min_span_factor`` of
the window: two readings 30 s apart that differ by a sensor's 0.05 °C step
would otherwise be a slope of 6 °C/h.

Cost: a ring of the window's readings per series, and per batch a handful of
numpy passes over the ring and the batch (prefix sums, and a search of each
reading's window start): O(window + batch) per batch, never a fit per reading.
The batch is taken in runs of at most a window, and each run's sums are
taken from its own origin in time and value, so that the sums never grow
with the series' history and a perfect line gives its slope to about 1e-12.
A window that holds only a few readings costs a numpy pass per few readings.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hub.processors.base import (
    Context,
    Floats,
    Int64s,
    SeriesBatch,
    SeriesKey,
    SeriesProcessor,
)
from hub.processors.events import Event, EventKind, EventState, Severity

_LOGGER = logging.getLogger(__name__)

_US_PER_H: Final = 3_600_000_000.0
#: Readings evaluated together at most; bounds the span of a chunk's sums.
_CHUNK: Final = 512
_FAHRENHEIT_UNITS = frozenset({"F", "°F", "degF"})
#: A rate given in °C/h, in °F/h.
_C_TO_F: Final = 1.8
RISING: Final = "rising"
FALLING: Final = "falling"


def _default_rates() -> dict[str, float]:
    return {"temperature": 3.0, "*.temperature": 3.0, "*_temperature": 3.0}


class TrendConfig(BaseModel):
    """The trend's parameters (a route's ``options``).

    ``rates`` and ``windows`` map metric name patterns (case-insensitive
    globs) to a rate in units per hour and a window in seconds; given
    patterns come before the defaults, and a rate pattern mapped to ``0``
    switches a default off. A metric with no rate is tracked but raises
    nothing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rates: dict[str, float] = Field(default_factory=dict)
    window_s: float = Field(default=3600.0, gt=0)
    windows: dict[str, float] = Field(default_factory=dict)
    clear_factor: float = Field(default=0.7, gt=0, lt=1)
    min_points: int = Field(default=5, ge=2)
    min_span_factor: float = Field(default=0.5, ge=0, le=1)
    severity: Severity = Severity.WARNING

    def rate_for(self, metric: str, unit: str = "") -> float | None:
        """The rate of a metric in its unit per hour, or None (no events)."""
        given = _match(self.rates, metric)
        if given is not None:
            return given if given > 0 else None
        default = _match(_default_rates(), metric)
        if default is None:
            return None
        return default * _C_TO_F if unit in _FAHRENHEIT_UNITS else default

    def window_for(self, metric: str) -> float:
        """The window of a metric, seconds."""
        found = _match(self.windows, metric)
        return found if found is not None and found > 0 else self.window_s


def _match(patterns: dict[str, float], metric: str) -> float | None:
    name = metric.lower()
    for pattern in sorted(patterns):
        if fnmatch.fnmatchcase(name, pattern.lower()):
            return patterns[pattern]
    return None


@dataclass(slots=True)
class TrendState:
    """One series: the window's readings and the open condition."""

    window_us: int = 0
    rate: float | None = None
    known: bool = False
    ts: Int64s = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    values: Floats = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    #: ``rising``, ``falling`` or None.
    open: str | None = None
    #: The latest fit, for diagnostics: slope per hour, change, points.
    slope: float = float("nan")
    change: float = float("nan")
    points: int = 0


@dataclass(frozen=True, slots=True)
class Fit:
    """The window fits of a run of readings, one element per reading."""

    slope: Floats
    change: Floats
    points: Int64s
    span_us: Int64s


def window_fits(
    ring_ts: Int64s, ring_values: Floats, ts: Int64s, values: Floats, window_us: int
) -> Fit:
    """Fit each new reading's window: the ring's readings and the new ones.

    Args:
        ring_ts: times of the readings before the new ones, ascending.
        ring_values: their values.
        ts: times of the new readings, ascending, after the ring's.
        values: their values.
        window_us: the window; reading i's window holds the readings with
            times in ``[ts[i] - window_us, ts[i]]``.

    Returns:
        Per new reading: least-squares slope per hour (NaN when fewer than
        two distinct times), change (value minus the window's first), the
        number of readings and the time they span.
    """
    all_ts = np.concatenate([ring_ts, ts])
    all_v = np.concatenate([ring_values, values])
    k = len(ring_ts)
    runs = []
    for part in _chunks(ts, window_us):
        lo, hi = k + part.start, k + part.stop
        first = int(np.searchsorted(all_ts, all_ts[lo] - window_us, side="left"))
        runs.append(_fit_run(all_ts[first:hi], all_v[first:hi], lo - first, window_us))
    if not runs:
        empty_f = np.empty(0, dtype=np.float64)
        empty_i = np.empty(0, dtype=np.int64)
        return Fit(empty_f, empty_f, empty_i, empty_i)
    return Fit(
        np.concatenate([r.slope for r in runs]),
        np.concatenate([r.change for r in runs]),
        np.concatenate([r.points for r in runs]),
        np.concatenate([r.span_us for r in runs]),
    )


def _fit_run(all_ts: Int64s, all_v: Floats, k: int, window_us: int) -> Fit:
    """Fit readings ``k:`` of a run whose first readings reach a window back."""
    # Sums from a local origin in time and value: their size, and so their
    # rounding, depends on the chunk only, not on where the series is.
    t = (all_ts - all_ts[0]).astype(np.float64) / _US_PER_H
    v = all_v - all_v[0]
    zero = np.zeros(1)
    p_t = np.concatenate([zero, np.cumsum(t)])
    p_v = np.concatenate([zero, np.cumsum(v)])
    p_tt = np.concatenate([zero, np.cumsum(t * t)])
    p_tv = np.concatenate([zero, np.cumsum(t * v)])
    i = np.arange(k, len(all_ts))
    j = np.searchsorted(all_ts, all_ts[i] - window_us, side="left")
    n = (i - j + 1).astype(np.float64)
    s_t = p_t[i + 1] - p_t[j]
    s_v = p_v[i + 1] - p_v[j]
    # Centred sums: Σ(t - t̄)² and Σ(t - t̄)(v - v̄).
    s_tt = (p_tt[i + 1] - p_tt[j]) - s_t * s_t / n
    s_tv = (p_tv[i + 1] - p_tv[j]) - s_t * s_v / n
    span = all_ts[i] - all_ts[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where((span > 0) & (s_tt > 0), s_tv / s_tt, np.nan)
    return Fit(slope, all_v[i] - all_v[j], (i - j + 1).astype(np.int64), span)


def _chunks(ts: Int64s, window_us: int) -> list[slice]:
    """Cut readings into runs of at most _CHUNK spanning at most one window.

    With the window before it in front, a run's sums then span two windows
    at most: the rounding of a window's sums taken as differences of running
    sums grows with the square of that span over the window's.
    """
    out: list[slice] = []
    start, n = 0, len(ts)
    while start < n:
        end = int(np.searchsorted(ts, ts[start] + window_us, side="right"))
        end = min(max(end, start + 1), start + _CHUNK, n)
        out.append(slice(start, end))
        start = end
    return out


class TrendProcessor(SeriesProcessor[TrendState]):
    """``trend`` events: slopes past the metric's rate (module docstring).

    Args:
        options: :class:`TrendConfig` fields.

    Raises:
        pydantic.ValidationError: an unknown or invalid option.
    """

    name: ClassVar[str] = "trend"

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.config = TrendConfig(**options)
        # After a restart the window is rebuilt before the first judgement.
        longest = max([self.config.window_s, *self.config.windows.values()])
        self.warm_up_s = longest

    def new_state(self, key: SeriesKey) -> TrendState:
        """A series with an empty window."""
        window = self.config.window_for(key.metric)
        return TrendState(window_us=int(window * 1e6))

    def step(
        self, state: TrendState, batch: SeriesBatch, ctx: Context, past: bool
    ) -> list[Event]:
        """Fit the window at each reading and raise or clear on the rate."""
        if not state.known:
            # The unit, known from the first batch, decides °C or °F.
            state.rate = self.config.rate_for(batch.metric, batch.unit)
            state.known = True
        if not len(batch):
            return []
        ts, values = batch.ts_us, batch.values
        fit = window_fits(state.ts, state.values, ts, values, state.window_us)
        events = self._judge(state, batch, ctx, past, fit)
        self._keep_window(state, ts, values)
        state.slope = float(fit.slope[-1])
        state.change = float(fit.change[-1])
        state.points = int(fit.points[-1])
        return events

    def _keep_window(self, state: TrendState, ts: Int64s, values: Floats) -> None:
        all_ts = np.concatenate([state.ts, ts])
        keep = all_ts >= all_ts[-1] - state.window_us
        state.ts = all_ts[keep]
        state.values = np.concatenate([state.values, values])[keep]

    def _judge(
        self,
        state: TrendState,
        batch: SeriesBatch,
        ctx: Context,
        past: bool,
        fit: Fit,
    ) -> list[Event]:
        rate = state.rate
        if rate is None:
            return []
        c = self.config
        valid = (fit.points >= c.min_points) & (
            fit.span_us >= c.min_span_factor * state.window_us
        )
        slope = np.where(valid, fit.slope, np.nan)
        with np.errstate(invalid="ignore"):
            over = np.abs(slope) > rate
            under = np.abs(slope) < rate * c.clear_factor
        # Nothing can change: no condition open and none over the rate, or
        # one open and none back under (nor past the rate the other way).
        if state.open is None and not over.any():
            return []
        if state.open is not None:
            flips = over & ((slope > 0) != (state.open == RISING))
            if not under.any() and not flips.any():
                return []
        events: list[Event] = []
        for i in np.flatnonzero(valid).tolist():
            s = float(slope[i])
            direction = RISING if s > 0 else FALLING
            if state.open is not None and (
                under[i] or (over[i] and direction != state.open)
            ):
                events.append(self._event(state, batch, ctx, past, fit, i, False))
                state.open = None
            if state.open is None and over[i]:
                state.open = direction
                events.append(self._event(state, batch, ctx, past, fit, i, True))
        return events

    def _event(
        self,
        state: TrendState,
        batch: SeriesBatch,
        ctx: Context,
        past: bool,
        fit: Fit,
        i: int,
        raised: bool,
    ) -> Event:
        assert state.open is not None  # the condition the event is about
        return Event(
            kind=EventKind.TREND,
            state=EventState.RAISED if raised else EventState.CLEARED,
            device=batch.device,
            metric=batch.metric,
            ts_us=int(batch.ts_us[i]),
            value=float(batch.values[i]),
            severity=self.config.severity,
            rule=state.open,
            past=past,
            details={
                "slope_per_h": float(fit.slope[i]),
                "change": float(fit.change[i]),
                "window_s": state.window_us / 1e6,
                "span_s": int(fit.span_us[i]) / 1e6,
                "points": int(fit.points[i]),
                "rate_per_h": state.rate,
                "unit": batch.unit,
            },
            detected_us=ctx.now_us,
        )
