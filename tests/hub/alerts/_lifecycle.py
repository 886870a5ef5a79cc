"""Helpers of the lifecycle tests: a clock moved by hand, a recorder of callbacks."""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.alerts.config import AlertsConfig
from hub.alerts.lifecycle import AlertEngine
from hub.alerts.notice import Change, Notice
from hub.storage.base import AlertRecord

#: 2026-03-01T00:00:00Z, wall time at the start of each test.
T0 = 1_772_323_200_000_000
S = 1_000_000


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> int:
        self.now += int(seconds * S)
        return self.now


@dataclass
class Recorder:
    """What the engine told the monitor: every change, every notice."""

    changes: list[tuple[AlertRecord, Change]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def on_change(self, alert: AlertRecord, change: Change) -> None:
        self.changes.append((alert, change))

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)

    def engine(self, store, clock, **config) -> AlertEngine:
        return AlertEngine(
            store,
            AlertsConfig(**config),
            on_change=self.on_change,
            notify=self.notify,
            clock=clock,
        )
