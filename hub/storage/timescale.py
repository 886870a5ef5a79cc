"""The TimescaleDB store, through psycopg 3 and a small connection pool.

Readings live in a narrow hypertable ``readings(ts, series_id, value, flags)``
with 1-day chunks and a unique index on ``(series_id, ts)``. One
:meth:`TimescaleStore.write` is one transaction:

1. the batch keys go into ``batches`` with ``ON CONFLICT DO NOTHING
   RETURNING``, which tells the new batches from those stored before;
2. series ids are resolved (cached in memory once committed);
3. the new batches' readings go in by binary COPY, which tells exactly which
   readings are new in one of two ways:

   - first, deduplicated in the client (the first of equal (series, ts)
     wins), straight into ``readings`` inside a savepoint: if no reading was
     stored before, all of them are new. This is the common case, live data
     whose batches are new, and costs half of the other way, since COPY
     into the hypertable is far cheaper than ``INSERT ... ON CONFLICT``
     (tests/hub/storage/bench_write.py);
   - if that hits the unique index, the savepoint is rolled back and the rows
     go into a temporary staging table, then into ``readings`` with one
     ``INSERT ... SELECT DISTINCT ON ... ON CONFLICT DO NOTHING RETURNING``,
     which reports exactly the new ones. After such a conflict the next
     writes take this way at once, for a number of writes that doubles with
     each conflict (up to 64), so that a device that keeps resending costs
     neither a wasted COPY nor a server log line every time;

4. latest, devices, gateways, accounting and dead letters follow.

The COPY streams are built with numpy, in PostgreSQL's documented binary
format, so that the client spends well under a microsecond a row and leaves
the shared cores to the server (FIGURES.md). Times cross psycopg as aware
datetimes built and read with integer arithmetic
(:func:`hub.storage._common.us_to_dt`), so microseconds survive exactly.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from hub.storage._common import (
    ReadingRow,
    SeriesColumns,
    WritePlan,
    accounting_from_rows,
    bucket_spec,
    dt_to_us,
    gateway_counters,
    group_rows,
    hour_of,
    nfc,
    normalize_device,
    opt_dt_to_us,
    us_to_dt,
)
from hub.storage._migrations import load_migrations, pending
from hub.storage._timescale_alerts import TimescaleAlertsMixin
from hub.storage._timescale_auth import TimescaleAuthMixin
from hub.storage._timescale_creds import TimescaleCredsMixin
from hub.storage._timescale_data import TimescaleDataMixin
from hub.storage._timescale_logs import TimescaleLogsMixin
from hub.storage.base import (
    Accounting,
    Bucket,
    DeadLetter,
    DeviceInfo,
    EventRecord,
    GatewayInfo,
    IngestItem,
    Rollup,
    RuleRecord,
    Scope,
    WriteResult,
)
from protocol.models import GatewayState
from protocol.readings import Reading
from protocol.topics import check_id

_LOGGER = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[Any, ...]]

# PostgreSQL's binary timestamps count microseconds from 2000-01-01T00:00Z.
_PG_EPOCH_US = 946_684_800_000_000
# One advisory lock key for every process that migrates this database.
_MIGRATE_LOCK = 0x5346_4D49  # "SFMI"

# The binary COPY format: a signature, flags and header extension length, then
# per row a field count and each field as length + big-endian bytes.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_COPY_FIELDS = [
    ("ts_len", ">i4"),
    ("ts", ">i8"),
    ("sid_len", ">i4"),
    ("sid", ">i4"),
    ("value_len", ">i4"),
    ("value", ">f8"),
    ("flags_len", ">i4"),
    ("flags", ">i2"),
]
_COPY_ROW = np.dtype([("fields", ">i2"), *_COPY_FIELDS])
_COPY_ROW_ORD = np.dtype(
    [("fields", ">i2"), *_COPY_FIELDS, ("ord_len", ">i4"), ("ord", ">i4")]
)
# Writes that take the staging way at once after a COPY conflict, at most.
_MAX_STAGED_RUN = 64

# ON COMMIT DELETE ROWS: the staging rows vanish with each transaction, and
# the table itself lives as long as the connection (created once, configure).
_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS readings_staging (
    ts timestamptz NOT NULL,
    series_id integer NOT NULL,
    value double precision NOT NULL,
    flags smallint NOT NULL,
    ord integer NOT NULL
) ON COMMIT DELETE ROWS
"""
_COPY_STAGING = (
    "COPY pg_temp.readings_staging (ts, series_id, value, flags, ord)"
    " FROM STDIN (FORMAT BINARY)"
)
_COPY_READINGS = (
    "COPY readings (ts, series_id, value, flags) FROM STDIN (FORMAT BINARY)"
)
# DISTINCT ON keeps the first of equal (series, ts) in one write; RETURNING
# gives exactly the rows stored for the first time.
_INSERT_STAGED = """
INSERT INTO readings (ts, series_id, value, flags)
SELECT DISTINCT ON (series_id, ts) ts, series_id, value, flags
FROM pg_temp.readings_staging
ORDER BY series_id, ts, ord
ON CONFLICT (series_id, ts) DO NOTHING
RETURNING series_id, ts, value, flags
"""
# The write path's arrays go as binary parameters (%b): psycopg dumps a list
# of datetimes or strings 7 to 13 times faster than as text arrays, which
# was a tenth of the writer thread's time (BENCHMARKS.md, the profile).
# latest moves only forward in reading time, whatever the arrival order.
_UPSERT_LATEST = """
INSERT INTO latest (series_id, ts, value, flags)
SELECT * FROM unnest(%b::int4[], %b::timestamptz[], %b::float8[], %b::int2[])
ON CONFLICT (series_id) DO UPDATE
SET ts = EXCLUDED.ts, value = EXCLUDED.value, flags = EXCLUDED.flags
WHERE latest.ts < EXCLUDED.ts
"""
_INSERT_BATCHES = """
INSERT INTO batches (gateway, seq, committed_at, n)
SELECT g, s, now(), n FROM unnest(%b::text[], %b::int8[], %b::int4[]) AS b(g, s, n)
ON CONFLICT (gateway, seq) DO NOTHING
RETURNING gateway, seq
"""
_INSERT_SERIES = """
INSERT INTO series (device, metric, unit)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])
ON CONFLICT (device, metric) DO NOTHING
RETURNING device, metric
"""
_SELECT_SERIES = """
SELECT s.id, s.device, s.metric
FROM series s JOIN unnest(%s::text[], %s::text[]) AS k(device, metric)
    USING (device, metric)
"""
_UPSERT_DEVICES_SEEN = """
INSERT INTO devices (id, gateway, first_seen, last_seen, online)
SELECT d, g, f, l, true
FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::timestamptz[])
    AS x(d, g, f, l)
ON CONFLICT (id) DO UPDATE SET
    gateway = COALESCE(EXCLUDED.gateway, devices.gateway),
    first_seen = LEAST(devices.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen),
    online = true
"""
_UPSERT_GATEWAYS_SEEN = """
INSERT INTO gateways (id, first_seen, last_seen)
SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::timestamptz[])
ON CONFLICT (id) DO UPDATE SET
    first_seen = LEAST(gateways.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(gateways.last_seen, EXCLUDED.last_seen)
"""
_ADD_ACCOUNTING = """
INSERT INTO accounting (bucket, scope, ident, kind, reason, n)
SELECT * FROM unnest(
    %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], %b::int8[]
)
ON CONFLICT (bucket, scope, ident, kind, reason)
DO UPDATE SET n = accounting.n + EXCLUDED.n
"""
_INSERT_DEAD_LETTER = """
INSERT INTO dead_letters
    (received_at, topic, payload, reason, detail, gateway, device)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
_UPDATE_GATEWAY_STATE = """
UPDATE gateways SET
    status = %s, agent = %s, buffer_readings = %s, buffer_bytes = %s,
    dropped = %s, edge_rejected = %s, last_seen = GREATEST(last_seen, %s)
