"""Write speed of both stores against a plain bulk load of the same rows.

Run: ``.venv/bin/python -m tests.hub.storage.bench_write [--rounds 3]``

Each round writes 10 writes of 10,000 readings (100 series x 100 readings, as
10 batches of 10 series) through ``Store.write`` (on TimescaleDB also once
more, forced the staging way) and then loads the very same rows with no store
logic: on TimescaleDB a binary COPY into a bare copy of the
readings hypertable (same unique index) and into a plain table with no index;
on SQLite one executemany into a bare copy of the readings table. It prints
the medians and the ratios, measured in the same run (FIGURES.md: machines
here are noisy, read ratios). TimescaleDB rounds use a scratch database on the
test server (STREAMFLOW_TEST_DSN), dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg

from hub.storage import IngestItem
from hub.storage.sqlite import SQLiteStore
from hub.storage.timescale import TimescaleStore
from protocol.readings import SeriesBlock
from tests.fix_db import _with_db, server_dsn

WRITES = 10
BATCHES = 10
SERIES_PER_BATCH = 10
PER_SERIES = 100
READINGS = WRITES * BATCHES * SERIES_PER_BATCH * PER_SERIES
T0 = 1_796_000_000_000_000  # 2026-11-30T...Z
STEP_US = 1_000_000

_PG_EPOCH_US = 946_684_800_000_000
_ROW4 = np.dtype(
    [
        ("fields", ">i2"),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("sid_len", ">i4"),
        ("sid", ">i4"),
        ("value_len", ">i4"),
        ("value", ">f8"),
        ("flags_len", ">i4"),
        ("flags", ">i2"),
    ]
)


def make_writes() -> list[list[IngestItem]]:
    """The 10 writes: each 10 batches of 10 series of 100 readings, all new."""
    writes = []
    for w in range(WRITES):
        items = []
        for b in range(BATCHES):
            blocks = []
            for s in range(SERIES_PER_BATCH):
                start = T0 + w * PER_SERIES * STEP_US
                ts = [start + i * STEP_US for i in range(PER_SERIES)]
                values = [20.0 + 0.001 * i for i in range(PER_SERIES)]
                blocks.append(
                    SeriesBlock(
                        f"dev-{b:02d}-{s:02d}",
                        "temp",
                        "C",
                        ts,
                        values,
                        [0] * PER_SERIES,
                    )
                )
            items.append(IngestItem(f"gw-{b:02d}", w, blocks, T0 + w * 10**7))
        writes.append(items)
    return writes


def _rows(writes: list[list[IngestItem]], ids: dict[tuple[str, str], int]) -> list:
    out = []
    for items in writes:
        ts, sid, val, flg = [], [], [], []
        for it in items:
            for blk in it.blocks:
                ts += blk.ts_us
                sid += [ids[(blk.device, blk.metric)]] * len(blk)
                val += blk.values
                flg += blk.flags
        out.append((ts, sid, val, flg))
    return out


def _copy4(ts: list[int], sid: list[int], val: list[float], flg: list[int]) -> bytes:
    rows = np.empty(len(ts), dtype=_ROW4)
    rows["fields"], rows["ts_len"], rows["sid_len"] = 4, 8, 4
    rows["value_len"], rows["flags_len"] = 8, 2
    rows["ts"] = np.asarray(ts, dtype=np.int64) - _PG_EPOCH_US
    rows["sid"], rows["value"], rows["flags"] = sid, val, flg
    return b"PGCOPY\n\xff\r\n\x00" + bytes(8) + rows.tobytes() + b"\xff\xff"


def _rate(seconds: float) -> float:
    return READINGS / seconds


def timescale_round() -> dict[str, float]:
    """One round on a scratch database: the store both ways, then bare COPYs."""
    name = f"sf_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = _with_db(server_dsn(), name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        writes = make_writes()
        result = {}
        for way, offset in (("store", 0), ("staged", 10 * READINGS * STEP_US)):
            with TimescaleStore(dsn) as store:
                store.migrate()
                if way == "staged":
                    store._staged_left = 10**9  # never try the straight COPY
                    writes = [
                        [_shifted(it, offset) for it in items] for items in writes
                    ]
                started = time.perf_counter()
                for items in writes:
                    store.write(items)
                result[way] = _rate(time.perf_counter() - started)
                ids = dict(store._series)
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM readings").fetchone() == (
                2 * READINGS,
            )
            result.update(_bare_copies(conn, _rows(writes, ids)))
        return result
    finally:
        with psycopg.connect(server_dsn(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _shifted(it: IngestItem, offset: int) -> IngestItem:
    # New readings and batch keys for the second store of a round.
    blocks = [
        SeriesBlock(
            b.device, b.metric, b.unit, [t + offset for t in b.ts_us], b.values, b.flags
        )
        for b in it.blocks
    ]
    return IngestItem(it.gateway, (it.seq or 0) + WRITES, blocks, it.received_us)


def _bare_copies(conn: psycopg.Connection, rows: list) -> dict[str, float]:
    conn.execute("CREATE TABLE bare_hyper (LIKE readings INCLUDING DEFAULTS)")
    conn.execute(
        "SELECT create_hypertable('bare_hyper', by_range('ts', INTERVAL '1 day'),"
        " create_default_indexes => false)"
    )
    conn.execute("CREATE UNIQUE INDEX ON bare_hyper (series_id, ts)")
    conn.execute("CREATE TABLE bare_plain (LIKE readings INCLUDING DEFAULTS)")
    result = {}
    for table in ("bare_hyper", "bare_plain"):
        buffers = [_copy4(*r) for r in rows]
        started = time.perf_counter()
        for data in buffers:
            with conn.transaction(), conn.cursor() as cur:
                copy_sql = f"COPY {table} (ts, series_id, value, flags)"
                with cur.copy(copy_sql + " FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(data)
        result[table] = _rate(time.perf_counter() - started)
    return result


def sqlite_round(folder: Path) -> dict[str, float]:
    """One round on a new file: the store, then a bare executemany."""
    path = folder / f"bench-{uuid.uuid4().hex[:8]}.db"
    writes = make_writes()
    with SQLiteStore(path) as store:
        store.migrate()
        started = time.perf_counter()
        for items in writes:
            store.write(items)
        store_s = time.perf_counter() - started
        assert store.count_readings() == READINGS
        ids = dict(store._series)
        conn = store._conn
        conn.execute(
            "CREATE TABLE bare (ts INTEGER NOT NULL, series_id INTEGER NOT NULL,"
            " value NOT NULL, flags INTEGER NOT NULL,"
            " PRIMARY KEY (series_id, ts)) WITHOUT ROWID"
        )
        rows = _rows(writes, ids)
        started = time.perf_counter()
        for ts, sid, val, flg in rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO bare VALUES (?, ?, ?, ?)",
                zip(ts, sid, val, flg, strict=True),
            )
            conn.execute("COMMIT")
        bare_s = time.perf_counter() - started
    return {"store": _rate(store_s), "bare": _rate(bare_s)}


def _median(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def main() -> None:
    """Run the rounds and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-timescale", action="store_true")
    args = parser.parse_args()

    print(f"{WRITES} writes of {READINGS // WRITES} readings, {args.rounds} rounds")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        sq = [sqlite_round(Path(tmp)) for _ in range(args.rounds)]
    store, bare = _median(sq, "store"), _median(sq, "bare")
    print(f"sqlite   store.write        {store:>10,.0f} readings/s")
    ratio = store / bare
    print(f"sqlite   bare executemany   {bare:>10,.0f} readings/s  ratio {ratio:.2f}")
    if args.skip_timescale:
        return
    ts = [timescale_round() for _ in range(args.rounds)]
    store = _median(ts, "store")
    hyper, plain = _median(ts, "bare_hyper"), _median(ts, "bare_plain")
    staged = _median(ts, "staged")
    print(f"timescale store.write       {store:>10,.0f} readings/s")
    print(
        f"timescale store.write, staging way only {staged:>10,.0f} readings/s"
        f"  ratio {staged / hyper:.2f}"
    )
    print(
        f"timescale COPY, hypertable + unique index {hyper:>10,.0f} readings/s"
        f"  ratio {store / hyper:.2f}"
    )
    print(
        f"timescale COPY, plain table, no index     {plain:>10,.0f} readings/s"
        f"  ratio {store / plain:.2f}"
    )


if __name__ == "__main__":
    main()
