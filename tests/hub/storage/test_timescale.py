"""What only the TimescaleDB store has: hypertable, chunks, pool, features."""

from __future__ import annotations

import logging
import struct
import threading

import pytest

from hub.storage import open_store
from hub.storage.timescale import TimescaleStore
from protocol.const import FLAG_SERVER_TIME
from tests.hub.storage.helpers import ALL_VERSIONS, DAY_US, HOUR_US, block, item, us

pytestmark = pytest.mark.db

RECEIVED = us("2026-11-30T12:00:05+00:00")


@pytest.fixture
def ts_store(pg_dsn):
    """A migrated TimescaleDB store on a fresh database."""
    with TimescaleStore(pg_dsn) as opened:
        opened.migrate()
        yield opened


def _sql(store, query, params=()):
    with store._pool.connection() as conn:
        return conn.execute(query, params).fetchall()


def _chunks(store, older_than=None):
    if older_than is None:
        return _sql(store, "SELECT show_chunks('readings')")
    return _sql(
        store,
        "SELECT show_chunks('readings', older_than => %s::timestamptz)",
        [older_than],
    )


def test_readings_is_hypertable_with_one_day_chunks(ts_store):
    """readings is a hypertable partitioned on ts in chunks of one day."""
    rows = _sql(
        ts_store,
        "SELECT column_name, time_interval::text"
        " FROM timescaledb_information.dimensions"
        " WHERE hypertable_name = 'readings'",
    )

    assert rows == [("ts", "1 day")]


def test_readings_has_unique_series_ts_index(ts_store):
    """The (series_id, ts) idempotency key is a unique index, and the only one."""
    rows = _sql(
        ts_store,
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'readings'",
    )

    assert [r[0].split(" ON ")[1] for r in rows] == [
        "public.readings USING btree (series_id, ts)"
    ]
    assert rows[0][0].startswith("CREATE UNIQUE INDEX")


def test_features_of_apache_build(ts_store):
    """The Apache build is detected: no compression, no continuous aggregates."""
    assert ts_store.features == {
        "timescaledb": True,
        "compression": False,
        "continuous_aggregates": False,
    }


def test_drop_before_drops_whole_chunks(ts_store):
    """Retention drops the chunks before the cut and keeps the others (show_chunks)."""
    days = [us("2026-11-27T12:00:00+00:00") + d * DAY_US for d in range(4)]
    ts_store.write([item([block("dev-1", "temp", days, [1, 2, 3, 4])], RECEIVED)])
    assert len(_chunks(ts_store)) == 4

    dropped = ts_store.drop_before(us("2026-11-29T06:00:00+00:00"))

    assert dropped == 2
    assert len(_chunks(ts_store)) == 2
    assert _chunks(ts_store, "2026-11-29T00:00:00Z") == []


def test_server_stamped_readings_make_no_chunk_before_2000(ts_store):
    """Case C07: readings stamped at receive time create no chunk before 2000."""
    stamped = block(
        "dev-g07", "ENERGY.Power", [RECEIVED], [7], flags=[FLAG_SERVER_TIME]
    )

    ts_store.write([item([stamped], RECEIVED)])

    assert _chunks(ts_store, "2000-01-01T00:00:00Z") == []
    assert len(_chunks(ts_store)) == 1


def test_open_logs_no_password(pg_dsn, caplog):
    """Opening the store logs where it connects, never the DSN or its password."""
    from psycopg.conninfo import conninfo_to_dict

    password = conninfo_to_dict(pg_dsn).get("password") or "<none>"
    caplog.set_level(logging.DEBUG, logger="hub.storage")

    with TimescaleStore(pg_dsn) as opened:
        opened.migrate()

    messages = [r.getMessage() for r in caplog.records if r.name.startswith("hub.")]
    assert any(m.startswith("store opened kind=timescaledb host=") for m in messages)
    leaks = (pg_dsn, f"password={password}", f":{password}@", "password")
    assert [m for m in messages if any(leak in m for leak in leaks)] == []


def test_open_unreachable_server_times_out(caplog):
    """A server that does not answer fails the start-up within the timeout."""
    from psycopg_pool import PoolTimeout

    from tests.services import free_port

    dsn = f"postgresql://u:secret@127.0.0.1:{free_port()}/x?connect_timeout=1"

    with pytest.raises(PoolTimeout):
        TimescaleStore(dsn, timeout=1.0)

    assert "secret" not in caplog.text


