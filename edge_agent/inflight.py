"""The window of batches sent and awaiting the hub's ack.

At most ``size`` batches are out at once. A batch leaves the window only when
the hub's ack covers it (or the buffer dropped it by policy). It is sent again,
with the same bytes, when ``ack_timeout_s`` passes without that ack, and after
a reconnect: a batch whose PUBACK came back is published again at once (the
broker may have lost it in a restart, and only the hub's ack proves it
arrived), while one still awaiting its PUBACK is left to paho, which resends
its unacknowledged QoS 1 messages itself on reconnect; publishing it as well
would only double it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edge_agent.batcher import Batch


@dataclass(slots=True)
class _Entry:
    batch: Batch
    mid: int
    sent_at: float
    pubacked: bool = False
    sends: int = 1


class InflightWindow:
    """Batches out and awaiting the hub's ack, with their send times.

    Args:
        size: batches out at most.
        ack_timeout_s: a batch is due again this long after its last send.
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        size: int,
        ack_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.ack_timeout_s = ack_timeout_s
        self._clock = clock
        self._entries: dict[int, _Entry] = {}
        self._by_mid: dict[int, int] = {}
        self.resends = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, seq: object) -> bool:
        return seq in self._entries

    @property
    def free(self) -> int:
        """Batches that may still be sent before the window is full."""
        return max(0, self.size - len(self._entries))

    @property
    def late(self) -> int:
        """Backlog batches in the window."""
        return sum(1 for e in self._entries.values() if e.batch.late)

    @property
    def awaiting_puback(self) -> int:
        """Batches whose last publish the broker has not acknowledged yet."""
        return sum(1 for e in self._entries.values() if not e.pubacked)

    def seqs(self) -> list[int]:
        """The seqs in the window, in send order."""
        return list(self._entries)

    def sent(self, batch: Batch, mid: int) -> None:
        """Record a publish of ``batch`` (a first send or a resend) as ``mid``."""
        entry = self._entries.get(batch.seq)
        now = self._clock()
        if entry is None:
            self._entries[batch.seq] = _Entry(batch, mid, now)
        else:
            self._by_mid.pop(entry.mid, None)
            entry.mid, entry.sent_at, entry.pubacked = mid, now, False
            entry.sends += 1
            self.resends += 1
        self._by_mid[mid] = batch.seq

    def puback(self, mid: int) -> int | None:
        """Mark the publish ``mid`` as taken by the broker; return its seq."""
        seq = self._by_mid.pop(mid, None)
        if seq is not None:
            self._entries[seq].pubacked = True
        return seq

    def remove(self, seqs: Iterable[int]) -> list[Batch]:
        """Take acked (or dropped) batches out of the window; return them."""
        gone: list[Batch] = []
        for seq in seqs:
            entry = self._entries.pop(seq, None)
            if entry is not None:
                self._by_mid.pop(entry.mid, None)
                gone.append(entry.batch)
        return gone

    def due(self) -> list[Batch]:
        """Batches whose ack is overdue, oldest send first."""
        limit = self._clock() - self.ack_timeout_s
        return [e.batch for e in self._entries.values() if e.sent_at <= limit]

    def next_due_in(self) -> float | None:
        """Seconds until the next batch is due (None for an empty window)."""
        if not self._entries:
            return None
        first = min(e.sent_at for e in self._entries.values())
        return max(0.0, first + self.ack_timeout_s - self._clock())

    def reconnected(self) -> list[Batch]:
        """After a reconnect: the batches to publish again now.

        Those still awaiting a PUBACK are paho's to resend; their ack timer
        starts again from now.
        """
        now = self._clock()
        again: list[Batch] = []
        for entry in self._entries.values():
            if entry.pubacked:
                again.append(entry.batch)
            else:
                entry.sent_at = now
        return again
