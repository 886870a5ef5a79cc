"""Streaming anomaly detection per series: robust level, spread and daily cycle.

The model of each series is additive Holt-Winters without trend, made robust:

- ``expected = level + season[bin]``, where ``bin`` is the reading's hour of
  the day (UTC) and ``season`` the series' daily profile;
- the residual ``r = value - expected`` is scored against the series' spread
  (an exponentially weighted mean absolute residual): ``z = |r| / scale``,
  with ``scale = 1.2533 * spread`` (the standard deviation, for normal
  noise) plus a small floor relative to the level, so that a flat series does
  not alarm on its first change of a last digit;
- level and spread learn from the residual clipped at ``clip * scale``, and
  the profile (after the warm-up) from steps clipped at four times that, so
  that an outlier moves them a little and a lasting change of level or
  spread is absorbed in a few dozen readings;
- an *envelope* per hour of the day holds the largest residual seen in that
  hour (and its neighbours) recently (halving every ``envelope_half_life_s``):
  a reading is anomalous only if its residual is also ``envelope_k`` times
  larger than that. A backup job that writes at 02:00 every night, or a
  heating that starts at 06:00, then never alarms, whatever their size. The
  price: the envelope learns from anomalies too, so a huge one dulls its
  hour of the day until it has decayed.

An anomaly is an episode: ``raised`` at the first reading with
``z > z_raise`` (and above the envelope), then nothing more until the series
has stayed under ``z_clear`` for ``quiet_s``, which emits ``cleared``. No
event is emitted before ``warm_up_s`` of data and ``min_readings`` readings
(the daily profile needs a day to mean anything).

The one configuration (:data:`PRODUCTION`) is what the hub runs and what
``streamflow evaluate`` scores on the NAB files (BENCHMARKS.md: 54.0 on the
standard profile). It was chosen on those files among round values; each
parameter moved alone to a neighbour scores between 45 and 57 (BENCHMARKS.md
lists them), the check against tuning to the benchmark.

Rates are per reading, so a series sampled every 30 s adapts its level in
minutes, one sampled every 5 minutes in hours; the profile and the envelope
are in time of day.
"""

# TODO: hours of the day in the site's time zone rather than UTC, so that a
# daily cycle keeps its bins across a DST change; needs a zone per site.

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.processors.base import (
    Context,
    Floats,
    Int64s,
    SeriesBatch,
    SeriesKey,
    SeriesProcessor,
)
from hub.processors.events import Event, EventKind, EventState, Severity
from hub.processors.quality import default_range

_LOGGER = logging.getLogger(__name__)

_DAY_US = 86_400_000_000
#: Standard deviation over mean absolute deviation, for normal noise.
_SIGMA_PER_MAD = math.sqrt(math.pi / 2)
#: The daily profile moves at most this many residual clips a reading.
_SEASON_CLIP = 4.0
#: The z reported for a value whose residual overflows.
_Z_MAX = 1e300
_DAY_NP = np.int64(_DAY_US)
#: Under this many readings, numpy's fixed cost is more than a list's.
_FEW = 12


