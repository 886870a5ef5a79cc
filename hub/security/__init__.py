"""Authentication, authorisation, IP access control and the audit log.

Modules: :mod:`~hub.security.config` (settings), :mod:`~hub.security.roles`
(the role and scope table), :mod:`~hub.security.passwords` (argon2),
:mod:`~hub.security.tokens` (JWT access tokens), :mod:`~hub.security.store`
(what a store keeps), :mod:`~hub.security.throttle` (failed sign-ins),
:mod:`~hub.security.addresses` (client address, IP filter),
:mod:`~hub.security.audit` (batched audit log), :mod:`~hub.security.grants`
(the OAuth grants), :mod:`~hub.security.deps` (FastAPI dependencies) and
:mod:`~hub.security.setup` (wiring into the application).

The dependencies (``require``, ``current_actor``, ``Principal``) load on
first use: :mod:`hub.config` imports this package for its settings, and the
dependencies import the API, which imports :mod:`hub.config`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.security.config import AuthConfig
from hub.security.roles import ROLE_SCOPES, Role, Scope
from hub.security.store import AuthStore

if TYPE_CHECKING:
    from hub.security.deps import Principal, authenticate, current_actor, require

__all__ = [
    "ROLE_SCOPES",
    "AuthConfig",
    "AuthStore",
    "Principal",
    "Role",
    "Scope",
    "authenticate",
    "current_actor",
    "require",
]

_LAZY = {"Principal", "authenticate", "current_actor", "require"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from hub.security import deps

        return getattr(deps, name)
    raise AttributeError(f"module 'hub.security' has no attribute {name!r}")
