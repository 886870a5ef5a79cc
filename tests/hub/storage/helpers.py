"""Builders and raw SQL access shared by the storage tests."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from hub.storage import IngestItem
from hub.storage._common import dt_to_us, us_to_dt
from hub.storage._migrations import load_migrations
from protocol.readings import Reject, SeriesBlock

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
#: Every schema version the package ships (both kinds have the same ones).
ALL_VERSIONS = [m.version for m in load_migrations("sqlite")]


def us(text: str) -> int:
    """An ISO 8601 instant with its zone as epoch microseconds, exactly."""
    return dt_to_us(datetime.fromisoformat(text))


def block(device, metric, ts, values, unit="", flags=None):
    """A series block; flags default to 0."""
    return SeriesBlock(
        device,
        metric,
        unit,
        list(ts),
        [float(v) for v in values],
        list(flags) if flags is not None else [0] * len(ts),
    )


def item(
    blocks,
    received_us,
    gateway=None,
    seq=None,
    rejects=(),
    notices=None,
    devices=(),
):
    """An ingest item of ``blocks`` received at ``received_us``."""
    return IngestItem(
        gateway=gateway,
        seq=seq,
        blocks=list(blocks),
        received_us=received_us,
        rejects=list(rejects),
        notices=Counter(notices or {}),
        devices=set(devices),
    )


def reject(reason, device="", field="value"):
    """A reject of one field of a device's reading."""
    return Reject(reason, field=field, device=device)


def raw(store, sqlite_sql, pg_sql=None):
    """Rows of a query run directly on the store's database (for assertions).

    ``pg_sql`` defaults to ``sqlite_sql``; neither takes parameters.
    """
    if store.kind == "sqlite":
        return store._query(sqlite_sql)
    with store._pool.connection() as conn:
        return conn.execute(pg_sql or sqlite_sql).fetchall()


def count_before(store, ts_us):
    """How many readings are stamped before ``ts_us``, by SQL on the table."""
    sql = f"SELECT count(*) FROM readings WHERE ts < {int(ts_us)}"
    pg = f"SELECT count(*) FROM readings WHERE ts < '{us_to_dt(ts_us).isoformat()}'"
    return raw(store, sql, pg)[0][0]
