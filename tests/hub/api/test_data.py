"""Data routes over both stores: readings paging, buckets, percentiles, stats."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.storage.base import IngestItem
from protocol.readings import SeriesBlock
from tests.hub.api.conftest import unique

#: 2026-11-30T06:00:00Z, a whole hour.
T0 = 1_796_018_400_000_000
MINUTE = 60_000_000
HOUR = 60 * MINUTE


def _write(store, device: str, metric: str, ts: list[int], values: list[float]):
    block = SeriesBlock(device, metric, "C", list(ts), list(values), [0] * len(ts))
    store.write([IngestItem(None, None, [block], T0 + 10 * HOUR, devices={device})])


def _iso(us: int) -> str:
    from hub.api._time import format_us

    return format_us(us)


# -- readings paging -----------------------------------------------------------

METRICS = ["a", "B", "c_1", "Z", "temp"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    readings=st.sets(
        st.tuples(st.integers(0, 6), st.sampled_from(METRICS)), min_size=0, max_size=30
    ),
    limit=st.integers(1, 7),
    only=st.sampled_from([None, "a", "Z"]),
)
def test_readings_pages_visit_every_reading_once(client, readings, limit, only):
    """Following the cursor visits each reading once, in the store's order."""
    store = client.app.state.store
    device = unique("page")
    for metric in METRICS:
        ts = sorted(T0 + t * 1_000_000 for t, m in readings if m == metric)
        _write(store, device, metric, ts, [float(i) for i in range(len(ts))])
    if not readings:
        client.post("/v1/devices", json={"id": device})
    base = {"limit": limit, **({"metric": only} if only else {})}

    seen, params = [], dict(base)
    for _ in range(40):
        resp = client.get(f"/v1/devices/{device}/readings", params=params)
        assert resp.status_code == 200, resp.text
        seen += [(r["ts"], r["metric"]) for r in resp.json()]
        cursor = resp.headers.get("x-next-cursor")
        if cursor is None:
            break
        params = {**base, "cursor": cursor}

    everything = store.readings(device, only, None, None, 10_000)
    assert seen == [(_iso(r.ts_us), r.metric) for r in everything]
    assert len(set(seen)) == len(seen)


# -- buckets: percentiles, rollups --------------------------------------------


def _values(n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(v) for v in rng.normal(20.0, 5.0, n).round(3)]


