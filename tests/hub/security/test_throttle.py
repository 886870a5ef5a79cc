"""Throttling of failed sign-ins over a real store."""

from __future__ import annotations

from hub.security.config import AuthConfig
from hub.security.throttle import Throttle

S = 1_000_000
CONFIG = AuthConfig(
    throttle_max_failures=3,
    throttle_max_failures_address=5,
    throttle_window_s=600,
    throttle_lockout_s=10,
)


def test_below_limit_goes_ahead(store):
    """Two failures of three allowed: no lock-out."""
    throttle = Throttle(store, CONFIG)
    for i in range(2):
        throttle.failed("ada", "127.0.0.2", 1000 * S + i * S)

    assert throttle.check("ada", "127.0.0.2", 1002 * S) is None


def test_limit_locks_out_then_backs_off(store):
    """At the limit: locked for lockout_s after the last failure, then doubled."""
    throttle = Throttle(store, CONFIG)
    for i in range(3):
        counts = throttle.failed("ada", "127.0.0.2", 1000 * S + i * S)

    lock = throttle.check("ada", "127.0.0.2", 1003 * S)
    assert counts == {"failures_subject": 3, "failures_address": 3}
    assert (lock.by, lock.failures, lock.retry_after_s) == ("subject", 3, 9)
    assert throttle.check("ada", "127.0.0.2", 1012 * S) is None

    throttle.failed("ada", "127.0.0.2", 1012 * S)  # one more: 20 s now
    assert throttle.check("ada", "127.0.0.2", 1031 * S).retry_after_s == 1
    assert throttle.check("ada", "127.0.0.2", 1032 * S) is None


def test_address_limit_across_users(store):
    """Five failures from one address with different names lock the address."""
    throttle = Throttle(store, CONFIG)
    for i in range(5):
        throttle.failed(f"user{i}", "127.0.0.3", 1000 * S + i)

    lock = throttle.check("someone-else", "127.0.0.3", 1001 * S)
    assert (lock.by, lock.failures) == ("address", 5)
    assert throttle.check("someone-else", "127.0.0.4", 1001 * S) is None


def test_success_clears_subject_not_address(store):
    """A success forgets the user's failures; the address keeps its count."""
    throttle = Throttle(store, CONFIG)
    for i in range(3):
        throttle.failed("ada", "127.0.0.2", 1000 * S + i)

    throttle.succeeded("ada")

    assert throttle.check("ada", "127.0.0.2", 1001 * S) is None
    assert store.sign_in_failures(None, "127.0.0.2", 0) != []


def test_old_failures_leave_the_window(store):
    """Failures older than the window do not count."""
    throttle = Throttle(store, CONFIG)
    for i in range(3):
        throttle.failed("ada", "127.0.0.2", 1000 * S + i)

    assert throttle.check("ada", "127.0.0.2", 1601 * S) is None