class AnomalyConfig(BaseModel):
    """The detector's parameters (a route's ``options``); the defaults are production.

    Rates are per reading; durations in seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    z_raise: float = Field(default=6.0, gt=0, description="z that raises an anomaly")
    z_clear: float = Field(
        default=3.5, gt=0, description="z under which the series counts as normal"
    )
    quiet_s: float = Field(
        default=3 * 3600.0,
        ge=0,
        description="how long the series must stay normal before the anomaly clears",
    )
    level_rate: float = Field(default=0.05, gt=0, le=1)
    spread_rate: float = Field(default=0.005, gt=0, le=1)
    season_rate: float = Field(default=0.1, gt=0, le=1)
    season_bins: int = Field(
        default=24,
        ge=1,
        le=1440,
        description="bins of the daily profile; must divide the day into whole "
        "seconds (24: hours, 96: quarter hours, 1440: minutes)",
    )
    clip: float = Field(default=5.0, gt=0, description="residual clip, in scales")
    envelope_k: float = Field(default=1.2, ge=0)
    envelope_half_life_s: float = Field(default=14 * 86_400.0, gt=0)
    relative_floor: float = Field(
        default=1e-3, ge=0, description="smallest scale, relative to |level|"
    )
    absolute_floor: float = Field(default=1e-9, gt=0, description="smallest scale")
    warm_up_s: float = Field(default=86_400.0, ge=0)
    min_readings: int = Field(default=50, ge=2)
    skip_impossible: bool = Field(
        default=True,
        description="leave out values outside the quality processor's default "
        "physical ranges: they are broken readings, not data to learn from",
    )
    severity: Severity = Severity.WARNING

    @field_validator("season_bins")
    @classmethod
    def _whole_seconds(cls, value: int) -> int:
        # A bin that is not a whole number of seconds would leave the day's
        # last microseconds in a bin past the end of the profile.
        if 86_400 % value:
            raise ValueError(
                f"{value} bins do not divide the day into whole seconds; "
                "use a divisor of 86400 such as 24, 48, 96 or 1440"
            )
        return value


#: The configuration the hub runs and ``streamflow evaluate`` scores.
PRODUCTION = AnomalyConfig()


@dataclass(slots=True)
class AnomalyState:
    """One series' model: level, spread, daily profile, envelope, episode."""

    bins: int
    n: int = 0
    first_us: int = 0
    level: float = 0.0
    spread: float = 0.0
    season: list[float] = field(default_factory=list)
    season_n: list[int] = field(default_factory=list)
    envelope: list[float] = field(default_factory=list)
    envelope_us: list[int] = field(default_factory=list)
    active: bool = False
    quiet_since_us: int | None = None
    raised_us: int = 0

    def __post_init__(self) -> None:
        self.season = [0.0] * self.bins
        self.season_n = [0] * self.bins
        self.envelope = [0.0] * self.bins
        self.envelope_us = [0] * self.bins


@dataclass(frozen=True, slots=True)
class Finding:
    """One raise or clear of the detector, by position in the readings fed."""

    index: int
    state: EventState
    z: float
    expected: float
    scale: float


class _Params(NamedTuple):
    """The parameters as :meth:`AnomalyDetector.update` uses them, µs for s."""

    bins: int
    bin_us: int
    half_life_us: float
    warm_up_us: float
    quiet_us: float
    min_readings: int
    z_raise: float
    z_clear: float
    relative_floor: float
    absolute_floor: float
    clip: float
    envelope_k: float
    level_rate: float
    spread_rate: float
    season_rate: float


def _params(c: AnomalyConfig) -> _Params:
    return _Params(
        c.season_bins,
        _DAY_US // c.season_bins,
        c.envelope_half_life_s * 1e6,
        c.warm_up_s * 1e6,
        c.quiet_s * 1e6,
        c.min_readings,
        c.z_raise,
        c.z_clear,
        c.relative_floor,
        c.absolute_floor,
        c.clip,
        c.envelope_k,
        c.level_rate,
        c.spread_rate,
        c.season_rate,
    )


