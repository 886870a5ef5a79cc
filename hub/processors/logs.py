"""Device logs: error bursts, from the log records a commit counted.

The store counts every device's log records per minute and level in the
write's transaction (``Store.log_counts``). The processors see the records a
commit counted for the first time as one series per device, of kind ``log``
(metric ``log``, the values the levels' numbers: 10 debug ... 50 critical),
so that routes select them like readings (``kinds = ["log"]``).

``log_burst`` (raised / cleared)
    The errors of a minute (records at ``level`` or above, ``error`` by
    default) reach ``threshold`` per minute, or reach ``min_errors`` and
    exceed ``factor`` times the device's own baseline: its mean errors per
    minute over the ``baseline_minutes`` before, once it has
    ``min_history_minutes`` of history. Raised at the record that crossed;
    cleared at the first record of a later minute after a whole minute that
    is back under both. Records that arrive late for a minute before the one
    that cleared a burst count, but do not raise it again. A device that
    falls silent after a burst keeps it open until its next record (the
    processors run on new data only).

The baseline is rebuilt after a restart from the store's minute counts.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, Field

from hub.processors.base import Context, Output, Processor, SeriesBatch
from hub.processors.events import Event, EventKind, EventState, Severity
from protocol.logs import LEVEL_NUMBERS, LEVELS, LogRecord
from protocol.readings import SeriesBlock

if TYPE_CHECKING:
    from hub.storage.base import Store

_LOGGER = logging.getLogger(__name__)

#: The reading kind of log series.
LOG_KIND: Final = "log"
#: The metric of a device's log series.
LOG_METRIC: Final = "log"
_MINUTE_US: Final = 60_000_000
#: The rule of a burst event: what is counted.
_RULE: Final = "errors"


def log_blocks(records: Sequence[LogRecord]) -> list[SeriesBlock]:
    """Committed log records as one ``log`` series per device, for the host."""
    blocks: dict[str, SeriesBlock] = {}
    for r in records:
        block = blocks.get(r.device)
        if block is None:
            block = blocks[r.device] = SeriesBlock(r.device, LOG_METRIC, kind=LOG_KIND)
        block.append(r.ts_us, float(LEVEL_NUMBERS[r.level]), r.flags)
    return list(blocks.values())


class LogBurstConfig(BaseModel):
    """The burst detector's parameters (a route's ``options``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: str = Field(default="error", pattern="^(" + "|".join(LEVELS) + ")$")
    threshold: int = Field(default=10, ge=1)
    factor: float = Field(default=5.0, gt=1)
    min_errors: int = Field(default=5, ge=1)
    baseline_minutes: int = Field(default=60, ge=1)
    min_history_minutes: int = Field(default=10, ge=1)
    severity: Severity = Severity.WARNING


@dataclass(slots=True)
class BurstState:
    """One device: errors per recent minute and the open burst."""

    #: Errors by minute start (µs); only recent minutes are kept.
    minutes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    first_minute: int | None = None
    newest_minute: int | None = None
    #: The last minute known to be in the burst, while one is open.
    burst_minute: int | None = None
    #: The minute found back down that cleared the last burst: records of
    #: earlier minutes (arriving late) never raise that burst again.
    cleared_minute: int | None = None


