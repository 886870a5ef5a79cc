"""What a benchmark run produces: figures with their baselines, and samples.

A :class:`Figure` is one row of the table and one object of the JSON file:
the figure measured, the baseline measured in the same run, and their ratio.
Ratios are computed here and nowhere else, so that the table, the JSON file
and the tests agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypedDict

#: The keys of every object in the JSON file, in this order.
FIGURE_KEYS = (
    "scenario",
    "figure",
    "unit",
    "value",
    "baseline",
    "baseline_value",
    "ratio",
)


class FigureDict(TypedDict):
    """A figure as the JSON file holds it."""

    scenario: str
    figure: str
    unit: str
    value: float
    baseline: str
    baseline_value: float | None
    ratio: float | None


def ratio_of(value: float, baseline_value: float | None) -> float | None:
    """``value / baseline_value``, or None when the baseline is missing or 0."""
    if baseline_value is None or baseline_value == 0 or not math.isfinite(value):
        return None
    return value / baseline_value


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure beside its baseline from the same run.

    Attributes:
        scenario: the scenario's name (``ingest``, ``catchup`` ...).
        figure: what was measured, in a few words.
        unit: its unit (``readings/s``, ``ms``, ``MiB`` ...).
        value: the measured value.
        baseline: what the baseline is, in a few words.
        baseline_value: the baseline's value, measured in the same run; None
            when the scenario has no baseline for this figure.
    """

    scenario: str
    figure: str
    unit: str
    value: float
    baseline: str
    baseline_value: float | None

    @property
    def ratio(self) -> float | None:
        """``value / baseline_value`` (None without a baseline)."""
        return ratio_of(self.value, self.baseline_value)

    def as_dict(self) -> FigureDict:
        """The figure with its ratio, keyed as :data:`FIGURE_KEYS`."""
        return FigureDict(
            scenario=self.scenario,
            figure=self.figure,
            unit=self.unit,
            value=self.value,
            baseline=self.baseline,
            baseline_value=self.baseline_value,
            ratio=self.ratio,
        )


@dataclass(frozen=True, slots=True)
class Sample:
    """Throughput and latency of one time bin of a run, for the plot.

    Attributes:
        scenario: the scenario the bin belongs to.
        t_s: the bin's start, seconds since the run started.
        readings_per_s: readings committed per second in the bin.
        latency_p50_s: median latency (reading time to commit) in the bin.
        latency_p99_s: 99th percentile of the latency in the bin.
    """

    scenario: str
    t_s: float
    readings_per_s: float
    latency_p50_s: float | None
    latency_p99_s: float | None


@dataclass(slots=True)
class ScenarioResult:
    """What one scenario measured.

    Attributes:
        name: the scenario's name.
        figures: its figures, in the order they are shown.
        samples: its throughput and latency over time (may be empty).
        notes: lines shown under the table (what was left out, and why).
        seconds: how long the scenario took.
    """

    name: str
    figures: list[Figure] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(
        self,
        figure: str,
        unit: str,
        value: float,
        baseline: str,
        baseline_value: float | None,
    ) -> Figure:
        """Add a figure of this scenario and return it."""
        fig = Figure(self.name, figure, unit, value, baseline, baseline_value)
        self.figures.append(fig)
        return fig
