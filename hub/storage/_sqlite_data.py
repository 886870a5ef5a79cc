"""The API's registry writes and data figures in the SQLite store.

A mixin of :class:`hub.storage.sqlite.SQLiteStore`: deleting devices,
registering and deleting gateways, counting a series' readings over a window
(to tell whether the rollups cover it) and percentiles per bucket, computed
in Python (SQLite has no ``percentile_cont``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

from hub.storage._common import bucket_spec
from hub.storage._data_common import percentiles_by_bucket
from protocol.topics import check_id


class SQLiteDataMixin:
    """Registry writes and figures of :class:`~hub.storage.sqlite.SQLiteStore`."""

    # Set by the store.
    _conn: sqlite3.Connection
    _lock: threading.RLock

    def delete_device(self, device_id: str) -> bool:
        """Remove a device from the registry; return whether it was there.

        Its readings stay until retention removes them; a device that sends
        again is registered again from its data.
        """
        with self._lock:
            cur = self._conn.execute("DELETE FROM devices WHERE id = ?", (device_id,))
            return cur.rowcount > 0

    def create_gateway(self, gateway_id: str) -> bool:
        """Register a gateway ahead of its data; False when it exists already.

        Raises:
            ValueError: an invalid gateway id.
        """
        check_id(gateway_id, "gateway id")
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO gateways (id) VALUES (?) ON CONFLICT (id) DO NOTHING",
                (gateway_id,),
            )
            return cur.rowcount > 0

    def delete_gateway(self, gateway_id: str) -> bool:
        """Remove a gateway from the registry; return whether it was there."""
        with self._lock:
            cur = self._conn.execute("DELETE FROM gateways WHERE id = ?", (gateway_id,))
            return cur.rowcount > 0

    def count_series(self, device: str, metric: str, from_us: int, to_us: int) -> int:
        """How many readings one series has in ``[from_us, to_us)``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
                " WHERE s.device = ? AND s.metric = ? AND r.ts >= ? AND r.ts < ?",
                (device, metric, from_us, to_us),
            ).fetchone()
        return int(row[0])

    def percentiles(
        self,
        device: str,
        metric: str,
        bucket_s: int,
        from_us: int,
        to_us: int,
        quantiles: Sequence[float],
        tz: str = "UTC",
    ) -> list[tuple[int, list[float]]]:
        """Continuous percentiles (``percentile_cont``) of each bucket's values.

        Raises:
            ValueError: see :func:`hub.storage._common.bucket_spec`.
        """
        spec = bucket_spec(bucket_s, tz)
        if from_us >= to_us or not quantiles:
            return []
        # TODO: every value of the window passes through Python; a window of
        # millions of readings wants a SQLite extension with a percentile
        # aggregate, or TimescaleDB.
        with self._lock:
            rows = self._conn.execute(
                "SELECT r.ts, r.value FROM readings r JOIN series s"
                " ON s.id = r.series_id WHERE s.device = ? AND s.metric = ?"
                " AND r.ts >= ? AND r.ts < ? ORDER BY r.ts",
                (device, metric, from_us, to_us),
            ).fetchall()
        ts = [int(r[0]) for r in rows]
        values = [float(r[1]) for r in rows]
        return percentiles_by_bucket(spec, ts, values, quantiles)
