"""StreamFlow's benchmark suite (``streamflow bench``).

Every figure is measured beside a baseline from the same run (machines are
noisy; figures from another run are never compared). The scenarios live in
one module each; :func:`benchmarks.suite.run_suite` runs a selection.
Kept light on purpose: the baseline programs (:mod:`benchmarks.forwarder`)
import this package, and their memory is a figure.
"""

from benchmarks.errors import BenchError, CheckError, ServiceError
from benchmarks.results import FIGURE_KEYS, Figure, Sample, ScenarioResult, ratio_of

__all__ = [
    "FIGURE_KEYS",
    "BenchError",
    "CheckError",
    "Figure",
    "Sample",
    "ScenarioResult",
    "ServiceError",
    "ratio_of",
]