WHERE id = %s
"""
_UPSERT_DEVICE = """
INSERT INTO devices (id, gateway, name, mqtt_topic, tags, expected_interval_s)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET
    gateway = COALESCE(EXCLUDED.gateway, devices.gateway),
    name = EXCLUDED.name,
    mqtt_topic = EXCLUDED.mqtt_topic,
    tags = EXCLUDED.tags,
    expected_interval_s = EXCLUDED.expected_interval_s
"""
_DEVICE_COLUMNS = (
    "id, gateway, name, mqtt_topic, tags, expected_interval_s,"
    " first_seen, last_seen, online"
)
_GATEWAY_COLUMNS = (
    "id, status, agent, first_seen, last_seen, buffer_readings, buffer_bytes, dropped"
)
_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def copy_buffer(
    ts_us: Sequence[int] | np.ndarray,
    series_ids: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    flags: Sequence[int] | np.ndarray,
    *,
    with_ord: bool = False,
) -> bytes:
    """Readings as one binary COPY stream of (ts, series_id, value, flags).

    Args:
        ts_us: epoch microseconds.
        series_ids: the series of each reading.
        values: the values.
        flags: the flags.
        with_ord: add each row's position as a fifth column (the staging
            table's ``ord``, so that the first of equal (series, ts) wins).
    """
    rows = np.empty(len(ts_us), dtype=_COPY_ROW_ORD if with_ord else _COPY_ROW)
    rows["fields"] = 5 if with_ord else 4
    rows["ts_len"] = 8
    rows["ts"] = np.asarray(ts_us, dtype=np.int64) - _PG_EPOCH_US
    rows["sid_len"] = 4
    rows["sid"] = np.asarray(series_ids, dtype=np.int32)
    rows["value_len"] = 8
    rows["value"] = np.asarray(values, dtype=np.float64)
    rows["flags_len"] = 2
    rows["flags"] = np.asarray(flags, dtype=np.int16)
    if with_ord:
        rows["ord_len"] = 4
        rows["ord"] = np.arange(len(ts_us), dtype=np.int32)
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def first_unique(series_ids: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Positions of the first reading of each (series, ts), sorted by that key.

    Sorted, so that concurrent writers take index locks in the same order.
    """
    order = np.lexsort((ts_us, series_ids))  # stable: equal keys keep write order
    sid, ts = series_ids[order], ts_us[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (sid[1:] != sid[:-1]) | (ts[1:] != ts[:-1])
    return order[keep]


def _by_series(
    sid: np.ndarray, ts: np.ndarray, values: np.ndarray, flags: np.ndarray
) -> dict[int, SeriesColumns]:
    """Rows sorted by (series, ts) as columns per series id.

    Slicing whole columns costs a fraction of a tuple per row regrouped in
    Python (the profile of the COPY way, BENCHMARKS.md).
    """
    if not len(sid):
        return {}
    cuts = (np.flatnonzero(sid[1:] != sid[:-1]) + 1).tolist()
    starts = [0, *cuts]
    ends = [*cuts, len(sid)]
    ids = sid[starts].tolist()
    ts_l, values_l, flags_l = ts.tolist(), values.tolist(), flags.tolist()
    return {
        s: (ts_l[a:b], values_l[a:b], flags_l[a:b])
        for s, a, b in zip(ids, starts, ends, strict=True)
    }


def _configure(conn: Conn) -> None:
    # Datetimes come back in UTC, and each connection gets its staging table.
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute(_CREATE_STAGING)


class TimescaleStore(
    TimescaleAlertsMixin,
    TimescaleLogsMixin,
    TimescaleAuthMixin,
    TimescaleDataMixin,
    TimescaleCredsMixin,
):
    """The production store: TimescaleDB through psycopg 3.

    Safe to share between threads: every call takes a connection from the
    pool for its own transaction.

    Args:
        dsn: a libpq connection string or ``postgresql://`` URL.
        min_size: connections the pool keeps open.
        max_size: connections the pool may open (the hub writes on one, the
            API reads on the others).
        timeout: seconds to wait for the server at start-up and for a free
            connection afterwards.

    Raises:
        psycopg_pool.PoolTimeout: the server cannot be reached in ``timeout``.
    """

    kind = "timescaledb"

    def __init__(
        self, dsn: str, *, min_size: int = 1, max_size: int = 4, timeout: float = 10.0
    ) -> None:
        # Never log the DSN itself: it may hold a password.
        params = conninfo_to_dict(dsn)
        self._where = (
            f"host={params.get('host', '')} port={params.get('port', '')} "
            f"dbname={params.get('dbname', '')}"
        )
        self._conninfo = dsn  # for the sessions outside the pool (LISTEN)
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=_configure,
            check=ConnectionPool.check_connection,
            name="streamflow-store",
            timeout=timeout,
            open=True,
        )
        try:
            self._pool.wait(timeout)
        except BaseException:
            # Or the pool's threads would go on trying to connect.
            self._pool.close()
            raise

        # Series ids by (device, metric), only ever of committed rows.
        self._series: dict[tuple[str, str], int] = {}

        # How readings went in (see the module docstring, step 3): writes
        # left to take the staging way at once, and how many the next
        # conflict will send there. Races between writer threads only shift
        # a write from one correct way to the other.
        self._staged_left = 0
        self._staged_run = 0
        self._ways: Counter[str] = Counter()

        self.features: dict[str, bool] = {}
        self._detect_features()
        _LOGGER.info("store opened kind=timescaledb %s", self._where)

    def __enter__(self) -> TimescaleStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[Conn]:
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def _detect_features(self) -> None:
        # The Apache build (timescaledb.license = 'apache') has neither
        # compression nor continuous aggregates; the community build has both.
        with self._pool.connection() as conn:
            version = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone()
            row = conn.execute(
                "SELECT current_setting('timescaledb.license', true)"
            ).fetchone()
        licence = row[0] if row else None
        community = licence == "timescale"
        self.features = {
            "timescaledb": version is not None,
            "compression": community,
            "continuous_aggregates": community,
        }
        _LOGGER.info(
            "store features kind=timescaledb %s timescaledb=%s license=%s "
            "compression=%s continuous_aggregates=%s",
            self._where,
            version[0] if version else None,
            licence,
            community,
            community,
        )

    # -- schema ---------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply pending schema migrations, each in its own transaction.

        An advisory lock keeps hub processes that start together from applying
        the same migration twice.

        Returns:
            The versions applied by this call (empty when up to date).

        Raises:
            psycopg.Error: a migration failed; it is rolled back, the ones
                before it stay applied.
        """
        applied: list[int] = []
        for migration in load_migrations("timescale"):
            with self._transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATE_LOCK])
                conn.execute(_SCHEMA_MIGRATIONS)
                done = {
                    r[0] for r in conn.execute("SELECT version FROM schema_migrations")
                }
                if not pending([migration], done):
                    continue
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES (%s)",
                    [migration.version],
                )
            applied.append(migration.version)
            _LOGGER.info(
                "migration applied kind=timescaledb version=%d name=%s",
                migration.version,
                migration.name,
            )
        if applied:
            self._detect_features()
        return applied

    def schema_versions(self) -> list[int]:
        """The migration versions recorded as applied, in order."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT version FROM schema_migrations ORDER BY version"
            ).fetchall()
        return [r[0] for r in rows]

    # -- writes ---------------------------------------------------------------

    def write(
        self, items: Sequence[IngestItem], dead_letters: Sequence[DeadLetter] = ()
    ) -> WriteResult:
        """Store messages in one transaction (see the module docstring).

        Raises:
            ValueError: a series block's columns differ in length.
            psycopg.Error: the database failed; nothing of the write is kept.
        """
        started = time.perf_counter()
        plan = WritePlan(items)
        new_series: dict[tuple[str, str], int] = {}
        created: set[tuple[str, str]] = set()
        with self._transaction() as conn:
            plan.split(self._insert_batches(conn, plan))
            plan.build_rows(self._series_ids(conn, plan, new_series, created))
            result = plan.finish_by_series(self._insert_readings(conn, plan))
            result.created_series = created
            result.logs = self._insert_logs(conn, plan.fresh)
            self._upsert_latest(conn, plan.latest_rows())
            self._upsert_seen(conn, plan)
            self._add_accounting(conn, plan.accounting_rows())
            self._insert_dead_letters(conn, dead_letters)
        # Cached only now: ids from a rolled-back transaction would not exist.
        self._series.update(new_series)
        _LOGGER.debug(
            "write committed items=%d new=%d duplicates=%d batches=%d "
            "duplicate_batches=%d ms=%.1f",
            len(plan.items),
            result.inserted,
            result.duplicates,
            len(result.batches),
            len(result.duplicate_batches),
            (time.perf_counter() - started) * 1000,
        )
        return result

    def _insert_batches(self, conn: Conn, plan: WritePlan) -> set[tuple[str, int]]:
        if not plan.batch_rows:
            return set()
        gws, seqs, sizes = zip(*plan.batch_rows, strict=True)
        rows = conn.execute(_INSERT_BATCHES, [list(gws), list(seqs), list(sizes)])
        return {(gw, seq) for gw, seq in rows.fetchall()}

    def _series_ids(
        self,
        conn: Conn,
        plan: WritePlan,
        new_series: dict[tuple[str, str], int],
        created: set[tuple[str, str]],
    ) -> dict[tuple[str, str], int]:
        ids: dict[tuple[str, str], int] = {}
        missing: list[tuple[str, str, str]] = []
        for device, metric, unit in plan.series_keys():
            sid = self._series.get((device, metric))
            if sid is None:
                missing.append((device, metric, unit))
            else:
                ids[(device, metric)] = sid
        if missing:
            devices, metrics, units = (list(c) for c in zip(*missing, strict=True))
            rows = conn.execute(_INSERT_SERIES, [devices, metrics, units])
            created.update((device, metric) for device, metric in rows.fetchall())
            for sid, device, metric in conn.execute(
                _SELECT_SERIES, [devices, metrics]
            ).fetchall():
                ids[(device, metric)] = new_series[(device, metric)] = sid
        return ids

    def _insert_readings(self, conn: Conn, plan: WritePlan) -> dict[int, SeriesColumns]:
        # Step 3 of the module docstring: COPY straight in, or through staging.
        if not plan.ts:
            return {}
        if self._staged_left:
            self._staged_left -= 1
        else:
            rows = self._copy_readings(conn, plan)
            if rows is not None:
                self._staged_run = 0
                self._ways["copy"] += 1
                return rows
            self._staged_run = min(max(1, 2 * self._staged_run), _MAX_STAGED_RUN)
            self._staged_left = self._staged_run
            self._ways["copy_conflict"] += 1
            _LOGGER.debug(
                "copy hit stored readings, taking the staging way rows=%d next=%d",
                len(plan.ts),
                self._staged_run,
            )
        self._ways["staged"] += 1
        return self._insert_staged(conn, plan)

    def _copy_readings(
        self, conn: Conn, plan: WritePlan
    ) -> dict[int, SeriesColumns] | None:
        # All rows are new if none hits the unique index; None if one does.
        ts = np.asarray(plan.ts, dtype=np.int64)
        sid = np.asarray(plan.series_ids, dtype=np.int32)
        keep = first_unique(sid, ts)
        ts, sid = ts[keep], sid[keep]
        values = np.asarray(plan.values, dtype=np.float64)[keep]
        flags = np.asarray(plan.flags, dtype=np.int16)[keep]
        data = copy_buffer(ts, sid, values, flags)
        try:
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(_COPY_READINGS) as copy,
            ):
                copy.write(data)
        except psycopg.errors.UniqueViolation:
            return None
        return _by_series(sid, ts, values, flags)

    def _insert_staged(self, conn: Conn, plan: WritePlan) -> dict[int, SeriesColumns]:
        data = copy_buffer(
            plan.ts, plan.series_ids, plan.values, plan.flags, with_ord=True
        )
        with conn.cursor(binary=True) as cur:
            with cur.copy(_COPY_STAGING) as copy:
                copy.write(data)
            cur.execute(_INSERT_STAGED)
            rows = [(s, dt_to_us(t), v, f) for s, t, v, f in cur.fetchall()]
        return group_rows(rows)

    def _upsert_latest(self, conn: Conn, rows: Sequence[ReadingRow]) -> None:
        if not rows:
            return
        sids, ts, values, flags = zip(*rows, strict=True)
        conn.execute(
            _UPSERT_LATEST,
            [list(sids), [us_to_dt(t) for t in ts], list(values), list(flags)],
        )

    def _upsert_seen(self, conn: Conn, plan: WritePlan) -> None:
        devices = plan.device_rows()
        if devices:
            names, gws, first, last = zip(*devices, strict=True)
            conn.execute(
                _UPSERT_DEVICES_SEEN,
                [list(names), list(gws), _datetimes(first), _datetimes(last)],
            )
        gateways = plan.gateway_rows()
        if gateways:
            ids, first, last = zip(*gateways, strict=True)
            conn.execute(
                _UPSERT_GATEWAYS_SEEN, [list(ids), _datetimes(first), _datetimes(last)]
            )

    def _add_accounting(
        self, conn: Conn, rows: Sequence[tuple[int, str, str, str, str, int]]
    ) -> None:
        if not rows:
            return
        buckets, scopes, idents, kinds, reasons, counts = zip(*rows, strict=True)
        conn.execute(
            _ADD_ACCOUNTING,
            [
                [us_to_dt(b) for b in buckets],
                list(scopes),
                list(idents),
                list(kinds),
                list(reasons),
                list(counts),
            ],
        )

    def _insert_dead_letters(self, conn: Conn, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        with conn.cursor() as cur:
            cur.executemany(
                _INSERT_DEAD_LETTER,
                [
                    (
                        us_to_dt(d.received_us),
                        d.topic,
                        bytes(d.payload),
                        d.reason,
                        d.detail,
                        d.gateway,
                        d.device,
                    )
                    for d in letters
                ],
            )

    def record_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Store rejected payloads on their own, in one transaction."""
        with self._transaction() as conn:
            self._insert_dead_letters(conn, letters)

    def record_gateway_state(self, state: GatewayState, received_us: int) -> None:
        """Keep a gateway's reported state; ``offline`` marks its devices too.

        The increase of the cumulative edge drop counters since the last state
        goes into the accounting as ``dropped``, that of the edge's own reject
        counters as ``rejected``; a counter smaller than before means the
        gateway's buffer was reset and counts in full.
        """
        gw = state.gw
        seen = us_to_dt(received_us)
        with self._transaction() as conn:
            # The row first, so that FOR UPDATE has something to lock and two
            # states of a new gateway cannot both count from zero.
            conn.execute(
                "INSERT INTO gateways (id, first_seen, last_seen) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                [gw, seen, seen],
            )
            row = conn.execute(
                "SELECT dropped, edge_rejected FROM gateways WHERE id = %s FOR UPDATE",
                [gw],
            ).fetchone()
            counters = gateway_counters(
                state, row[0] if row else {}, row[1] if row else {}, received_us
            )
            conn.execute(
                _UPDATE_GATEWAY_STATE,
                [
                    state.status,
                    state.agent,
                    state.buffer.readings,
                    state.buffer.bytes,
                    Jsonb(counters.dropped),
                    Jsonb(counters.rejected),
                    seen,
                    gw,
                ],
            )
            if state.status == "offline":
                conn.execute(
                    "UPDATE devices SET online = false WHERE gateway = %s AND online",
                    [gw],
                )
            self._add_accounting(conn, counters.accounting)
        for reason in counters.resets:
            _LOGGER.info("edge drop counter reset gateway=%s reason=%s", gw, reason)

    def upsert_device(self, device: DeviceInfo) -> None:
        """Create a device ahead of time, or replace its registry fields.

        The registry fields are name, mqtt_topic, tags and expected_interval_s;
        a ``gateway`` of None keeps the gateway learned from data. Seen times
        and ``online`` come from data only.

        Raises:
            ValueError: an invalid id, gateway id or mqtt_topic (naming the
                field and the character), or an mqtt_topic already registered
                to another device.
        """
        device = normalize_device(device)
        try:
            with self._transaction() as conn:
                conn.execute(
                    _UPSERT_DEVICE,
                    [
                        device.id,
                        device.gateway,
                        device.name,
                        device.mqtt_topic,
                        Jsonb(device.tags),
                        device.expected_interval_s,
                    ],
                )
        except psycopg.errors.UniqueViolation as exc:
            raise ValueError(
                f"invalid mqtt_topic {device.mqtt_topic!r}: already registered "
                "to another device"
            ) from exc

    # -- registry reads -------------------------------------------------------

    def get_device(self, device_id: str) -> DeviceInfo | None:
        """One device, or None."""
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = %s", [device_id]
            ).fetchone()
        return None if row is None else _device(row)

    def list_devices(self, gateway: str | None = None) -> list[DeviceInfo]:
        """Every device, ordered by id, optionally of one gateway."""
        with self._pool.connection() as conn:
            if gateway is None:
                cur = conn.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY id")
            else:
                cur = conn.execute(
                    f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE gateway = %s"
                    " ORDER BY id",
                    [gateway],
                )
            return [_device(r) for r in cur.fetchall()]

    def device_for_topic(self, topic: str) -> str | None:
        """The id of the device registered with this exact (NFC) MQTT topic."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT id FROM devices WHERE mqtt_topic = %s", [nfc(topic)]
            ).fetchone()
        return None if row is None else str(row[0])

    def get_gateway(self, gateway_id: str) -> GatewayInfo | None:
        """One gateway, or None."""
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_GATEWAY_COLUMNS} FROM gateways WHERE id = %s", [gateway_id]
            ).fetchone()
        return None if row is None else _gateway(row)

    def list_gateways(self) -> list[GatewayInfo]:
        """Every gateway, ordered by id."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_GATEWAY_COLUMNS} FROM gateways ORDER BY id"
            ).fetchall()
        return [_gateway(r) for r in rows]

    def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters, newest first."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT topic, payload, reason, detail, received_at, gateway, device"
                " FROM dead_letters ORDER BY id DESC LIMIT %s",
                [limit],
            ).fetchall()
        return [
            DeadLetter(t, bytes(p), r, d, dt_to_us(at), g, dev)
            for t, p, r, d, at, g, dev in rows
        ]

    # -- readings -------------------------------------------------------------

    def readings(
        self,
        device: str,
        metric: str | None = None,
        from_us: int | None = None,
        to_us: int | None = None,
        limit: int = 10_000,
    ) -> list[Reading]:
        """Readings of a device in ``[from_us, to_us)``, oldest first."""
        where, params = _reading_filter(device, metric, from_us, to_us)
        with self._pool.connection() as conn, conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT s.metric, s.unit, r.ts, r.value, r.flags"
                " FROM readings r JOIN series s ON s.id = r.series_id"
                f" WHERE {where} ORDER BY r.ts, s.metric LIMIT %s",
                [*params, limit],
            )
            rows = cur.fetchall()
        return [Reading(device, m, dt_to_us(t), v, u, f) for m, u, t, v, f in rows]

    def latest(self, device: str) -> list[Reading]:
        """Each metric's reading with the newest reading time (not arrival)."""
        with self._pool.connection() as conn, conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT s.metric, s.unit, l.ts, l.value, l.flags"
                " FROM latest l JOIN series s ON s.id = l.series_id"
                " WHERE s.device = %s ORDER BY s.metric",
                [device],
            )
            rows = cur.fetchall()
        return [Reading(device, m, dt_to_us(t), v, u, f) for m, u, t, v, f in rows]

    def aggregate(
        self,
        device: str,
        metric: str,
        bucket_s: int,
        from_us: int,
        to_us: int,
        tz: str = "UTC",
    ) -> list[Bucket]:
        """Readings in ``[from_us, to_us)`` in buckets of ``bucket_s`` seconds.

        Whole-day buckets use ``time_bucket(interval, ts, tz)`` (local days,
        23 or 25 hours on DST days); shorter ones ``time_bucket(interval, ts)``
        in absolute time, so a fall-back day's repeated hour is two buckets.

        Raises:
            ValueError: see :func:`hub.storage._common.bucket_spec`.
        """
        spec = bucket_spec(bucket_s, tz)
        if spec.days:
            expr = "time_bucket(make_interval(days => %s::int), r.ts, %s::text)"
            bucket_params: list[Any] = [spec.days, spec.tz]
        else:
            expr = "time_bucket(make_interval(secs => %s::float8), r.ts)"
            bucket_params = [spec.width_s]
        with self._pool.connection() as conn, conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT b, count(*), min(value), max(value), avg(value), sum(value),"
                " last(value, ts) FROM ("
                f"  SELECT {expr} AS b, r.ts, r.value"
                "   FROM readings r JOIN series s ON s.id = r.series_id"
                "   WHERE s.device = %s AND s.metric = %s"
                "   AND r.ts >= %s AND r.ts < %s"
                ") q GROUP BY b ORDER BY b",
                [*bucket_params, device, metric, us_to_dt(from_us), us_to_dt(to_us)],
            )
            rows = cur.fetchall()
        return [Bucket(dt_to_us(row[0]), *row[1:]) for row in rows]

    def count_readings(self, device: str | None = None) -> int:
        """How many readings are stored (for one device, or all)."""
        with self._pool.connection() as conn:
            if device is None:
                row = conn.execute("SELECT count(*) FROM readings").fetchone()
            else:
                row = conn.execute(
                    "SELECT count(*) FROM readings r JOIN series s"
                    " ON s.id = r.series_id WHERE s.device = %s",
                    [device],
                ).fetchone()
        return int(row[0]) if row else 0

    def accounting(
        self,
        scope: Scope,
        ident: str,
        from_us: int | None = None,
        to_us: int | None = None,
    ) -> Accounting:
        """Loss accounting of a device or gateway over a window of receive time.

        The accounting is kept per hour: the hour holding ``from_us`` counts
        in full, and hours starting at or after ``to_us`` do not count.
        """
        sql = (
            "SELECT kind, reason, sum(n) FROM accounting"
            " WHERE scope = %s AND ident = %s"
        )
        params: list[Any] = [scope, ident]
        if from_us is not None:
            sql += " AND bucket >= %s"
            params.append(us_to_dt(hour_of(from_us)))
        if to_us is not None:
            sql += " AND bucket < %s"
            params.append(us_to_dt(to_us))
        with self._pool.connection() as conn:
            rows = conn.execute(sql + " GROUP BY kind, reason", params).fetchall()
        return accounting_from_rows(rows)

    def drop_before(self, before_us: int) -> int:
        """Retention: drop the chunks whose readings are all older than ``before_us``.

        Returns:
            How many chunks were dropped.
        """
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT count(*) FROM drop_chunks('readings', older_than => %s)",
                [us_to_dt(before_us)],
            ).fetchone()
        dropped = int(row[0]) if row else 0
        _LOGGER.info(
            "retention kind=timescaledb before_us=%d chunks=%d", before_us, dropped
        )
        return dropped

    def stats(self) -> dict[str, Any]:
        """Cheap figures for /healthz.

        ``readings`` is TimescaleDB's estimate (``approximate_row_count``), as
        an exact count would scan the whole hypertable. ``write_ways`` counts
        the writes whose readings went in by ``copy``, by ``staged``, and the
        COPYs that hit a stored reading (``copy_conflict``).
        """
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT approximate_row_count('readings'),"
                " (SELECT count(*) FROM series), (SELECT count(*) FROM devices),"
                " (SELECT count(*) FROM gateways), (SELECT count(*) FROM dead_letters)"
            ).fetchone()
        if row is None:  # pragma: no cover - an aggregate always gives a row
            raise RuntimeError("stats query returned no row")
        return {
            "kind": self.kind,
            "readings": int(row[0]),
            "series": int(row[1]),
            "devices": int(row[2]),
            "gateways": int(row[3]),
            "dead_letters": int(row[4]),
            "features": dict(self.features),
            "write_ways": dict(self._ways),
        }

    def close(self) -> None:
        """Close the pool and its connections."""
        self._pool.close()

    # -- processors (hub/processors): rollups, rules, events ------------------
    # Added for the processors; the tables come from migration 0002.

    def refresh_rollups(self, buckets: Sequence[tuple[str, str, int]]) -> int:
        """Recompute the 1-minute rollups of (device, metric, minute start µs).

        One statement recomputes every minute named from its stored readings
        and upserts it whole, so that a refresh run twice changes nothing and
        a late reading merges into its minute. Series that have no readings
        are skipped.

        Returns:
            The rollup rows written.
        """
        keys = sorted({(d, m, b - b % _MINUTE_US) for d, m, b in buckets})
        if not keys:
            return 0
        with self._transaction() as conn:
            ids = self._known_series(conn, {(d, m) for d, m, _ in keys})
            pairs = [(ids[(d, m)], b) for d, m, b in keys if (d, m) in ids]
            if not pairs:
                return 0
            with conn.cursor() as cur:
                cur.execute(
                    _REFRESH_ROLLUPS,
                    [[p[0] for p in pairs], [us_to_dt(p[1]) for p in pairs]],
                )
                return cur.rowcount

    def _known_series(
        self, conn: Conn, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        ids = {k: self._series[k] for k in keys if k in self._series}
        missing = sorted(keys - ids.keys())
        if missing:
            rows = conn.execute(
                _SELECT_SERIES, [[k[0] for k in missing], [k[1] for k in missing]]
            ).fetchall()
            ids.update({(dev, metric): sid for sid, dev, metric in rows})
        return ids

    def rollups(
        self, device: str, metric: str, from_us: int, to_us: int
    ) -> list[Rollup]:
        """The 1-minute rollups of one series starting in ``[from_us, to_us)``."""
        with self._pool.connection() as conn, conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT r.bucket, r.n, r.min, r.max, r.sum, r.last"
                " FROM rollups_1m r JOIN series s ON s.id = r.series_id"
                " WHERE s.device = %s AND s.metric = %s"
                " AND r.bucket >= %s AND r.bucket < %s ORDER BY r.bucket",
                [device, metric, us_to_dt(from_us), us_to_dt(to_us)],
            )
            rows = cur.fetchall()
        return [
            Rollup(dt_to_us(b), n, lo, hi, total / n, last)
            for b, n, lo, hi, total, last in rows
        ]

    def create_rule(self, rule: RuleRecord, replace: bool = False) -> RuleRecord:
        """Store a rule; return it with its stored times.

        Raises:
            ValueError: the id is not a valid id, or a rule with this id
                exists and ``replace`` is false.
        """
        check_id(rule.id, "rule id")
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO rules (id, kind, spec) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                [rule.id, rule.kind, Jsonb(rule.spec)],
            ).fetchone()
            if row is None:
                if not replace:
                    raise ValueError(f"rule {rule.id!r} already exists")
                conn.execute(
                    "UPDATE rules SET kind = %s, spec = %s, updated_at = now()"
                    " WHERE id = %s",
                    [rule.kind, Jsonb(rule.spec), rule.id],
                )
        stored = self.get_rule(rule.id)
        if stored is None:  # pragma: no cover - written in the transaction above
            raise RuntimeError(f"rule {rule.id!r} vanished after it was written")
        return stored

    def get_rule(self, rule_id: str) -> RuleRecord | None:
        """One rule, or None."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT id, kind, spec, created_at, updated_at FROM rules"
                " WHERE id = %s",
                [rule_id],
            ).fetchone()
        return None if row is None else _rule(row)

    def list_rules(self, kind: str | None = None) -> list[RuleRecord]:
        """Every rule (of one kind), ordered by id."""
        sql = "SELECT id, kind, spec, created_at, updated_at FROM rules"
        params: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = %s"
            params.append(kind)
        with self._pool.connection() as conn:
            rows = conn.execute(sql + " ORDER BY id", params).fetchall()
        return [_rule(r) for r in rows]

    def delete_rule(self, rule_id: str) -> bool:
        """Delete a rule; return whether it existed."""
        with self._transaction() as conn:
            cur = conn.execute("DELETE FROM rules WHERE id = %s", [rule_id])
            return cur.rowcount > 0

    def record_events(self, events: Sequence[EventRecord]) -> list[str]:
        """Store events in one transaction; return the ids that were new."""
        if not events:
            return []
        with self._transaction() as conn:
            rows = conn.execute(
                _INSERT_EVENTS,
                [
                    [e.id for e in events],
                    [e.kind for e in events],
                    [e.state for e in events],
                    [e.device for e in events],
                    [e.metric for e in events],
                    [us_to_dt(e.ts_us) for e in events],
                    [e.value for e in events],
                    [e.severity for e in events],
                    [e.rule for e in events],
                    [e.past for e in events],
                    [orjson.dumps(e.details).decode() for e in events],
                    [us_to_dt(e.detected_us) for e in events],
                ],
            ).fetchall()
        new = {r[0] for r in rows}
        # In the order given, which RETURNING does not promise.
        return [e.id for e in events if e.id in new]

    def list_events(
        self,
        device: str | None = None,
        kind: str | None = None,
        from_us: int | None = None,
        to_us: int | None = None,
        limit: int = 1000,
    ) -> list[EventRecord]:
        """Events with reading times in ``[from_us, to_us)``, oldest first."""
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("device = %s", device),
            ("kind = %s", kind),
            ("ts >= %s", None if from_us is None else us_to_dt(from_us)),
            ("ts < %s", None if to_us is None else us_to_dt(to_us)),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._pool.connection() as conn:
            rows = conn.execute(
                sql + " ORDER BY ts, id LIMIT %s", [*params, limit]
            ).fetchall()
        return [_event(r) for r in rows]


def _datetimes(times: Sequence[int]) -> list[datetime]:
    return [us_to_dt(t) for t in times]


def _reading_filter(
    device: str, metric: str | None, from_us: int | None, to_us: int | None
) -> tuple[str, list[Any]]:
    where = ["s.device = %s"]
    params: list[Any] = [device]
    if metric is not None:
        where.append("s.metric = %s")
        params.append(metric)
    if from_us is not None:
        where.append("r.ts >= %s")
        params.append(us_to_dt(from_us))
    if to_us is not None:
        where.append("r.ts < %s")
        params.append(us_to_dt(to_us))
    return " AND ".join(where), params


def _device(row: tuple[Any, ...]) -> DeviceInfo:
    dev, gw, name, topic, tags, interval, first, last, online = row
    return DeviceInfo(
        id=dev,
        gateway=gw,
        name=name,
        mqtt_topic=topic,
        tags=dict(tags),
        expected_interval_s=interval,
        first_seen_us=opt_dt_to_us(first),
        last_seen_us=opt_dt_to_us(last),
        online=bool(online),
    )


def _gateway(row: tuple[Any, ...]) -> GatewayInfo:
    gw, status, agent, first, last, readings, size, dropped = row
    return GatewayInfo(
        id=gw,
        status=status,
        agent=agent,
        first_seen_us=opt_dt_to_us(first),
        last_seen_us=opt_dt_to_us(last),
        buffer_readings=int(readings),
        buffer_bytes=int(size),
        dropped={str(k): int(v) for k, v in dict(dropped).items()},
    )


# -- processors: SQL and row conversions ------------------------------------

_MINUTE_US = 60_000_000
# Every minute named, recomputed whole from its readings (last() is
# TimescaleDB's: the value with the newest ts). The pairs are distinct, so no
# row is upserted twice in one statement.
_REFRESH_ROLLUPS = """
INSERT INTO rollups_1m (series_id, bucket, n, sum, min, max, last, last_ts)
SELECT k.sid, k.b, count(*), sum(r.value), min(r.value), max(r.value),
    last(r.value, r.ts), max(r.ts)
