"""The processor interface: what a processor receives, keeps and emits.

Receives
    After each commit, the readings stored for the first time, one
    :class:`SeriesBatch` per series: numpy columns of reading times (int64
    epoch µs, ascending), values (float64) and flags, and ``past``, which
    marks the late readings (``FLAG_LATE`` from an edge backlog, or older than
    the horizon). A processor sees each reading once (DESIGN.md).
Keeps
    Per-series state in memory, nothing else: the hub holds no state a
    restart cannot rebuild. A stateful processor sets ``warm_up_s`` and,
    the first time it sees a series after a start, replays that much recent
    history from the store (:meth:`Processor.warm_up`) without emitting.
Emits
    :class:`Output`: events (:class:`~hub.processors.events.Event`) and the
    minutes whose rollups are to be recomputed.

:class:`SeriesProcessor` does the bookkeeping of stateful processors in event
time. Each series has a *live* lane, fed the readings newer than any it has
seen, in time order, and a *past* lane for readings older than that (a
backlog that arrives after newer live data): such readings update the past
lane's state, never the live one, which stays as the present made it. An
event is marked ``past`` when it comes from the past lane, or when the
reading that caused it is late (``FLAG_LATE``, or older than the horizon): a
late backlog that arrives in order still updates the live state, but what it
finds happened then, not now.

Processors never raise into the ingest loop: the host catches, logs and
counts at its boundary; a processor itself should turn bad input into no
event rather than an exception.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from hub.processors.events import Event
from protocol.const import FLAG_LATE
from protocol.ratelimit import WarningLimiter
from protocol.readings import Reading, SeriesBlock

if TYPE_CHECKING:
    from hub.storage.base import DeviceInfo, Store

_LOGGER = logging.getLogger(__name__)
_LIMITER = WarningLimiter()

S = TypeVar("S")

Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

#: The kind of numeric readings, the only kind protocol v1 carries so far.
READING_KIND = "reading"
#: The length of a rollup bucket.
MINUTE_US = 60_000_000


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """A series: one device's metric."""

    device: str
    metric: str


@dataclass(frozen=True, slots=True)
class SeriesBatch:
    """Committed readings of one series, as numpy columns in time order.

    Attributes:
        key: the series.
        unit: the unit of its values.
        ts_us: reading times, epoch µs, ascending.
        values: the values.
        flags: the ``FLAG_*`` bits of each reading.
        past: which readings are late (see the module docstring).
        kind: what the readings are; ``reading`` for numeric readings.
        new_series: the series had no reading stored before this commit (it
            created the series): there is no history to warm up from.
    """

    key: SeriesKey
    unit: str
    ts_us: Int64s
    values: Floats
    flags: Int64s
    past: Bools
    kind: str = READING_KIND
    new_series: bool = False

    def __len__(self) -> int:
        return len(self.ts_us)

    @property
    def device(self) -> str:
        """The series' device."""
        return self.key.device

    @property
    def metric(self) -> str:
        """The series' metric."""
        return self.key.metric

    @classmethod
    def from_block(
        cls,
        block: SeriesBlock,
        now_us: int | None = None,
        horizon_us: int | None = None,
        new_series: bool = False,
    ) -> SeriesBatch:
        """A committed block as columns, sorted by time, with ``past`` worked out.

        Args:
            block: the readings of one series.
            now_us: the present; with ``horizon_us``, readings older than
                ``now_us - horizon_us`` are past.
            horizon_us: how old a reading may be and still count as live;
                None: age alone never makes a reading past.
            new_series: the commit created the series (see the attribute).
        """
        ts = np.asarray(block.ts_us, dtype=np.int64)
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        flags = np.asarray(block.flags, dtype=np.int64)[order]
        values = np.asarray(block.values, dtype=np.float64)[order]
        past = (flags & FLAG_LATE) != 0
        if now_us is not None and horizon_us is not None:
            past |= ts < now_us - horizon_us
        return cls(
            SeriesKey(block.device, block.metric),
            block.unit,
            ts,
            values,
            flags,
            past,
            block.kind,
            new_series,
        )

    @classmethod
    def from_readings(cls, key: SeriesKey, readings: list[Reading]) -> SeriesBatch:
        """Stored readings of one series (a warm-up), none of them past."""
        ts = np.fromiter((r.ts_us for r in readings), np.int64, len(readings))
        values = np.fromiter((r.value for r in readings), np.float64, len(readings))
        flags = np.fromiter((r.flags for r in readings), np.int64, len(readings))
        order = np.argsort(ts, kind="stable")
        unit = readings[0].unit if readings else ""
        return cls(
            key,
            unit,
            ts[order],
            values[order],
            flags[order],
            np.zeros(len(readings), dtype=np.bool_),
        )

    def select(self, mask: Bools) -> SeriesBatch:
        """The readings where ``mask`` is true, as a batch of their own."""
        return SeriesBatch(
            self.key,
            self.unit,
            self.ts_us[mask],
            self.values[mask],
            self.flags[mask],
            self.past[mask],
            self.kind,
            self.new_series,
        )


