"""The :class:`hub.security.broker_creds.BrokerCredStore` part of the SQLite store.

A mixin of :class:`hub.storage.sqlite.SQLiteStore`, which supplies the
connection, its lock and ``_transaction``; the table of migration 0007.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from hub.security.broker_creds import BrokerCredential, PrincipalKind

_COLUMNS = "username, kind, ident, secret_hash, created_at, rotated_at, revoked_at"


class SQLiteCredsMixin:
    """Broker credentials in SQLite."""

    if TYPE_CHECKING:

        def _transaction(self) -> AbstractContextManager[sqlite3.Cursor]: ...

        def _query(
            self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
        ) -> list[Any]: ...

    def put_broker_credential(self, cred: BrokerCredential) -> BrokerCredential | None:
        """Store a new credential or rotate one of the same kind."""
        with self._transaction() as cur:
            # The WHERE of DO UPDATE leaves a name of another kind alone, and
            # RETURNING then gives no row.
            row = cur.execute(
                f"INSERT INTO broker_credentials ({_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, NULL)"
                " ON CONFLICT (username) DO UPDATE SET"
                " secret_hash = excluded.secret_hash,"
                " rotated_at = excluded.rotated_at, revoked_at = NULL"
                " WHERE broker_credentials.kind = excluded.kind"
                f" RETURNING {_COLUMNS}",
                (
                    cred.username,
                    str(cred.kind),
                    cred.ident,
                    cred.secret_hash,
                    cred.created_us,
                    cred.rotated_us,
                ),
            ).fetchone()
        return None if row is None else _cred(row)

    def get_broker_credential(self, username: str) -> BrokerCredential | None:
        """One credential, revoked or not, or None."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM broker_credentials WHERE username = ?",
            (username,),
        )
        return _cred(rows[0]) if rows else None

    def list_broker_credentials(
        self, kind: PrincipalKind | None = None
    ) -> list[BrokerCredential]:
        """Every credential (of one kind), ordered by user name."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM broker_credentials"
            " WHERE ? IS NULL OR kind = ? ORDER BY username",
            (None if kind is None else str(kind),) * 2,
        )
        return [_cred(r) for r in rows]

    def revoke_broker_credential(self, username: str, at_us: int) -> bool:
        """Mark a credential revoked; False if unknown or revoked before."""
        with self._transaction() as cur:
            cur.execute(
                "UPDATE broker_credentials SET revoked_at = ?"
                " WHERE username = ? AND revoked_at IS NULL",
                (at_us, username),
            )
            return cur.rowcount > 0


def _cred(row: Sequence[Any]) -> BrokerCredential:
    return BrokerCredential(
        username=row[0],
        kind=PrincipalKind(row[1]),
        ident=row[2],
        secret_hash=row[3],
        created_us=row[4],
        rotated_us=row[5],
        revoked_us=row[6],
    )
