"""Scenario 4, queries: aggregates over millions of readings, three ways.

``query_readings`` readings (10M in a full run, 1M in a quick one) are loaded
by COPY: 10,000 readings per series (fewer below 1M, for at least 100
series) over 30 days, one device per series.
Three questions are asked, each through the Store, through the REST API (a
``streamflow api`` process, over HTTP with keep-alive) and, as the baseline,
as one SQL query run directly with psycopg:

1. one series over 30 days in hourly buckets;
2. the fleet's latest values;
3. a day of 1-minute buckets for 100 series.

The Store and the API answer 2 and 3 one device at a time (they have no
call for a whole fleet or for many series), so the baseline shows what that
costs too. Each is run once to warm the caches, then up to ``query_runs``
times (at most ``query_budget_s`` after the fifth run); p50 and p99 of those.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import psycopg

from benchmarks import _services as sv
from benchmarks._context import BenchContext
from benchmarks._copy import Rows, copy_rows
from benchmarks.errors import CheckError
from benchmarks.results import ScenarioResult
from hub.storage.base import Store
from hub.storage.timescale import TimescaleStore
from protocol.validate import now_us

#: The first admin of the API child (a scratch database, dropped after).
_ADMIN_PASSWORD = "bench-admin-password"
NAME = "queries"
PER_SERIES = 10_000
METRIC = "temperature"
SPAN_US = 30 * 86_400 * 1_000_000
DAY_US = 86_400 * 1_000_000
#: Series of question 3.
MANY_SERIES = 100
#: Runs measured before the time budget may end a query's measurement.
MIN_RUNS = 5
_LOAD_BATCH = 100_000

_HOURLY_SQL = """
SELECT time_bucket('1 hour', r.ts) AS b, count(*), min(r.value), max(r.value),
       avg(r.value), sum(r.value), last(r.value, r.ts)
FROM readings r JOIN series s ON s.id = r.series_id
WHERE s.device = %s AND s.metric = %s AND r.ts >= %s AND r.ts < %s
GROUP BY b ORDER BY b
"""
_LATEST_SQL = """
SELECT s.device, s.metric, s.unit, l.ts, l.value, l.flags
FROM latest l JOIN series s ON s.id = l.series_id
ORDER BY s.device, s.metric
"""
_MINUTES_SQL = """
SELECT s.device, time_bucket('1 minute', r.ts) AS b, count(*), min(r.value),
       max(r.value), avg(r.value), sum(r.value), last(r.value, r.ts)
FROM readings r JOIN series s ON s.id = r.series_id
WHERE s.device = ANY(%s) AND s.metric = %s AND r.ts >= %s AND r.ts < %s
GROUP BY s.device, b ORDER BY s.device, b
"""


def device_id(i: int) -> str:
    """The id of device ``i`` of the loaded fleet."""
    return f"query-dev-{i:05d}"


@dataclass(frozen=True, slots=True)
class _Window:
    """The loaded data's end, and the windows of the questions (epoch µs)."""

    end_us: int
    devices: int

    @property
    def month(self) -> tuple[int, int]:
        return self.end_us - SPAN_US, self.end_us

    @property
    def day(self) -> tuple[int, int]:
        return self.end_us - DAY_US, self.end_us


def run(ctx: BenchContext) -> ScenarioResult:
    """Run scenario 4; return the figures."""
    s = ctx.sizes
    result = ScenarioResult(NAME)
    db = ctx.database()
    work = ctx.workdir / NAME
    work.mkdir(parents=True, exist_ok=True)
    sv.reset_database(db)
    window = _load(ctx, db, s.query_readings)
    port = sv.free_port()
    api = sv.Child(
        "api",
        [sys.executable, "-m", "hub.cli", "api", "--host", "127.0.0.1",
         "--port", str(port)],
        work,
        sv.child_env({
            "STREAMFLOW_DB": db,
            "STREAMFLOW_DATA_DIR": str(work / "api"),
            "STREAMFLOW_ADMIN_PASSWORD": _ADMIN_PASSWORD,
        }),
    )  # fmt: skip
    api.start()
    try:
        sv.wait_port(port)
        with (
            TimescaleStore(db) as store,
            psycopg.connect(db) as conn,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http,
        ):
            _sign_in(http)
            questions = _questions(window, store, conn, http)
            for title, ways in questions:
                ctx.progress(NAME, title)
                _measure(ctx, result, title, ways)
    finally:
        api.stop()
    return result