def test_bucket_percentiles_match_numpy(client):
    """p50, p95, p99.9 of each hour equal numpy's linear quantiles."""
    store = client.app.state.store
    ts = [T0 + i * 47_000_000 for i in range(240)]  # three hours and a bit
    values = _values(len(ts), 1)
    _write(store, "dev-p", "temp", ts, values)

    resp = client.get(
        "/v1/devices/dev-p/buckets",
        params={
            "metric": "temp",
            "bucket": "1h",
            "figures": "count,p50,p95,p99.9,p0,p100",
            "from": _iso(T0),
            "to": _iso(T0 + 4 * HOUR),
        },
    )

    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["source"], body["figures"]) == (
        "readings",
        ["count", "p50", "p95", "p99.9", "p0", "p100"],
    )
    expected = []
    for h in range(4):
        chunk = [v for t, v in zip(ts, values, strict=True) if h == (t - T0) // HOUR]
        if chunk:
            q = np.quantile(chunk, [0.5, 0.95, 0.999, 0.0, 1.0])
            expected.append((len(chunk), *q.tolist()))
    got = [
        (b["count"], b["p50"], b["p95"], b["p99.9"], b["p0"], b["p100"])
        for b in body["buckets"]
    ]
    assert len(got) == len(expected) == 4
    for g, e in zip(got, expected, strict=True):
        assert g[0] == e[0]
        assert g[1:] == pytest.approx(e[1:], rel=1e-12, abs=1e-12)


def test_bucket_percentiles_follow_local_days(client):
    """Day buckets in a zone hold that zone's local days, as ``aggregate``."""
    store = client.app.state.store
    ts = [T0 + i * 20 * MINUTE for i in range(3 * 72)]  # three days
    values = _values(len(ts), 2)
    _write(store, "dev-d", "temp", ts, values)
    window = {"from": _iso(T0 - 2 * 24 * HOUR), "to": _iso(T0 + 5 * 24 * HOUR)}

    resp = client.get(
        "/v1/devices/dev-d/buckets",
        params={
            "metric": "temp",
            "bucket": "1d",
            "tz": "America/Chicago",
            "figures": "count,p50",
            **window,
        },
    )
    agg = client.get(
        "/v1/devices/dev-d/aggregate",
        params={"metric": "temp", "bucket": "1d", "tz": "America/Chicago", **window},
    )

    buckets = resp.json()["buckets"]
    assert [(b["start"], b["count"]) for b in buckets] == [
        (b["start"], b["count"]) for b in agg.json()["buckets"]
    ]
    assert buckets[0]["start"].endswith("-06:00")
    assert sum(b["count"] for b in buckets) == len(ts)


def test_buckets_from_rollups_agree_with_raw(client):
    """Rollup-served buckets equal the raw readings' for count/min/max/avg/sum/last."""
    store = client.app.state.store
    ts = [T0 + i * 7_000_000 for i in range(1000)]  # just under two hours
    values = _values(len(ts), 3)
    _write(store, "dev-r", "temp", ts, values)
    store.refresh_rollups([("dev-r", "temp", t) for t in ts])
    params = {
        "metric": "temp",
        "bucket": "15m",
        "from": _iso(T0),
        "to": _iso(T0 + 2 * HOUR),
    }

    rolled = client.get("/v1/devices/dev-r/buckets", params=params).json()
    raw = client.get("/v1/devices/dev-r/aggregate", params=params).json()
    raw_too = client.get(
        "/v1/devices/dev-r/buckets",
        params={**params, "figures": "count,min,max,avg,sum,last,p50"},
    ).json()

    assert (rolled["source"], raw_too["source"]) == ("rollups", "readings")
    assert len(rolled["buckets"]) == len(raw["buckets"]) == 8
    for r, b in zip(rolled["buckets"], raw["buckets"], strict=True):
        assert (r["start"], r["count"], r["min"], r["max"], r["last"]) == (
            b["start"],
            b["count"],
            b["min"],
            b["max"],
            b["last"],
        )
        assert r["sum"] == pytest.approx(b["sum"], rel=1e-12)
        assert r["avg"] == pytest.approx(b["avg"], rel=1e-12)
    for r, b in zip(rolled["buckets"], raw_too["buckets"], strict=True):
        assert r["count"] == b["count"]
        assert r["avg"] == pytest.approx(b["avg"], rel=1e-12)


def test_buckets_fall_back_to_raw_when_rollups_lag(client):
    """A reading without its rollup makes the raw readings serve, and count it."""
    store = client.app.state.store
    ts = [T0 + i * 10_000_000 for i in range(60)]
    _write(store, "dev-l", "temp", ts, [1.0] * len(ts))
    store.refresh_rollups([("dev-l", "temp", t) for t in ts])
    _write(store, "dev-l", "temp", [T0 + 30 * MINUTE + 1], [5.0])  # no refresh
    params = {"metric": "temp", "bucket": "1h", "from": _iso(T0), "to": _iso(T0 + HOUR)}

    body = client.get("/v1/devices/dev-l/buckets", params=params).json()

    assert body["source"] == "readings"
    assert [(b["count"], b["max"]) for b in body["buckets"]] == [(61, 5.0)]


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"bucket": "1m", "figures": "count,p50"}, "a percentile"),
        ({"bucket": "10s"}, "a bucket under a minute"),
        ({"bucket": "1h", "from": _iso(T0 + 1)}, "a window not on a minute"),
    ],
)
def test_buckets_served_raw_when_rollups_cannot(client, params, reason):
    """Percentiles, sub-minute buckets and unaligned windows come from readings."""
    store = client.app.state.store
    ts = [T0 + i * 10_000_000 for i in range(60)]
    _write(store, "dev-s", "temp", ts, [2.0] * len(ts))
    store.refresh_rollups([("dev-s", "temp", t) for t in ts])
    query = {"metric": "temp", "from": _iso(T0), "to": _iso(T0 + HOUR), **params}

    body = client.get("/v1/devices/dev-s/buckets", params=query).json()

    assert body["source"] == "readings", reason
    assert sum(b["count"] for b in body["buckets"]) == len(ts) - (
        1 if "from" in params else 0
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"figures": "count,median"}, "figures"),
        ({"figures": "p101"}, "figures"),
        ({"bucket": "2m"}, "bucket"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"from": "yesterday"}, "from"),
        ({}, "metric"),
    ],
)
def test_buckets_bad_parameter_names_it(client, params, field):
    """A bad parameter is 422 naming it."""
    client.post("/v1/devices", json={"id": "dev-x"})
    query = {"metric": "temp", **params} if params else {}

    resp = client.get("/v1/devices/dev-x/buckets", params=query)

    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == field


