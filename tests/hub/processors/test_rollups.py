"""1-minute rollups through the host, on SQLite and on TimescaleDB."""

from __future__ import annotations

import pytest

from hub.processors.config import ProcessorRoute, ProcessorsConfig
from hub.processors.host import ProcessorHost
from hub.processors.rollups import RollupProcessor
from hub.storage import IngestItem, open_store
from hub.storage.base import Rollup
from protocol.readings import SeriesBlock
from tests.hub.processors.helpers import MINUTE, SECOND, T0, batch, ctx

ROLLUPS_ONLY = ProcessorsConfig(routes=[ProcessorRoute(processor="rollups")])


@pytest.fixture(params=["sqlite", pytest.param("timescale", marks=pytest.mark.db)])
def store(request, tmp_path):
    """A migrated store of each kind."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/hub.db")
    else:
        s = open_store(request.getfixturevalue("pg_dsn"))
    s.migrate()
    yield s
    s.close()


def _write(store, ts, values, flags=None):
    """Store readings of dev-1/t and return what the commit stored as new."""
    block = SeriesBlock(
        "dev-1", "t", "C", list(ts), list(values), flags or [0] * len(ts)
    )
    return store.write([IngestItem(None, None, [block], T0)]).new


def test_rollup_processor_names_each_minute_once():
    """Readings in two minutes name those two minute starts."""
    out = RollupProcessor().process(
        batch([T0 + 5 * SECOND, T0 + 59 * SECOND, T0 + MINUTE], [1.0, 2.0, 3.0]), ctx()
    )

    assert out.rollups == [
        ("dev-1", "temperature", T0),
        ("dev-1", "temperature", T0 + MINUTE),
    ]
    assert out.events == []


def test_rollups_of_known_data_and_a_late_merge(store):
    """Exact count/min/max/mean/last per minute; a late reading merges in its minute."""
    host = ProcessorHost(ROLLUPS_ONLY, store, clock=lambda: T0)
    new = _write(
        store,
        [T0, T0 + 10 * SECOND, T0 + 50 * SECOND, T0 + MINUTE + 30 * SECOND],
        [2.0, 6.0, 4.0, -1.5],
    )
    host.process(new)
    # A reading of the first minute arrives late, after the others, with an
    # earlier time than its minute's last: count, min and mean change, last not.
    late = _write(store, [T0 + 20 * SECOND], [0.5], flags=[2])
    host.process(late)

    assert store.rollups("dev-1", "t", T0, T0 + 2 * MINUTE) == [
        Rollup(T0, 4, 0.5, 6.0, 3.125, 4.0),
        Rollup(T0 + MINUTE, 1, -1.5, -1.5, -1.5, -1.5),
    ]
    assert host.figures()["rollup_rows"] == 3


def test_rollups_processing_twice_changes_nothing(store):
    """Processing the same committed readings again leaves the rollups as they were."""
    host = ProcessorHost(ROLLUPS_ONLY, store, clock=lambda: T0)
    new = _write(store, [T0, T0 + SECOND], [1.0, 3.0])

    host.process(new)
    first = store.rollups("dev-1", "t", T0, T0 + MINUTE)
    host.process(new)

    assert first == store.rollups("dev-1", "t", T0, T0 + MINUTE)
    assert first == [Rollup(T0, 2, 1.0, 3.0, 2.0, 3.0)]


def test_rollups_query_window_is_half_open(store):
    """rollups() returns the minutes starting in [from, to)."""
    host = ProcessorHost(ROLLUPS_ONLY, store, clock=lambda: T0)
    host.process(_write(store, [T0 + i * MINUTE for i in range(3)], [1.0, 2.0, 3.0]))

    starts = [
        r.start_us for r in store.rollups("dev-1", "t", T0 + MINUTE, T0 + 2 * MINUTE)
    ]

    assert starts == [T0 + MINUTE]
    assert store.rollups("dev-9", "t", T0, T0 + MINUTE) == []
