"""Scenario 2 (alert latency) at tiny size on the real services.

One module-scoped run of the scenario alone (about 30 s: Mosquitto, the hub,
the monitor, the API, two edge agents with their local brokers, a load
process, both phases, after a calibration ingest since scenario 1 does not
run), then checks of what it produced: the figures it promises, every alert
change received on both paths, ratios from the values.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest
from rich.console import Console

from benchmarks import alerts
from benchmarks._context import TINY, BenchContext
from benchmarks._report import write_json
from benchmarks._services import mosquitto_binary
from benchmarks.errors import ServiceError
from benchmarks.results import FIGURE_KEYS, Figure
from benchmarks.suite import SuiteResult, run_suite
from tests.fix_db import server_dsn
from tests.services import missing_service

pytestmark = [
    pytest.mark.broker,
    pytest.mark.db,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(240),
]

#: Gateways measured: two on the default hub, one on the tuned hub.
_LABELS = [
    "edge batch_max_age_s 0.5 (default), hub defaults",
    "edge batch_max_age_s 0.05 (tuned), hub defaults",
    f"edge batch_max_age_s 0.05 (tuned), {alerts.TUNED_HUB_LABEL}",
]
_PATHS = ("alert on the SSE stream", "downlink on the device's local topic")


@pytest.fixture(scope="module")
def suite() -> SuiteResult:
    """The alert scenario alone at tiny size, run once for this module."""
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
    return run_suite(["alerts"], TINY, server_dsn(), console)


def _figures(suite: SuiteResult) -> dict[str, Figure]:
    (result,) = suite.results
    return {f.figure: f for f in result.figures}


def test_alerts_ran_without_failure(suite):
    """The scenario ran and raised nothing (a lost alert would fail it)."""
    assert suite.failures == {}
    assert [r.name for r in suite.results] == ["alerts"]


def test_every_alert_received_on_both_paths(suite):
    """Received equals expected, per gateway and path, and is not zero."""
    figs = _figures(suite)
    rounds = max(2, int(TINY.alerts_s / TINY.alerts_interval_s) // 2 * 2)
    expected = rounds * TINY.alerts_devices
    counts = [f for f in figs.values() if f.unit == "alerts"]
    assert len(counts) == len(_LABELS) * len(_PATHS)
    for f in counts:
        assert f.baseline == "alerts expected (breach/clear readings sent)"
        assert f.baseline_value == expected
        assert f.value == f.baseline_value
        assert f.ratio == 1.0


def test_latency_figures_per_gateway_and_path(suite):
    """p50 <= p99 <= max in ms for each gateway and path, beside the probe."""
    figs = _figures(suite)
    for label in _LABELS:
        for path in _PATHS:
            p50, p99, top = (
                figs[f"{path} {q}, {label}"] for q in ("p50", "p99", "max")
            )
            assert {p50.unit, p99.unit, top.unit} == {"ms"}
            assert 0 < p50.value <= p99.value <= top.value < 60_000
            assert p50.baseline.startswith("MQTT QoS 1 publish → subscriber")
            assert p50.baseline_value is not None
            assert top.baseline_value is not None
            assert p99.baseline_value is not None
            assert 0 < p50.baseline_value <= top.baseline_value
            assert p99.ratio == p99.value / p99.baseline_value
    # An alert passes through the broker at least twice: never under the probe.
    stream = [f for f in figs.values() if f.unit == "ms"]
    assert len(stream) == len(_LABELS) * len(_PATHS) * 3
    assert all(
        f.value > (f.baseline_value or math.inf)
        for f in stream
        if f.figure.endswith("p50")
    )


def test_background_load_and_notes(suite):
    """Each phase reports its background rate beside half the calibration's."""
    figs = _figures(suite)
    loads = [f for f in figs.values() if f.unit == "readings/s"]
    assert len(loads) == 2
    for f in loads:
        assert f.baseline.startswith("half the ingest rate (calibration ingest of")
        assert f.baseline_value is not None
        assert f.value == pytest.approx(f.baseline_value, rel=0.5)
    (result,) = suite.results
    stages = [n for n in result.notes if "to each stage" in n]
    assert len(stages) == len(_LABELS)
    assert all("target p99 < 250 ms" in n for n in stages)


def test_json_keys(suite, tmp_path: Path):
    """The JSON file lists every figure with the seven keys, ratios computed."""
    path = tmp_path / "alerts.json"
    write_json(path, suite.results)
    doc = orjson.loads(path.read_bytes())
    assert len(doc) == len(_LABELS) * len(_PATHS) * 4 + 2
    assert {tuple(d) for d in doc} == {FIGURE_KEYS}
    assert {d["scenario"] for d in doc} == {"alerts"}
    for d in doc:
        assert math.isfinite(d["value"])
        assert d["ratio"] == d["value"] / d["baseline_value"]


def test_load_rate_prefers_the_option(tmp_path: Path):
    """--rate wins over scenario 1's rate; scenario 1's is used without it."""
    ctx = BenchContext(TINY, tmp_path, None, Console(quiet=True))
    ctx.ingest_rate = 50_000.0
    assert alerts._load_rate(ctx, tmp_path, "unused") == (
        50_000.0,
        "scenario 1 of this run",
    )
    ctx.alerts_rate = 8_000.0
    assert alerts._load_rate(ctx, tmp_path, "unused") == (8_000.0, "--rate")


class _Taps:
    """Stand-in for the taps: the messages the brokers delivered."""

    def __init__(self, messages: list[tuple[str, str, bytes, int]]) -> None:
        self.messages = messages

    def snapshot(self) -> list[tuple[str, str, bytes, int]]:
        return list(self.messages)


def _down(device: str, change: str) -> bytes:
    body = {"fingerprint": alerts.fingerprint(device), "change": change}
    return orjson.dumps({"dev": device, "kind": "alert", "body": body})


def test_matching_pairs_in_order_and_counts_the_lost():
    """The k-th change answers the k-th reading; a wrong kind is not counted."""
    from benchmarks._commitlog import CommitLog
    from benchmarks.alerts import Injected, Matched, Stream

    dev = "bench-alert-default-00"
    injected = [
        Injected("default", dev, 1_000_000, True),
        Injected("default", dev, 2_000_000, False),
        Injected("default", dev, 3_000_000, True),
    ]
    local = "sf/v1/dev/bench-alert-default-00/down/alert"
    taps = _Taps(
        [
            ("default", local, _down(dev, "opened"), 1_200_000),
            ("default", local, _down(dev, "resolved"), 2_300_000),
            # The third reading's reopen never came; another alert did.
            ("default", local, _down("other", "opened"), 3_100_000),
            ("hub", "bench/alerts/probe", b"3000000", 3_000_500),
        ]
    )
    stream = Stream()
    fp = alerts.fingerprint(dev)
    stream.changes.append((1_400_000, {"device": dev, "fingerprint": fp,
                                       "change": "resolved"}))  # fmt: skip
    empty = np.zeros(0, dtype=np.int64)
    commits = CommitLog(empty, empty, empty, empty)
    m = Matched(injected, taps, stream, commits)  # type: ignore[arg-type]
    assert m.expected == {"default": 3}
    assert m.received["downlink_device"] == {"default": 2}
    assert m.latency["downlink_device"]["default"] == [200.0, 300.0]
    # A breach answered by "resolved" is not an answer.
    assert m.received["stream"] == {"default": 0}
    assert m.lost() == {"stream/default": 3, "downlink_device/default": 1}
    assert m.probe_ms.tolist() == [0.5]
