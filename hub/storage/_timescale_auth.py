"""The :class:`hub.security.store.AuthStore` part of the TimescaleDB store.

A mixin of :class:`hub.storage.timescale.TimescaleStore`, which supplies the
connection pool and ``_transaction``; tables of migration 0006. Client
addresses are text, since a peer on a Unix socket (or a test transport) has
no IP address; client networks are ``cidr[]``, which psycopg maps to
:mod:`ipaddress` objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from hub.security.roles import Role
from hub.security.store import (
    AuditQuery,
    AuditRecord,
    ClientRecord,
    RotateOutcome,
    RotateResult,
    TokenFamily,
    UserRecord,
)
from hub.storage._auth_common import AUDIT_COLUMNS as _AUDIT_COLUMNS
from hub.storage._auth_common import CLIENT_COLUMNS as _CLIENT_COLUMNS
from hub.storage._auth_common import FAMILY_COLUMNS as _FAMILY_COLUMNS
from hub.storage._auth_common import USER_COLUMNS as _USER_COLUMNS
from hub.storage._common import dt_to_us, opt_dt_to_us, us_to_dt

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

Conn = psycopg.Connection[tuple[Any, ...]]


class TimescaleAuthMixin:
    """Users, clients, refresh tokens, sign-in failures and audit in PostgreSQL."""

    if TYPE_CHECKING:
        _pool: ConnectionPool[Conn]

        def _transaction(self) -> AbstractContextManager[Conn]: ...

    def _auth_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    # -- users ------------------------------------------------------------

    def create_user(self, user: UserRecord) -> bool:
        """Store a new user; False if the name is taken."""
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO users (name, role, password_hash, disabled)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING 1",
                [user.name, str(user.role), user.password_hash, user.disabled],
            ).fetchone()
        return row is not None

    def get_user(self, name: str) -> UserRecord | None:
        """One user, or None."""
        rows = self._auth_rows(
            f"SELECT {_USER_COLUMNS} FROM users WHERE name = %s", [name]
        )
        return _user(rows[0]) if rows else None

    def list_users(self) -> list[UserRecord]:
        """Every user, ordered by name."""
        rows = self._auth_rows(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")
        return [_user(r) for r in rows]

    def update_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> UserRecord | None:
        """Change the fields given; None if there is no such user."""
        with self._transaction() as conn:
            row = conn.execute(
                "UPDATE users SET role = coalesce(%s, role),"
                " password_hash = coalesce(%s, password_hash),"
                " disabled = coalesce(%s, disabled), updated_at = now()"
                f" WHERE name = %s RETURNING {_USER_COLUMNS}",
                [None if role is None else str(role), password_hash, disabled, name],
            ).fetchone()
        return None if row is None else _user(row)

    def delete_user(self, name: str) -> bool:
        """Delete a user; whether it existed."""
        with self._transaction() as conn:
            return (
                conn.execute("DELETE FROM users WHERE name = %s", [name]).rowcount > 0
            )

    # -- clients ----------------------------------------------------------

    def create_client(self, client: ClientRecord) -> bool:
        """Store a new client; False if the id is taken."""
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO clients (id, secret_hash, roles, name, allow_networks,"
                " deny_networks, disabled) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING RETURNING 1",
                _client_values(client),
            ).fetchone()
        return row is not None

    def get_client(self, client_id: str) -> ClientRecord | None:
        """One client, or None."""
        rows = self._auth_rows(
            f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE id = %s", [client_id]
        )
        return _client(rows[0]) if rows else None

    def list_clients(self) -> list[ClientRecord]:
        """Every client, ordered by id."""
        rows = self._auth_rows(f"SELECT {_CLIENT_COLUMNS} FROM clients ORDER BY id")
        return [_client(r) for r in rows]

    def replace_client(self, client: ClientRecord) -> bool:
        """Overwrite a client's fields; False if there is no such client."""
        cid, *values = _client_values(client)
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE clients SET secret_hash = %s, roles = %s, name = %s,"
                " allow_networks = %s, deny_networks = %s, disabled = %s,"
                " updated_at = now() WHERE id = %s",
                [*values, cid],
            )
            return cur.rowcount > 0

    def delete_client(self, client_id: str) -> bool:
        """Delete a client; whether it existed."""
        with self._transaction() as conn:
            cur = conn.execute("DELETE FROM clients WHERE id = %s", [client_id])
            return cur.rowcount > 0

    # -- refresh tokens ---------------------------------------------------

    def create_family(
        self, family: TokenFamily, token_hash: str, expires_us: int
    ) -> None:
        """Start a family with its first refresh token."""
        created = us_to_dt(family.created_us)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO token_families (id, subject, scope, client, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                [family.id, family.subject, family.scope, family.client, created],
            )
            conn.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, issued_at,"
                " expires_at) VALUES (%s, %s, %s, %s)",
                [token_hash, family.id, created, us_to_dt(expires_us)],
            )

    def rotate_refresh(
        self, token_hash: str, new_hash: str, expires_us: int, now_us: int
    ) -> RotateResult:
        """Spend a refresh token and store its successor, in one transaction.

        ``FOR UPDATE`` makes two uses of one token at once take turns: the
        second sees the first's ``used_at`` and revokes the family.
        """
        now = us_to_dt(now_us)
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT family_id, expires_at, used_at FROM refresh_tokens"
                " WHERE token_hash = %s FOR UPDATE",
                [token_hash],
            ).fetchone()
            if row is None:
                return RotateResult(RotateOutcome.UNKNOWN)
            family_id, expires_at, used_at = row
            family = _family_in(conn, family_id)
            if family is None or family.revoked_us is not None:
                return RotateResult(RotateOutcome.REVOKED, family)
            if used_at is not None:
                _revoke_in(conn, family_id, "reuse", now_us)
                return RotateResult(RotateOutcome.REUSED, _family_in(conn, family_id))
            if dt_to_us(expires_at) <= now_us:
                return RotateResult(RotateOutcome.EXPIRED, family)
            conn.execute(
                "UPDATE refresh_tokens SET used_at = %s WHERE token_hash = %s",
                [now, token_hash],
            )
            conn.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, issued_at,"
                " expires_at) VALUES (%s, %s, %s, %s)",
                [new_hash, family_id, now, us_to_dt(expires_us)],
            )
        return RotateResult(RotateOutcome.ROTATED, family)

    def family_of(self, token_hash: str) -> TokenFamily | None:
        """The family of a refresh token, whatever its state, or None."""
        rows = self._auth_rows(
            f"SELECT {_qualified('f')} FROM refresh_tokens t"
            " JOIN token_families f ON f.id = t.family_id WHERE t.token_hash = %s",
            [token_hash],
        )
        return _family(rows[0]) if rows else None

    def get_family(self, family_id: str) -> TokenFamily | None:
        """One family, or None."""
        rows = self._auth_rows(
            f"SELECT {_FAMILY_COLUMNS} FROM token_families WHERE id = %s", [family_id]
        )
        return _family(rows[0]) if rows else None

    def revoke_family(self, family_id: str, reason: str, now_us: int) -> bool:
        """Revoke a family; False if unknown or revoked before."""
        with self._transaction() as conn:
            return _revoke_in(conn, family_id, reason, now_us)

    def revoke_subject(self, subject: str, reason: str, now_us: int) -> int:
        """Revoke every family of a user or client; how many."""
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE token_families SET revoked_at = %s, revoked_reason = %s"
                " WHERE subject = %s AND revoked_at IS NULL",
                [us_to_dt(now_us), reason, subject],
            )
            return cur.rowcount

    # -- sign-in failures -------------------------------------------------

    def record_sign_in_failure(
        self, subject: str | None, address: str, at_us: int
    ) -> None:
        """Keep one failed sign-in (subject None: no name was given)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO sign_in_failures (subject, address, at)"
                " VALUES (%s, %s, %s)",
                [subject, address, us_to_dt(at_us)],
            )

    def sign_in_failures(
        self, subject: str | None, address: str | None, since_us: int
    ) -> list[int]:
        """Times of the failures since ``since_us`` of a subject or an address."""
        if subject is not None:
            sql = "SELECT at FROM sign_in_failures WHERE subject = %s AND at >= %s"
            value: str | None = subject
        else:
            sql = "SELECT at FROM sign_in_failures WHERE address = %s AND at >= %s"
            value = address
        rows = self._auth_rows(sql + " ORDER BY at", [value, us_to_dt(since_us)])
        return [dt_to_us(r[0]) for r in rows]

    def clear_sign_in_failures(self, subject: str) -> None:
        """Forget a subject's failures; they still count for their address."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE sign_in_failures SET subject = NULL WHERE subject = %s",
                [subject],
            )

    # -- audit ------------------------------------------------------------

    def record_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append audit records in one transaction (one COPY)."""
        if not records:
            return
        with (
            self._transaction() as conn,
            conn.cursor() as cur,
            cur.copy(
                "COPY audit_log (time, kind, request_id, actor, role, client,"
                " address, method, path, query, status, duration_ms, detail)"
                " FROM STDIN"
            ) as copy,
        ):
            for r in records:
                copy.write_row(
                    (
                        us_to_dt(r.time_us),
                        r.kind,
                        r.request_id,
                        r.actor,
                        r.role,
                        r.client,
                        r.address,
                        r.method,
                        r.path,
                        r.query,
                        r.status,
                        r.duration_ms,
                        Jsonb(r.detail),
                    )
                )

    def list_audit(self, query: AuditQuery, limit: int) -> list[AuditRecord]:
        """Audit records matching ``query``, oldest first, at most ``limit``."""
        where, params = _audit_where(query)
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._auth_rows(sql + " ORDER BY time, id LIMIT %s", [*params, limit])
        return [_audit(r) for r in rows]


def _audit_where(query: AuditQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("actor = %s", query.actor),
        ("kind = %s", query.kind),
        ("status = %s", query.status),
        ("time >= %s", None if query.from_us is None else us_to_dt(query.from_us)),
        ("time < %s", None if query.to_us is None else us_to_dt(query.to_us)),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    if query.path_prefix is not None:
        # starts_with, not LIKE: a path may hold % and _.
        where.append("starts_with(path, %s)")
        params.append(query.path_prefix)
    if query.after is not None:
        where.append("(time, id) > (%s, %s)")
        params += [us_to_dt(query.after[0]), query.after[1]]
    return where, params


def _qualified(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in _FAMILY_COLUMNS.split(","))


def _family(row: tuple[Any, ...]) -> TokenFamily:
    fid, subject, scope, client, created, revoked, reason = row
    return TokenFamily(
        fid, subject, scope, client, dt_to_us(created), opt_dt_to_us(revoked), reason
    )


def _family_in(conn: Conn, family_id: str) -> TokenFamily | None:
    row = conn.execute(
        f"SELECT {_FAMILY_COLUMNS} FROM token_families WHERE id = %s", [family_id]
    ).fetchone()
    return None if row is None else _family(row)


def _revoke_in(conn: Conn, family_id: str, reason: str, at_us: int) -> bool:
    cur = conn.execute(
        "UPDATE token_families SET revoked_at = %s, revoked_reason = %s"
        " WHERE id = %s AND revoked_at IS NULL",
        [us_to_dt(at_us), reason, family_id],
    )
    return cur.rowcount > 0


def _user(row: tuple[Any, ...]) -> UserRecord:
    name, role, password_hash, disabled, created, updated = row
    return UserRecord(
        name, Role(role), password_hash, disabled, dt_to_us(created), dt_to_us(updated)
    )


def _client_values(c: ClientRecord) -> list[Any]:
    return [
        c.id,
        c.secret_hash,
        [str(r) for r in c.roles],
        c.name,
        list(c.allow_networks),
        list(c.deny_networks),
        c.disabled,
    ]


def _client(row: tuple[Any, ...]) -> ClientRecord:
    cid, secret_hash, roles, name, allow, deny, disabled, created, updated = row
    return ClientRecord(
        id=cid,
        secret_hash=secret_hash,
        roles=tuple(Role(r) for r in roles),
        name=name,
        allow_networks=tuple(allow),
        deny_networks=tuple(deny),
        disabled=disabled,
        created_us=dt_to_us(created),
        updated_us=dt_to_us(updated),
    )


def _audit(row: tuple[Any, ...]) -> AuditRecord:
    time, kind, request_id, actor, role, client, address, *rest = row
    method, path, query, status, duration_ms, detail, rid = rest
    return AuditRecord(
        dt_to_us(time),
        kind,
        request_id,
        actor,
        role,
        client,
        _address(address),
        method,
        path,
        query,
        status,
        duration_ms,
        detail,
        rid,
    )


def _address(value: IPv4Address | IPv6Address | str | None) -> str | None:
    return None if value is None else str(value)
