"""Errors of the benchmark suite.

::

    BenchError
    ├── ServiceError   a broker, hub, API or database did not start or answer
    └── CheckError     a run's result is wrong (a row count, a lost reading)
"""

from __future__ import annotations


class BenchError(Exception):
    """Base of the benchmark suite's errors."""


class ServiceError(BenchError):
    """A process or server the benchmark needs did not start or answer."""


class CheckError(BenchError):
    """A benchmark's own accounting failed: its figures would be wrong."""
