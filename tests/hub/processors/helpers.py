"""Helpers of the processor tests: batches of synthetic series, a small store."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hub.processors.base import Context, SeriesBatch, SeriesKey
from hub.storage.base import DeviceInfo
from protocol.readings import Reading

#: 2026-11-30T12:00:00Z in epoch µs.
T0 = 1_796_040_000_000_000
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def batch(
    ts: Sequence[int],
    values: Sequence[float],
    device: str = "dev-1",
    metric: str = "temperature",
    past: Sequence[bool] | None = None,
    unit: str = "",
) -> SeriesBatch:
    """A batch of one series; ``past`` marks late readings (none by default)."""
    n = len(ts)
    return SeriesBatch(
        SeriesKey(device, metric),
        unit,
        np.asarray(ts, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
        np.zeros(n, dtype=np.int64),
        np.asarray(past if past is not None else [False] * n, dtype=np.bool_),
    )


def ctx(
    now_us: int = T0,
    devices: dict[str, DeviceInfo] | None = None,
    store: object | None = None,
) -> Context:
    """A context at ``now_us`` with a registry of ``devices`` and a store."""
    known = devices or {}
    return Context(now_us=now_us, store=store, device=known.get)


class HistoryStore:
    """The part of a store a warm-up reads: readings of one series, by time."""

    def __init__(self, readings: list[Reading]) -> None:
        self._readings = readings
        self.calls: list[tuple[str, str | None, int | None, int | None]] = []

    def readings(self, device, metric=None, from_us=None, to_us=None, limit=10_000):
        self.calls.append((device, metric, from_us, to_us))
        return [
            r
            for r in self._readings
            if r.device == device
            and (metric is None or r.metric == metric)
            and (from_us is None or r.ts_us >= from_us)
            and (to_us is None or r.ts_us < to_us)
        ][:limit]

    def get_device(self, device_id):
        return None