def test_migrate_concurrently_applies_once(pg_dsn):
    """Two hub processes migrating at once apply each version exactly once."""
    stores = [TimescaleStore(pg_dsn) for _ in range(2)]
    applied: list[list[int]] = []
    threads = [
        threading.Thread(target=lambda s=s: applied.append(s.migrate())) for s in stores
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    try:
        # Each version is one transaction: the two may share the versions.
        assert sorted(v for versions in applied for v in versions) == ALL_VERSIONS
        assert stores[0].schema_versions() == ALL_VERSIONS
    finally:
        for s in stores:
            s.close()


def test_concurrent_writers_keep_every_reading(pg_dsn):
    """Writes from two threads on two pooled connections store every reading once."""
    with TimescaleStore(pg_dsn, min_size=2, max_size=2) as store:
        store.migrate()

        def writer(gw):
            for seq in range(20):
                ts = [RECEIVED + seq * HOUR_US + i for i in range(50)]
                readings = block(f"dev-{gw}", "temp", ts, range(50))
                store.write([item([readings], RECEIVED, gw, seq)])

        threads = [threading.Thread(target=writer, args=(g,)) for g in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

        assert (store.count_readings("dev-a"), store.count_readings("dev-b")) == (
            1000,
            1000,
        )
        assert store.accounting("gateway", "a").received == 1000


def test_open_store_postgresql_url_opens_timescaledb(pg_dsn):
    """open_store() with a postgresql:// URL gives a TimescaleDB store."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(pg_dsn)
    url = (
        f"postgresql://{p.get('user', '')}:{p.get('password', '')}@"
        f"{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{p['dbname']}"
    )

    store = open_store(url)

    try:
        assert (store.kind, store.migrate()) == ("timescaledb", ALL_VERSIONS)
    finally:
        store.close()


# -- the two ways readings go in (module docstring of hub.storage.timescale) ---


def test_write_new_readings_go_in_by_copy(ts_store):
    """New readings, even with equal (series, ts) in the write, go in by COPY."""
    readings = block("dev-1", "temp", [RECEIVED, RECEIVED, RECEIVED + 1], [1, 2, 3])

    result = ts_store.write([item([readings], RECEIVED)])

    assert (result.inserted, result.duplicates) == (2, 1)
    assert [r.value for r in ts_store.readings("dev-1")] == [1.0, 3.0]
    assert ts_store.stats()["write_ways"] == {"copy": 1}


def test_write_stored_reading_takes_staging_way(ts_store):
    """A COPY hitting a stored reading is undone; the staging way stores the rest."""
    ts_store.write([item([block("dev-1", "temp", [RECEIVED], [1])], RECEIVED)])
    mixed = block("dev-1", "temp", [RECEIVED + 1, RECEIVED], [2, 9])

    result = ts_store.write([item([mixed], RECEIVED + 10)])

    assert [(b.ts_us, b.values) for b in result.new] == [([RECEIVED + 1], [2.0])]
    assert [r.value for r in ts_store.readings("dev-1")] == [1.0, 2.0]
    assert ts_store.stats()["write_ways"] == {
        "copy": 1,
        "copy_conflict": 1,
        "staged": 1,
    }


def test_write_after_conflicts_backs_off_then_copies_again(ts_store):
    """After a conflict one write takes the staging way at once, then COPY again."""
    ts_store.write([item([block("dev-1", "temp", [RECEIVED], [1])], RECEIVED)])
    ts_store.write([item([block("dev-1", "temp", [RECEIVED], [1])], RECEIVED)])

    for n in (1, 2):
        fresh = block("dev-1", "temp", [RECEIVED + n], [n])
        ts_store.write([item([fresh], RECEIVED)])

    assert ts_store.stats()["write_ways"] == {
        "copy": 2,
        "copy_conflict": 1,
        "staged": 2,
    }
    assert ts_store.count_readings("dev-1") == 3


def test_staged_way_round_trip_is_exact(ts_store):
    """The staging way keeps edge doubles and times exactly; first of equal wins."""
    ts_store._staged_left = 1_000
    times = [
        us("0001-01-01T00:00:00+00:00"),
        -1,
        0,
        us("2026-11-30T06:33:07.123457+00:00"),
        us("9999-12-31T23:59:59.999999+00:00"),
    ]
    values = [-0.0, 5e-324, -1.7976931348623157e308, 0.1, 1.7976931348623157e308]
    first = block("dev-1", "x", times, values)
    again = block("dev-1", "x", [times[0]], [42.0])

    result = ts_store.write([item([first, again], RECEIVED)])

    back = ts_store.readings("dev-1")
    assert [r.ts_us for r in back] == times
    assert [struct.pack("<d", r.value) for r in back] == [
        struct.pack("<d", v) for v in values
    ]
    assert (result.inserted, ts_store.stats()["write_ways"]) == (5, {"staged": 1})