def _sign_in(http: httpx.Client) -> None:
    """Give ``http`` the first admin's bearer token, as a real client has one.

    The token is checked on every request, as in production: its cost is
    part of what the API's figures measure.
    """
    resp = http.post(
        "/v1/auth/token",
        data={
            "grant_type": "password",
            "username": "admin",
            "password": _ADMIN_PASSWORD,
        },
    )
    resp.raise_for_status()
    http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"


def _load(ctx: BenchContext, db: str, readings: int) -> _Window:
    """Load the fleet's readings by COPY, and its series, devices and latest."""
    devices = max(MANY_SERIES, readings // PER_SERIES)
    per_series = readings // devices
    end_us = now_us() // 3_600_000_000 * 3_600_000_000
    ctx.progress(NAME, f"loading {devices * per_series:,} readings by COPY")
    with psycopg.connect(db, autocommit=True) as conn:
        names = [device_id(i) for i in range(devices)]
        conn.execute(
            "INSERT INTO series (device, metric, unit)"
            " SELECT d, %s, 'C' FROM unnest(%s::text[]) AS d",
            [METRIC, names],
        )
        conn.execute(
            "INSERT INTO devices (id, first_seen, last_seen, online)"
            " SELECT d, %s, %s, true FROM unnest(%s::text[]) AS d",
            [_dt(end_us - SPAN_US), _dt(end_us), names],
        )
        ids: dict[str, int] = dict(
            conn.execute("SELECT device, id FROM series").fetchall()
        )
    rows = _fleet_rows([ids[n] for n in names], per_series, end_us)
    seconds = copy_rows(db, rows, _LOAD_BATCH)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO latest (series_id, ts, value, flags)"
            " SELECT DISTINCT ON (series_id) series_id, ts, value, flags"
            " FROM readings ORDER BY series_id, ts DESC"
        )
        conn.execute("ANALYZE")
    ctx.progress(NAME, f"loaded at {len(rows) / seconds:,.0f} readings/s")
    return _Window(end_us, devices)


