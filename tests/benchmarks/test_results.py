"""Figures: ratios computed from the values, JSON keys exactly as specified."""

from __future__ import annotations

import math

import pytest

from benchmarks.results import FIGURE_KEYS, Figure, ScenarioResult, ratio_of


@pytest.mark.parametrize(
    ("value", "baseline", "expected"),
    [
        (100.0, 50.0, 2.0),
        (1.0, 4.0, 0.25),
        (0.0, 3.0, 0.0),
        (5.0, None, None),
        (5.0, 0.0, None),
        (math.nan, 1.0, None),
    ],
)
def test_ratio_of_values(value, baseline, expected):
    """A ratio is value over baseline, None without a usable baseline."""
    assert ratio_of(value, baseline) == expected


def test_figure_as_dict_keys_exact():
    """A figure's dict has exactly the seven keys, in the specified order."""
    fig = Figure("ingest", "rate", "readings/s", 300.0, "copy", 600.0)
    assert tuple(fig.as_dict()) == FIGURE_KEYS
    assert FIGURE_KEYS == (
        "scenario",
        "figure",
        "unit",
        "value",
        "baseline",
        "baseline_value",
        "ratio",
    )


def test_figure_as_dict_ratio_from_values():
    """The dict's ratio is its value divided by its baseline value."""
    doc = Figure("edge", "rss", "MiB", 42.0, "forwarder", 24.0).as_dict()
    assert doc["ratio"] == 42.0 / 24.0
    assert doc["value"] == 42.0
    assert doc["baseline_value"] == 24.0


def test_scenario_result_add_names_scenario():
    """Figures added to a scenario carry its name and are kept in order."""
    result = ScenarioResult("fleet")
    first = result.add("devices", "devices", 10.0, "naive", 5.0)
    result.add("lag", "s", 1.0, "idle lag", 0.5)
    assert [f.figure for f in result.figures] == ["devices", "lag"]
    assert first.scenario == "fleet"
    assert first.ratio == 2.0


def test_cli_names_every_scenario():
    """The command offers exactly the suite's scenarios, in suite order."""
    from benchmarks.cli import SCENARIO_NAMES
    from benchmarks.suite import SCENARIOS

    assert list(SCENARIO_NAMES) == list(SCENARIOS)


def test_cli_unreachable_database_is_one_line_and_status_2():
    """A server that refuses: one error line, the password masked, exit 2."""
    from click.testing import CliRunner

    from benchmarks.cli import bench

    # Port 1 on loopback refuses at once; nothing is started before the DB.
    result = CliRunner().invoke(
        bench, ["--db", "postgresql://u:secret@127.0.0.1:1/x", "--scenario", "queries"]
    )

    errors = [line for line in result.output.splitlines() if "error" in line]
    assert result.exit_code == 2
    assert len(errors) == 1
    assert errors[0].startswith("streamflow: error: cannot make a scratch database")
    assert "secret" not in result.output
    assert "u:***@127.0.0.1:1/x" in errors[0]
