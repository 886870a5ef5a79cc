"""Hub settings for the tests that sign in: cheap hashes, short tokens."""

from __future__ import annotations

from typing import Any

from hub.config import HubSettings

#: Cheap argon2, so that a sign-in (and a user write) takes milliseconds.
FAST_PASSWORDS: dict[str, Any] = {"password_time_cost": 1, "password_memory_kib": 1024}


def with_access_ttl(settings: HubSettings, access_ttl_s: int) -> HubSettings:
    """``settings`` with access tokens of ``access_ttl_s``, under the 10 s floor.

    model_copy skips validation: the floor is for sites, not tests.
    """
    auth = settings.auth.model_copy(update={"access_ttl_s": access_ttl_s})
    return settings.model_copy(update={"auth": auth})
