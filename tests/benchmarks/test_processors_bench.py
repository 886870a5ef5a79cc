"""The processor throughput tool, at one write a run, on a real TimescaleDB."""

from __future__ import annotations

import math

import pytest
from rich.console import Console

from benchmarks import processors
from hub.processors.config import ProcessorRoute, ProcessorsConfig
from hub.processors.quality import QualityProcessor
from hub.storage import open_store
from tests.fix_db import server_dsn
from tests.services import missing_service

pytestmark = [pytest.mark.db, pytest.mark.timeout(180)]


def test_make_writes_gives_one_second_of_unique_times_per_write():
    """Each write: 60 series x 1,000 readings, times ascending, writes contiguous."""
    writes = processors.make_writes(2)

    assert [len(w) for w in writes] == [processors.SERIES] * 2
    first, second = writes[0][0].ts_us, writes[1][0].ts_us
    assert len(first) == processors.READINGS_PER_SERIES
    assert first == sorted(set(first))
    assert second[0] - first[0] == 1_000_000
    assert len({b.device for b in writes[0]}) == processors.SERIES


def test_run_measures_every_route_against_the_write_alone():
    """Five figures, each a real rate with its ratio to the same run's write."""
    import psycopg

    try:
        psycopg.connect(server_dsn(), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        missing_service(f"TimescaleDB at {server_dsn()!r}: {exc}")

    result = processors.run(server_dsn(), 1, Console(quiet=True))

    names = [f.figure for f in result.figures]
    assert names == [
        f"write + processors ({n}), drained"
        for n in (*processors.ROUTES, "default routes")
    ]
    (base,) = {f.baseline_value for f in result.figures}
    assert base is not None
    assert base > 0
    for f in result.figures:
        assert f.value > 0
        assert f.ratio is not None
        assert math.isclose(f.ratio, f.value / base)
    assert result.notes == [
        "processors: 1 writes of 60 series x 1000 readings (60,000 readings) per run"
    ]


def test_timed_run_refuses_a_rate_of_failed_processing(tmp_path, monkeypatch):
    """A route that fails on every batch drains fast: no rate, an error instead."""

    def broken(*args, **kwargs):
        raise RuntimeError("broken processor")

    monkeypatch.setattr(QualityProcessor, "step", broken)
    store = open_store(f"sqlite:///{tmp_path}/hub.db")
    store.migrate()
    config = ProcessorsConfig(routes=[ProcessorRoute(processor="quality")])
    try:
        with pytest.raises(RuntimeError, match=r"errors \{.quality.: 60\}"):
            processors.timed_run(store, processors.make_writes(1), config)
    finally:
        store.close()
