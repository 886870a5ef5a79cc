"""Device logs in the SQLite store: per-minute counts and the last records.

A mixin of :class:`hub.storage.sqlite.SQLiteStore`; ``write`` calls
:meth:`SQLiteLogsMixin._insert_logs` inside its transaction, after the batch
keys, with the write's fresh items only.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

from hub.storage._common import BUCKET_ORIGIN_US
from hub.storage._logs_common import (
    LOGS_KEPT_PER_DEVICE,
    check_bucket,
    count_rows,
    fresh_logs,
    sorted_counts,
)
from hub.storage.base import IngestItem, LogCount
from protocol.logs import LogRecord

_ADD_COUNT = """
INSERT INTO log_counts (device, bucket, level, n) VALUES (?, ?, ?, ?)
ON CONFLICT (device, bucket, level) DO UPDATE SET n = n + excluded.n
"""
_INSERT_LOG = """
INSERT INTO device_logs (device, ts, level, msg, src, flags, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
# Everything older than the device's newest ``kept`` records; the subquery is
# NULL (nothing deleted) while the device has no more than that.
_TRIM = """
DELETE FROM device_logs WHERE device = ? AND id <= (
    SELECT id FROM device_logs WHERE device = ? ORDER BY id DESC LIMIT 1 OFFSET ?
)
"""
# Fixed buckets from time_bucket's origin, as the readings' aggregate; the
# double modulo because % truncates towards zero in SQLite.
_COUNTS = """
SELECT b, level, sum(n) FROM (
    SELECT bucket - ((bucket - :origin) % :width + :width) % :width AS b, level, n
    FROM log_counts
    WHERE device = :device AND bucket >= :from_us AND bucket < :to_us
) GROUP BY b, level
"""


class SQLiteLogsMixin:
    """Log counts and records of :class:`~hub.storage.sqlite.SQLiteStore`."""

    #: Raw records kept per device.
    logs_kept: int = LOGS_KEPT_PER_DEVICE

    # Set by the store.
    _conn: sqlite3.Connection
    _lock: threading.RLock

    def _insert_logs(
        self, cur: sqlite3.Cursor, items: Sequence[IngestItem]
    ) -> list[LogRecord]:
        """Count and keep the log records of a write's fresh items.

        Runs inside ``write``'s transaction, so the counts commit with the
        batch keys or not at all.

        Returns:
            The records counted.
        """
        records = fresh_logs(items)
        if not records:
            return []
        cur.executemany(_ADD_COUNT, count_rows(records))
        cur.executemany(
            _INSERT_LOG,
            (
                (r.device, r.ts_us, r.level, r.message, r.source, r.flags, at)
                for r, at in records
            ),
        )
        for device in sorted({r.device for r, _ in records}):
            cur.execute(_TRIM, (device, device, self.logs_kept))
        return [r for r, _ in records]

    def log_counts(
        self, device: str, from_us: int, to_us: int, bucket_s: int = 60
    ) -> list[LogCount]:
        """A device's log records by level in buckets (see the Store protocol).

        Raises:
            ValueError: ``bucket_s`` is not a positive multiple of 60.
        """
        width = check_bucket(bucket_s)
        params = {
            "origin": BUCKET_ORIGIN_US,
            "width": width,
            "device": device,
            "from_us": from_us,
            "to_us": to_us,
        }
        with self._lock:
            rows = self._conn.execute(_COUNTS, params).fetchall()
        return sorted_counts(rows)

    def recent_logs(
        self, device: str, limit: int = 100, level: str | None = None
    ) -> list[LogRecord]:
        """A device's last stored log records (of one level), newest first."""
        sql = (
            "SELECT device, ts, level, msg, src, flags FROM device_logs"
            " WHERE device = ?"
        )
        params: list[object] = [device]
        if level is not None:
            sql += " AND level = ?"
            params.append(level)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [LogRecord(d, ts, lv, m, s, f) for d, ts, lv, m, s, f in rows]