def test_buckets_unknown_device_is_404(client):
    """An unknown device is 404 ``device_not_found``."""
    resp = client.get("/v1/devices/nope/buckets", params={"metric": "temp"})

    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "device_not_found"


# -- stats ---------------------------------------------------------------------


def test_device_and_fleet_stats(client):
    """Latest values, counts and the online share."""
    store = client.app.state.store
    _write(store, "dev-a", "temp", [T0, T0 + MINUTE], [20.0, 21.5])
    _write(store, "dev-a", "rh", [T0], [40.0])
    client.post("/v1/devices", json={"id": "dev-b"})
    if store.kind == "timescaledb":
        # The fleet's count is TimescaleDB's estimate, from the statistics.
        with store._pool.connection() as conn:
            conn.execute("ANALYZE readings")

    device = client.get("/v1/devices/dev-a/stats").json()
    fleet = client.get("/v1/stats").json()

    assert device == {
        "device": "dev-a",
        "online": True,
        "last_seen": _iso(T0 + 10 * HOUR),
        "readings": 3,
        "metrics": 2,
        "latest": [
            {"metric": "rh", "unit": "C", "ts": _iso(T0), "value": 40.0},
            {"metric": "temp", "unit": "C", "ts": _iso(T0 + MINUTE), "value": 21.5},
        ],
    }
    assert fleet == {
        "devices": 2,
        "online": 1,
        "online_share": 0.5,
        "gateways": 0,
        "gateways_online": 0,
        "readings": 3,
        "series": 2,
        "dead_letters": 0,
    }
    assert not math.isnan(fleet["online_share"])


def test_day_buckets_from_rollups_follow_local_days(client):
    """Rollup-served day buckets in a zone equal the raw ones, DST day included."""
    store = client.app.state.store
    # 2026-11-01 is Chicago's fall-back day (25 hours); three days around it.
    start = 1_793_422_800_000_000  # 2026-10-31T05:00:00Z, local midnight
    ts = [start + i * 30 * MINUTE for i in range(3 * 48 + 2)]
    values = _values(len(ts), 4)
    _write(store, "dev-z", "temp", ts, values)
    store.refresh_rollups([("dev-z", "temp", t) for t in ts])
    params = {
        "metric": "temp",
        "bucket": "1d",
        "tz": "America/Chicago",
        "from": _iso(start),
        "to": _iso(start + 4 * 24 * HOUR),
    }

    rolled = client.get("/v1/devices/dev-z/buckets", params=params).json()
    raw = client.get("/v1/devices/dev-z/aggregate", params=params).json()

    assert rolled["source"] == "rollups"
    assert [(b["start"], b["count"], b["max"]) for b in rolled["buckets"]] == [
        (b["start"], b["count"], b["max"]) for b in raw["buckets"]
    ]
    assert [b["count"] for b in rolled["buckets"]][:2] == [48, 50]
