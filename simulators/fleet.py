"""A synthetic fleet (``streamflow simulate``): gateways by devices, live.

Every device reports each metric once per ``interval_s``, its reports spread
over the interval by device so the load is smooth. A value is a base level
(per device), a daily cycle, a slow drift, and Gaussian noise, all from one
seeded numpy generator, so the same spec and start time give the same
readings. Faults are injected at configurable rates and recorded, so tests
and alert rules have a ground truth:

- ``spike``: one reading jumps by the metric's spike size (either sign).
- ``stuck``: a device repeats its last values for ``stuck_ticks`` reports.
- ``dropout``: a device sends nothing for ``dropout_ticks`` reports.

The random draws of a tick have the same shapes whatever the fleet's state,
which keeps the stream reproducible when rates change only where faults hit.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from protocol import topics
from protocol.readings import Reading
from protocol.validate import now_us
from simulators.progress import LiveProgress
from simulators.replay import ReplayOptions, ReplaySummary, pace
from simulators.sinks import Sink
from simulators.timeline import Restamper, TimestampMode

_DAY_S: Final = 86_400.0
#: The hour (UTC) at which the daily cycle peaks: mid-afternoon.
_PEAK_HOUR: Final = 15.0


@dataclass(frozen=True, slots=True)
class MetricModel:
    """How one metric of every device behaves.

    Attributes:
        name: the metric name.
        unit: its unit.
        base: the fleet's mean level.
        spread: the standard deviation of devices' own levels around ``base``.
        daily: the amplitude of the daily cycle (negative: peaks at night).
        noise: the standard deviation of the noise on each reading.
        drift_per_day: the standard deviation of devices' drift per day.
        spike: the size of an injected spike.
        low: values are clipped to at least this.
        high: values are clipped to at most this.
    """

    name: str
    unit: str
    base: float
    spread: float
    daily: float
    noise: float
    drift_per_day: float
    spike: float
    low: float = -math.inf
    high: float = math.inf


DEFAULT_METRICS: Final = (
    MetricModel("temperature", "C", 21.0, 1.5, 2.5, 0.15, 0.2, 25.0, -40.0, 85.0),
    MetricModel("humidity", "%", 45.0, 5.0, -6.0, 0.8, 0.5, 40.0, 0.0, 100.0),
)


@dataclass(frozen=True, slots=True)
class FaultRates:
    """How often faults are injected.

    Attributes:
        spike: chance that one reading is a spike.
        stuck: chance per device and report that it gets stuck.
        stuck_ticks: how many reports a stuck device repeats its values.
        dropout: chance per device and report that it goes silent.
        dropout_ticks: how many reports a silent device skips.
    """

    spike: float = 0.001
    stuck: float = 0.0005
    stuck_ticks: int = 30
    dropout: float = 0.0005
    dropout_ticks: int = 60

    def __post_init__(self) -> None:
        for name in ("spike", "stuck", "dropout"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} rate {rate!r}: expected 0 to 1")
        if self.stuck_ticks < 1 or self.dropout_ticks < 1:
            raise ValueError("stuck_ticks and dropout_ticks: expected 1 or more")


NO_FAULTS: Final = FaultRates(0.0, 0.0, 1, 0.0, 1)


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """The fleet to simulate.

    Attributes:
        gateways: how many gateways.
        devices: devices per gateway.
        interval_s: seconds between two reports of a device.
        seed: the random generator's seed.
        faults: injected fault rates.
        metrics: what every device measures.
        prefix: the gateway id prefix (``sim-gw`` gives ``sim-gw-1`` ...).
    """

    gateways: int = 2
    devices: int = 10
    interval_s: float = 10.0
    seed: int = 1
    faults: FaultRates = FaultRates()
    metrics: tuple[MetricModel, ...] = DEFAULT_METRICS
    prefix: str = "sim-gw"

    def __post_init__(self) -> None:
        if self.gateways < 1 or self.devices < 1:
            raise ValueError("gateways and devices: expected 1 or more each")
        if not self.interval_s > 0:
            raise ValueError(f"interval_s {self.interval_s!r}: expected above 0")
        if not self.metrics:
            raise ValueError("expected at least one metric")

    def gateway_ids(self) -> list[str]:
        """The gateway ids, in order."""
        return [
            topics.check_id(f"{self.prefix}-{g}", "gateway id")
            for g in range(1, self.gateways + 1)
        ]

    def device_ids(self) -> list[tuple[str, str]]:
        """(gateway id, device id) of every device, gateway by gateway."""
        return [
            (gw, topics.check_id(f"{gw}-dev-{d:03d}", "device id"))
            for gw in self.gateway_ids()
            for d in range(1, self.devices + 1)
        ]


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """One injected fault: the ground truth for detectors and alert rules.

    ``end_us`` is the timestamp of the last affected report (equal to
    ``start_us`` for a spike); ``metric`` is empty when all metrics are hit.
    """

    device: str
    kind: str
    start_us: int
    end_us: int
    metric: str = ""


@dataclass(slots=True)
class _DeviceState:
    stuck_left: np.ndarray
    stuck_values: np.ndarray
    drop_left: np.ndarray
    open_stuck: dict[int, FaultEvent] = field(default_factory=dict)
    open_drop: dict[int, FaultEvent] = field(default_factory=dict)


class FleetGenerator:
    """Makes the fleet's readings, tick by tick (one report of every device).

    Args:
        spec: the fleet.
        start_us: the timestamp of tick 0's first report (epoch µs).
    """

    def __init__(self, spec: FleetSpec, start_us: int) -> None:
        self.spec = spec
        self.start_us = start_us
        self.devices = [dev for _gw, dev in spec.device_ids()]
        #: Faults that have ended; :meth:`all_faults` adds the running ones.
        self.faults: list[FaultEvent] = []
        n, m = len(self.devices), len(spec.metrics)
        self._rng = np.random.default_rng(spec.seed)
        models = spec.metrics
        self._base = np.array([mm.base for mm in models])
        self._daily = np.array([mm.daily for mm in models])
        self._noise = np.array([mm.noise for mm in models])
        self._spike = np.array([mm.spike for mm in models])
        self._low = np.array([mm.low for mm in models])
        self._high = np.array([mm.high for mm in models])
        spread = np.array([mm.spread for mm in models])
        drift = np.array([mm.drift_per_day for mm in models])
        self._level = self._rng.normal(0.0, 1.0, (n, m)) * spread
        self._drift = self._rng.normal(0.0, 1.0, (n, m)) * drift
        interval_us = round(spec.interval_s * 1e6)
        self._interval_us = interval_us
        self._phase_us = np.array([i * interval_us // n for i in range(n)])
        self._state = _DeviceState(
            stuck_left=np.zeros(n, dtype=np.int64),
            stuck_values=np.zeros((n, m)),
            drop_left=np.zeros(n, dtype=np.int64),
        )

    def tick(self, k: int) -> list[Reading]:
        """The readings of tick ``k`` (ticks must be asked for in order)."""
        spec, st = self.spec, self._state
        n, m = len(self.devices), len(spec.metrics)
        ts = self.start_us + k * self._interval_us + self._phase_us

        # Same draws every tick, whatever the state: reproducible streams.
        drop_draw = self._rng.random(n)
        stuck_draw = self._rng.random(n)
        noise = self._rng.normal(0.0, 1.0, (n, m)) * self._noise
        spike_draw = self._rng.random((n, m))
        spike_sign = np.where(self._rng.random((n, m)) < 0.5, -1.0, 1.0)

        values = self._clean_values(ts) + noise
        self._start_faults(ts, drop_draw, stuck_draw, values)
        stuck = st.stuck_left > 0
        values[stuck] = st.stuck_values[stuck]
        spikes = (spike_draw < spec.faults.spike) & ~stuck[:, None]
        values = np.where(spikes, values + spike_sign * self._spike, values)
        values = np.clip(values, self._low, self._high)
        silent = st.drop_left > 0
        self._record_spikes(ts, spikes & ~silent[:, None])
        readings = self._readings(ts, values, silent)
        self._advance(ts)
        return readings

    def _clean_values(self, ts: np.ndarray) -> np.ndarray:
        t_s = ts / 1e6
        hours = (t_s % _DAY_S) / 3600.0
        cycle = np.cos(2 * np.pi * (hours - _PEAK_HOUR) / 24.0)
        days = (t_s - self.start_us / 1e6) / _DAY_S
        values: np.ndarray = (
            self._base
            + self._level
            + self._daily * cycle[:, None]
            + self._drift * days[:, None]
        )
        return values

    def _start_faults(
        self,
        ts: np.ndarray,
        drop_draw: np.ndarray,
        stuck_draw: np.ndarray,
        values: np.ndarray,
    ) -> None:
        st, rates = self._state, self.spec.faults
        idle = (st.drop_left == 0) & (st.stuck_left == 0)
        for i in np.flatnonzero(idle & (drop_draw < rates.dropout)):
            st.drop_left[i] = rates.dropout_ticks
            st.open_drop[int(i)] = FaultEvent(
                self.devices[i], "dropout", int(ts[i]), int(ts[i])
            )
        idle = (st.drop_left == 0) & (st.stuck_left == 0)
        for i in np.flatnonzero(idle & (stuck_draw < rates.stuck)):
            st.stuck_left[i] = rates.stuck_ticks
            st.stuck_values[i] = values[i]
            st.open_stuck[int(i)] = FaultEvent(
                self.devices[i], "stuck", int(ts[i]), int(ts[i])
            )

    def _record_spikes(self, ts: np.ndarray, spikes: np.ndarray) -> None:
        for i, j in zip(*np.nonzero(spikes), strict=True):
            t = int(ts[i])
            self.faults.append(
                FaultEvent(self.devices[i], "spike", t, t, self.spec.metrics[j].name)
            )

    def _readings(
        self, ts: np.ndarray, values: np.ndarray, silent: np.ndarray
    ) -> list[Reading]:
        models = self.spec.metrics
        out: list[Reading] = []
        rounded = np.round(values, 3).tolist()
        stamps = ts.tolist()
        for i, dev in enumerate(self.devices):
            if silent[i]:
                continue
            for j, mm in enumerate(models):
                out.append(Reading(dev, mm.name, stamps[i], rounded[i][j], mm.unit))
        return out

    def _advance(self, ts: np.ndarray) -> None:
        """Count down the faults of this tick; close those that end."""
        st = self._state
        for left, open_events in (
            (st.stuck_left, st.open_stuck),
            (st.drop_left, st.open_drop),
        ):
            for i in np.flatnonzero(left > 0):
                event = open_events[int(i)]
                open_events[int(i)] = FaultEvent(
                    event.device, event.kind, event.start_us, int(ts[i])
                )
                left[i] -= 1
                if left[i] == 0:
                    self.faults.append(open_events.pop(int(i)))

    def all_faults(self) -> list[FaultEvent]:
        """Every fault injected so far, those still running included, in order.

        A running fault's ``end_us`` is the last report it has affected yet.
        """
        st = self._state
        running = [*st.open_stuck.values(), *st.open_drop.values()]
        return sorted(
            [*self.faults, *running],
            key=lambda e: (e.start_us, e.device, e.kind, e.metric),
        )

    def stream(self, ticks: int | None = None) -> Iterator[tuple[int, int, Reading]]:
        """(position µs, 0, reading) of every tick in order, for :func:`pace`."""
        counter = range(ticks) if ticks is not None else itertools.count()
        for k in counter:
            for r in self.tick(k):
                yield r.ts_us - self.start_us, 0, r


@dataclass(slots=True)
class FleetResult:
    """What a simulation did: the counts, and the faults it injected."""

    summary: ReplaySummary
    faults: list[FaultEvent]


def simulate(
    spec: FleetSpec,
    sink: Sink,
    duration_s: float | None = None,
    count: int | None = None,
    stop: threading.Event | None = None,
    progress: bool = False,
    start_us: int | None = None,
) -> FleetResult:
    """Run the fleet live into a started sink until a bound is reached.

    Each reading is sent when its timestamp arrives (the first report of the
    first tick at the start), so the fleet behaves like real devices.

    Args:
        spec: the fleet.
        sink: where readings go (the caller starts and closes it).
        duration_s: stop after this many seconds.
        count: stop after this many readings.
        stop: set it to end early.
        progress: draw a live progress bar.
        start_us: the timestamp of the first report; None = now.

    Returns:
        The counts and the injected faults.

    Raises:
        ValueError: neither a duration, a count nor a stop event bounds the run.
        SinkError: the sink failed.
    """
    if duration_s is None and count is None and stop is None:
        raise ValueError("simulate needs a duration, a count or a stop event")
    start = start_us if start_us is not None else now_us()
    gen = FleetGenerator(spec, start)
    options = ReplayOptions(
        speedup=1.0,
        timestamps=TimestampMode.ORIGINAL,
        duration_s=duration_s,
        limit=count,
        progress=progress,
    )
    summary = ReplaySummary(label="simulate")
    stamper = Restamper(TimestampMode.ORIGINAL, 1.0, start, 0)
    stop_event = stop if stop is not None else threading.Event()
    with LiveProgress("simulate", count, progress) as bar:
        pace(gen.stream(), sink, options, stamper, stop_event, summary, bar)
    return FleetResult(summary, gen.all_faults())
