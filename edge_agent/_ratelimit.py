"""Warnings about bad input, at most one per kind and interval.

One bad sensor publishing ten times a second must not flood the log, but the
operator must still learn what is dropped and how often: the first warning of
a kind is logged, the repeats within the interval are counted, and the next
warning says how many were suppressed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edge_agent.const import WARNING_INTERVAL_S


class WarningLimiter:
    """Log a WARNING per key at most once per interval (thread-safe).

    Args:
        logger: the module logger to write to.
        interval_s: the shortest time between two warnings of one key.
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = WARNING_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, key: str, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` unless ``key`` was logged within the interval.

        Returns:
            Whether the warning was logged.
        """
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            template = msg + " suppressed=%d"
            self._logger.warning(template, *args, suppressed)
        else:
            self._logger.warning(msg, *args)
        return True
