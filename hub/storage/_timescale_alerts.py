"""Alerts in the TimescaleDB store: the alert methods of :class:`TimescaleStore`.

A mixin, so that timescale.py stays about readings; it uses the store's
``_transaction`` and ``_pool``. The tables (plain tables, not hypertables)
come from migration 0004.

One active alert per fingerprint is the partial unique index's job, not a
read before the write: of two processes opening the same fingerprint at
once, the second's ``INSERT ... ON CONFLICT DO NOTHING`` waits for the
first to commit and then stores nothing. Every state change is an ``UPDATE
... WHERE state = ANY(...)`` (compare-and-set) with its history row in the
same transaction.

Every transaction that writes history first takes one advisory lock, so that
history rows commit in the order of their seqs: a reader of
:meth:`TimescaleAlertsMixin.alert_changes` that resumes after seq N never
misses a lower seq that committed later. Alert changes are rare; the
serialisation costs nothing that matters.

Every such transaction also sends ``NOTIFY streamflow_alert_changes``
(delivered at commit), so that a reader of the history, the API's live
stream, can wait for changes instead of polling for them
(:meth:`TimescaleAlertsMixin.listen_alert_changes`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Json

from hub.storage._alerts_common import (
    ALERT_COLUMNS,
    ALERT_COLUMNS_A,
    HISTORY_COLUMNS,
    HISTORY_COLUMNS_H,
    alert_record,
)
from hub.storage._common import dt_to_us, us_to_dt
from hub.storage.base import (
    ALERT_ACTIVE_STATES,
    ALERT_OPEN,
    ALERT_RESOLVED,
    AlertRecord,
    AlertTransition,
)

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

Conn = psycopg.Connection[tuple[Any, ...]]

_LOGGER = logging.getLogger(__name__)

_STATES = (*ALERT_ACTIVE_STATES, ALERT_RESOLVED)
#: The channel every committed history row is announced on.
ALERT_CHANNEL = "streamflow_alert_changes"
_NOTIFY = f"SELECT pg_notify('{ALERT_CHANNEL}', '')"
#: Seconds between two attempts to listen again after the server went away.
_LISTEN_RETRY_S = 1.0
# One advisory lock key for every writer of alert history ("SFAL").
_HISTORY_LOCK = 0x5346_414C
# The conflict target names the partial index (its column and its WHERE), so
# that a reused id is an error rather than a refusal.
_INSERT_ALERT = f"""
INSERT INTO alerts ({ALERT_COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (fingerprint) WHERE state IN ('open', 'acknowledged') DO NOTHING
RETURNING id
"""
_INSERT_HISTORY = """
INSERT INTO alert_history (alert_id, at, from_state, to_state, actor, note)
VALUES (%s, %s, %s, %s, %s, %s)
"""
# resolved_at is set on resolving and cleared when the alert is active again.
_TRANSITION = f"""
UPDATE alerts SET
    state = %(to)s::text, updated_at = %(at)s,
    resolved_at = CASE WHEN %(to)s::text = 'resolved' THEN %(at)s END
WHERE id = %(id)s AND state = ANY(%(from)s::text[])
RETURNING {ALERT_COLUMNS}
"""
# last_seen_at keeps the newest event time: a late occurrence counts but does
# not move it back.
_TOUCH = f"""
UPDATE alerts SET
    last_seen_at = greatest(last_seen_at, %(seen)s),
    occurrences = occurrences + 1,
    details = coalesce(%(details)s, details),
    flapping = coalesce(%(flapping)s, flapping),
    alert_group = coalesce(%(grp)s, alert_group)
WHERE id = %(id)s
RETURNING {ALERT_COLUMNS}
"""


class TimescaleAlertsMixin:
    """The :class:`hub.storage.base.Store` alert methods on TimescaleDB."""

    if TYPE_CHECKING:
        # Provided by TimescaleStore.
        _pool: ConnectionPool[Conn]
        _conninfo: str

        def _transaction(self) -> AbstractContextManager[Conn]: ...

    def open_alert(self, alert: AlertRecord, actor: str, note: str = "") -> bool:
        """Store a new alert in state ``open`` and its first history entry.

        ``updated_us`` and ``last_seen_us`` default to ``opened_us`` when 0.

        Returns:
            False, storing nothing, when an alert with the same fingerprint is
            still active (open or acknowledged).

        Raises:
            ValueError: the alert's state is not ``open``, or its id is taken.
        """
        _check_new(alert)
        updated = us_to_dt(alert.updated_us or alert.opened_us)
        try:
            with self._transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_HISTORY_LOCK])
                row = conn.execute(_INSERT_ALERT, _alert_row(alert)).fetchone()
                if row is None:
                    return False
                conn.execute(
                    _INSERT_HISTORY, (alert.id, updated, None, ALERT_OPEN, actor, note)
                )
                conn.execute(_NOTIFY)
        except psycopg.errors.UniqueViolation as exc:
            raise ValueError(f"alert id {alert.id!r} already exists") from exc
        return True

    def touch_alert(
        self,
        alert_id: str,
        seen_us: int,
        details: dict[str, Any] | None = None,
        flapping: bool | None = None,
        group: str | None = None,
    ) -> AlertRecord | None:
        """Count one more occurrence of an alert's condition; never its state.

        ``last_seen_us`` becomes ``seen_us`` unless it is newer already.

        Returns:
            The updated alert, or None when there is no such alert.
        """
        params = {
            "id": alert_id,
            "seen": us_to_dt(seen_us),
            "details": None if details is None else Json(details),
            "flapping": flapping,
            "grp": group,
        }
        with self._transaction() as conn:
            row = conn.execute(_TOUCH, params).fetchone()
        return None if row is None else _alert(row)

    def transition_alert(
        self,
        alert_id: str,
        to_state: str,
        actor: str,
        at_us: int,
        from_states: tuple[str, ...],
        note: str = "",
    ) -> AlertRecord | None:
        """Move an alert to ``to_state`` if its state is one of ``from_states``.

        The change and its history entry commit together; ``resolved_us`` is
        set on resolving and cleared when the alert becomes active again.

        Returns:
            The updated alert, or None (changing nothing) when the alert is in
            another state, or when reopening it would make a second active
            alert of its fingerprint.

        Raises:
            LookupError: there is no alert with this id.
            ValueError: ``to_state`` is not an alert state.
        """
        _check_state(to_state)
        at = us_to_dt(at_us)
        params = {"id": alert_id, "to": to_state, "at": at, "from": list(from_states)}
        try:
            with self._transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_HISTORY_LOCK])
                # FOR UPDATE: the state read is the one the UPDATE replaces.
                found = conn.execute(
                    "SELECT state FROM alerts WHERE id = %s FOR UPDATE", [alert_id]
                ).fetchone()
                if found is None:
                    raise LookupError(f"no alert {alert_id!r}")
                row = conn.execute(_TRANSITION, params).fetchone()
                if row is None:
                    return None
                conn.execute(
                    _INSERT_HISTORY, (alert_id, at, found[0], to_state, actor, note)
                )
                conn.execute(_NOTIFY)
        except psycopg.errors.UniqueViolation:
            # The partial unique index: another alert of this fingerprint is
            # active, so this one stays resolved.
            return None
        return _alert(row)

    def listen_alert_changes(
        self, wake: Callable[[], None], stop: threading.Event
    ) -> bool:
        """Call ``wake`` after each commit of alert history, until ``stop`` is set.

        Blocks; run it on a thread of its own. It holds one connection of its
        own (LISTEN needs a session), outside the pool, and when the server
        goes away it calls ``wake`` (the caller reads, and learns) and listens
        again every second.

        Returns:
            True, once ``stop`` is set.
        """
        while not stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {ALERT_CHANNEL}")
                    wake()  # changes made before LISTEN took hold are read now
                    while not stop.is_set():
                        # Several notices in one wait mean one read.
                        if any(True for _ in conn.notifies(timeout=0.5)):
                            wake()
            except psycopg.Error as exc:
                _LOGGER.warning(
                    "alert change listener lost the server, retrying error=%s: %s",
                    type(exc).__name__,
                    str(exc)[:200],
                )
                wake()
                stop.wait(_LISTEN_RETRY_S)
        return True

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        """One alert, or None."""
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s", [alert_id]
            ).fetchone()
        return None if row is None else _alert(row)

    def active_alerts(self) -> list[AlertRecord]:
        """Every alert that is open or acknowledged, oldest first."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts"
                " WHERE state IN ('open', 'acknowledged') ORDER BY opened_at, id"
            ).fetchall()
        return [_alert(r) for r in rows]

    def list_alerts(
        self,
        state: str | None = None,
        severity: str | None = None,
        device: str | None = None,
        kind: str | None = None,
        from_us: int | None = None,
        to_us: int | None = None,
        limit: int = 100,
        before: tuple[int, str] | None = None,
    ) -> list[AlertRecord]:
        """Alerts newest first, filtered; ``from_us``/``to_us`` bound ``opened_us``.

        ``before`` is the ``(opened_us, id)`` of the last alert of the previous
        page: the page holds the alerts that sort after it.
        """
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("state = %s", state),
            ("severity = %s", severity),
            ("device = %s", device),
            ("kind = %s", kind),
            ("opened_at >= %s", None if from_us is None else us_to_dt(from_us)),
            ("opened_at < %s", None if to_us is None else us_to_dt(to_us)),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        if before is not None:
            where.append("(opened_at, id) < (%s, %s)")
            params.extend((us_to_dt(before[0]), before[1]))
        sql = f"SELECT {ALERT_COLUMNS} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY opened_at DESC, id DESC LIMIT %s"
        with self._pool.connection() as conn:
            rows = conn.execute(sql, [*params, limit]).fetchall()
        return [_alert(r) for r in rows]

    def alert_history(self, alert_id: str) -> list[AlertTransition]:
        """Every state change of one alert, oldest first."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {HISTORY_COLUMNS} FROM alert_history"
                " WHERE alert_id = %s ORDER BY seq",
                [alert_id],
            ).fetchall()
        return [_transition(r) for r in rows]

    def alert_changes(
        self, after_seq: int = 0, limit: int = 1000
    ) -> list[tuple[AlertTransition, AlertRecord]]:
        """State changes with ``seq`` above ``after_seq``, oldest first.

        Each comes with its alert as it is now.
        """
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {HISTORY_COLUMNS_H}, {ALERT_COLUMNS_A}"
                " FROM alert_history h JOIN alerts a ON a.id = h.alert_id"
                " WHERE h.seq > %s ORDER BY h.seq LIMIT %s",
                [after_seq, limit],
            ).fetchall()
        return [(_transition(r[:7]), _alert(r[7:])) for r in rows]


def _check_state(state: str) -> None:
    if state not in _STATES:
        raise ValueError(f"bad alert state {state!r}: expected one of {_STATES}")


def _check_new(alert: AlertRecord) -> None:
    if alert.state != ALERT_OPEN:
        raise ValueError(f"a new alert must be open, not {alert.state!r}")


def _alert_row(a: AlertRecord) -> tuple[Any, ...]:
    return (
        a.id,
        a.fingerprint,
        a.kind,
        a.severity,
        ALERT_OPEN,
        a.summary,
        a.device,
        a.gateway,
        a.metric,
        a.past,
        us_to_dt(a.opened_us),
        us_to_dt(a.last_seen_us or a.opened_us),
        us_to_dt(a.updated_us or a.opened_us),
        None,
        a.occurrences,
        a.flapping,
        a.group,
        Json(a.details),
    )


def _transition(row: Sequence[Any]) -> AlertTransition:
    seq, alert_id, at, from_state, to_state, actor, note = row
    return AlertTransition(
        int(seq), alert_id, dt_to_us(at), from_state, to_state, actor, note
    )


def _alert(row: Sequence[Any]) -> AlertRecord:
    return alert_record(row, dt_to_us, dict)
