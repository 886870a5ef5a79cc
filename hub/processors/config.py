"""The processors' settings: which processor reads which series, and limits.

``HubSettings.processors`` holds a :class:`ProcessorsConfig`; in TOML::

    [processors]
    late_horizon_s = 900

    [[processors.routes]]
    processor = "quality"
    metrics = ["temperature", "humidity"]
    options = { spike_factor = 5.0 }

A series goes to every route that matches its reading kind, metric and
device (glob patterns), each route being one processor instance with its
own options and state.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.processors.base import READING_KIND

#: The reading kind of device log series (hub.processors.logs.LOG_KIND).
LOG_KIND = "log"


class ProcessorRoute(BaseModel):
    """One processor and the series it reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    processor: str = Field(
        pattern=r"^[a-z0-9_]{1,64}$",
        description="registry name: rollups, thresholds, quality, anomaly, trend, "
        "logs, or an entry point of the group streamflow.processors",
    )
    kinds: list[str] = Field(
        default_factory=lambda: [READING_KIND],
        description="reading kinds: reading, or log (device log records)",
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["*"], description="metric glob patterns"
    )
    devices: list[str] = Field(
        default_factory=lambda: ["*"], description="device id glob patterns"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the processor"
    )

    def matches(self, kind: str, device: str, metric: str) -> bool:
        """Tell whether this route reads the series."""
        return (
            kind in self.kinds
            and any(fnmatch.fnmatchcase(metric, p) for p in self.metrics)
            and any(fnmatch.fnmatchcase(device, p) for p in self.devices)
        )


def _default_routes() -> list[ProcessorRoute]:
    # Trend is off by default: its rates are a site's choice (a route turns it
    # on). The log processor reads only the log series, which carry no
    # readings, so it costs nothing where no device sends logs.
    routes = [
        ProcessorRoute(processor=name)
        for name in ("rollups", "thresholds", "quality", "anomaly")
    ]
    routes.append(ProcessorRoute(processor="logs", kinds=[LOG_KIND]))
    return routes


class ProcessorsConfig(BaseModel):
    """Routes and limits of the processors (``HubSettings.processors``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: list[ProcessorRoute] = Field(
        default_factory=_default_routes,
        description="processor and series of each route; by default rollups, "
        "thresholds, quality and anomaly on every series, and logs on the "
        "device log series",
    )
    late_horizon_s: float = Field(
        default=900.0,
        ge=0,
        description="readings older than this when processed are late: their "
        "events are marked past (0: only the edge's late flag counts)",
    )
    queue_max_batches: int = Field(
        default=256,
        ge=1,
        description="committed writes waiting for the processors; when full, "
        "the writer waits (ingest slows down) for up to queue_wait_s",
    )
    queue_max_readings: int = Field(
        default=200_000,
        ge=1,
        description="readings waiting for the processors; when more are queued, "
        "the writer waits as for a full queue_max_batches (a single write larger "
        "than this still goes when the queue is empty)",
    )
    queue_wait_s: float = Field(
        default=30.0,
        gt=0,
        description="how long the writer waits for room before a write is "
        "left unprocessed (counted, logged at ERROR)",
    )
    rollups_every_s: float = Field(
        default=2.0,
        ge=0,
        allow_inf_nan=False,
        description="how often the minutes the processors touched have their "
        "rollups recomputed (each at most once per interval; 0: after every "
        "write). Each refresh reads the whole minute back, so with many "
        "readings a minute per series a refresh per write costs more than "
        "every processor together",
    )
    refresh_s: float = Field(
        default=5.0, gt=0, description="how often rules are reloaded from the store"
    )
    device_cache_s: float = Field(
        default=60.0, ge=0, description="how long device tags are cached"
    )
