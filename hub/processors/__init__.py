"""Processors: committed readings turned into rollups and events.

The interface is in :mod:`hub.processors.base`, the events in
:mod:`hub.processors.events`; the built-in processors are ``rollups``,
``thresholds``, ``quality`` and ``anomaly``; :class:`ProcessorHost` runs them
in the hub, routed by :class:`ProcessorsConfig`; a site adds its own through
the entry point group ``streamflow.processors`` (:mod:`hub.processors.registry`).
hub/processors/README.md has a worked example.
"""

from __future__ import annotations

from hub.processors.anomaly import PRODUCTION, AnomalyConfig, AnomalyProcessor
from hub.processors.base import (
    Context,
    Output,
    Processor,
    SeriesBatch,
    SeriesKey,
    SeriesProcessor,
)
from hub.processors.config import ProcessorRoute, ProcessorsConfig
from hub.processors.errors import (
    ProcessorConfigError,
    ProcessorError,
    UnknownProcessor,
)
from hub.processors.events import Event, EventKind, EventState, Severity
from hub.processors.host import ProcessorHost
from hub.processors.quality import QualityConfig, QualityProcessor, ValueRange
from hub.processors.registry import ENTRY_POINT_GROUP, available, create_processor
from hub.processors.rollups import RollupProcessor
from hub.processors.router import Router
from hub.processors.thresholds import (
    Selector,
    ThresholdProcessor,
    ThresholdRule,
    create_rule,
    list_rules,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PRODUCTION",
    "AnomalyConfig",
    "AnomalyProcessor",
    "Context",
    "Event",
    "EventKind",
    "EventState",
    "Output",
    "Processor",
    "ProcessorConfigError",
    "ProcessorError",
    "ProcessorHost",
    "ProcessorRoute",
    "ProcessorsConfig",
    "QualityConfig",
    "QualityProcessor",
    "RollupProcessor",
    "Router",
    "Selector",
    "SeriesBatch",
    "SeriesKey",
    "SeriesProcessor",
    "Severity",
    "ThresholdProcessor",
    "ThresholdRule",
    "UnknownProcessor",
    "ValueRange",
    "available",
    "create_processor",
    "create_rule",
    "list_rules",
]
