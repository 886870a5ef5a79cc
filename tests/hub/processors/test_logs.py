"""Device logs in the hub: the store's counts and records, the burst processor."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.processors import ProcessorHost, registry
from hub.processors.base import SeriesBatch
from hub.processors.config import ProcessorsConfig
from hub.processors.errors import ProcessorConfigError
from hub.processors.events import EventKind, EventState
from hub.processors.logs import LOG_KIND, LogBurstProcessor, log_blocks
from hub.storage.base import IngestItem, LogCount
from hub.storage.sqlite import SQLiteStore
from protocol.batch import decode_batch
from protocol.logs import LEVELS, LogRecord
from tests.hub.processors.helpers import MINUTE, SECOND, T0, ctx

GW = "gw-1"


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store(request, tmp_path):
    """A migrated, empty store of each kind, closed afterwards."""
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "store.db")
    else:
        from hub.storage.timescale import TimescaleStore

        opened = TimescaleStore(request.getfixturevalue("pg_dsn"))
    opened.migrate()
    yield opened
    opened.close()


def rec(t: int, level: str = "error", dev: str = "dev-1", msg: str = "m") -> LogRecord:
    return LogRecord(dev, t, level, msg)


def item(logs, seq: int | None = 1, received_us: int = T0) -> IngestItem:
    gateway = GW if seq is not None else None
    devices = {r.device for r in logs}
    return IngestItem(gateway, seq, [], received_us, devices=devices, logs=list(logs))


# -- the store -----------------------------------------------------------------


def test_store_counts_logs_per_minute_and_level(store):
    """Records are counted by device, minute and level; buckets add minutes."""
    logs = [
        rec(T0, "error"),
        rec(T0 + 59 * SECOND, "error"),
        rec(T0 + 30 * SECOND, "info"),
        rec(T0 + MINUTE, "error"),
        rec(T0 + 5 * MINUTE, "critical"),
        rec(T0, "warning", dev="dev-2"),
    ]
    result = store.write([item(logs)])
    assert result.logs == logs
    assert store.log_counts("dev-1", T0, T0 + 10 * MINUTE) == [
        LogCount(T0, "info", 1),
        LogCount(T0, "error", 2),
        LogCount(T0 + MINUTE, "error", 1),
        LogCount(T0 + 5 * MINUTE, "critical", 1),
    ]
    # T0 is 12:00 on the hour: a 5-minute bucket starts there.
    assert store.log_counts("dev-1", T0, T0 + 10 * MINUTE, 300) == [
        LogCount(T0, "info", 1),
        LogCount(T0, "error", 3),
        LogCount(T0 + 5 * MINUTE, "critical", 1),
    ]
    assert store.log_counts("dev-2", T0, T0 + MINUTE) == [LogCount(T0, "warning", 1)]
    assert store.log_counts("dev-1", T0 + MINUTE, T0 + 2 * MINUTE) == [
        LogCount(T0 + MINUTE, "error", 1)
    ]


def test_store_batch_sent_twice_counts_once(store):
    """A resent batch (same gateway and seq) counts and keeps nothing again."""
    logs = [rec(T0 + i * SECOND) for i in range(5)]
    first = store.write([item(logs, seq=7)])
    again = store.write([item(logs, seq=7), item(logs, seq=7)])
    assert (len(first.logs), again.logs, again.duplicate_batches) == (
        5,
        [],
        [(GW, 7)],
    )
    assert store.log_counts("dev-1", T0, T0 + MINUTE) == [LogCount(T0, "error", 5)]
    assert len(store.recent_logs("dev-1", 100)) == 5


def test_store_logs_only_batch_registers_device_and_acks(store):
    """A batch of logs alone registers its device and is a committed batch."""
    result = store.write([item([rec(T0)], seq=3)])
    assert result.batches == [(GW, 3)]
    device = store.get_device("dev-1")
    assert device is not None
    assert device.gateway == GW


def test_store_recent_logs_newest_first_and_bounded(store):
    """The last records are kept per device, newest first, older ones deleted."""
    store.logs_kept = 10
    for seq in range(3):
        logs = [rec(T0 + (seq * 8 + i) * SECOND, msg=f"{seq}-{i}") for i in range(8)]
        logs.append(rec(T0, dev="dev-2", msg=f"other {seq}"))
        store.write([item(logs, seq=seq)])
    kept = store.recent_logs("dev-1", 100)
    assert [r.message for r in kept] == [
        f"{s}-{i}" for s in (2, 1) for i in range(7, -1, -1)
    ][:10]
    assert len(store.recent_logs("dev-2", 100)) == 3  # another device's own bound
    assert [r.message for r in store.recent_logs("dev-1", 2)] == ["2-7", "2-6"]
    # The counts are not bounded: every record is counted.
    assert sum(c.count for c in store.log_counts("dev-1", T0, T0 + MINUTE)) == 24


def test_store_recent_logs_by_level_and_fields(store):
    """Records keep every field; a level filter picks one level."""
    logs = [
        LogRecord("dev-1", T0 + 1, "info", "boot", "fw", 0),
        LogRecord("dev-1", T0 + 2, "error", "i2c \u00fc\n2nd line", "sht31", 1),
    ]
    store.write([item(logs)])
    assert store.recent_logs("dev-1", 10, level="error") == [logs[1]]
    assert store.recent_logs("dev-1", 10) == logs[::-1]


def test_store_log_counts_bad_bucket(store):
    """A bucket that is not a whole number of minutes is refused."""
    with pytest.raises(ValueError, match="multiple of 60"):
        store.log_counts("dev-1", T0, T0 + MINUTE, 90)


def test_store_log_rejects_are_counted_for_the_device(store):
    """Rejected records of a batch count in the device's accounting, once."""
    payload = orjson.dumps(
        {
            "v": 1,
            "gw": GW,
            "seq": 9,
            "sent": T0,
            "series": [],
            "logs": [
                {"dev": "dev-1", "ts": T0, "level": "error", "msg": "ok"},
                {"dev": "dev-1", "ts": T0, "level": "loud", "msg": "x"},
                {"dev": "dev-1", "ts": T0, "level": "info", "msg": None},
            ],
        }
    )
    batch = decode_batch(payload, T0)
    ingest = IngestItem(
        GW,
        9,
        [],
        T0,
        rejects=batch.rejects,
        devices={"dev-1"},
        logs=batch.logs,
    )
    store.write([ingest])
    store.write([ingest])  # resent: counted once
    acc = store.accounting("device", "dev-1")
    assert acc.rejected == {"bad_log_level": 1, "bad_log_message": 1}
    assert store.log_counts("dev-1", T0, T0 + MINUTE) == [LogCount(T0, "error", 1)]


