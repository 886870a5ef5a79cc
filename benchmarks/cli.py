"""``streamflow bench``: measure StreamFlow against baselines from the same run.

Mounted under ``streamflow`` by hub/cli.py; also ``python -m benchmarks.cli``.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

from benchmarks import _report
from benchmarks._context import FULL, QUICK
from benchmarks.errors import BenchError
from hub.config import redact_url

#: The scenarios, in suite order (benchmarks.suite.SCENARIOS, whose modules
#: are imported only when the command runs: ``streamflow`` starts fast).
SCENARIO_NAMES = ("ingest", "alerts", "catchup", "queries", "edge", "fleet")

#: Width of the table when stdout is not a terminal (a file, a pipe).
_PIPE_WIDTH = 200
#: The machine line of the plot's title and BENCHMARKS.md.
MACHINE = "2 cores, shared by client, broker, hub and database"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(SCENARIO_NAMES),
    help="Run only this scenario (repeat for several; default: all).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the figures to this file as a list of JSON objects.",
)
@click.option(
    "--db",
    help="TimescaleDB server to make a scratch database on (dropped after) "
    "[default: $STREAMFLOW_TEST_DSN, else the local test server].",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Plot throughput and latency over the run into this PNG file.",
)
@click.option("--quick", is_flag=True, help="Smaller loads: about 1.5 minutes.")
@click.option(
    "--rate",
    type=click.FloatRange(min=1, min_open=False),
    help="Full ingest rate (readings/s) whose half loads the alerts scenario "
    "[default: scenario 1's in this run, else a short calibration ingest].",
)
@click.option(
    "--alerts-tuned",
    is_flag=True,
    help="Add the alert scenario's diagnostic phase: the hub with rollups and "
    "thresholds only (about 40 s more).",
)
@click.option(
    "--keep-workdir", is_flag=True, help="Keep the folder of logs and buffers."
)
def bench(
    scenarios: tuple[str, ...],
    json_path: Path | None,
    db: str | None,
    plot_path: Path | None,
    quick: bool,
    rate: float | None,
    alerts_tuned: bool,
    keep_workdir: bool,
) -> None:
    """Run the benchmark scenarios and print figures beside same-run baselines."""
    from benchmarks._services import default_dsn
    from benchmarks.suite import run_suite

    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        force=True,
    )
    console = Console(stderr=True)
    server = db or default_dsn()
    command = "streamflow bench" + (" --quick" if quick else "")
    console.print(
        f"{command}: scratch database on {redact_url(server)}", highlight=False
    )
    sizes = QUICK if quick else FULL
    if alerts_tuned:
        sizes = dataclasses.replace(sizes, alerts_tuned_phase=True)
    try:
        suite = run_suite(
            list(scenarios),
            sizes,
            server,
            console,
            keep_workdir,
            alerts_rate=rate,
        )
    except BenchError as exc:
        # One line and status 2, like every command that cannot reach a
        # service (the README's promise); psycopg's messages span lines.
        click.echo(f"streamflow: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    # A pipe gets the whole table, unwrapped; a terminal its own width.
    out = Console() if sys.stdout.isatty() else Console(width=_PIPE_WIDTH)
    _report.print_report(out, suite.results)
    if json_path is not None:
        _report.write_json(json_path, suite.results)
    if plot_path is not None:
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        _report.write_plot(plot_path, suite.results, f"{command}, {date}, {MACHINE}")
    console.print(f"run took {suite.seconds:.0f} s", highlight=False)
    for name, error in suite.failures.items():
        console.print(f"[red]{name} failed: {error}[/red]", highlight=False)
    if suite.failures:
        sys.exit(1)


if __name__ == "__main__":
    bench()
