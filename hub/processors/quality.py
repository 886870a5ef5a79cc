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
import logging
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.processors.base import Context, SeriesBatch, SeriesKey, SeriesProcessor
from hub.processors.events import Event, EventKind, EventState, Severity

_LOGGER = logging.getLogger(__name__)

_FAHRENHEIT_UNITS = frozenset({"F", "°F", "degF"})
#: A change this many times the largest recent one is a broken reading.
_ABSURD_STEP = 1e6


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


# TODO: a vectorised path for quiet stretches (no check near its limit): the
# per-reading loop costs about 3 µs a reading, which caps the processor thread
# near 100 k readings/s with the four built-ins routed to every series.
class QualityProcessor(SeriesProcessor[QualityState]):
    """Impossible, spike, stuck and gap events (module docstring).

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
        if not state.range_known:
            # Known from the first batch on: the unit decides °C or °F.
            state.range = self.config.range_for(batch.metric, batch.unit)
            state.range_known = True
        info = ctx.device(batch.device)
        expected_s = info.expected_interval_s if info is not None else None
        found: list[
            tuple[EventKind, EventState, int, float | None, str, dict[str, Any]]
        ]
        found = []
        for i, (t, x) in enumerate(
            zip(batch.ts_us.tolist(), batch.values.tolist(), strict=True)
        ):
            for kind, st, value, rule, details in self._reading(
                state, t, x, expected_s
            ):
                found.append((kind, st, i, value, rule, details))
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
            for kind, st, i, value, rule, details in found
        ]

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
            "missing": max(0, round(dt / interval) - 1),
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
