"""The table, the JSON file and the PNG plot of a run."""

from __future__ import annotations

import orjson
import pytest
from rich.console import Console

from benchmarks._report import (
    format_ratio,
    format_value,
    print_report,
    write_json,
    write_plot,
)
from benchmarks.results import FIGURE_KEYS, Sample, ScenarioResult


def _results() -> list[ScenarioResult]:
    ingest = ScenarioResult("ingest")
    ingest.add("end to end", "readings/s", 120_000.0, "COPY", 600_000.0)
    ingest.add("hub memory", "MiB", 80.0, "naive", 50.0)
    ingest.samples = [
        Sample("ingest", 0.0, 100_000.0, 0.3, 0.6),
        Sample("ingest", 1.0, 140_000.0, 0.4, 0.9),
    ]
    ingest.notes.append("ingest: row count checked")
    edge = ScenarioResult("edge")
    edge.add("agent rss at rest", "MiB", 41.0, "forwarder", None)
    return [ingest, edge]


@pytest.mark.parametrize(
    ("value", "text"),
    [(123_456.7, "123,457"), (12.345, "12.35"), (0.01234, "0.012"), (None, "-")],
)
def test_format_value_digits(value, text):
    """Large values get no decimals, small ones three."""
    assert format_value(value) == text


def test_format_ratio_multiple():
    """A ratio reads as a multiple with three significant digits."""
    assert format_ratio(0.2) == "0.2x"
    assert format_ratio(47.75) == "47.8x"
    assert format_ratio(None) == "-"


def test_write_json_figures(tmp_path):
    """The JSON file is a list of objects with exactly the keys, ratios from values."""
    path = tmp_path / "figures.json"
    write_json(path, _results())
    doc = orjson.loads(path.read_bytes())
    assert len(doc) == 3
    assert all(tuple(d) == FIGURE_KEYS for d in doc)
    assert doc[0]["ratio"] == 120_000.0 / 600_000.0
    assert doc[1]["ratio"] == 80.0 / 50.0
    assert doc[2]["baseline_value"] is None
    assert doc[2]["ratio"] is None


def test_print_report_rows_and_notes():
    """The table shows every figure's baseline and ratio, then the notes."""
    console = Console(record=True, width=200)
    print_report(console, _results())
    text = console.export_text()
    assert "0.2x" in text
    assert "1.6x" in text
    assert "- ingest: row count checked" in text
    assert text.count("ingest ") >= 2


def test_write_plot_png(tmp_path):
    """The plot is a PNG file."""
    path = tmp_path / "run.png"
    write_plot(path, _results(), "test run")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
