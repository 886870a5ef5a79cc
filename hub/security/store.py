"""What authentication needs from a store: :class:`AuthStore`.

Both stores implement it as a mixin (``hub/storage/_sqlite_auth.py``,
``hub/storage/_timescale_auth.py``) over the tables of migration 0006.
Times are epoch microseconds (UTC), as everywhere at the storage interface.

Refresh tokens are stored as their SHA-256 only, each in a *family*: the
tokens that one sign-in produced by rotation. :meth:`AuthStore.rotate_refresh`
spends a token and stores its successor in one transaction; a token spent
before (a copy used by someone else, RFC 6819 section 5.2.2.3) revokes the
whole family, so that neither the thief nor the owner can go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from hub.security.config import Network
from hub.security.roles import Role


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A person who signs in with a password."""

    name: str
    role: Role
    password_hash: str
    disabled: bool = False
    created_us: int = 0
    updated_us: int = 0


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A system that signs in with client credentials."""

    id: str
    secret_hash: str
    roles: tuple[Role, ...] = (Role.INTEGRATION,)
    name: str = ""
    allow_networks: tuple[Network, ...] = ()
    deny_networks: tuple[Network, ...] = ()
    disabled: bool = False
    created_us: int = 0
    updated_us: int = 0


@dataclass(frozen=True, slots=True)
class TokenFamily:
    """One sign-in: the user, the client and the scope its tokens carry."""

    id: str
    subject: str
    scope: str
    client: str | None
    created_us: int
    revoked_us: int | None = None
    revoked_reason: str | None = None


class RotateOutcome(StrEnum):
    """What spending a refresh token did."""

    ROTATED = "rotated"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    #: The token had been spent before: the family is now revoked.
    REUSED = "reused"


@dataclass(frozen=True, slots=True)
class RotateResult:
    """The outcome of :meth:`AuthStore.rotate_refresh` and the family."""

    outcome: RotateOutcome
    family: TokenFamily | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of the audit log: a request, or a security event.

    ``kind`` is ``request`` for every HTTP request, or an event such as
    ``sign_in_failed``, ``sign_in_throttled`` or ``refresh_reused``.
    ``detail`` never holds a secret (the audit tests check it).
    """

    time_us: int
    kind: str
    request_id: str
    actor: str | None = None
    role: str | None = None
    client: str | None = None
    address: str | None = None
    method: str | None = None
    path: str | None = None
    query: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    #: Set by the store when read back.
    id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of the audit log; None means any."""

    actor: str | None = None
    kind: str | None = None
    path_prefix: str | None = None
    status: int | None = None
    from_us: int | None = None
    to_us: int | None = None
    #: Only records after this (time_us, id), for cursor paging.
    after: tuple[int, int] | None = None


class AuthStore(Protocol):
    """Users, clients, refresh tokens, sign-in failures and the audit log."""

    # -- users ------------------------------------------------------------

    def create_user(self, user: UserRecord) -> bool:
        """Store a new user; False if the name is taken."""
        ...

    def get_user(self, name: str) -> UserRecord | None:
        """One user, or None."""
        ...

    def list_users(self) -> list[UserRecord]:
        """Every user, ordered by name."""
        ...

    def update_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> UserRecord | None:
        """Change the fields given; None if there is no such user."""
        ...

    def delete_user(self, name: str) -> bool:
        """Delete a user; whether it existed."""
        ...

    # -- clients ----------------------------------------------------------

    def create_client(self, client: ClientRecord) -> bool:
        """Store a new client; False if the id is taken."""
        ...

    def get_client(self, client_id: str) -> ClientRecord | None:
        """One client, or None."""
        ...

    def list_clients(self) -> list[ClientRecord]:
        """Every client, ordered by id."""
        ...

    def replace_client(self, client: ClientRecord) -> bool:
        """Overwrite a client's fields; False if there is no such client."""
        ...

    def delete_client(self, client_id: str) -> bool:
        """Delete a client; whether it existed."""
        ...

    # -- refresh tokens ---------------------------------------------------

    def create_family(
        self, family: TokenFamily, token_hash: str, expires_us: int
    ) -> None:
        """Start a family with its first refresh token."""
        ...

    def rotate_refresh(
        self, token_hash: str, new_hash: str, expires_us: int, now_us: int
    ) -> RotateResult:
        """Spend a refresh token and store its successor, in one transaction.

        A token spent before revokes its family (reason ``reuse``).
        """
        ...

    def family_of(self, token_hash: str) -> TokenFamily | None:
        """The family of a refresh token, whatever its state, or None."""
        ...

    def get_family(self, family_id: str) -> TokenFamily | None:
        """One family, or None."""
        ...

    def revoke_family(self, family_id: str, reason: str, now_us: int) -> bool:
        """Revoke a family; False if unknown or revoked before."""
        ...

    def revoke_subject(self, subject: str, reason: str, now_us: int) -> int:
        """Revoke every family of a user or client; how many."""
        ...

    # -- sign-in failures -------------------------------------------------

    def record_sign_in_failure(
        self, subject: str | None, address: str, at_us: int
    ) -> None:
        """Keep one failed sign-in (subject None: no name was given)."""
        ...

    def sign_in_failures(
        self, subject: str | None, address: str | None, since_us: int
    ) -> list[int]:
        """Times of the failures since ``since_us`` of a subject or an address.

        Exactly one of ``subject`` and ``address`` is given.
        """
        ...

    def clear_sign_in_failures(self, subject: str) -> None:
        """Forget a subject's failures; they still count for their address."""
        ...

    # -- audit ------------------------------------------------------------

    def record_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append audit records in one transaction."""
        ...

    def list_audit(self, query: AuditQuery, limit: int) -> list[AuditRecord]:
        """Audit records matching ``query``, oldest first, at most ``limit``."""
        ...