class LogBurstProcessor(Processor):
    """``log_burst`` events from a device's log series (module docstring).

    Args:
        options: :class:`LogBurstConfig` fields.

    Raises:
        pydantic.ValidationError: an unknown or invalid option.
    """

    name: ClassVar[str] = "logs"

    def __init__(self, **options: Any) -> None:
        self.config = LogBurstConfig(**options)
        self._min_value = float(LEVEL_NUMBERS[self.config.level])
        self._states: dict[str, BurstState] = {}
        self.warm_up_s = (self.config.baseline_minutes + 1) * 60.0

    def state_of(self, device: str) -> BurstState | None:
        """A device's state, or None (for tests and diagnostics)."""
        return self._states.get(device)

    def process(self, batch: SeriesBatch, ctx: Context) -> Output:
        """Count each record's minute and judge it against the burst rule."""
        if len(batch) == 0:
            return Output()
        state = self._states.get(batch.device)
        if state is None:
            state = self._states[batch.device] = BurstState()
            first_minute = int(batch.ts_us[0]) - int(batch.ts_us[0]) % _MINUTE_US
            if ctx.store is not None:
                self._warm(ctx.store, batch.device, state, first_minute)
        events: list[Event] = []
        for t, value, late in zip(
            batch.ts_us.tolist(),
            batch.values.tolist(),
            batch.past.tolist(),
            strict=True,
        ):
            events += self._record(state, batch, ctx, t, value >= self._min_value, late)
        return Output(events=events)

    def _record(
        self,
        state: BurstState,
        batch: SeriesBatch,
        ctx: Context,
        t: int,
        error: bool,
        late: bool,
    ) -> list[Event]:
        minute = t - t % _MINUTE_US
        events: list[Event] = []
        if state.first_minute is None or minute < state.first_minute:
            state.first_minute = minute
        if state.newest_minute is None or minute > state.newest_minute:
            if state.burst_minute is not None:
                ended = self._ended(state, minute)
                if ended is not None:
                    events.append(self._event(state, batch, ctx, t, late, False, ended))
                    state.burst_minute = None
                    state.cleared_minute = ended
            state.newest_minute = minute
            self._prune(state)
        if not error:
            return events
        state.minutes[minute] += 1
        count = state.minutes[minute]
        judged = state.cleared_minute is not None and minute <= state.cleared_minute
        if (
            state.burst_minute is None
            and not judged
            and self._bursting(state, minute, count)
        ):
            state.burst_minute = minute
            events.append(self._event(state, batch, ctx, t, late, True, minute))
        return events

    def _baseline(self, state: BurstState, minute: int) -> float | None:
        """Mean errors per minute over the baseline minutes before ``minute``."""
        c = self.config
        first = state.first_minute if state.first_minute is not None else minute
        history = min(c.baseline_minutes, (minute - first) // _MINUTE_US)
        if history < c.min_history_minutes:
            return None
        since = minute - history * _MINUTE_US
        total = sum(n for m, n in state.minutes.items() if since <= m < minute)
        return total / history

    def _bursting(self, state: BurstState, minute: int, count: int) -> bool:
        c = self.config
        if count >= c.threshold:
            return True
        baseline = self._baseline(state, minute)
        return (
            baseline is not None
            and count >= c.min_errors
            and count > c.factor * baseline
        )

    def _ended(self, state: BurstState, now_minute: int) -> int | None:
        """The first whole minute after the burst that is back down, if any."""
        assert state.burst_minute is not None
        m = state.burst_minute + _MINUTE_US
        while m < now_minute:
            if not self._bursting(state, m, state.minutes.get(m, 0)):
                return m
            state.burst_minute = m
            m += _MINUTE_US
        return None

    def _prune(self, state: BurstState) -> None:
        assert state.newest_minute is not None
        oldest = state.newest_minute - (self.config.baseline_minutes + 2) * _MINUTE_US
        if state.burst_minute is not None:
            oldest = min(oldest, state.burst_minute)
        for m in [m for m in state.minutes if m < oldest]:
            del state.minutes[m]

    def _event(
        self,
        state: BurstState,
        batch: SeriesBatch,
        ctx: Context,
        t: int,
        late: bool,
        raised: bool,
        minute: int,
    ) -> Event:
        c = self.config
        baseline = self._baseline(state, minute)
        count = state.minutes.get(minute, 0)
        return Event(
            kind=EventKind.LOG_BURST,
            state=EventState.RAISED if raised else EventState.CLEARED,
            device=batch.device,
            metric=batch.metric,
            ts_us=t,
            value=float(count),
            severity=c.severity,
            rule=_RULE,
            past=late,
            details={
                "minute_us": minute,
                "errors_per_min": count,
                "level": c.level,
                "threshold": c.threshold,
                "factor": c.factor,
                "baseline_per_min": baseline,
            },
            detected_us=ctx.now_us,
        )

    def _warm(self, store: Store, device: str, state: BurstState, until: int) -> None:
        since = until - self.config.baseline_minutes * _MINUTE_US
        try:
            counts = store.log_counts(device, since, until)
        except Exception as exc:  # a store hiccup costs the baseline, not the batch
            _LOGGER.warning(
                "warm-up failed processor=%s device=%s error=%s: %s",
                self.name,
                device,
                type(exc).__name__,
                str(exc)[:200],
            )
            return
        floor = LEVEL_NUMBERS[self.config.level]
        for c in counts:
            if LEVEL_NUMBERS.get(c.level, 0) >= floor:
                state.minutes[c.start_us] += c.count
        if counts:
            state.first_minute = min(c.start_us for c in counts)
        _LOGGER.debug(
            "warm-up processor=%s device=%s minutes=%d", self.name, device, len(counts)
        )
