"""Rate limiting of repeated warnings, so that one broken device cannot flood a log.

A device with bad firmware sends the same bad payload every few seconds
(case C09): logging each one would bury everything else, logging none would
hide it. The first occurrence of a key is logged, then at most one per
interval, with the count of those suppressed in between. The edge agent and
the hub share this; it does no I/O of its own beyond the logger it is given.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

#: Keys remembered at most; keys come from devices (topics), so bound them.
MAX_KEYS = 4096


class WarningLimiter:
    """Decides which occurrences of a repeated warning are logged (thread-safe).

    Args:
        logger: where :meth:`warn` writes; None if only :meth:`allow` is used.
        interval_s: the shortest time between two warnings of one key.
        max_keys: keys remembered at most (the oldest are forgotten first).
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        interval_s: float = 60.0,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (time last logged, occurrences suppressed since)
        self._seen: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def allow(self, key: Hashable) -> int | None:
        """Record one occurrence of ``key``.

        Returns:
            None when this occurrence should not be logged; otherwise how many
            occurrences were suppressed since the key was last logged.
        """
        now = self._clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last[0] < self._interval_s:
                self._seen[key] = (last[0], last[1] + 1)
                return None
            self._seen[key] = (now, 0)
            self._seen.move_to_end(key)
            while len(self._seen) > self._max_keys:
                self._seen.popitem(last=False)
            return 0 if last is None else last[1]

    def warn(self, key: Hashable, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` at WARNING unless ``key`` was logged within the interval.

        Returns:
            Whether the warning was logged.

        Raises:
            ValueError: the limiter was made without a logger.
        """
        if self._logger is None:
            raise ValueError("WarningLimiter.warn needs a logger")
        suppressed = self.allow(key)
        if suppressed is None:
            return False
        # The template is the caller's constant, extended by a constant: still
        # lazy %-formatting, never a value pasted into the format string.
        template = f"{msg} suppressed=%d" if suppressed else msg
        extra = (suppressed,) if suppressed else ()
        self._logger.warning(template, *args, *extra)
        return True