DeviceLookup = Callable[[str], "DeviceInfo | None"]


def _no_device(device: str) -> DeviceInfo | None:
    return None


@dataclass(frozen=True, slots=True)
class Context:
    """What a processor may consult while it processes a batch.

    Attributes:
        now_us: the present, epoch µs (the processing time).
        store: the store, for warm-ups and lookups; None in unit tests and in
            ``streamflow evaluate``.
        device: the registry entry of a device (tags, expected interval),
            cached by the host; None for an unknown device.
    """

    now_us: int
    store: Store | None = None
    device: DeviceLookup = _no_device


@dataclass(slots=True)
class Output:
    """What a processor emits for one batch.

    Attributes:
        events: its findings.
        rollups: (device, metric, minute start µs) of the minutes whose
            rollups are to be recomputed from the store.
    """

    events: list[Event] = field(default_factory=list)
    rollups: list[tuple[str, str, int]] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        """Add another output's events and rollups to this one."""
        self.events.extend(other.events)
        self.rollups.extend(other.rollups)


def _mark_late(events: list[Event], batch: SeriesBatch) -> list[Event]:
    # Times are unique in a batch: the store keeps one reading per (series, ts).
    late = set(batch.ts_us[batch.past].tolist())
    return [
        e.model_copy(update={"past": True}) if e.ts_us in late and not e.past else e
        for e in events
    ]


class Processor(ABC):
    """A processor: a batch of one series in, an :class:`Output` out.

    Subclasses set ``name`` (the registry name) and implement :meth:`process`.
    A site's processor is a subclass registered under the entry point group
    ``streamflow.processors``; the hub builds it with the ``options`` of its
    route as keyword arguments.
    """

    #: The registry name, used in routes, logs and counters.
    name: ClassVar[str] = ""
    #: History replayed from the store when a series is first seen after a
    #: start; 0 for a stateless processor. An instance may set its own.
    warm_up_s: float = 0.0

    @abstractmethod
    def process(self, batch: SeriesBatch, ctx: Context) -> Output:
        """Process the committed readings of one series.

        Args:
            batch: the new readings of the series, in time order.
            ctx: the present, the store and the device registry.

        Returns:
            The events and rollups the batch gives rise to.
        """

    def refresh(self, store: Store, now_us: int) -> None:  # noqa: B027 - optional hook
        """Reload what the processor reads from the store (rules); called often.

        The default does nothing.
        """

    def warm_up(
        self, store: Store, series: SeriesKey, since_us: int, until_us: int
    ) -> int:
        """Rebuild a series' state from its readings in ``[since_us, until_us)``.

        Called once per series after a start, before its first batch; no
        event is emitted for the history. The default keeps no state.

        Returns:
            How many readings were replayed.
        """
        return 0


