"""The API's registry writes and data figures in the TimescaleDB store.

A mixin of :class:`hub.storage.timescale.TimescaleStore`: deleting devices,
registering and deleting gateways, counting a series' readings over a window
(to tell whether the rollups cover it) and percentiles per bucket with
PostgreSQL's ``percentile_cont`` over the raw readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from hub.storage._common import bucket_spec, dt_to_us, us_to_dt
from protocol.topics import check_id

Conn = psycopg.Connection[tuple[Any, ...]]

_PERCENTILES = """
SELECT b, percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY value) FROM (
    SELECT {expr} AS b, r.value
    FROM readings r JOIN series s ON s.id = r.series_id
    WHERE s.device = %s AND s.metric = %s AND r.ts >= %s AND r.ts < %s
) q GROUP BY b ORDER BY b
"""


class TimescaleDataMixin:
    """Registry writes and figures of :class:`~hub.storage.timescale.TimescaleStore`."""

    # Set by the store.
    _pool: ConnectionPool[Conn]

    def delete_device(self, device_id: str) -> bool:
        """Remove a device from the registry; return whether it was there.

        Its readings stay until retention removes them; a device that sends
        again is registered again from its data.
        """
        with self._pool.connection() as conn:
            cur = conn.execute("DELETE FROM devices WHERE id = %s", [device_id])
            return cur.rowcount > 0

    def create_gateway(self, gateway_id: str) -> bool:
        """Register a gateway ahead of its data; False when it exists already.

        Raises:
            ValueError: an invalid gateway id.
        """
        check_id(gateway_id, "gateway id")
        with self._pool.connection() as conn:
            cur = conn.execute(
                "INSERT INTO gateways (id) VALUES (%s) ON CONFLICT (id) DO NOTHING",
                [gateway_id],
            )
            return cur.rowcount > 0

    def delete_gateway(self, gateway_id: str) -> bool:
        """Remove a gateway from the registry; return whether it was there."""
        with self._pool.connection() as conn:
            cur = conn.execute("DELETE FROM gateways WHERE id = %s", [gateway_id])
            return cur.rowcount > 0

    def count_series(self, device: str, metric: str, from_us: int, to_us: int) -> int:
        """How many readings one series has in ``[from_us, to_us)``."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
                " WHERE s.device = %s AND s.metric = %s AND r.ts >= %s AND r.ts < %s",
                [device, metric, us_to_dt(from_us), us_to_dt(to_us)],
            ).fetchone()
        return int(row[0]) if row else 0

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

        Buckets are those of :meth:`TimescaleStore.aggregate` (``time_bucket``,
        local days in ``tz`` from a day up).

        Raises:
            ValueError: see :func:`hub.storage._common.bucket_spec`.
        """
        spec = bucket_spec(bucket_s, tz)
        if from_us >= to_us or not quantiles:
            return []
        if spec.days:
            expr = "time_bucket(make_interval(days => %s::int), r.ts, %s::text)"
            bucket_params: list[Any] = [spec.days, spec.tz]
        else:
            expr = "time_bucket(make_interval(secs => %s::float8), r.ts)"
            bucket_params = [spec.width_s]
        with self._pool.connection() as conn, conn.cursor(binary=True) as cur:
            cur.execute(
                _PERCENTILES.format(expr=expr),
                [
                    [float(q) for q in quantiles],
                    *bucket_params,
                    device,
                    metric,
                    us_to_dt(from_us),
                    us_to_dt(to_us),
                ],
            )
            rows = cur.fetchall()
        return [(dt_to_us(b), [float(v) for v in vals]) for b, vals in rows]
