"""Processors by name: the built-in ones and those of the entry point group.

A site adds its own processor without touching StreamFlow: a package that
declares, in its ``pyproject.toml``::

    [project.entry-points."streamflow.processors"]
    co2_alarm = "mysite.co2:Co2Alarm"

where ``Co2Alarm`` subclasses :class:`hub.processors.base.Processor`; a route
``{processor = "co2_alarm", options = {...}}`` then builds it with the
options as keyword arguments. A built-in name cannot be taken over.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final

from pydantic import ValidationError

from hub.processors.anomaly import AnomalyProcessor
from hub.processors.base import Processor
from hub.processors.errors import ProcessorConfigError, UnknownProcessor
from hub.processors.logs import LogBurstProcessor
from hub.processors.quality import QualityProcessor
from hub.processors.rollups import RollupProcessor
from hub.processors.thresholds import ThresholdProcessor
from hub.processors.trend import TrendProcessor

_LOGGER = logging.getLogger(__name__)

#: The entry point group a site registers its processors under.
ENTRY_POINT_GROUP: Final = "streamflow.processors"

BUILTIN: Final[dict[str, type[Processor]]] = {
    cls.name: cls
    for cls in (
        RollupProcessor,
        ThresholdProcessor,
        QualityProcessor,
        AnomalyProcessor,
        TrendProcessor,
        LogBurstProcessor,
    )
}


def _plugins() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN:
            _LOGGER.warning(
                "processor entry point ignored name=%s value=%s: a built-in has "
                "that name",
                ep.name,
                ep.value,
            )
            continue
        found[ep.name] = ep
    return found


def available() -> list[str]:
    """The names of every processor that can be routed, sorted."""
    return sorted(BUILTIN.keys() | _plugins().keys())


def processor_class(name: str) -> type[Processor]:
    """The class registered under ``name``.

    Raises:
        UnknownProcessor: nothing is registered under it, or its entry point
            does not load a Processor subclass.
    """
    if name in BUILTIN:
        return BUILTIN[name]
    ep = _plugins().get(name)
    if ep is None:
        raise UnknownProcessor(name, available())
    try:
        loaded = ep.load()
    except Exception as exc:  # an entry point runs foreign code
        raise UnknownProcessor(name, available()) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Processor)):
        raise UnknownProcessor(name, available())
    return loaded


def create_processor(name: str, options: dict[str, Any] | None = None) -> Processor:
    """Build the processor registered under ``name`` with its route's options.

    Raises:
        UnknownProcessor: see :func:`processor_class`.
        ProcessorConfigError: the processor refused the options.
    """
    cls = processor_class(name)
    try:
        return cls(**(options or {}))
    except (TypeError, ValueError, ValidationError) as exc:
        detail = str(exc).replace("\n", " ")
        raise ProcessorConfigError(name, detail[:300]) from exc
