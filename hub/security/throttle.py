"""Throttling of failed sign-ins, per user (or client) and per address.

Failures are kept in the store (``sign_in_failures``), so that every API
process sees them. Once a subject or an address has ``max`` failures within
``window_s``, the next attempt is refused without checking the password
(429 with ``Retry-After``) until ``lockout_s`` after the last failure; each
further failure doubles the lock-out, up to the window. A success clears the
user's failures, not the address's (a shared NAT address should not unlock
because one of its users remembered a password).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hub.security.config import AuthConfig
from hub.security.store import AuthStore

_US = 1_000_000


@dataclass(frozen=True, slots=True)
class Lockout:
    """A refused attempt: how long to wait and how many failures caused it."""

    retry_after_s: int
    failures: int
    by: str  # "subject" or "address"


def _lockout(
    times: list[int], max_failures: int, lockout_s: float, window_s: float, now: int
) -> int | None:
    """Microseconds still to wait, or None when an attempt may go ahead."""
    if len(times) < max_failures:
        return None
    extra = len(times) - max_failures
    wait_s = min(lockout_s * 2**extra, window_s)
    until = times[-1] + int(wait_s * _US)
    return until - now if until > now else None


class Throttle:
    """Decide whether a sign-in may be tried, and count failures.

    Args:
        store: where failures are kept.
        config: the throttle settings.
    """

    def __init__(self, store: AuthStore, config: AuthConfig) -> None:
        self._store = store
        self._config = config

    def check(self, subject: str | None, address: str, now_us: int) -> Lockout | None:
        """A lock-out of ``subject`` or ``address``, or None to go ahead."""
        c = self._config
        since = now_us - int(c.throttle_window_s * _US)
        keys: list[tuple[str, str | None, str | None, int]] = [
            ("address", None, address, c.throttle_max_failures_address)
        ]
        if subject is not None:
            keys.insert(0, ("subject", subject, None, c.throttle_max_failures))
        for by, subj, addr, limit in keys:
            times = self._store.sign_in_failures(subj, addr, since)
            wait = _lockout(
                times, limit, c.throttle_lockout_s, c.throttle_window_s, now_us
            )
            if wait is not None:
                return Lockout(max(1, math.ceil(wait / _US)), len(times), by)
        return None

    def failed(self, subject: str | None, address: str, now_us: int) -> dict[str, int]:
        """Count a failure; the failures now in the window, for the audit."""
        self._store.record_sign_in_failure(subject, address, now_us)
        since = now_us - int(self._config.throttle_window_s * _US)
        counts = {
            "failures_address": len(self._store.sign_in_failures(None, address, since))
        }
        if subject is not None:
            counts["failures_subject"] = len(
                self._store.sign_in_failures(subject, None, since)
            )
        return counts

    def succeeded(self, subject: str) -> None:
        """Forget the subject's failures."""
        self._store.clear_sign_in_failures(subject)