class SeriesProcessor(Processor, Generic[S]):
    """A processor with per-series state, kept in event time (module docstring).

    Subclasses implement :meth:`new_state` and :meth:`step`, and may override
    :meth:`fork` (how the past lane starts from the live state).
    """

    #: How many readings a warm-up replays at most.
    # TODO: replay the newest readings when there are more than this (a
    # 1-second series over two days); Store.readings returns the oldest
    # first, so such a warm-up ends short of the present.
    warm_up_limit: ClassVar[int] = 50_000

    def __init__(self) -> None:
        self._live: dict[SeriesKey, S] = {}
        self._past: dict[SeriesKey, S] = {}
        # The newest reading time each lane has seen.
        self._live_clock: dict[SeriesKey, int] = {}
        self._past_clock: dict[SeriesKey, int] = {}

    @abstractmethod
    def new_state(self, key: SeriesKey) -> S:
        """The state of a series never seen."""

    @abstractmethod
    def step(
        self, state: S, batch: SeriesBatch, ctx: Context, past: bool
    ) -> list[Event]:
        """Feed readings newer than any the state has seen, in time order.

        Args:
            state: the lane's state, updated in place.
            batch: the readings.
            ctx: the present and the registry.
            past: whether this is the past lane: mark every event past (in
                the live lane, the caller marks those of late readings).

        Returns:
            The events found.
        """

    def fork(self, live: S, key: SeriesKey) -> S:
        """The state the past lane starts from; by default a new one."""
        return self.new_state(key)

    def process(self, batch: SeriesBatch, ctx: Context) -> Output:
        """Split the batch into the live and past lanes and step each."""
        key = batch.key
        if len(batch) == 0:
            return Output()
        if key not in self._live:
            self._live[key] = self.new_state(key)
            # A series this commit created has no history: no query for it
            # (a new fleet of 100k series would wait for 100k of them).
            if self.warm_up_s > 0 and ctx.store is not None and not batch.new_series:
                first = int(batch.ts_us[0])
                since = first - int(self.warm_up_s * 1e6)
                self._warm(ctx, key, since, first)
        clock = self._live_clock.get(key)
        if clock is None:
            live_mask = np.ones(len(batch), dtype=np.bool_)
        else:
            live_mask = batch.ts_us > clock
        events: list[Event] = []
        if live_mask.any():
            live = batch.select(live_mask)
            found = self.step(self._live[key], live, ctx, past=False)
            self._live_clock[key] = int(live.ts_us[-1])
            events += _mark_late(found, live) if live.past.any() else found
        if not live_mask.all():
            events += self._step_past(batch.select(~live_mask), ctx)
        return Output(events=events)

    def _step_past(self, batch: SeriesBatch, ctx: Context) -> list[Event]:
        key = batch.key
        clock = self._past_clock.get(key)
        if key not in self._past or (clock is not None and batch.ts_us[0] <= clock):
            # A new backlog, or one older than the last: start the past lane
            # again from the present's state, so that it is never fed
            # readings out of order.
            self._past[key] = self.fork(self._live[key], key)
        events = self.step(self._past[key], batch, ctx, past=True)
        self._past_clock[key] = int(batch.ts_us[-1])
        return events

    def _warm(self, ctx: Context, key: SeriesKey, since_us: int, until_us: int) -> None:
        if ctx.store is None:
            return
        try:
            replayed = self.warm_up(ctx.store, key, since_us, until_us)
        except Exception as exc:  # a store hiccup costs the warm-up, not the batch
            # Once a minute per processor: with the store down at a restart,
            # every series would fail alike.
            suppressed = _LIMITER.allow(("warm_up", self.name))
            if suppressed is not None:
                _LOGGER.warning(
                    "warm-up failed processor=%s device=%s metric=%s error=%s: %s "
                    "suppressed=%d",
                    self.name,
                    key.device,
                    key.metric,
                    type(exc).__name__,
                    str(exc)[:200],
                    suppressed,
                )
            return
        _LOGGER.debug(
            "warm-up processor=%s device=%s metric=%s readings=%d",
            self.name,
            key.device,
            key.metric,
            replayed,
        )

    def warm_up(
        self, store: Store, series: SeriesKey, since_us: int, until_us: int
    ) -> int:
        """Replay the series' stored readings in ``[since_us, until_us)``.

        The events found are dropped: they were (or would have been) emitted
        before the restart.

        Returns:
            How many readings were replayed.
        """
        readings = store.readings(
            series.device, series.metric, since_us, until_us, self.warm_up_limit
        )
        if not readings:
            return 0
        batch = SeriesBatch.from_readings(series, readings)
        state = self._live.setdefault(series, self.new_state(series))
        ctx = Context(now_us=int(batch.ts_us[-1]), store=store, device=store.get_device)
        self.step(state, batch, ctx, past=False)
        self._live_clock[series] = int(batch.ts_us[-1])
        return len(readings)

    def state_of(self, key: SeriesKey) -> S | None:
        """The live state of a series, or None (for tests and diagnostics)."""
        return self._live.get(key)
