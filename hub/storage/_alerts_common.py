"""What the two stores' alert tables share: their columns and a row as a record.

Times and ``details`` come back from the two databases in their own types
(SQLite: µs integers and JSON text; PostgreSQL: datetimes and parsed JSON),
so :func:`alert_record` takes the conversions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hub.storage.base import AlertRecord

ALERT_COLUMNS = (
    "id, fingerprint, kind, severity, state, summary, device, gateway, metric,"
    " past, opened_at, last_seen_at, updated_at, resolved_at, occurrences,"
    " flapping, alert_group, details"
)
#: The same columns qualified, for the join of history to alerts.
ALERT_COLUMNS_A = ", ".join(f"a.{c.strip()}" for c in ALERT_COLUMNS.split(","))
HISTORY_COLUMNS = "seq, alert_id, at, from_state, to_state, actor, note"
HISTORY_COLUMNS_H = ", ".join(f"h.{c.strip()}" for c in HISTORY_COLUMNS.split(","))


def alert_record(
    row: Sequence[Any],
    to_us: Callable[[Any], int],
    details: Callable[[Any], dict[str, Any]],
) -> AlertRecord:
    """An ``ALERT_COLUMNS`` row as a record.

    Args:
        row: the columns, in ``ALERT_COLUMNS`` order.
        to_us: a stored time as epoch µs.
        details: the stored ``details`` as a dict.
    """
    (
        alert_id,
        fingerprint,
        kind,
        severity,
        state,
        summary,
        device,
        gateway,
        metric,
        past,
        opened,
        last_seen,
        updated,
        resolved,
        occurrences,
        flapping,
        group,
        stored_details,
    ) = row
    return AlertRecord(
        id=alert_id,
        fingerprint=fingerprint,
        kind=kind,
        severity=severity,
        summary=summary,
        opened_us=to_us(opened),
        state=state,
        device=device,
        gateway=gateway,
        metric=metric,
        past=bool(past),
        last_seen_us=to_us(last_seen),
        updated_us=to_us(updated),
        resolved_us=None if resolved is None else to_us(resolved),
        occurrences=int(occurrences),
        flapping=bool(flapping),
        group=group,
        details=details(stored_details),
    )
