"""A live progress line for simulators: readings sent, rate, data time reached."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from protocol.validate import us_to_datetime

#: Redraws per second at most; updates in between are only remembered.
REFRESH_PER_S: Final = 5.0


class LiveProgress:
    """A rich progress bar, or nothing when disabled (tests, pipes).

    Use as a context manager and call :meth:`update` as often as wanted: it
    redraws at most :data:`REFRESH_PER_S` times a second.

    Args:
        label: what is running (``replay``, ``simulate``).
        total: readings expected, or None when unknown (a loop, a duration).
        enabled: draw the bar; when False every call is a no-op.
    """

    def __init__(self, label: str, total: int | None, enabled: bool = True) -> None:
        self.label = label
        self.total = total
        self.enabled = enabled
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> LiveProgress:
        self._started = time.monotonic()
        if not self.enabled:
            return self
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[data_time]}"),
            TimeElapsedColumn(),
            auto_refresh=False,
            # stderr, so that stdout holds only the final summary line.
            console=Console(stderr=True),
        )
        progress.start()
        self._task = progress.add_task(
            self.label, total=self.total, rate="", data_time=""
        )
        self._progress = progress
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.refresh()
            self._progress.stop()
            self._progress = None

    def rate(self, sent: int) -> float:
        """Readings per second achieved since the start."""
        elapsed = time.monotonic() - self._started
        return sent / elapsed if elapsed > 0 else 0.0

    def update(
        self, sent: int, data_us: int | None = None, force: bool = False
    ) -> None:
        """Show ``sent`` readings and the data time reached (epoch µs)."""
        if self._progress is None or self._task is None:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 1 / REFRESH_PER_S:
            return
        self._last_draw = now
        when = (
            us_to_datetime(data_us).strftime("data %Y-%m-%d %H:%M:%SZ")
            if data_us is not None
            else ""
        )
        self._progress.update(
            self._task,
            completed=sent,
            rate=f"{self.rate(sent):,.0f} readings/s",
            data_time=when,
        )
        self._progress.refresh()
