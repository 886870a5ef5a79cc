"""The ingest pipeline's counters: plain integers behind one lock.

The MQTT network thread (messages, shed, bad topics) and the writer thread
(everything else) both count, so every update takes the lock; updates happen
once per message or per write, never per reading, so the lock costs nothing
measurable.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TypedDict

from hub.storage.base import WriteResult
from protocol.validate import now_us


class StoreWriteFigures(TypedDict):
    """Durations of the store writes, in seconds."""

    last: float
    avg: float
    count: int


class MetricsSnapshot(TypedDict):
    """The counters at one instant, as /healthz and the INFO line show them."""

    messages: int
    readings_received: int
    readings_new: int
    duplicates: int
    duplicate_batches: int
    rejects: dict[str, int]
    notices: dict[str, int]
    dead_letters: int
    shed: dict[str, int]
    ignored: int
    store_write_seconds: StoreWriteFigures
    store_errors: int
    queue_depth: int
    acks_published: int
    lag_s: float | None


class IngestMetrics:
    """Counters of one hub process since it started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Set by the pipeline: how many messages wait in its queue.
        self.queue_depth: Callable[[], int] = lambda: 0

        # Message flow.
        self.messages = 0
        self.ignored = 0
        self.shed: Counter[str] = Counter()
        self.dead_letters = 0
        self.rejects: Counter[str] = Counter()
        self.notices: Counter[str] = Counter()

        # What the store did.
        self.readings_received = 0
        self.readings_new = 0
        self.duplicates = 0
        self.duplicate_batches = 0
        self.acks_published = 0
        self.store_errors = 0
        self._writes = 0
        self._write_last_s = 0.0
        self._write_total_s = 0.0
        self._newest_us: int | None = None

    def count_message(self) -> None:
        """One message arrived from the broker."""
        with self._lock:
            self.messages += 1

    def count_ignored(self) -> None:
        """One message was on no data topic (e.g. Tasmota's LWT) and was skipped."""
        with self._lock:
            self.ignored += 1

    def count_shed(self, kind: str) -> None:
        """One message of ``kind`` was dropped because the queue stayed full."""
        with self._lock:
            self.shed[kind] += 1

    def count_rejects(self, reasons: Counter[str]) -> None:
        """Rejected readings, fields or messages, by reason."""
        with self._lock:
            # Plain str keys: reasons may be StrEnum members, which orjson
            # refuses as dict keys when the status file is written.
            self.rejects.update({str(k): n for k, n in reasons.items()})

    def count_dead_letters(self, n: int) -> None:
        """Messages rejected whole and kept as dead letters."""
        with self._lock:
            self.dead_letters += n

    def count_store_error(self) -> None:
        """One store call failed (the group is retried)."""
        with self._lock:
            self.store_errors += 1

    def count_acks(self, n: int) -> None:
        """Batch acks published to gateways."""
        with self._lock:
            self.acks_published += n

    def record_write(
        self,
        seconds: float,
        result: WriteResult,
        received: int,
        notices: Counter[str],
    ) -> None:
        """Count one committed store write.

        Args:
            seconds: how long the write took.
            result: what the store committed.
            received: readings that passed validation in the write.
            notices: notices of the write's messages.
        """
        newest = max((max(b.ts_us) for b in result.new if b.ts_us), default=None)
        with self._lock:
            self._writes += 1
            self._write_last_s = seconds
            self._write_total_s += seconds
            self.readings_received += received
            self.readings_new += result.inserted
            self.duplicates += result.duplicates
            self.duplicate_batches += len(result.duplicate_batches)
            self.notices.update({str(k): n for k, n in notices.items()})
            if newest is not None and (
                self._newest_us is None or newest > self._newest_us
            ):
                self._newest_us = newest

    def snapshot(self) -> MetricsSnapshot:
        """The counters now; ``lag_s`` is now minus the newest reading committed."""
        with self._lock:
            avg = self._write_total_s / self._writes if self._writes else 0.0
            lag = (now_us() - self._newest_us) / 1e6 if self._newest_us else None
            return MetricsSnapshot(
                messages=self.messages,
                readings_received=self.readings_received,
                readings_new=self.readings_new,
                duplicates=self.duplicates,
                duplicate_batches=self.duplicate_batches,
                rejects=dict(self.rejects),
                notices=dict(self.notices),
                dead_letters=self.dead_letters,
                shed=dict(self.shed),
                ignored=self.ignored,
                store_write_seconds=StoreWriteFigures(
                    last=round(self._write_last_s, 6),
                    avg=round(avg, 6),
                    count=self._writes,
                ),
                store_errors=self.store_errors,
                queue_depth=self.queue_depth(),
                acks_published=self.acks_published,
                lag_s=None if lag is None else round(lag, 3),
            )
