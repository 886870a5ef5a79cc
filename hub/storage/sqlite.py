"""The SQLite store: the embedded default, so that ``streamflow up`` needs no server.

The schema is TimescaleDB's with times as INTEGER epoch microseconds (UTC).
One connection in WAL mode serves every thread, guarded by a lock: the hub
writes from one thread and the API reads from others, and SQLite serialises
writers anyway. Each :meth:`SQLiteStore.write` is one ``BEGIN IMMEDIATE``
transaction that follows the same steps as the TimescaleDB store: batch keys
with ``ON CONFLICT DO NOTHING RETURNING``, series ids, the readings through a
temporary staging table and one ``INSERT ... SELECT ... RETURNING`` that
reports exactly the new ones, then latest, devices, gateways, accounting and
dead letters.

``synchronous = FULL``: a write is acknowledged to gateways once committed,
and in WAL mode only FULL makes a commit survive a power cut.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from hub.storage._common import BUCKET_ORIGIN_US as _ORIGIN_US
from hub.storage._common import (
    BucketSpec,
    ReadingRow,
    WritePlan,
    accounting_from_rows,
    bucket_spec,
    gateway_counters,
    hour_of,
    local_day_bounds,
    nfc,
    normalize_device,
)
from hub.storage._migrations import load_migrations, pending
from hub.storage._sqlite_alerts import SQLiteAlertsMixin
from hub.storage._sqlite_auth import SQLiteAuthMixin
from hub.storage._sqlite_creds import SQLiteCredsMixin
from hub.storage._sqlite_data import SQLiteDataMixin
from hub.storage._sqlite_logs import SQLiteLogsMixin
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
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

# RETURNING arrived in SQLite 3.35 (2021-03); the write path depends on it.
_MIN_SQLITE = (3, 35, 0)

_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS readings_staging (
    ts INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    value NOT NULL,
    flags INTEGER NOT NULL,
    ord INTEGER PRIMARY KEY
)
"""
# Rows go in by ord, so of equal (series, ts) in one write the first wins;
# "WHERE true" resolves the parsing ambiguity of INSERT ... SELECT ... ON
# CONFLICT that the SQLite manual describes.
_INSERT_READINGS = """
INSERT INTO readings (ts, series_id, value, flags)
SELECT ts, series_id, value, flags FROM temp.readings_staging WHERE true ORDER BY ord
ON CONFLICT (series_id, ts) DO NOTHING
RETURNING series_id, ts, value, flags
"""
_UPSERT_LATEST = """
INSERT INTO latest (series_id, ts, value, flags) VALUES (?, ?, ?, ?)
ON CONFLICT (series_id) DO UPDATE
SET ts = excluded.ts, value = excluded.value, flags = excluded.flags
WHERE latest.ts < excluded.ts
"""
# SQLite's two-argument min()/max() return NULL if either is NULL, hence the
# coalesce for a device created ahead of time with no seen times yet.
_UPSERT_DEVICE_SEEN = """
INSERT INTO devices (id, gateway, first_seen, last_seen, online)
VALUES (?, ?, ?, ?, 1)
ON CONFLICT (id) DO UPDATE SET
    gateway = coalesce(excluded.gateway, devices.gateway),
    first_seen = min(coalesce(devices.first_seen, excluded.first_seen),
                     excluded.first_seen),
    last_seen = max(coalesce(devices.last_seen, excluded.last_seen),
                    excluded.last_seen),
    online = 1
"""
_UPSERT_GATEWAY_SEEN = """
INSERT INTO gateways (id, first_seen, last_seen) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    first_seen = min(coalesce(gateways.first_seen, excluded.first_seen),
                     excluded.first_seen),
    last_seen = max(coalesce(gateways.last_seen, excluded.last_seen),
                    excluded.last_seen)
"""
_ADD_ACCOUNTING = """
INSERT INTO accounting (bucket, scope, ident, kind, reason, n)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (bucket, scope, ident, kind, reason) DO UPDATE SET n = n + excluded.n
"""
_INSERT_DEAD_LETTER = """
INSERT INTO dead_letters
    (received_at, topic, payload, reason, detail, gateway, device)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_UPDATE_GATEWAY_STATE = """
