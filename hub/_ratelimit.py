"""Rate limiting of repeated warnings, so that one broken device cannot flood the log.

A device with bad firmware sends the same bad payload every few seconds
(case C09); logging each one would bury everything else, and logging none
would hide it. The first occurrence of a key is logged, then at most one per
interval with the count of those suppressed in between.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from hub import const


class WarningLimiter:
    """Decides which occurrences of a repeated warning are logged."""

    def __init__(
        self,
        interval_s: float = const.WARNING_INTERVAL_S,
        max_keys: int = const.WARNING_KEYS_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
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
            # Topics are chosen by devices: bound the memory they can take.
            while len(self._seen) > self._max_keys:
                self._seen.popitem(last=False)
            return 0 if last is None else last[1]
