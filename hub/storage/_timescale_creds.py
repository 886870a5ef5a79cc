"""The :class:`hub.security.broker_creds.BrokerCredStore` part of the TimescaleDB store.

A mixin of :class:`hub.storage.timescale.TimescaleStore`, which supplies the
connection pool and ``_transaction``; the table of migration 0007.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import psycopg

from hub.security.broker_creds import BrokerCredential, PrincipalKind
from hub.storage._common import dt_to_us, opt_dt_to_us, us_to_dt

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

Conn = psycopg.Connection[tuple[Any, ...]]

_COLUMNS = "username, kind, ident, secret_hash, created_at, rotated_at, revoked_at"


class TimescaleCredsMixin:
    """Broker credentials in PostgreSQL."""

    if TYPE_CHECKING:
        _pool: ConnectionPool[Conn]

        def _transaction(self) -> AbstractContextManager[Conn]: ...

    def _cred_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def put_broker_credential(self, cred: BrokerCredential) -> BrokerCredential | None:
        """Store a new credential or rotate one of the same kind."""
        with self._transaction() as conn:
            # The WHERE of DO UPDATE leaves a name of another kind alone, and
            # RETURNING then gives no row.
            row = conn.execute(
                f"INSERT INTO broker_credentials ({_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, NULL)"
                " ON CONFLICT (username) DO UPDATE SET"
                " secret_hash = excluded.secret_hash,"
                " rotated_at = excluded.rotated_at, revoked_at = NULL"
                " WHERE broker_credentials.kind = excluded.kind"
                f" RETURNING {_COLUMNS}",
                [
                    cred.username,
                    str(cred.kind),
                    cred.ident,
                    cred.secret_hash,
                    us_to_dt(cred.created_us),
                    us_to_dt(cred.rotated_us),
                ],
            ).fetchone()
        return None if row is None else _cred(row)

    def get_broker_credential(self, username: str) -> BrokerCredential | None:
        """One credential, revoked or not, or None."""
        rows = self._cred_rows(
            f"SELECT {_COLUMNS} FROM broker_credentials WHERE username = %s",
            [username],
        )
        return _cred(rows[0]) if rows else None

    def list_broker_credentials(
        self, kind: PrincipalKind | None = None
    ) -> list[BrokerCredential]:
        """Every credential (of one kind), ordered by user name."""
        rows = self._cred_rows(
            f"SELECT {_COLUMNS} FROM broker_credentials"
            " WHERE %s::text IS NULL OR kind = %s::text ORDER BY username",
            [None if kind is None else str(kind)] * 2,
        )
        return [_cred(r) for r in rows]

    def revoke_broker_credential(self, username: str, at_us: int) -> bool:
        """Mark a credential revoked; False if unknown or revoked before."""
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE broker_credentials SET revoked_at = %s"
                " WHERE username = %s AND revoked_at IS NULL",
                [us_to_dt(at_us), username],
            )
            return cur.rowcount > 0


def _cred(row: Sequence[Any]) -> BrokerCredential:
    return BrokerCredential(
        username=row[0],
        kind=PrincipalKind(row[1]),
        ident=row[2],
        secret_hash=row[3],
        created_us=dt_to_us(row[4]),
        rotated_us=dt_to_us(row[5]),
        revoked_us=opt_dt_to_us(row[6]),
    )
