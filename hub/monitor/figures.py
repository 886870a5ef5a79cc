"""The hub's own figures, published for the monitor on ``sf/v1/hub/{id}/stats``.

The monitor is its own process and may run on another machine than the hub:
it sees the hub only through the broker and the store, so the hub publishes
what it knows of itself (DESIGN.md: the services talk only through those
two). The status file the API reads has the same counters but lies on the
hub's disk. This topic is an addition to the protocol's table; it is QoS 0
and not retained, because a figure is worth something only while it is
fresh: a lost one is replaced a few seconds later, and a missing stream is
itself the sign the monitor looks for (``stats_age_s``).

Figures over the last interval: ``readings_per_s`` (new readings stored),
``rejects_per_s``, ``shed_per_s``, ``store_errors_per_s``,
``write_latency_s`` (mean store transaction time), ``lag_p50_s`` and
``lag_p99_s`` (reading time to commit, of live readings: a backlog an edge
replays after an outage is late by design and is left out), and now:
``queue_depth``, ``queue_fill`` (depth over the queue's size).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import orjson

from hub.metrics import IngestMetrics, MetricsSnapshot
from hub.storage.base import WriteResult
from protocol import topics
from protocol.const import FLAG_LATE, TOPIC_ROOT
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

#: Version of the stats payload.
STATS_VERSION: Final = 1
#: The monitor's subscription to every hub's figures.
STATS_FILTER: Final = f"{TOPIC_ROOT}/hub/+/stats"
#: Lag samples kept (each commit gives a few per series).
_LAG_SAMPLES: Final = 4096
#: Lag samples taken from one series block of a commit, at most.
_SAMPLES_PER_BLOCK: Final = 16
#: Lags older than this are not in the percentiles.
_LAG_WINDOW_S: Final = 60.0


def stats_topic(client_id: str) -> str:
    """``sf/v1/hub/{client_id}/stats``.

    Raises:
        TopicError: the client id is not a valid id.
    """
    return f"{TOPIC_ROOT}/hub/{topics.check_id(client_id, 'hub client id')}/stats"


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    # The smallest value with at least q of them at or below it (the epsilon
    # keeps 0.99 * 100 at rank 99 despite binary floating point).
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) - 1e-9)))
    return ordered[rank - 1]


class HubFigures:
    """Turns the ingest counters into rates and the commits into lag percentiles.

    Args:
        metrics: the pipeline's counters.
        client_id: the hub's id, named in the payload.
        queue_max: the size of the pipeline's queue.
        clock: wall time, epoch µs.
    """

    def __init__(
        self,
        metrics: IngestMetrics,
        client_id: str,
        queue_max: int,
        clock: Callable[[], int] = now_us,
    ) -> None:
        """Start counting from the counters as they are now."""
        self._metrics = metrics
        self._client_id = client_id
        self._queue_max = queue_max
        self._clock = clock
        self._lock = threading.Lock()
        self._lags: deque[tuple[int, float]] = deque(maxlen=_LAG_SAMPLES)
        self._prev = metrics.snapshot()
        self._prev_us = clock()

    def on_committed(self, result: WriteResult) -> None:
        """A commit hook: sample the lag of its new live readings."""
        at = self._clock()
        samples: list[tuple[int, float]] = []
        for block in result.new:
            step = max(1, len(block.ts_us) // _SAMPLES_PER_BLOCK)
            for i in range(0, len(block.ts_us), step):
                if block.flags and block.flags[i] & FLAG_LATE:
                    continue
                samples.append((at, (at - block.ts_us[i]) / 1e6))
        with self._lock:
            self._lags.extend(samples)

    def figures(self) -> dict[str, Any]:
        """The figures since the last call, as the stats payload holds them."""
        now = self._clock()
        snap = self._metrics.snapshot()
        with self._lock:
            lags = [
                lag for at, lag in self._lags if at >= now - int(_LAG_WINDOW_S * 1e6)
            ]
        prev, self._prev = self._prev, snap
        dt = max(1e-6, (now - self._prev_us) / 1e6)
        self._prev_us = now

        def rate(now_n: int, prev_n: int) -> float:
            return round(max(0, now_n - prev_n) / dt, 3)

        depth = snap["queue_depth"]
        return {
            "v": STATS_VERSION,
            "hub": self._client_id,
            "ts": now,
            "interval_s": round(dt, 3),
            "readings_per_s": rate(snap["readings_new"], prev["readings_new"]),
            "rejects_per_s": rate(
                sum(snap["rejects"].values()), sum(prev["rejects"].values())
            ),
            "shed_per_s": rate(sum(snap["shed"].values()), sum(prev["shed"].values())),
            "store_errors_per_s": rate(snap["store_errors"], prev["store_errors"]),
            "lag_p50_s": _round(percentile(lags, 0.5)),
            "lag_p99_s": _round(percentile(lags, 0.99)),
            "lag_samples": len(lags),
            "write_latency_s": _write_latency(snap, prev),
            "queue_depth": depth,
            "queue_max": self._queue_max,
            "queue_fill": round(depth / self._queue_max, 4) if self._queue_max else 0.0,
            "counters": {
                "messages": snap["messages"],
                "readings_new": snap["readings_new"],
                "duplicates": snap["duplicates"],
                "rejects": sum(snap["rejects"].values()),
                "dead_letters": snap["dead_letters"],
                "store_errors": snap["store_errors"],
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _write_latency(snap: MetricsSnapshot, prev: MetricsSnapshot) -> float | None:
    """The mean store write time over the interval (from the running mean)."""
    now_w, prev_w = snap["store_write_seconds"], prev["store_write_seconds"]
    writes = now_w["count"] - prev_w["count"]
    if writes <= 0:
        return None
    total = now_w["avg"] * now_w["count"] - prev_w["avg"] * prev_w["count"]
    return round(max(0.0, total / writes), 6)


class StatsPublisher:
    """Publishes a hub's figures every ``interval_s`` from a thread of its own.

    Args:
        figures: where the figures come from.
        publish: ``(topic, payload, qos)``, the hub's MQTT publish.
        topic: the stats topic.
        interval_s: seconds between two publishes.
    """

    def __init__(
        self,
        figures: HubFigures,
        publish: Callable[[str, bytes, int], object],
        topic: str,
        interval_s: float,
    ) -> None:
        """Build it; :meth:`start` starts the thread."""
        self._figures = figures
        self._publish = publish
        self._topic = topic
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish_once(self) -> dict[str, Any]:
        """Publish the figures now (QoS 0); return them."""
        body = self._figures.figures()
        self._publish(self._topic, orjson.dumps(body), 0)
        _LOGGER.debug("stats published topic=%s", self._topic)
        return body

    def start(self) -> None:
        """Publish every ``interval_s`` until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(self._interval_s):
                try:
                    self.publish_once()
                except Exception:  # the figures must never stop the hub
                    _LOGGER.exception("stats not published topic=%s", self._topic)

        self._thread = threading.Thread(
            target=loop, name="streamflow-stats", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """End the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
