"""The queue between the hub's writer and its processor thread.

It is bounded twice: in writes, and in the readings those writes hold. The
second bound is the one that matters: one write may carry ten readings or
twenty thousand, so a bound in writes alone lets the processors fall minutes
behind (and the hub's memory grow by as much) before the writer feels it.
When either bound is reached, :meth:`Backlog.put` waits for room; a write
larger than the readings bound still goes in when the queue is empty, so
that nothing is too big to ever be processed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Full(Exception):
    """No room came within the wait."""


class Empty(Exception):
    """Nothing came within the wait."""


class Backlog(Generic[T]):
    """A FIFO bounded in items and in a weight (readings) per item.

    Args:
        max_items: items the queue holds at most.
        max_weight: total weight it holds at most (see the module docstring
            for an item heavier than this).

    Raises:
        ValueError: a bound under 1.
    """

    def __init__(self, max_items: int, max_weight: int) -> None:
        if max_items < 1 or max_weight < 1:
            raise ValueError(
                f"bounds must be at least 1: max_items={max_items!r} "
                f"max_weight={max_weight!r}"
            )
        self.max_items = max_items
        self.max_weight = max_weight
        self._items: deque[tuple[T, int]] = deque()
        self._weight = 0
        self._cond = threading.Condition()

    def _has_room(self, weight: int) -> bool:
        if not self._items:
            return True
        return (
            len(self._items) < self.max_items
            and self._weight + weight <= self.max_weight
        )

    def put(self, item: T, weight: int, timeout: float | None = None) -> None:
        """Append ``item``, waiting up to ``timeout`` seconds for room.

        Raises:
            Full: still no room after ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._has_room(weight):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Full
                self._cond.wait(left)
            self._items.append((item, weight))
            self._weight += weight
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> T:
        """Take the oldest item, waiting up to ``timeout`` seconds for one.

        Raises:
            Empty: nothing came within ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Empty
                self._cond.wait(left)
            item, weight = self._items.popleft()
            self._weight -= weight
            self._cond.notify_all()
            return item

    def qsize(self) -> int:
        """The items waiting."""
        with self._cond:
            return len(self._items)

    def weight(self) -> int:
        """The weight (readings) waiting."""
        with self._cond:
            return self._weight

    def empty(self) -> bool:
        """Whether nothing waits."""
        return self.qsize() == 0
