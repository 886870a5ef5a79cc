"""StreamFlow simulators: replay of real datasets, synthetic fleets.

Readings go through real edge agents in this process
(:class:`~simulators.gateways.EdgeGatewaySink`) or to a broker as plain JSON
sensors (:class:`~simulators.sinks.MqttSensorSink`). The CLI commands
(``streamflow replay``, ``streamflow simulate``) are in :mod:`simulators.cli`.
"""

from simulators.datasets import (
    SHIPPED_DATA,
    DatasetFormat,
    LoadReport,
    dataset_files,
    read_file,
    read_intel,
    read_nab,
    read_uci,
)
from simulators.errors import DatasetError, SimulatorError, SinkError
from simulators.fleet import FaultEvent, FaultRates, FleetSpec, simulate
from simulators.gateways import EdgeGatewaySink, gateway_ids
from simulators.replay import (
    ReplayOptions,
    ReplaySummary,
    replay,
    replay_path,
    run_demo,
    segments_for,
)
from simulators.sinks import MqttSensorSink, Sink
from simulators.timeline import Restamper, TimestampMode

__all__ = [
    "SHIPPED_DATA",
    "DatasetError",
    "DatasetFormat",
    "EdgeGatewaySink",
    "FaultEvent",
    "FaultRates",
    "FleetSpec",
    "LoadReport",
    "MqttSensorSink",
    "ReplayOptions",
    "ReplaySummary",
    "Restamper",
    "SimulatorError",
    "Sink",
    "SinkError",
    "TimestampMode",
    "dataset_files",
    "gateway_ids",
    "read_file",
    "read_intel",
    "read_nab",
    "read_uci",
    "replay",
    "replay_path",
    "run_demo",
    "segments_for",
    "simulate",
]
