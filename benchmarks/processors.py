"""How many readings a second the hub's processors take, beside the store's write.

``python -m benchmarks.processors [--db URL] [--writes N] [--json FILE]``
writes the same rows (60 series, 1,000 readings each a write, one second of
event time per write, as scenario 1's gateways send them) into a scratch
TimescaleDB several times: once with the store alone (the baseline), then
with a :class:`~hub.processors.host.ProcessorHost` thread behind the writer,
as in the hub (commit, then ``on_committed``), once per built-in route and
once with the default routes. A run ends when the host has drained. The
figure is readings/s from the first write to the drain; the ratio is against
the write alone in the same command, so a ratio under 1 says the processors,
not the store, set the pace. This is a profile tool for BENCHMARKS.md ("what
holds it back"), not one of the six scenarios.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click
import numpy as np
from rich.console import Console

from benchmarks import _report
from benchmarks._services import default_dsn, reset_database, scratch_database
from benchmarks.results import ScenarioResult
from hub.processors.config import ProcessorRoute, ProcessorsConfig
from hub.processors.host import ProcessorHost
from hub.storage import IngestItem, open_store
from hub.storage.base import Store
from protocol.readings import SeriesBlock

NAME = "processors"
SERIES = 60
READINGS_PER_SERIES = 1_000
_SECOND_US = 1_000_000
#: The routes measured one by one, then all the defaults together.
ROUTES = ("rollups", "thresholds", "quality", "anomaly")


def make_writes(writes: int, seed: int = 1) -> list[list[SeriesBlock]]:
    """``writes`` writes of :data:`SERIES` series, one second of readings each."""
    rng = np.random.default_rng(seed)
    t0 = (time.time_ns() // 1000 // 60_000_000 - 60) * 60_000_000
    step = _SECOND_US // READINGS_PER_SERIES
    out = []
    for k in range(writes):
        base = t0 + k * _SECOND_US
        ts = list(range(base, base + READINGS_PER_SERIES * step, step))
        out.append(
            [
                SeriesBlock(
                    f"bench-proc-{s:02d}",
                    "temperature",
                    "C",
                    ts,
                    np.round(rng.normal(21.0, 1.5, READINGS_PER_SERIES), 3).tolist(),
                    [0] * READINGS_PER_SERIES,
                )
                for s in range(SERIES)
            ]
        )
    return out


def timed_run(
    store: Store, writes: list[list[SeriesBlock]], config: ProcessorsConfig | None
) -> float:
    """Seconds to write every block (and, with a config, to process them)."""
    host = ProcessorHost(config, store) if config is not None else None
    if host is not None:
        host.start()
    started = time.perf_counter()
    for blocks in writes:
        result = store.write([IngestItem(None, None, blocks, blocks[0].ts_us[0])])
        if host is not None:
            host.on_committed(result)
    if host is not None and not host.stop(grace_s=600):
        raise RuntimeError("the processors did not drain within 600 s")
    seconds = time.perf_counter() - started
    if host is not None:
        # A processor that fails on every batch still drains, and fast: a
        # rate is only a figure if every reading was processed cleanly.
        f = host.figures()
        written = sum(len(b) for blocks in writes for b in blocks)
        if f["errors"] or f["store_errors"] or f["readings"] != written:
            raise RuntimeError(
                f"the processors did not process every reading cleanly: "
                f"{f['readings']:,} of {written:,} readings, errors {f['errors']}, "
                f"store errors {f['store_errors']}"
            )
    return seconds


def run(server: str, writes: int, console: Console) -> ScenarioResult:
    """Measure the write alone, each route, and the default routes."""
    result = ScenarioResult(NAME)
    data = make_writes(writes)
    readings = writes * SERIES * READINGS_PER_SERIES
    with scratch_database(server) as db:
        store = open_store(db.url)
        try:
            base_s = timed_run(store, data, None)
            base = readings / base_s
            console.print(f"store write alone: {base:,.0f} readings/s")
            cases = [
                (name, ProcessorsConfig(routes=[ProcessorRoute(processor=name)]))
                for name in ROUTES
            ]
            cases.append(("default routes", ProcessorsConfig()))
            for name, config in cases:
                reset_database(db.url)
                seconds = timed_run(store, data, config)
                rate = readings / seconds
                console.print(f"{name}: {rate:,.0f} readings/s")
                result.add(
                    f"write + processors ({name}), drained",
                    "readings/s",
                    rate,
                    "the store's write alone, same rows",
                    base,
                )
        finally:
            store.close()
    result.notes.append(
        f"processors: {writes} writes of {SERIES} series x "
        f"{READINGS_PER_SERIES} readings ({readings:,} readings) per run"
    )
    return result


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", help="TimescaleDB server for the scratch database.")
@click.option(
    "--writes",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Writes per run (60,000 readings each).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the figures to this file.",
)
def main(db: str | None, writes: int, json_path: Path | None) -> None:
    """Readings/s of the processors behind the store's write, per route."""
    logging.basicConfig(level=logging.WARNING)
    console = Console(stderr=True)
    result = run(db or default_dsn(), writes, console)
    _report.print_report(Console(width=200), [result])
    if json_path is not None:
        _report.write_json(json_path, [result])


if __name__ == "__main__":
    main()
