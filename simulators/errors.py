"""Exceptions of the simulators package.

SimulatorError
 ├── DatasetError      a data file or folder that cannot be read as a dataset
 └── SinkError         readings cannot be handed on (broker, edge agent)
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Base of every error raised by the simulators package."""


class DatasetError(SimulatorError):
    """A data file or folder cannot be read as one of the known datasets."""


class SinkError(SimulatorError):
    """Readings cannot be handed on: the broker or the edge agent failed."""