# -- the burst processor ---------------------------------------------------------


def logs_batch(records):
    (block,) = log_blocks(records)
    return SeriesBatch.from_block(block)


def per_minute(counts: list[int], level: str = "error", start: int = T0):
    """Records spread over minutes: counts[i] of ``level`` in minute i."""
    out = []
    for m, n in enumerate(counts):
        base = start + m * MINUTE
        out += [rec(base + (j + 1) * (MINUTE // (n + 1)), level) for j in range(n)]
    return out


def test_log_blocks_one_series_per_device():
    """Records become one log series per device, the values their level numbers."""
    blocks = log_blocks(
        [rec(T0, "info"), rec(T0 + 1, "error", dev="d2"), rec(2, "warning")]
    )
    assert [(b.device, b.metric, b.kind, b.values) for b in blocks] == [
        ("dev-1", "log", LOG_KIND, [20.0, 30.0]),
        ("d2", "log", LOG_KIND, [40.0]),
    ]


def test_burst_over_threshold_raises_then_clears():
    """10 errors in a minute raise a burst; a quiet whole minute clears it."""
    p = LogBurstProcessor()
    records = [*per_minute([2, 12, 3, 0]), rec(T0 + 4 * MINUTE, "info")]
    events = p.process(logs_batch(records), ctx()).events
    assert [(e.kind, e.state, e.rule) for e in events] == [
        (EventKind.LOG_BURST, EventState.RAISED, "errors"),
        (EventKind.LOG_BURST, EventState.CLEARED, "errors"),
    ]
    raised, cleared = events
    tenth = [r for r in records if T0 + MINUTE <= r.ts_us < T0 + 2 * MINUTE][9]
    assert (raised.ts_us, raised.value) == (tenth.ts_us, 10.0)
    assert raised.details["minute_us"] == T0 + MINUTE
    assert raised.details["baseline_per_min"] is None  # no history yet
    # Cleared at the first record after minute 2, the first back-down minute.
    first_after = next(r for r in records if r.ts_us >= T0 + 3 * MINUTE)
    assert cleared.ts_us == first_after.ts_us
    assert cleared.details["minute_us"] == T0 + 2 * MINUTE


def test_burst_late_records_of_a_cleared_burst_do_not_raise_again():
    """Errors arriving late for the minutes of a cleared burst raise nothing."""
    p = LogBurstProcessor()
    first = [*per_minute([11, 0, 0]), rec(T0 + 3 * MINUTE, "info")]
    assert [e.state for e in p.process(logs_batch(first), ctx()).events] == [
        EventState.RAISED,
        EventState.CLEARED,
    ]
    late = per_minute([12])  # minute 0 again, from a resent-late batch
    assert p.process(logs_batch(late), ctx()).events == []
    state = p.state_of("dev-1")
    assert state is not None
    assert state.minutes[T0] == 23


def test_burst_over_own_baseline():
    """Under the threshold, errors over 5x the device's baseline raise a burst."""
    p = LogBurstProcessor()
    quiet = per_minute([1] * 20)  # a device that logs one error a minute
    assert p.process(logs_batch(quiet), ctx()).events == []
    loud = per_minute([6], start=T0 + 20 * MINUTE)  # 6 > 5 x 1, and >= 5
    events = p.process(logs_batch(loud), ctx()).events
    assert [e.state for e in events] == [EventState.RAISED]
    assert events[0].details["baseline_per_min"] == pytest.approx(1.0)


def test_burst_baseline_needs_history():
    """Before min_history_minutes only the absolute threshold applies."""
    p = LogBurstProcessor()
    assert p.process(logs_batch(per_minute([0, 0, 9])), ctx()).events == []


def test_burst_counts_only_errors_and_above():
    """Warnings and below are not errors; critical is."""
    p = LogBurstProcessor()
    noisy = per_minute([30], level="warning")
    assert p.process(logs_batch(noisy), ctx()).events == []
    crit = per_minute([10], level="critical", start=T0 + MINUTE)
    assert [e.state for e in p.process(logs_batch(crit), ctx()).events] == [
        EventState.RAISED
    ]


def test_burst_stays_open_while_minutes_stay_high():
    """Each whole minute still over the rule keeps the one burst open."""
    p = LogBurstProcessor()
    events = p.process(logs_batch(per_minute([15, 15, 15, 15])), ctx()).events
    assert [e.state for e in events] == [EventState.RAISED]
    state = p.state_of("dev-1")
    assert state is not None
    assert state.burst_minute == T0 + 2 * MINUTE  # the last whole minute judged


def test_burst_late_records_mark_events_past():
    """A burst found in late records (an edge backlog) is marked past."""
    p = LogBurstProcessor()
    (block,) = log_blocks(per_minute([12]))
    # Processed an hour later with a 15-minute horizon: every record is late.
    late = SeriesBatch.from_block(
        block, now_us=T0 + 60 * MINUTE, horizon_us=900 * SECOND
    )
    assert late.past.all()
    events = p.process(late, ctx()).events
    assert [(e.state, e.past) for e in events] == [(EventState.RAISED, True)]


def test_burst_warm_up_reads_store_baseline(store):
    """After a restart the baseline comes from the store's minute counts."""
    history = per_minute([1] * 20)
    store.write([item(history, seq=1)])
    loud = per_minute([6], start=T0 + 20 * MINUTE)
    store.write([item(loud, seq=2)])
    p = LogBurstProcessor()
    events = p.process(logs_batch(loud), ctx(store=store)).events
    assert [e.state for e in events] == [EventState.RAISED]
    assert events[0].details["baseline_per_min"] == pytest.approx(1.0)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(counts=st.lists(st.integers(0, 25), min_size=1, max_size=30))
def test_burst_events_alternate_and_match_minutes(counts):
    """Raised and cleared alternate, starting raised; a raise is a loud minute."""
    p = LogBurstProcessor(min_history_minutes=60)  # the threshold alone
    records = [*per_minute(counts), rec(T0 + len(counts) * MINUTE, "debug")]
    events = p.process(logs_batch(records), ctx()).events
    assert [e.state for e in events] == [
        EventState.RAISED if i % 2 == 0 else EventState.CLEARED
        for i in range(len(events))
    ]
    loud = [m for m, n in enumerate(counts) if n >= 10]
    raised_minutes = [
        (e.details["minute_us"] - T0) // MINUTE
        for e in events
        if e.state is EventState.RAISED
    ]
    assert set(raised_minutes) <= set(loud)
    assert bool(raised_minutes) == bool(loud)
    if events and events[-1].state is EventState.CLEARED:
        assert counts[(events[-1].details["minute_us"] - T0) // MINUTE] < 10


def test_logs_is_built_in_and_routed_to_log_series():
    """logs is a built-in; its default route reads the log kind only."""
    assert isinstance(registry.create_processor("logs"), LogBurstProcessor)
    (route,) = [r for r in ProcessorsConfig().routes if r.processor == "logs"]
    assert route.kinds == [LOG_KIND]
    assert route.matches(LOG_KIND, "dev-1", "log")
    assert not route.matches("reading", "dev-1", "temperature")
    with pytest.raises(ProcessorConfigError):
        registry.create_processor("logs", {"level": "loud"})


def test_host_routes_committed_logs_to_the_burst_processor(tmp_path):
    """A commit's new log records reach the burst processor; events are stored."""
    store = SQLiteStore(tmp_path / "store.db")
    store.migrate()
    try:
        published: list[tuple[str, bytes, int]] = []
        host = ProcessorHost(
            ProcessorsConfig(),
            store,
            lambda t, p, q: published.append((t, p, q)),
            clock=lambda: T0 + 10 * MINUTE,
        )
        result = store.write([item(per_minute([11]), seq=1)])
        host.on_committed(result)
        again = store.write([item(per_minute([11]), seq=1)])  # resent
        host.on_committed(again)
        events = store.list_events(device="dev-1", kind="log_burst")
        assert [(e.state, e.metric, e.value) for e in events] == [
            ("raised", "log", 10.0)
        ]
        assert [t for t, _, _ in published] == ["sf/v1/events/log_burst/dev-1"]
        assert host.figures()["events"] == {"log_burst": 1}
    finally:
        store.close()


def test_levels_known_to_the_processor():
    """Every protocol level has a number the processor compares."""
    from protocol.logs import LEVEL_NUMBERS

    assert [LEVEL_NUMBERS[lv] for lv in LEVELS] == [10, 20, 30, 40, 50]


# -- the read routes (hub/api/logs.py) -------------------------------------------


@pytest.fixture
def client(store):
    """The log routes alone over the store, their read scope granted."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from hub.api import errors
    from hub.api.logs import READ_ACCESS, router

    app = FastAPI()
    app.state.store = store
    errors.install(app)
    app.include_router(router)
    # The security layer is the API's (hub/security), tested there.
    app.dependency_overrides[READ_ACCESS] = lambda: None
    with TestClient(app) as c:
        yield c


def test_api_log_counts_by_bucket(store, client):
    """GET /v1/devices/{id}/logs/counts: records by level per bucket, and totals."""
    logs = [
        *per_minute([3, 0, 2], level="error"),
        *per_minute([1], level="info", start=T0 + MINUTE),
    ]
    store.write([item(logs)])
    resp = client.get(
        "/v1/devices/dev-1/logs/counts",
        params={
            "from": "2026-11-30T12:00:00Z",
            "to": "2026-11-30T12:10:00Z",
            "bucket": "1m",
        },
    )
    assert resp.status_code == 200
    assert resp.json() == {
        "device": "dev-1",
        "bucket": "1m",
        "start": "2026-11-30T12:00:00.000000Z",
        "end": "2026-11-30T12:10:00.000000Z",
        "totals": {"info": 1, "error": 5},
        "buckets": [
            {
                "start": "2026-11-30T12:00:00.000000Z",
                "total": 3,
                "levels": {"error": 3},
            },
            {"start": "2026-11-30T12:01:00.000000Z", "total": 1, "levels": {"info": 1}},
            {
                "start": "2026-11-30T12:02:00.000000Z",
                "total": 2,
                "levels": {"error": 2},
            },
        ],
    }
    hourly = client.get(
        "/v1/devices/dev-1/logs/counts",
        params={"from": "2026-11-30T12:00:00Z", "to": "2026-11-30T13:00:00Z"},
    ).json()
    assert [(b["start"], b["levels"]) for b in hourly["buckets"]] == [
        ("2026-11-30T12:00:00.000000Z", {"info": 1, "error": 5})
    ]


def test_api_logs_newest_first(store, client):
    """GET /v1/devices/{id}/logs: the last records, newest first, by level."""
    store.write([item([rec(T0, "info", msg="a"), rec(T0 + SECOND, "error", msg="b")])])
    body = client.get("/v1/devices/dev-1/logs", params={"limit": 5}).json()
    assert [(r["msg"], r["level"], r["ts"]) for r in body] == [
        ("b", "error", "2026-11-30T12:00:01.000000Z"),
        ("a", "info", "2026-11-30T12:00:00.000000Z"),
    ]
    only = client.get("/v1/devices/dev-1/logs", params={"level": "info"}).json()
    assert [r["msg"] for r in only] == ["a"]


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/v1/devices/nobody/logs/counts", {}, 404, None),
        ("/v1/devices/dev-1/logs/counts", {"bucket": "2m"}, 422, "bucket"),
        ("/v1/devices/dev-1/logs/counts", {"from": "yesterday"}, 422, "from"),
        (
            "/v1/devices/dev-1/logs/counts",
            {"from": "2026-11-30T13:00:00Z", "to": "2026-11-30T12:00:00Z"},
            422,
            "to",
        ),
        ("/v1/devices/dev-1/logs", {"level": "loud"}, 422, "level"),
        ("/v1/devices/dev-1/logs", {"limit": 0}, 422, "limit"),
    ],
)
def test_api_logs_bad_request(store, client, path, params, status, field):
    """Unknown devices are 404; bad parameters are 422 naming the field."""
    store.write([item([rec(T0)])])
    resp = client.get(path, params=params)
    assert resp.status_code == status
    if field is not None:
        assert field in resp.json()["error"]["message"]
