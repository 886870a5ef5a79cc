"""Device logs in the TimescaleDB store: per-minute counts and the last records.

A mixin of :class:`hub.storage.timescale.TimescaleStore`; ``write`` calls
:meth:`TimescaleLogsMixin._insert_logs` inside its transaction, after the
batch keys, with the write's fresh items only. Rows go in as arrays through
``unnest``: one round trip per table, whatever the number of records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from hub.storage._common import dt_to_us, us_to_dt
from hub.storage._logs_common import (
    LOGS_KEPT_PER_DEVICE,
    check_bucket,
    count_rows,
    fresh_logs,
    sorted_counts,
)
from hub.storage.base import IngestItem, LogCount
from protocol.logs import LogRecord

Conn = psycopg.Connection[tuple[Any, ...]]

_ADD_COUNTS = """
INSERT INTO log_counts (device, bucket, level, n)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::int[])
ON CONFLICT (device, level, bucket) DO UPDATE SET n = log_counts.n + excluded.n
"""
_INSERT_LOGS = """
INSERT INTO device_logs (device, ts, level, msg, src, flags, received_at)
SELECT * FROM unnest(
    %s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],
    %s::smallint[], %s::timestamptz[]
)
"""
# Everything older than the device's newest ``kept`` records; the subquery is
# NULL (nothing deleted) while the device has no more than that.
_TRIM = """
DELETE FROM device_logs WHERE device = %s AND id <= (
    SELECT id FROM device_logs WHERE device = %s ORDER BY id DESC OFFSET %s LIMIT 1
)
"""
# time_bucket's origin for intervals is 2000-01-03, as for the readings.
_COUNTS = """
SELECT time_bucket(make_interval(secs => %s), bucket) AS b, level, sum(n)
FROM log_counts WHERE device = %s AND bucket >= %s AND bucket < %s
GROUP BY b, level
"""


class TimescaleLogsMixin:
    """Log counts and records of :class:`~hub.storage.timescale.TimescaleStore`."""

    #: Raw records kept per device.
    logs_kept: int = LOGS_KEPT_PER_DEVICE

    # Set by the store.
    _pool: ConnectionPool[Conn]

    def _insert_logs(self, conn: Conn, items: Sequence[IngestItem]) -> list[LogRecord]:
        """Count and keep the log records of a write's fresh items.

        Runs inside ``write``'s transaction, so the counts commit with the
        batch keys or not at all.

        Returns:
            The records counted.
        """
        records = fresh_logs(items)
        if not records:
            return []
        rows = count_rows(records)
        conn.execute(
            _ADD_COUNTS,
            [
                [d for d, _, _, _ in rows],
                [us_to_dt(m) for _, m, _, _ in rows],
                [lv for _, _, lv, _ in rows],
                [n for _, _, _, n in rows],
            ],
        )
        conn.execute(
            _INSERT_LOGS,
            [
                [r.device for r, _ in records],
                [us_to_dt(r.ts_us) for r, _ in records],
                [r.level for r, _ in records],
                [r.message for r, _ in records],
                [r.source for r, _ in records],
                [r.flags for r, _ in records],
                [us_to_dt(at) for _, at in records],
            ],
        )
        for device in sorted({r.device for r, _ in records}):
            conn.execute(_TRIM, [device, device, self.logs_kept])
        return [r for r, _ in records]

    def log_counts(
        self, device: str, from_us: int, to_us: int, bucket_s: int = 60
    ) -> list[LogCount]:
        """A device's log records by level in buckets (see the Store protocol).

        Raises:
            ValueError: ``bucket_s`` is not a positive multiple of 60.
        """
        check_bucket(bucket_s)
        params = [bucket_s, device, us_to_dt(from_us), us_to_dt(to_us)]
        with self._pool.connection() as conn:
            rows = conn.execute(_COUNTS, params).fetchall()
        return sorted_counts([(dt_to_us(b), lv, n) for b, lv, n in rows])

    def recent_logs(
        self, device: str, limit: int = 100, level: str | None = None
    ) -> list[LogRecord]:
        """A device's last stored log records (of one level), newest first."""
        sql = (
            "SELECT device, ts, level, msg, src, flags FROM device_logs"
            " WHERE device = %s"
        )
        params: list[Any] = [device]
        if level is not None:
            sql += " AND level = %s"
            params.append(level)
        sql += " ORDER BY id DESC LIMIT %s"
        params.append(limit)
        with self._pool.connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [LogRecord(d, dt_to_us(ts), lv, m, s, f) for d, ts, lv, m, s, f in rows]
