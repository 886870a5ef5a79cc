"""The shared warning limiter: first occurrence logged, repeats counted."""

from __future__ import annotations

import logging

from protocol.ratelimit import WarningLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_allow_logs_first_then_counts_suppressed_until_the_interval_passes():
    """allow() returns 0, then None within the interval, then the suppressed count."""
    clock = Clock()
    limiter = WarningLimiter(interval_s=10, clock=clock)
    got = [limiter.allow("k")]
    clock.now = 5
    got += [limiter.allow("k"), limiter.allow("k")]
    clock.now = 10
    got.append(limiter.allow("k"))
    assert got == [0, None, None, 2]


def test_keys_are_bounded_oldest_forgotten_first():
    """Past max_keys the oldest key is forgotten and logs again as new."""
    limiter = WarningLimiter(interval_s=10, max_keys=2, clock=Clock())
    assert [limiter.allow(k) for k in ("a", "b", "c", "a")] == [0, 0, 0, 0]
    assert limiter.allow("c") is None


def test_warn_writes_the_suppressed_count(caplog):
    """warn() logs at WARNING with the number of repeats it held back."""
    clock = Clock()
    limiter = WarningLimiter(logging.getLogger("t"), interval_s=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t"):
        logged = [limiter.warn("k", "bad topic=%s", "x") for _ in range(3)]
        clock.now = 11
        logged.append(limiter.warn("k", "bad topic=%s", "x"))
    assert logged == [True, False, False, True]
    assert [r.getMessage() for r in caplog.records] == [
        "bad topic=x",
        "bad topic=x suppressed=2",
    ]
