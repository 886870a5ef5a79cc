"""Every scenario at tiny size, once, on the real services: the figures add up.

One module-scoped run of the suite (about 25 s), with real Mosquitto,
TimescaleDB and StreamFlow processes; the tests check what it produced: the
figures each scenario promises, with values that are real measurements and
ratios computed from them, and the JSON file's keys.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from rich.console import Console

from benchmarks._context import TINY
from benchmarks._report import write_json
from benchmarks._services import mosquitto_binary
from benchmarks.errors import ServiceError
from benchmarks.results import FIGURE_KEYS
from benchmarks.suite import SCENARIOS, SuiteResult, run_suite
from tests.fix_db import server_dsn
from tests.services import missing_service

pytestmark = [
    pytest.mark.broker,
    pytest.mark.db,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(360),
]


@pytest.fixture(scope="module")
def suite():
    """The whole suite at tiny size, run once for this module's tests."""
    import psycopg

    try:
        mosquitto_binary()
    except ServiceError as exc:
        missing_service(str(exc))
    try:
        psycopg.connect(server_dsn(), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        missing_service(f"TimescaleDB at {server_dsn()!r}: {exc}")
    console = Console(stderr=True, quiet=True)
    return run_suite([], TINY, server_dsn(), console)


def _figures(suite: SuiteResult, scenario: str) -> dict[tuple[str, str], Any]:
    # Any: the tests compare baseline values that the suite test shows are set.
    (result,) = [r for r in suite.results if r.name == scenario]
    return {(f.figure, f.baseline): f for f in result.figures}


def test_suite_runs_every_scenario(suite):
    """All six scenarios ran, none failed, in suite order."""
    assert suite.failures == {}
    assert [r.name for r in suite.results] == list(SCENARIOS)


def test_suite_ratios_from_values(suite):
    """Every ratio is the figure's value divided by its baseline value."""
    figures = [f for r in suite.results for f in r.figures]
    assert len(figures) == 54
    for f in figures:
        assert f.baseline_value is not None
        assert f.baseline_value > 0
        assert f.ratio == f.value / f.baseline_value


def test_suite_json_keys(suite, tmp_path):
    """The JSON file lists every figure with exactly the seven keys."""
    path = tmp_path / "bench.json"
    write_json(path, suite.results)
    doc = orjson.loads(path.read_bytes())
    assert len(doc) == 54
    assert {tuple(d) for d in doc} == {FIGURE_KEYS}
    assert all(d["ratio"] == d["value"] / d["baseline_value"] for d in doc)


def test_ingest_figures(suite):
    """Ingest reports its rate beside COPY and naive, CPU and memory beside naive."""
    figs = _figures(suite, "ingest")
    assert len(figs) == 5
    e2e = "end to end, edge agents to commit and ack"
    copy = figs[(e2e, "binary COPY, one process, same rows and schema")]
    naive = figs[(e2e, "naive: paho subscriber, one INSERT per message")]
    assert copy.value == naive.value
    assert copy.unit == "readings/s"
    assert copy.value > naive.baseline_value
    memory = figs[("hub resident memory, peak", "naive subscriber, peak")]
    assert 10 < memory.value < 1000


def test_ingest_samples_count_readings(suite):
    """The plot's samples of ingest add up to the readings sent end to end."""
    (result,) = [r for r in suite.results if r.name == "ingest"]
    committed = sum(s.readings_per_s for s in result.samples)
    assert committed == TINY.ingest_readings


def test_catchup_figures(suite):
    """Catch-up reports drain rate, time to empty and live latency p50/p99."""
    figs = _figures(suite, "catchup")
    assert sorted(f for f, _ in figs) == [
        "drain rate after the outage",
        "live latency p50 during the drain",
        "live latency p99 during the drain",
        "time until the backlog is empty",
    ]
    live = figs[("drain rate after the outage", "live rate before the outage")]
    # Two gateways of 10 devices, two metrics each, every second.
    assert live.baseline_value == pytest.approx(40.0, rel=0.2)
    outage = figs[("time until the backlog is empty", "outage length")]
    assert outage.baseline_value >= TINY.catchup_outage_s


def test_queries_figures(suite):
    """Queries report Store and API p50/p99 of three questions beside SQL."""
    figs = _figures(suite, "queries")
    assert len(figs) == 12
    assert {f.unit for f in figs.values()} == {"ms"}
    p50 = [f for f in figs.values() if f.figure.endswith("p50")]
    p99 = [f for f in figs.values() if f.figure.endswith("p99")]
    assert len(p50) == len(p99) == 6
    assert all(math.isfinite(f.value) and f.value > 0 for f in figs.values())


def test_edge_figures(suite):
    """Edge reports two rates and three memory figures beside the forwarder."""
    figs = _figures(suite, "edge")
    assert len(figs) == 5
    rates = [f for f in figs.values() if f.unit == "readings/s"]
    memory = [f for f in figs.values() if f.unit == "MiB"]
    assert len(rates) == 2
    assert len(memory) == 3
    assert all(5 < f.value < 500 and 5 < f.baseline_value < 500 for f in memory)


def test_fleet_figures(suite):
    """Fleet reports the devices sustained beside the naive pipeline's reach."""
    figs = _figures(suite, "fleet")
    assert len(figs) == 2
    (devices,) = [f for f in figs.values() if f.unit == "devices"]
    assert devices.value == TINY.fleet_steps[0]
    assert devices.baseline.startswith("naive pipeline")
