"""The suite: which scenarios exist, and running a selection of them."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from benchmarks import alerts, catchup, edge, fleet, ingest, queries
from benchmarks._context import BenchContext, Sizes
from benchmarks._services import scratch_database
from benchmarks.errors import BenchError
from benchmarks.results import ScenarioResult

_LOGGER = logging.getLogger(__name__)

#: Scenario 1's end-to-end figure, whose rate scenario 2 takes half of.
_INGEST_E2E = "end to end, edge agents to commit and ack"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario: its name, what it measures, its run function."""

    name: str
    title: str
    run: Callable[[BenchContext], ScenarioResult]
    needs_db: bool


#: Every scenario, in the order a run takes them (alerts and fleet after
#: ingest, whose end-to-end and naive pipeline rates they reuse).
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("ingest", "1. ingest end to end", ingest.run, needs_db=True),
        Scenario("alerts", "2. alert latency at half load", alerts.run, True),
        Scenario("catchup", "3. catch-up after an outage", catchup.run, True),
        Scenario("queries", "4. queries over millions of readings", queries.run, True),
        Scenario("edge", "5. edge agent on one core", edge.run, needs_db=False),
        Scenario("fleet", "6. fleet scale", fleet.run, needs_db=True),
    )
}


@dataclass(slots=True)
class SuiteResult:
    """What a run produced: each scenario's result, and the failures."""

    results: list[ScenarioResult]
    failures: dict[str, str]
    seconds: float


def run_suite(
    names: list[str],
    sizes: Sizes,
    server_dsn: str,
    console: Console,
    keep_workdir: bool = False,
    alerts_rate: float | None = None,
) -> SuiteResult:
    """Run the named scenarios in suite order; a failure does not stop the rest.

    Args:
        names: scenario names (keys of :data:`SCENARIOS`); all when empty.
        sizes: the bounds of the run.
        server_dsn: the TimescaleDB server to make the scratch database on.
        console: where progress goes.
        keep_workdir: keep the folder of logs and buffers (its path is printed).
        alerts_rate: the full ingest rate whose half loads the alert
            scenario (``--rate``); else scenario 1's, else a calibration's.

    Raises:
        ValueError: a name is not a scenario.
        benchmarks.errors.ServiceError: the scratch database cannot be made.
    """
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario {unknown[0]!r}: expected one of "
                         f"{', '.join(SCENARIOS)}")  # fmt: skip
    chosen = [s for s in SCENARIOS.values() if not names or s.name in names]
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="streamflow-bench-"))
    results: list[ScenarioResult] = []
    failures: dict[str, str] = {}
    try:
        with ExitStack() as stack:
            db_url = None
            if any(s.needs_db for s in chosen):
                db_url = stack.enter_context(scratch_database(server_dsn)).url
            ctx = BenchContext(sizes, workdir, db_url, console)
            ctx.alerts_rate = alerts_rate
            for scenario in chosen:
                result = _run_one(ctx, scenario, failures)
                if result is not None:
                    results.append(result)
                    _remember_rates(ctx, result)
    finally:
        if keep_workdir:
            console.print(f"work folder kept: {workdir}", highlight=False)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return SuiteResult(results, failures, time.monotonic() - started)


def _remember_rates(ctx: BenchContext, result: ScenarioResult) -> None:
    # Scenario 2 loads the hub with half of scenario 1's end-to-end rate.
    if result.name == ingest.NAME:
        rates = [f.value for f in result.figures if f.figure == _INGEST_E2E]
        ctx.ingest_rate = rates[0] if rates else None


def _run_one(
    ctx: BenchContext, scenario: Scenario, failures: dict[str, str]
) -> ScenarioResult | None:
    ctx.progress(scenario.name, f"[bold]{scenario.title}[/bold]")
    t0 = time.monotonic()
    try:
        result = scenario.run(ctx)
    except BenchError as exc:
        failures[scenario.name] = str(exc)
        ctx.progress(scenario.name, f"[red]failed: {exc}[/red]")
        # A failed check may keep its figures, so that the table shows what
        # failed (the alert scenario's received beside expected).
        partial = getattr(exc, "partial", None)
        if isinstance(partial, ScenarioResult):
            partial.seconds = time.monotonic() - t0
            return partial
        return None
    except Exception as exc:  # one broken scenario must not lose the others
        _LOGGER.exception("scenario crashed scenario=%s", scenario.name)
        failures[scenario.name] = f"{type(exc).__name__}: {exc}"
        return None
    result.seconds = time.monotonic() - t0
    ctx.progress(scenario.name, f"done in {result.seconds:.1f} s")
    return result
