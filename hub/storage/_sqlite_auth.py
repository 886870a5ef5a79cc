"""The :class:`hub.security.store.AuthStore` part of the SQLite store.

A mixin of :class:`hub.storage.sqlite.SQLiteStore`, which supplies the
connection, its lock and ``_transaction``; tables of migration 0006.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from ipaddress import ip_network
from typing import TYPE_CHECKING, Any

import orjson

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
from protocol.validate import now_us


class SQLiteAuthMixin:
    """Users, clients, refresh tokens, sign-in failures and audit in SQLite."""

    if TYPE_CHECKING:
        _conn: sqlite3.Connection
        _lock: threading.RLock

        def _transaction(self) -> AbstractContextManager[sqlite3.Cursor]: ...

        def _query(
            self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
        ) -> list[Any]: ...

    # -- users ------------------------------------------------------------

    def create_user(self, user: UserRecord) -> bool:
        """Store a new user; False if the name is taken."""
        at = now_us()
        with self._transaction() as cur:
            row = cur.execute(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING RETURNING 1",
                (user.name, str(user.role), user.password_hash, user.disabled, at, at),
            ).fetchone()
        return row is not None

    def get_user(self, name: str) -> UserRecord | None:
        """One user, or None."""
        rows = self._query(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (name,))
        return _user(rows[0]) if rows else None

    def list_users(self) -> list[UserRecord]:
        """Every user, ordered by name."""
        rows = self._query(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")
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
        with self._transaction() as cur:
            cur.execute(
                "UPDATE users SET role = coalesce(?, role),"
                " password_hash = coalesce(?, password_hash),"
                " disabled = coalesce(?, disabled), updated_at = ? WHERE name = ?",
                (
                    None if role is None else str(role),
                    password_hash,
                    disabled,
                    now_us(),
                    name,
                ),
            )
        return self.get_user(name)

    def delete_user(self, name: str) -> bool:
        """Delete a user; whether it existed."""
        with self._transaction() as cur:
            cur.execute("DELETE FROM users WHERE name = ?", (name,))
            return cur.rowcount > 0

    # -- clients ----------------------------------------------------------

    def create_client(self, client: ClientRecord) -> bool:
        """Store a new client; False if the id is taken."""
        at = now_us()
        with self._transaction() as cur:
            row = cur.execute(
                f"INSERT INTO clients ({_CLIENT_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING RETURNING 1",
                (*_client_values(client), at, at),
            ).fetchone()
        return row is not None

    def get_client(self, client_id: str) -> ClientRecord | None:
        """One client, or None."""
        rows = self._query(
            f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE id = ?", (client_id,)
        )
        return _client(rows[0]) if rows else None

    def list_clients(self) -> list[ClientRecord]:
        """Every client, ordered by id."""
        rows = self._query(f"SELECT {_CLIENT_COLUMNS} FROM clients ORDER BY id")
        return [_client(r) for r in rows]

    def replace_client(self, client: ClientRecord) -> bool:
        """Overwrite a client's fields; False if there is no such client."""
        values = _client_values(client)
        with self._transaction() as cur:
            cur.execute(
                "UPDATE clients SET secret_hash = ?, roles = ?, name = ?,"
                " allow_networks = ?, deny_networks = ?, disabled = ?,"
                " updated_at = ? WHERE id = ?",
                (*values[1:], now_us(), client.id),
            )
            return cur.rowcount > 0

    def delete_client(self, client_id: str) -> bool:
        """Delete a client; whether it existed."""
        with self._transaction() as cur:
            cur.execute("DELETE FROM clients WHERE id = ?", (client_id,))
            return cur.rowcount > 0

    # -- refresh tokens ---------------------------------------------------

    def create_family(
        self, family: TokenFamily, token_hash: str, expires_us: int
    ) -> None:
        """Start a family with its first refresh token."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO token_families (id, subject, scope, client, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    family.id,
                    family.subject,
                    family.scope,
                    family.client,
                    family.created_us,
                ),
            )
            cur.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, issued_at,"
                " expires_at) VALUES (?, ?, ?, ?)",
                (token_hash, family.id, family.created_us, expires_us),
            )

    def rotate_refresh(
        self, token_hash: str, new_hash: str, expires_us: int, now_us: int
    ) -> RotateResult:
        """Spend a refresh token and store its successor, in one transaction.

        A token spent before revokes its family (reason ``reuse``).
        """
        with self._transaction() as cur:
            row = cur.execute(
                "SELECT family_id, expires_at, used_at FROM refresh_tokens"
                " WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()
            if row is None:
                return RotateResult(RotateOutcome.UNKNOWN)
            family_id, expires_at, used_at = row
            family = _family_in(cur, family_id)
            if family is None or family.revoked_us is not None:
                return RotateResult(RotateOutcome.REVOKED, family)
            if used_at is not None:
                _revoke_in(cur, family_id, "reuse", now_us)
                return RotateResult(RotateOutcome.REUSED, _family_in(cur, family_id))
            if expires_at <= now_us:
                return RotateResult(RotateOutcome.EXPIRED, family)
            cur.execute(
                "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?",
                (now_us, token_hash),
            )
            cur.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, issued_at,"
                " expires_at) VALUES (?, ?, ?, ?)",
                (new_hash, family_id, now_us, expires_us),
            )
        return RotateResult(RotateOutcome.ROTATED, family)

    def family_of(self, token_hash: str) -> TokenFamily | None:
        """The family of a refresh token, whatever its state, or None."""
        rows = self._query(
            "SELECT family_id FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
        )
        return self.get_family(rows[0][0]) if rows else None

    def get_family(self, family_id: str) -> TokenFamily | None:
        """One family, or None."""
        rows = self._query(
            f"SELECT {_FAMILY_COLUMNS} FROM token_families WHERE id = ?",
            (family_id,),
        )
        return TokenFamily(*rows[0]) if rows else None

    def revoke_family(self, family_id: str, reason: str, now_us: int) -> bool:
        """Revoke a family; False if unknown or revoked before."""
        with self._transaction() as cur:
            return _revoke_in(cur, family_id, reason, now_us)

    def revoke_subject(self, subject: str, reason: str, now_us: int) -> int:
        """Revoke every family of a user or client; how many."""
        with self._transaction() as cur:
            cur.execute(
                "UPDATE token_families SET revoked_at = ?, revoked_reason = ?"
                " WHERE subject = ? AND revoked_at IS NULL",
                (now_us, reason, subject),
            )
            return cur.rowcount

    # -- sign-in failures -------------------------------------------------

    def record_sign_in_failure(
        self, subject: str | None, address: str, at_us: int
    ) -> None:
        """Keep one failed sign-in (subject None: no name was given)."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO sign_in_failures (subject, address, at) VALUES (?, ?, ?)",
                (subject, address, at_us),
            )

    def sign_in_failures(
        self, subject: str | None, address: str | None, since_us: int
    ) -> list[int]:
        """Times of the failures since ``since_us`` of a subject or an address."""
        column, value = (
            ("subject", subject)
            if subject is not None
            else (
                "address",
                address,
            )
        )
        rows = self._query(
            f"SELECT at FROM sign_in_failures WHERE {column} = ? AND at >= ?"
            " ORDER BY at",
            (value, since_us),
        )
        return [r[0] for r in rows]

    def clear_sign_in_failures(self, subject: str) -> None:
        """Forget a subject's failures; they still count for their address."""
        with self._transaction() as cur:
            cur.execute(
                "UPDATE sign_in_failures SET subject = NULL WHERE subject = ?",
                (subject,),
            )

    # -- audit ------------------------------------------------------------

    def record_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append audit records in one transaction."""
        if not records:
            return
        with self._transaction() as cur:
            cur.executemany(
                "INSERT INTO audit_log (time, kind, request_id, actor, role, client,"
                " address, method, path, query, status, duration_ms, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.time_us,
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
                        orjson.dumps(r.detail).decode(),
                    )
                    for r in records
                ],
            )

    def list_audit(self, query: AuditQuery, limit: int) -> list[AuditRecord]:
        """Audit records matching ``query``, oldest first, at most ``limit``."""
        where, params = _audit_where(query)
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY time, id LIMIT ?", [*params, limit])
        return [_audit(r) for r in rows]


def _audit_where(query: AuditQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("actor = ?", query.actor),
        ("kind = ?", query.kind),
        ("status = ?", query.status),
        ("time >= ?", query.from_us),
        ("time < ?", query.to_us),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    if query.path_prefix is not None:
        # substr, not LIKE: a path may hold % and _.
        where.append("substr(path, 1, ?) = ?")
        params += [len(query.path_prefix), query.path_prefix]
    if query.after is not None:
        where.append("(time > ? OR (time = ? AND id > ?))")
        params += [query.after[0], query.after[0], query.after[1]]
    return where, params


def _family_in(cur: sqlite3.Cursor, family_id: str) -> TokenFamily | None:
    row = cur.execute(
        f"SELECT {_FAMILY_COLUMNS} FROM token_families WHERE id = ?", (family_id,)
    ).fetchone()
    return None if row is None else TokenFamily(*row)


def _revoke_in(cur: sqlite3.Cursor, family_id: str, reason: str, at: int) -> bool:
    cur.execute(
        "UPDATE token_families SET revoked_at = ?, revoked_reason = ?"
        " WHERE id = ? AND revoked_at IS NULL",
        (at, reason, family_id),
    )
    return cur.rowcount > 0


def _user(row: tuple[Any, ...]) -> UserRecord:
    name, role, password_hash, disabled, created, updated = row
    return UserRecord(name, Role(role), password_hash, bool(disabled), created, updated)


def _client_values(c: ClientRecord) -> tuple[Any, ...]:
    return (
        c.id,
        c.secret_hash,
        orjson.dumps([str(r) for r in c.roles]).decode(),
        c.name,
        orjson.dumps([str(n) for n in c.allow_networks]).decode(),
        orjson.dumps([str(n) for n in c.deny_networks]).decode(),
        c.disabled,
    )


def _client(row: tuple[Any, ...]) -> ClientRecord:
    cid, secret_hash, roles, name, allow, deny, disabled, created, updated = row
    return ClientRecord(
        id=cid,
        secret_hash=secret_hash,
        roles=tuple(Role(r) for r in orjson.loads(roles)),
        name=name,
        allow_networks=tuple(ip_network(n) for n in orjson.loads(allow)),
        deny_networks=tuple(ip_network(n) for n in orjson.loads(deny)),
        disabled=bool(disabled),
        created_us=created,
        updated_us=updated,
    )


def _audit(row: tuple[Any, ...]) -> AuditRecord:
    time, kind, request_id, actor, role, client, address, *rest = row
    method, path, query, status, duration_ms, detail, rid = rest
    return AuditRecord(
        time,
        kind,
        request_id,
        actor,
        role,
        client,
        address,
        method,
        path,
        query,
        status,
        duration_ms,
        orjson.loads(detail),
        rid,
    )
