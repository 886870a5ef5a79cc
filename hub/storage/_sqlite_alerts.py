"""Alerts in the SQLite store: the alert methods of :class:`SQLiteStore`.

A mixin, so that sqlite.py stays about readings; it uses the store's
``_transaction`` (one ``BEGIN IMMEDIATE`` under the store's lock) and
``_query``. The tables come from migration 0004.

One active alert per fingerprint is the partial unique index's job, not a
read before the write: :meth:`SQLiteAlertsMixin.open_alert` is one ``INSERT
... ON CONFLICT DO NOTHING`` on that index, and a reopening that it refuses
is rolled back. Every state change is an ``UPDATE ... WHERE state IN (...)``
(compare-and-set) with its history row in the same transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import orjson

from hub.storage._alerts_common import (
    ALERT_COLUMNS,
    ALERT_COLUMNS_A,
    HISTORY_COLUMNS,
    HISTORY_COLUMNS_H,
    alert_record,
)
from hub.storage.base import (
    ALERT_ACTIVE_STATES,
    ALERT_OPEN,
    ALERT_RESOLVED,
    AlertRecord,
    AlertTransition,
)

_STATES = (*ALERT_ACTIVE_STATES, ALERT_RESOLVED)
# The conflict target names the partial index (its column and its WHERE), so
# that a reused id is an error rather than a refusal.
_INSERT_ALERT = f"""
INSERT INTO alerts ({ALERT_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (fingerprint) WHERE state IN ('open', 'acknowledged') DO NOTHING
RETURNING 1
"""
_INSERT_HISTORY = """
INSERT INTO alert_history (alert_id, at, from_state, to_state, actor, note)
VALUES (?, ?, ?, ?, ?, ?)
"""
# resolved_at is set on resolving and cleared when the alert is active again.
_TRANSITION = f"""
UPDATE alerts SET
    state = :to, updated_at = :at,
    resolved_at = CASE WHEN :to = 'resolved' THEN :at ELSE NULL END
WHERE id = :id AND state IN ({{states}})
RETURNING {ALERT_COLUMNS}
"""
# last_seen_at keeps the newest event time: a late occurrence counts but does
# not move it back.
_TOUCH = f"""
UPDATE alerts SET
    last_seen_at = max(last_seen_at, :seen),
    occurrences = occurrences + 1,
    details = coalesce(:details, details),
    flapping = coalesce(:flapping, flapping),
    alert_group = coalesce(:grp, alert_group)
WHERE id = :id
RETURNING {ALERT_COLUMNS}
"""


class SQLiteAlertsMixin:
    """The :class:`hub.storage.base.Store` alert methods on SQLite."""

    if TYPE_CHECKING:
        # Provided by SQLiteStore.
        def _transaction(self) -> AbstractContextManager[sqlite3.Cursor]: ...

        def _query(
            self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
        ) -> list[Any]: ...

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
        updated = alert.updated_us or alert.opened_us
        try:
            with self._transaction() as cur:
                row = cur.execute(_INSERT_ALERT, _alert_row(alert)).fetchone()
                if row is None:
                    return False
                cur.execute(
                    _INSERT_HISTORY, (alert.id, updated, None, ALERT_OPEN, actor, note)
                )
        except sqlite3.IntegrityError as exc:
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
            "seen": seen_us,
            "details": None if details is None else _dumps(details),
            "flapping": None if flapping is None else int(flapping),
            "grp": group,
        }
        with self._transaction() as cur:
            row = cur.execute(_TOUCH, params).fetchone()
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
        params: dict[str, Any] = {"id": alert_id, "to": to_state, "at": at_us}
        params.update((f"s{i}", s) for i, s in enumerate(from_states))
        marks = ", ".join(f":s{i}" for i in range(len(from_states)))
        sql = _TRANSITION.format(states=marks)
        try:
            with self._transaction() as cur:
                found = cur.execute(
                    "SELECT state FROM alerts WHERE id = ?", (alert_id,)
                ).fetchone()
                if found is None:
                    raise LookupError(f"no alert {alert_id!r}")
                row = cur.execute(sql, params).fetchone()
                if row is None:
                    return None
                cur.execute(
                    _INSERT_HISTORY,
                    (alert_id, at_us, found[0], to_state, actor, note),
                )
        except sqlite3.IntegrityError:
            # The partial unique index: another alert of this fingerprint is
            # active, so this one stays resolved.
            return None
        return _alert(row)

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        """One alert, or None."""
        rows = self._query(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)
        )
        return _alert(rows[0]) if rows else None

    def active_alerts(self) -> list[AlertRecord]:
        """Every alert that is open or acknowledged, oldest first."""
        rows = self._query(
            f"SELECT {ALERT_COLUMNS} FROM alerts"
            " WHERE state IN ('open', 'acknowledged') ORDER BY opened_at, id"
        )
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
            ("state = ?", state),
            ("severity = ?", severity),
            ("device = ?", device),
            ("kind = ?", kind),
            ("opened_at >= ?", from_us),
            ("opened_at < ?", to_us),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        if before is not None:
            where.append("(opened_at, id) < (?, ?)")
            params.extend(before)
        sql = f"SELECT {ALERT_COLUMNS} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY opened_at DESC, id DESC LIMIT ?"
        return [_alert(r) for r in self._query(sql, [*params, limit])]

    def alert_history(self, alert_id: str) -> list[AlertTransition]:
        """Every state change of one alert, oldest first."""
        rows = self._query(
            f"SELECT {HISTORY_COLUMNS} FROM alert_history"
            " WHERE alert_id = ? ORDER BY seq",
            (alert_id,),
        )
        return [AlertTransition(*r) for r in rows]

    def listen_alert_changes(
        self, wake: Callable[[], None], stop: threading.Event
    ) -> bool:
        """SQLite cannot tell other processes' commits: False, the caller polls."""
        return False

    def alert_changes(
        self, after_seq: int = 0, limit: int = 1000
    ) -> list[tuple[AlertTransition, AlertRecord]]:
        """State changes with ``seq`` above ``after_seq``, oldest first.

        Each comes with its alert as it is now.
        """
        rows = self._query(
            f"SELECT {HISTORY_COLUMNS_H}, {ALERT_COLUMNS_A}"
            " FROM alert_history h JOIN alerts a ON a.id = h.alert_id"
            " WHERE h.seq > ? ORDER BY h.seq LIMIT ?",
            (after_seq, limit),
        )
        return [(AlertTransition(*r[:7]), _alert(r[7:])) for r in rows]


def _check_state(state: str) -> None:
    if state not in _STATES:
        raise ValueError(f"bad alert state {state!r}: expected one of {_STATES}")


def _check_new(alert: AlertRecord) -> None:
    if alert.state != ALERT_OPEN:
        raise ValueError(f"a new alert must be open, not {alert.state!r}")


def _dumps(doc: Any) -> str:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


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
        int(a.past),
        a.opened_us,
        a.last_seen_us or a.opened_us,
        a.updated_us or a.opened_us,
        None,
        a.occurrences,
        int(a.flapping),
        a.group,
        _dumps(a.details),
    )


def _alert(row: Sequence[Any]) -> AlertRecord:
    return alert_record(row, int, orjson.loads)