UPDATE gateways SET
    status = :status, agent = :agent, buffer_readings = :readings,
    buffer_bytes = :bytes, dropped = :dropped, edge_rejected = :rejected,
    last_seen = max(coalesce(last_seen, :seen), :seen)
WHERE id = :gw
"""
_UPSERT_DEVICE = """
INSERT INTO devices (id, gateway, name, mqtt_topic, tags, expected_interval_s)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    gateway = coalesce(excluded.gateway, devices.gateway),
    name = excluded.name,
    mqtt_topic = excluded.mqtt_topic,
    tags = excluded.tags,
    expected_interval_s = excluded.expected_interval_s
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
    version INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
)
"""
# Figures of one bucket; "last" is the value with the newest ts in it.
_BUCKET_FIGURES = (
    "count(*), min(value), max(value), avg(value), sum(value),"
    " max(CASE WHEN rn = 1 THEN value END)"
)
# Fixed buckets from time_bucket's origin; % truncates towards zero in SQLite,
# hence the double modulo for times before the origin.
_AGGREGATE_FIXED = f"""
SELECT b, {_BUCKET_FIGURES} FROM (
    SELECT b, value, row_number() OVER (PARTITION BY b ORDER BY ts DESC) AS rn
    FROM (
        SELECT ts - ((ts - :origin) % :width + :width) % :width AS b, ts, value
        FROM readings
        WHERE series_id = :sid AND ts >= :from_us AND ts < :to_us
    )
) GROUP BY b ORDER BY b
"""
_AGGREGATE_ONE = f"""
SELECT {_BUCKET_FIGURES} FROM (
    SELECT value, row_number() OVER (ORDER BY ts DESC) AS rn
    FROM readings WHERE series_id = ? AND ts >= ? AND ts < ?
)
"""


class SQLiteStore(
    SQLiteAlertsMixin,
    SQLiteLogsMixin,
    SQLiteAuthMixin,
    SQLiteDataMixin,
    SQLiteCredsMixin,
):
    """The embedded store: one SQLite file (or ``:memory:``).

    Safe to share between threads: one connection, one lock.

    Args:
        path: the database file, created if missing, or ``":memory:"``.

    Raises:
        RuntimeError: the SQLite library is older than 3.35 (no RETURNING).
        sqlite3.Error: the file cannot be opened.
    """

    kind = "sqlite"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} is too old: expected 3.35 or newer"
            )
        self._path = os.fspath(path)
        # isolation_level=None: no implicit transactions; write() says BEGIN.
        self._conn = sqlite3.connect(
            self._path, check_same_thread=False, isolation_level=None
        )
        self._lock = threading.RLock()
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._conn.execute("PRAGMA temp_store = MEMORY")
        self._conn.execute(_CREATE_STAGING)

        # Series ids by (device, metric), only ever of committed rows.
        self._series: dict[tuple[str, str], int] = {}
        #: SQLite has none of TimescaleDB's optional features.
        self.features: dict[str, bool] = {
            "timescaledb": False,
            "compression": False,
            "continuous_aggregates": False,
        }
        _LOGGER.info(
            "store opened kind=sqlite path=%s journal_mode=%s sqlite=%s",
            self._path,
            mode,
            sqlite3.sqlite_version,
        )

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        # IMMEDIATE takes the write lock up front, so that a transaction never
        # fails half-way on a lock another process took since it began.
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (disk full), which leaves the
                # transaction open and would refuse the next BEGIN.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- schema ---------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply pending schema migrations, each in its own transaction.

        Returns:
            The versions applied by this call (empty when up to date).

        Raises:
            sqlite3.Error: a migration failed; it is rolled back, the ones
                before it stay applied.
        """
        applied: list[int] = []
        with self._lock:
            self._conn.execute(_SCHEMA_MIGRATIONS)
        for migration in load_migrations("sqlite"):
            # The version is checked again inside the write lock, so that two
            # processes that open the same file at once apply it only once.
            with self._transaction() as cur:
                done = {
                    r[0] for r in cur.execute("SELECT version FROM schema_migrations")
                }
                if not pending([migration], done):
                    continue
                for statement in _statements(migration.sql):
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (migration.version, now_us()),
                )
            applied.append(migration.version)
            _LOGGER.info(
                "migration applied kind=sqlite version=%d name=%s",
                migration.version,
                migration.name,
            )
        return applied

    def schema_versions(self) -> list[int]:
        """The migration versions recorded as applied, in order."""
        rows = self._query("SELECT version FROM schema_migrations ORDER BY version")
        return [r[0] for r in rows]

    # -- writes ---------------------------------------------------------------

    def write(
        self, items: Sequence[IngestItem], dead_letters: Sequence[DeadLetter] = ()
    ) -> WriteResult:
        """Store messages in one transaction (see the module docstring).

        Raises:
            ValueError: a series block's columns differ in length.
            sqlite3.Error: the database failed; nothing of the write is kept.
        """
        started = time.perf_counter()
        plan = WritePlan(items)
        new_series: dict[tuple[str, str], int] = {}
        created: set[tuple[str, str]] = set()
        with self._transaction() as cur:
            plan.split(self._insert_batches(cur, plan))
            plan.build_rows(self._series_ids(cur, plan, new_series, created))
            result = plan.finish(self._insert_readings(cur, plan))
            result.created_series = created
            result.logs = self._insert_logs(cur, plan.fresh)
            cur.executemany(_UPSERT_LATEST, plan.latest_rows())
            cur.executemany(_UPSERT_DEVICE_SEEN, plan.device_rows())
            cur.executemany(_UPSERT_GATEWAY_SEEN, plan.gateway_rows())
            cur.executemany(_ADD_ACCOUNTING, plan.accounting_rows())
            self._insert_dead_letters(cur, dead_letters)
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

    def _insert_batches(
        self, cur: sqlite3.Cursor, plan: WritePlan
    ) -> set[tuple[str, int]]:
        new: set[tuple[str, int]] = set()
        committed = now_us()
        for gw, seq, size in plan.batch_rows:
            row = cur.execute(
                "INSERT INTO batches (gateway, seq, committed_at, n)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (gateway, seq) DO NOTHING RETURNING 1",
                (gw, seq, committed, size),
            ).fetchone()
            if row is not None:
                new.add((gw, seq))
        return new

    def _series_ids(
        self,
        cur: sqlite3.Cursor,
        plan: WritePlan,
        new_series: dict[tuple[str, str], int],
        created: set[tuple[str, str]],
    ) -> dict[tuple[str, str], int]:
        ids: dict[tuple[str, str], int] = {}
        for device, metric, unit in plan.series_keys():
            sid = self._series.get((device, metric))
            if sid is None:
                inserted = cur.execute(
                    "INSERT INTO series (device, metric, unit) VALUES (?, ?, ?)"
                    " ON CONFLICT (device, metric) DO NOTHING RETURNING 1",
                    (device, metric, unit),
                ).fetchone()
                if inserted is not None:
                    created.add((device, metric))
                sid = cur.execute(
                    "SELECT id FROM series WHERE device = ? AND metric = ?",
                    (device, metric),
                ).fetchone()[0]
                new_series[(device, metric)] = sid
            ids[(device, metric)] = sid
        return ids

    def _insert_readings(
        self, cur: sqlite3.Cursor, plan: WritePlan
    ) -> list[ReadingRow]:
        if not plan.ts:
            return []
        # float(): an int would be stored as an INTEGER and read back as one.
        cur.executemany(
            "INSERT INTO temp.readings_staging (ts, series_id, value, flags, ord)"
            " VALUES (?, ?, ?, ?, ?)",
            zip(
                plan.ts,
                plan.series_ids,
                map(float, plan.values),
                plan.flags,
                range(len(plan.ts)),
                strict=True,
            ),
        )
        rows: list[ReadingRow] = cur.execute(_INSERT_READINGS).fetchall()
        cur.execute("DELETE FROM temp.readings_staging")
        return rows

    def _insert_dead_letters(
        self, cur: sqlite3.Cursor, letters: Sequence[DeadLetter]
    ) -> None:
        cur.executemany(
            _INSERT_DEAD_LETTER,
            [
                (
                    d.received_us,
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
        with self._transaction() as cur:
            self._insert_dead_letters(cur, letters)

    def record_gateway_state(self, state: GatewayState, received_us: int) -> None:
        """Keep a gateway's reported state; ``offline`` marks its devices too.

        The increase of the cumulative edge drop counters since the last state
        goes into the accounting as ``dropped``; a counter smaller than before
        means the gateway's buffer was reset and counts in full.
        """
        gw = state.gw
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO gateways (id, first_seen, last_seen) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                (gw, received_us, received_us),
            )
            dropped, rejected = cur.execute(
                "SELECT dropped, edge_rejected FROM gateways WHERE id = ?", (gw,)
            ).fetchone()
            counters = gateway_counters(
                state, orjson.loads(dropped), orjson.loads(rejected), received_us
            )
            cur.execute(
                _UPDATE_GATEWAY_STATE,
                {
                    "status": state.status,
                    "agent": state.agent,
                    "readings": state.buffer.readings,
                    "bytes": state.buffer.bytes,
                    "dropped": _dumps(counters.dropped),
                    "rejected": _dumps(counters.rejected),
                    "seen": received_us,
                    "gw": gw,
                },
            )
            if state.status == "offline":
                cur.execute(
                    "UPDATE devices SET online = 0 WHERE gateway = ? AND online", (gw,)
                )
            cur.executemany(_ADD_ACCOUNTING, counters.accounting)
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
            with self._transaction() as cur:
                cur.execute(
                    _UPSERT_DEVICE,
                    (
                        device.id,
                        device.gateway,
                        device.name,
                        device.mqtt_topic,
                        _dumps(device.tags),
                        device.expected_interval_s,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise ValueError(
                f"invalid mqtt_topic {device.mqtt_topic!r}: already registered "
                "to another device"
            ) from exc

    # -- registry reads -------------------------------------------------------

    def get_device(self, device_id: str) -> DeviceInfo | None:
        """One device, or None."""
        rows = self._query(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = ?", (device_id,)
        )
        return _device(rows[0]) if rows else None

    def list_devices(self, gateway: str | None = None) -> list[DeviceInfo]:
        """Every device, ordered by id, optionally of one gateway."""
        if gateway is None:
            rows = self._query(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY id")
        else:
            rows = self._query(
                f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE gateway = ? ORDER BY id",
                (gateway,),
            )
        return [_device(r) for r in rows]

    def device_for_topic(self, topic: str) -> str | None:
        """The id of the device registered with this exact (NFC) MQTT topic."""
        rows = self._query("SELECT id FROM devices WHERE mqtt_topic = ?", (nfc(topic),))
        return str(rows[0][0]) if rows else None

    def get_gateway(self, gateway_id: str) -> GatewayInfo | None:
        """One gateway, or None."""
        rows = self._query(
            f"SELECT {_GATEWAY_COLUMNS} FROM gateways WHERE id = ?", (gateway_id,)
        )
        return _gateway(rows[0]) if rows else None

    def list_gateways(self) -> list[GatewayInfo]:
        """Every gateway, ordered by id."""
        rows = self._query(f"SELECT {_GATEWAY_COLUMNS} FROM gateways ORDER BY id")
        return [_gateway(r) for r in rows]

    def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters, newest first."""
        rows = self._query(
            "SELECT topic, payload, reason, detail, received_at, gateway, device"
            " FROM dead_letters ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            DeadLetter(t, bytes(p), r, d, at, g, dev) for t, p, r, d, at, g, dev in rows
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
        where = ["s.device = ?"]
        params: list[Any] = [device]
        for clause, value in (
            ("s.metric = ?", metric),
            ("r.ts >= ?", from_us),
            ("r.ts < ?", to_us),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self._query(
            "SELECT s.metric, s.unit, r.ts, r.value, r.flags"
            " FROM readings r JOIN series s ON s.id = r.series_id"
            f" WHERE {' AND '.join(where)} ORDER BY r.ts, s.metric LIMIT ?",
            [*params, limit],
        )
        return [Reading(device, m, t, v, u, f) for m, u, t, v, f in rows]

    def latest(self, device: str) -> list[Reading]:
        """Each metric's reading with the newest reading time (not arrival)."""
        rows = self._query(
            "SELECT s.metric, s.unit, l.ts, l.value, l.flags"
            " FROM latest l JOIN series s ON s.id = l.series_id"
            " WHERE s.device = ? ORDER BY s.metric",
            (device,),
        )
        return [Reading(device, m, t, v, u, f) for m, u, t, v, f in rows]

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

        Shorter-than-a-day buckets are computed in SQL from the origin
        2000-01-03T00:00Z, as TimescaleDB's ``time_bucket`` does; whole-day
        buckets follow local days in ``tz``, their bounds found with zoneinfo.

        Raises:
            ValueError: see :func:`hub.storage._common.bucket_spec`.
        """
        spec = bucket_spec(bucket_s, tz)
        rows = self._query(
            "SELECT id FROM series WHERE device = ? AND metric = ?", (device, metric)
        )
        if not rows or from_us >= to_us:
            return []
        sid = rows[0][0]
        if spec.days:
            return self._aggregate_days(sid, spec, from_us, to_us)
        width = spec.width_s * 1_000_000
        found = self._query(
            _AGGREGATE_FIXED,
            {
                "origin": _ORIGIN_US,
                "width": width,
                "sid": sid,
                "from_us": from_us,
                "to_us": to_us,
            },
        )
        return [Bucket(*row) for row in found]

    def _aggregate_days(
        self, sid: int, spec: BucketSpec, from_us: int, to_us: int
    ) -> list[Bucket]:
        # Only the span that holds readings needs buckets: a range of years
        # with a week of data should not make thousands of queries.
        rows = self._query(
            "SELECT min(ts), max(ts) FROM readings"
            " WHERE series_id = ? AND ts >= ? AND ts < ?",
            (sid, from_us, to_us),
        )
        first, last = rows[0]
        if first is None:
            return []
        bounds = local_day_bounds(spec, first, last + 1)
        buckets = []
        for start, end in itertools.pairwise(bounds):
            lo, hi = max(start, from_us), min(end, to_us)
            (row,) = self._query(_AGGREGATE_ONE, (sid, lo, hi))
            if row[0]:
                buckets.append(Bucket(start, *row))
        return buckets

    def count_readings(self, device: str | None = None) -> int:
        """How many readings are stored (for one device, or all)."""
        if device is None:
            rows = self._query("SELECT count(*) FROM readings")
        else:
            rows = self._query(
                "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
                " WHERE s.device = ?",
                (device,),
            )
        return int(rows[0][0])

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
            "SELECT kind, reason, sum(n) FROM accounting WHERE scope = ? AND ident = ?"
        )
        params: list[Any] = [scope, ident]
        if from_us is not None:
            sql += " AND bucket >= ?"
            params.append(hour_of(from_us))
        if to_us is not None:
            sql += " AND bucket < ?"
            params.append(to_us)
        return accounting_from_rows(self._query(sql + " GROUP BY kind, reason", params))

    def drop_before(self, before_us: int) -> int:
        """Retention: delete readings older than ``before_us``.

        Returns:
            How many rows were deleted.
        """
        # Per series, so that the primary key (series_id, ts) finds the rows
        # instead of a scan of the whole table.
        with self._transaction() as cur:
            cur.execute(
                "DELETE FROM readings"
                " WHERE series_id IN (SELECT id FROM series) AND ts < ?",
                (before_us,),
            )
            deleted = cur.rowcount
        _LOGGER.info("retention kind=sqlite before_us=%d rows=%d", before_us, deleted)
        return deleted

    def stats(self) -> dict[str, Any]:
        """Cheap figures for /healthz: kind, counts of readings and registry rows."""
        (row,) = self._query(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM series),"
            " (SELECT count(*) FROM devices), (SELECT count(*) FROM gateways),"
            " (SELECT count(*) FROM dead_letters)"
        )
        return {
            "kind": self.kind,
            "readings": row[0],
            "series": row[1],
            "devices": row[2],
            "gateways": row[3],
            "dead_letters": row[4],
            "features": dict(self.features),
        }

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # -- processors (hub/processors): rollups, rules, events ------------------
    # Added for the processors; the tables come from migration 0002.

    def refresh_rollups(self, buckets: Sequence[tuple[str, str, int]]) -> int:
        """Recompute the 1-minute rollups of (device, metric, minute start µs).

        Each minute is computed again from its stored readings and upserted
        whole, so that a refresh run twice changes nothing and a late reading
        merges into its minute. Series that have no readings are skipped.

        Returns:
            The rollup rows written.
        """
        keys = sorted({(d, m, b - b % _MINUTE_US) for d, m, b in buckets})
        if not keys:
            return 0
        with self._transaction() as cur:
            ids = self._known_series(cur, {(d, m) for d, m, _ in keys})
            rows = [
                {"sid": ids[(d, m)], "b": b, "e": b + _MINUTE_US}
                for d, m, b in keys
                if (d, m) in ids
            ]
            before = self._conn.total_changes
            cur.executemany(_REFRESH_ROLLUP, rows)
            return self._conn.total_changes - before

    def _known_series(
        self, cur: sqlite3.Cursor, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        ids: dict[tuple[str, str], int] = {}
        for device, metric in sorted(keys):
            sid = self._series.get((device, metric))
            if sid is None:
                row = cur.execute(
                    "SELECT id FROM series WHERE device = ? AND metric = ?",
                    (device, metric),
                ).fetchone()
                if row is None:
                    continue
                sid = row[0]
            ids[(device, metric)] = sid
        return ids

    def rollups(
        self, device: str, metric: str, from_us: int, to_us: int
    ) -> list[Rollup]:
        """The 1-minute rollups of one series starting in ``[from_us, to_us)``."""
        rows = self._query(
            "SELECT r.bucket, r.n, r.min, r.max, r.sum, r.last"
            " FROM rollups_1m r JOIN series s ON s.id = r.series_id"
            " WHERE s.device = ? AND s.metric = ? AND r.bucket >= ? AND r.bucket < ?"
            " ORDER BY r.bucket",
            (device, metric, from_us, to_us),
        )
        return [
            Rollup(b, n, float(lo), float(hi), float(total) / n, float(last))
            for b, n, lo, hi, total, last in rows
        ]

    def create_rule(self, rule: RuleRecord, replace: bool = False) -> RuleRecord:
        """Store a rule; return it with its stored times.

        Raises:
            ValueError: the id is not a valid id, or a rule with this id
                exists and ``replace`` is false.
        """
        check_id(rule.id, "rule id")
        at = now_us()
        with self._transaction() as cur:
            row = cur.execute(
                "INSERT INTO rules (id, kind, spec, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING 1",
                (rule.id, rule.kind, _dumps(rule.spec), at, at),
            ).fetchone()
            if row is None:
                if not replace:
                    raise ValueError(f"rule {rule.id!r} already exists")
                cur.execute(
                    "UPDATE rules SET kind = ?, spec = ?, updated_at = ? WHERE id = ?",
                    (rule.kind, _dumps(rule.spec), at, rule.id),
                )
        stored = self.get_rule(rule.id)
        if stored is None:  # pragma: no cover - written in the transaction above
            raise RuntimeError(f"rule {rule.id!r} vanished after it was written")
        return stored

    def get_rule(self, rule_id: str) -> RuleRecord | None:
        """One rule, or None."""
        rows = self._query(
            "SELECT id, kind, spec, created_at, updated_at FROM rules WHERE id = ?",
            (rule_id,),
        )
        return _rule(rows[0]) if rows else None

    def list_rules(self, kind: str | None = None) -> list[RuleRecord]:
        """Every rule (of one kind), ordered by id."""
        sql = "SELECT id, kind, spec, created_at, updated_at FROM rules"
        params: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = ?"
            params.append(kind)
        return [_rule(r) for r in self._query(sql + " ORDER BY id", params)]

    def delete_rule(self, rule_id: str) -> bool:
        """Delete a rule; return whether it existed."""
        with self._transaction() as cur:
            cur.execute("DELETE FROM rules WHERE id = ?", (rule_id,))
            return cur.rowcount > 0

    def record_events(self, events: Sequence[EventRecord]) -> list[str]:
        """Store events in one transaction; return the ids that were new."""
        new: list[str] = []
        with self._transaction() as cur:
            for e in events:
                row = cur.execute(
                    _INSERT_EVENT,
                    (
                        e.id,
                        e.kind,
                        e.state,
                        e.device,
                        e.metric,
                        e.ts_us,
                        None if e.value is None else float(e.value),
                        e.severity,
                        e.rule,
                        int(e.past),
                        _dumps(e.details),
                        e.detected_us,
                    ),
                ).fetchone()
                if row is not None:
                    new.append(e.id)
        return new

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
            ("device = ?", device),
            ("kind = ?", kind),
            ("ts >= ?", from_us),
            ("ts < ?", to_us),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY ts, id LIMIT ?", [*params, limit])
        return [_event(r) for r in rows]


def _statements(script: str) -> Iterator[str]:
    # executescript() would commit first and so break the migration's
    # transaction; complete_statement() knows where a statement ends, even in
    # a trigger body with semicolons in it.
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if statement.rstrip(";").strip():
                yield statement
    if buffer.strip() and not _only_comments(buffer):
        raise ValueError(f"incomplete SQL statement at the end: {buffer.strip()!r}")


def _only_comments(text: str) -> bool:
    return all(
        not line.strip() or line.strip().startswith("--") for line in text.splitlines()
    )


def _dumps(doc: Any) -> str:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def _device(row: tuple[Any, ...]) -> DeviceInfo:
    dev, gw, name, topic, tags, interval, first, last, online = row
    return DeviceInfo(
        id=dev,
        gateway=gw,
        name=name,
        mqtt_topic=topic,
        tags=orjson.loads(tags),
        expected_interval_s=interval,
        first_seen_us=first,
        last_seen_us=last,
        online=bool(online),
    )


def _gateway(row: tuple[Any, ...]) -> GatewayInfo:
    gw, status, agent, first, last, readings, size, dropped = row
    return GatewayInfo(
        id=gw,
        status=status,
        agent=agent,
        first_seen_us=first,
        last_seen_us=last,
        buffer_readings=readings,
        buffer_bytes=size,
        dropped={str(k): int(v) for k, v in orjson.loads(dropped).items()},
    )


# -- processors: SQL and row conversions ------------------------------------

_MINUTE_US = 60_000_000
# One minute recomputed whole from its readings; "last" is the value with the
# newest ts (a subquery: with several min/max aggregates, SQLite's bare
# column rule does not say which row a bare column comes from).
_REFRESH_ROLLUP = """
INSERT INTO rollups_1m (series_id, bucket, n, sum, min, max, last, last_ts)
SELECT series_id, :b, count(*), sum(value), min(value), max(value),
    (SELECT value FROM readings WHERE series_id = :sid AND ts >= :b AND ts < :e
     ORDER BY ts DESC LIMIT 1),
    max(ts)
FROM readings WHERE series_id = :sid AND ts >= :b AND ts < :e
GROUP BY series_id
ON CONFLICT (series_id, bucket) DO UPDATE SET
    n = excluded.n, sum = excluded.sum, min = excluded.min, max = excluded.max,
    last = excluded.last, last_ts = excluded.last_ts
"""
_INSERT_EVENT = """
INSERT INTO events (id, kind, state, device, metric, ts, value, severity, rule,
    past, details, detected_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING RETURNING 1
"""
_EVENT_COLUMNS = (
    "id, kind, state, device, metric, ts, value, severity, rule, past, details,"
    " detected_at"
)


def _rule(row: tuple[Any, ...]) -> RuleRecord:
    rule_id, kind, spec, created, updated = row
    return RuleRecord(rule_id, kind, orjson.loads(spec), created, updated)


def _event(row: tuple[Any, ...]) -> EventRecord:
    ev, kind, state, dev, metric, ts, value, sev, rule, past, details, at = row
    return EventRecord(
        id=ev,
        kind=kind,
        state=state,
        device=dev,
        metric=metric,
        ts_us=ts,
        value=None if value is None else float(value),
        severity=sev,
        rule=rule,
        past=bool(past),
        details=orjson.loads(details),
        detected_us=at,
    )