FROM unnest(%s::int4[], %s::timestamptz[]) AS k(sid, b)
JOIN readings r
    ON r.series_id = k.sid AND r.ts >= k.b AND r.ts < k.b + interval '1 minute'
GROUP BY k.sid, k.b
ON CONFLICT (series_id, bucket) DO UPDATE SET
    n = EXCLUDED.n, sum = EXCLUDED.sum, min = EXCLUDED.min, max = EXCLUDED.max,
    last = EXCLUDED.last, last_ts = EXCLUDED.last_ts
"""
_INSERT_EVENTS = """
INSERT INTO events (id, kind, state, device, metric, ts, value, severity, rule,
    past, details, detected_at)
SELECT i, k, st, d, m, t, v, sev, r, p, det::jsonb, at
FROM unnest(
    %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
    %s::timestamptz[], %s::float8[], %s::text[], %s::text[], %s::bool[],
    %s::text[], %s::timestamptz[]
) AS e(i, k, st, d, m, t, v, sev, r, p, det, at)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""
_EVENT_COLUMNS = (
    "id, kind, state, device, metric, ts, value, severity, rule, past, details,"
    " detected_at"
)


def _rule(row: tuple[Any, ...]) -> RuleRecord:
    rule_id, kind, spec, created, updated = row
    return RuleRecord(rule_id, kind, dict(spec), dt_to_us(created), dt_to_us(updated))


def _event(row: tuple[Any, ...]) -> EventRecord:
    ev, kind, state, dev, metric, ts, value, sev, rule, past, details, at = row
    return EventRecord(
        id=ev,
        kind=kind,
        state=state,
        device=dev,
        metric=metric,
        ts_us=dt_to_us(ts),
        value=value,
        severity=sev,
        rule=rule,
        past=bool(past),
        details=dict(details),
        detected_us=dt_to_us(at),
    )
