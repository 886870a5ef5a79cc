"""The run's outputs: the table on the terminal, the JSON file, the PNG plot."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from benchmarks.results import Figure, Sample, ScenarioResult


def format_value(value: float | None) -> str:
    """A figure's value for the table: fewer decimals for larger numbers."""
    if value is None or not math.isfinite(value):
        return "-"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_ratio(ratio: float | None) -> str:
    """A ratio for the table, as a multiple (``12.3x``)."""
    if ratio is None:
        return "-"
    return f"{ratio:.3g}x"


def table(results: list[ScenarioResult]) -> Table:
    """The figures of every scenario as one table."""
    out = Table(title="streamflow bench", show_lines=False)
    for name, justify in (
        ("scenario", "left"),
        ("figure", "left"),
        ("unit", "left"),
        ("value", "right"),
        ("baseline", "left"),
        ("baseline_value", "right"),
        ("ratio", "right"),
    ):
        out.add_column(name, justify=justify)  # type: ignore[arg-type]
    for result in results:
        for f in result.figures:
            out.add_row(
                f.scenario,
                f.figure,
                f.unit,
                format_value(f.value),
                f.baseline,
                format_value(f.baseline_value),
                format_ratio(f.ratio),
            )
    return out


def print_report(console: Console, results: list[ScenarioResult]) -> None:
    """Print the table, then each scenario's notes."""
    console.print(table(results))
    for result in results:
        for note in result.notes:
            console.print(f"- {note}", highlight=False, soft_wrap=True)


def figures_json(figures: list[Figure]) -> bytes:
    """The figures as the JSON file holds them: a list of objects."""
    return orjson.dumps([f.as_dict() for f in figures], option=orjson.OPT_INDENT_2)


def write_json(path: Path, results: list[ScenarioResult]) -> None:
    """Write every figure to ``path`` (see :data:`benchmarks.results.FIGURE_KEYS`)."""
    path.write_bytes(figures_json([f for r in results for f in r.figures]) + b"\n")


def write_plot(path: Path, results: list[ScenarioResult], title: str) -> None:
    """Plot throughput and latency over the run into a PNG file.

    Args:
        path: the PNG file.
        results: the scenarios; those without samples are left out.
        title: the plot's title (the command, date and machine).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 7))
    for result in results:
        if not result.samples:
            continue
        t, rate, p50, p99 = _columns(result.samples)
        (line,) = top.plot(t, rate, label=result.name, linewidth=1.2)
        bottom.plot(t, p99, color=line.get_color(), label=f"{result.name} p99")
        bottom.plot(
            t, p50, color=line.get_color(), linestyle=":", label=f"{result.name} p50"
        )
    top.set_ylabel("readings committed / s")
    top.set_title(title, fontsize=10)
    top.grid(alpha=0.3)
    top.legend(loc="upper right", fontsize=8)
    bottom.set_ylabel("reading time to commit, s")
    bottom.set_xlabel("seconds since the start of the run")
    bottom.set_yscale("log")
    bottom.grid(alpha=0.3)
    bottom.legend(loc="upper right", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _columns(
    samples: list[Sample],
) -> tuple[list[float], list[float], list[float], list[float]]:
    nan = float("nan")
    return (
        [s.t_s for s in samples],
        [s.readings_per_s for s in samples],
        [s.latency_p50_s if s.latency_p50_s is not None else nan for s in samples],
        [s.latency_p99_s if s.latency_p99_s is not None else nan for s in samples],
    )