def _fleet_rows(series_ids: list[int], per_series: int, end_us: int) -> Rows:
    """``per_series`` readings per series over the 30 days before ``end_us``."""
    n = len(series_ids)
    step = SPAN_US // per_series
    rng = np.random.default_rng(4)
    k = np.arange(per_series, dtype=np.int64)
    phase = (np.arange(n, dtype=np.int64) * step) // n
    # Series by series, in time order: how an archive is loaded.
    ts = (end_us - SPAN_US + k[None, :] * step + phase[:, None] + 1).ravel()
    hours = (ts // 3_600_000_000) % 24
    values = (
        21.0
        + 2.5 * np.cos(2 * np.pi * (hours - 15) / 24)
        + rng.normal(0, 0.2, ts.shape)
    )
    sid = np.repeat(np.asarray(series_ids, dtype=np.int32), per_series)
    return Rows(ts, sid, np.round(values, 3), np.zeros(len(ts), dtype=np.int16))


Way = tuple[str, Callable[[], int]]


def _questions(
    w: _Window, store: Store, conn: psycopg.Connection[Any], http: httpx.Client
) -> list[tuple[str, list[Way]]]:
    """Each question: its title, and the SQL, Store and API ways to answer it.

    Each way returns how many rows (buckets or readings) it got, so that the
    three can be checked to agree.
    """
    dev0 = device_id(0)
    m_from, m_to = w.month
    d_from, d_to = w.day
    many = [device_id(i) for i in range(MANY_SERIES)]

    def sql(query: str, params: list[Any]) -> Callable[[], int]:
        def go() -> int:
            with conn.cursor(binary=True) as cur:
                cur.execute(query, params)
                return len(cur.fetchall())

        return go

    def api_get(path: str, params: dict[str, str] | None = None) -> Any:
        reply = http.get(path, params=params)
        reply.raise_for_status()
        return reply.json()

    hourly = {"metric": METRIC, "bucket": "1h", "from": _rfc(m_from), "to": _rfc(m_to)}
    minute = {"metric": METRIC, "bucket": "1m", "from": _rfc(d_from), "to": _rfc(d_to)}

    def store_hourly() -> int:
        return len(store.aggregate(dev0, METRIC, 3600, m_from, m_to))

    def api_hourly() -> int:
        return len(api_get(f"/v1/devices/{dev0}/aggregate", hourly)["buckets"])

    def store_latest() -> int:
        return sum(len(store.latest(d.id)) for d in store.list_devices())

    def api_latest() -> int:
        devices = api_get("/v1/devices")
        return sum(len(api_get(f"/v1/devices/{d['id']}/latest")) for d in devices)

    def store_minutes() -> int:
        return sum(len(store.aggregate(d, METRIC, 60, d_from, d_to)) for d in many)

    def api_minutes() -> int:
        return sum(
            len(api_get(f"/v1/devices/{d}/aggregate", minute)["buckets"]) for d in many
        )

    month = [dev0, METRIC, _dt(m_from), _dt(m_to)]
    day = [many, METRIC, _dt(d_from), _dt(d_to)]
    return [
        (
            "one series, 30 days, hourly buckets",
            [("sql", sql(_HOURLY_SQL, month)), ("store", store_hourly),
             ("api", api_hourly)],
        ),
        (
            f"the fleet's latest values, {w.devices} devices",
            [("sql", sql(_LATEST_SQL, [])), ("store", store_latest),
             ("api", api_latest)],
        ),
        (
            f"a day of 1-minute buckets for {MANY_SERIES} series",
            [("sql", sql(_MINUTES_SQL, day)), ("store", store_minutes),
             ("api", api_minutes)],
        ),
    ]  # fmt: skip


def _measure(
    ctx: BenchContext, result: ScenarioResult, title: str, ways: list[Way]
) -> None:
    """Time each way; add p50 and p99 of the Store and API beside the SQL's."""
    timings: dict[str, np.ndarray] = {}
    rows: dict[str, int] = {}
    for name, fn in ways:
        rows[name] = fn()  # warm-up, and the row count to compare
        timings[name] = _time_runs(fn, ctx.sizes.query_runs, ctx.sizes.query_budget_s)
    if len(set(rows.values())) != 1:
        raise CheckError(f"{title}: the ways disagree on the rows: {rows}")
    sql = timings["sql"]
    for name in ("store", "api"):
        for q in (50, 99):
            result.add(
                f"{title}: {name} p{q}",
                "ms",
                float(np.percentile(timings[name], q)) * 1000,
                f"one SQL query, psycopg direct, p{q}",
                float(np.percentile(sql, q)) * 1000,
            )
    ctx.progress(
        NAME,
        "  " + ", ".join(
            f"{n} p50 {np.percentile(t, 50) * 1000:.1f} ms ({len(t)} runs)"
            for n, t in timings.items()
        ),
    )  # fmt: skip


def _time_runs(fn: Callable[[], int], runs: int, budget_s: float) -> np.ndarray:
    """Seconds of each run: ``runs`` at most, and none after the budget (after 5)."""
    out: list[float] = []
    started = time.monotonic()
    while len(out) < runs:
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if len(out) >= min(MIN_RUNS, runs) and time.monotonic() - started > budget_s:
            break
    return np.asarray(out)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(
        microsecond=us % 1_000_000
    )


def _rfc(us: int) -> str:
    return _dt(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