class AnomalyDetector:
    """The detector itself, without the processor plumbing.

    Args:
        config: its parameters.
    """

    def __init__(self, config: AnomalyConfig = PRODUCTION) -> None:
        self.config = config
        # The parameters of this config, unpacked once (a config is frozen).
        self._params_of = config
        self._params = _params(config)

    def new_state(self) -> AnomalyState:
        """The state of a series never seen."""
        return AnomalyState(self.config.season_bins)

    def update(
        self, state: AnomalyState, ts_us: Int64s, values: Floats
    ) -> list[Finding]:
        """Feed readings in time order; return the raises and clears.

        Args:
            state: the series' state, updated in place.
            ts_us: reading times (epoch µs), ascending.
            values: the values.
        """
        if self._params_of is not self.config:
            self._params_of, self._params = self.config, _params(self.config)
        (
            bins,
            bin_us,
            half_life_us,
            warm_up_us,
            quiet_us,
            min_readings,
            z_raise,
            z_clear,
            relative_floor,
            absolute_floor,
            clip,
            envelope_k,
            level_rate,
            spread_rate,
            season_rate,
        ) = self._params
        season, season_n = state.season, state.season_n
        env, env_us = state.envelope, state.envelope_us
        found: list[Finding] = []
        raised_kind, cleared_kind = EventState.RAISED, EventState.CLEARED
        sigma_per_mad, season_clip = _SIGMA_PER_MAD, _SEASON_CLIP

        ts, xs = ts_us.tolist(), values.tolist()
        if len(xs) != len(ts):
            # As zip(strict=True) of the plain loop: the pairs, then the error.
            paired = min(len(xs), len(ts))
            self.update(state, ts_us[:paired], values[:paired])
            side = "shorter" if len(xs) < len(ts) else "longer"
            raise ValueError(f"zip() argument 2 is {side} than argument 1")
        if len(ts) < _FEW:
            b_all = [(t % _DAY_US) // bin_us for t in ts]
        else:
            # The hour of the day of every reading at once; numpy's integer
            # % and // round like Python's, negative times included.
            b_all = ((ts_us % _DAY_NP) // np.int64(bin_us)).tolist()
        # The model in locals, written back once (also if a reading raises).
        n, first_us = state.n, state.first_us
        level, spread = state.level, state.spread
        active, quiet_since_us = state.active, state.quiet_since_us
        raised_us = state.raised_us
        # 0.5 ** (dt / half_life) of the last dt: regular readings repeat it.
        last_dt, last_decay = 0, 1.0
        start = 0
        if not n and ts:
            # The first reading of the series only sets the level.
            n, first_us, level = 1, ts[0], xs[0]
            start, ts, xs, b_all = 1, ts[1:], xs[1:], b_all[1:]
        indices = range(start, start + len(ts))
        try:
            # One long loop of plain floats, on purpose: each reading depends
            # on the last, and numpy scalars or helper calls would cost more
            # than the arithmetic. It gives the bits of the plain loop that
            # tests/hub/processors/test_anomaly_fast.py keeps (and checks it
            # against), at a third of the cost: ``max(a, b)`` is written as
            # the comparison Python makes (``b if b > a else a``), ``abs(r)``
            # as ``r if r > 0.0 else 0.0 - r`` (the same bits but for the
            # sign of a NaN), a decay over no time (a factor of exactly 1.0)
            # is left out, and the envelope's maximum is only taken when a
            # raise needs it.
            for i, t, x, b in zip(indices, ts, xs, b_all, strict=True):
                sn = season_n[b]
                sb = season[b]
                expected = level + sb if sn >= 3 else level + 0.0
                r = x - expected
                # (A NaN level is only ever the first value: every reading is
                # then not finite and none is counted, so no finding or state
                # can show the sign of this NaN, the one thing abs() changes.)
                floor = relative_floor * (level if level > 0.0 else 0.0 - level)
                if absolute_floor > floor:
                    floor = absolute_floor
                scale = sigma_per_mad * spread + floor
                ar = r if r > 0.0 else 0.0 - r
                z = ar / scale
                if z - z != 0.0:
                    # Not finite: a value near the float limit overflows the
                    # arithmetic. It is anomalous, but learning from it would
                    # leave infinities in the state for good.
                    warm = t - first_us >= warm_up_us
                    if n > min_readings and warm and not active:
                        active, quiet_since_us, raised_us = True, None, t
                        found.append(Finding(i, raised_kind, _Z_MAX, expected, scale))
                    continue
                n += 1

                # The envelope of this hour and its neighbours, decayed to now.
                nb = b - 1
                e_low = env[nb]
                if e_low > 0.0:
                    dt = t - env_us[nb]
                    if dt:
                        if dt != last_dt:
                            last_dt, last_decay = dt, 0.5 ** (dt / half_life_us)
                        e_low *= last_decay
                        env[nb], env_us[nb] = e_low, t
                e_mid = env[b]
                if e_mid > 0.0:
                    dt = t - env_us[b]
                    if dt:
                        if dt != last_dt:
                            last_dt, last_decay = dt, 0.5 ** (dt / half_life_us)
                        e_mid *= last_decay
                        env[b], env_us[b] = e_mid, t
                nb = b + 1
                if nb == bins:
                    nb = 0
                e_high = env[nb]
                if e_high > 0.0:
                    dt = t - env_us[nb]
                    if dt:
                        if dt != last_dt:
                            last_dt, last_decay = dt, 0.5 ** (dt / half_life_us)
                        e_high *= last_decay
                        env[nb], env_us[nb] = e_high, t

                ready = n > min_readings and t - first_us >= warm_up_us
                if active:
                    if z >= z_clear:
                        quiet_since_us = None
                    elif quiet_since_us is None:
                        quiet_since_us = t
                    elif t - quiet_since_us >= quiet_us:
                        active = False
                        found.append(Finding(i, cleared_kind, z, expected, scale))
                elif ready and z > z_raise:
                    edge = 0.0
                    if e_low > edge:
                        edge = e_low
                    if e_mid > edge:
                        edge = e_mid
                    if e_high > edge:
                        edge = e_high
                    if ar > envelope_k * edge:
                        active, quiet_since_us, raised_us = True, None, t
                        found.append(Finding(i, raised_kind, z, expected, scale))

                # Learn from the clipped residual.
                env[b] = ar if ar > e_mid else e_mid
                env_us[b] = t
                limit = clip * scale
                rc = -limit
                if not rc > r:
                    rc = r
                if limit < rc:
                    rc = limit
                level += level_rate * rc
                spread += spread_rate * ((rc if rc > 0.0 else 0.0 - rc) - spread)
                # The profile learns freely while the model warms up; then one
                # absurd value (a sensor sending 1e300) moves it a bounded step.
                deviation = x - level
                if not sn:
                    season[b] = deviation
                elif ready:
                    bound = season_clip * limit
                    change = deviation - sb
                    if -bound > change:
                        change = -bound
                    if bound < change:
                        change = bound
                    season[b] = sb + season_rate * change
                else:
                    season[b] = sb + season_rate * (deviation - sb)
                season_n[b] = sn + 1
        finally:
            state.n, state.first_us = n, first_us
            state.level, state.spread = level, spread
            state.active, state.quiet_since_us = active, quiet_since_us
            state.raised_us = raised_us
        return found


class AnomalyProcessor(SeriesProcessor[AnomalyState]):
    """Anomaly events (kind ``anomaly``) from :class:`AnomalyDetector`.

    Args:
        options: :class:`AnomalyConfig` fields; none gives :data:`PRODUCTION`.

    Raises:
        pydantic.ValidationError: an unknown or invalid option.
    """

    name: ClassVar[str] = "anomaly"
    #: Two days: the warm-up needs one, and the profile is better with two.
    warm_up_s = 2 * 86_400.0

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.detector = AnomalyDetector(AnomalyConfig(**options))

    def new_state(self, key: SeriesKey) -> AnomalyState:
        """A model that has seen nothing."""
        return self.detector.new_state()

    def fork(self, live: AnomalyState, key: SeriesKey) -> AnomalyState:
        """The live model, with no episode open: a backlog starts from the present."""
        state = copy.deepcopy(live)
        state.active, state.quiet_since_us = False, None
        return state

    def step(
        self, state: AnomalyState, batch: SeriesBatch, ctx: Context, past: bool
    ) -> list[Event]:
        """Run the detector over the batch; one event per raise or clear."""
        if self.detector.config.skip_impossible:
            batch = self._possible(batch)
        found = self.detector.update(state, batch.ts_us, batch.values)
        return [self._event(f, batch, ctx, past) for f in found]

    def _possible(self, batch: SeriesBatch) -> SeriesBatch:
        rng = default_range(batch.metric, batch.unit)
        values = batch.values
        if rng is None or not len(values):
            return batch
        # The usual case, all in range, in two reductions (a NaN fails them).
        low_ok = rng.min is None or values.min() >= rng.min
        if low_ok and (rng.max is None or values.max() <= rng.max):
            return batch
        ok = np.ones(len(batch), dtype=np.bool_)
        if rng.min is not None:
            ok &= batch.values >= rng.min
        if rng.max is not None:
            ok &= batch.values <= rng.max
        return batch if ok.all() else batch.select(ok)

    def _event(self, f: Finding, batch: SeriesBatch, ctx: Context, past: bool) -> Event:
        return Event(
            kind=EventKind.ANOMALY,
            state=f.state,
            device=batch.device,
            metric=batch.metric,
            ts_us=int(batch.ts_us[f.index]),
            value=float(batch.values[f.index]),
            severity=self.detector.config.severity,
            past=past,
            details={
                "z": round(f.z, 3),
                "expected": f.expected,
                "scale": f.scale,
            },
            detected_us=ctx.now_us,
        )
