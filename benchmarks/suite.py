"""The suite: which scenarios exist, and running a selection of them.

Scenario 2 of the issue (alert latency) is not here: processors and alerts
do not exist yet, so there is nothing to measure (see BENCHMARKS.md).
"""

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

from benchmarks import catchup, edge, fleet, ingest, queries
from benchmarks._context import BenchContext, Sizes
from benchmarks._services import scratch_database
from benchmarks.errors import BenchError
from benchmarks.results import ScenarioResult

_LOGGER = logging.getLogger(__name__)

#: What tells why scenario 2 is missing, in the output and BENCHMARKS.md.
ALERTS_LEFT_OUT = (
    "alerts (scenario 2, alert latency): left out, since processors and "
    "alerts do not exist yet"
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario: its name, what it measures, its run function."""

    name: str
    title: str
    run: Callable[[BenchContext], ScenarioResult]
    needs_db: bool


#: Every scenario, in the order a run takes them (fleet after ingest, whose
#: naive pipeline rate it reuses).
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("ingest", "1. ingest end to end", ingest.run, needs_db=True),
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
) -> SuiteResult:
    """Run the named scenarios in suite order; a failure does not stop the rest.

    Args:
        names: scenario names (keys of :data:`SCENARIOS`); all when empty.
        sizes: the bounds of the run.
        server_dsn: the TimescaleDB server to make the scratch database on.
        console: where progress goes.
        keep_workdir: keep the folder of logs and buffers (its path is printed).

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
            console.print(f"[dim]{ALERTS_LEFT_OUT}[/dim]", highlight=False)
            for scenario in chosen:
                result = _run_one(ctx, scenario, failures)
                if result is not None:
                    results.append(result)
    finally:
        if keep_workdir:
            console.print(f"work folder kept: {workdir}", highlight=False)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return SuiteResult(results, failures, time.monotonic() - started)


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
        return None
    except Exception as exc:  # one broken scenario must not lose the others
        _LOGGER.exception("scenario crashed scenario=%s", scenario.name)
        failures[scenario.name] = f"{type(exc).__name__}: {exc}"
        return None
    result.seconds = time.monotonic() - t0
    ctx.progress(scenario.name, f"done in {result.seconds:.1f} s")
    return result
