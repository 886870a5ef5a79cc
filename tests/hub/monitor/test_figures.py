"""The hub's figures for the monitor: rates over the interval, lag percentiles."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from hub.metrics import IngestMetrics
from hub.monitor.figures import HubFigures, StatsPublisher, percentile, stats_topic
from hub.storage.base import WriteResult
from protocol.const import FLAG_LATE
from protocol.errors import TopicError
from protocol.readings import SeriesBlock

S = 1_000_000
T0 = 1_700_000_000 * S


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def block(ts: list[int], flags: int = 0) -> SeriesBlock:
    return SeriesBlock("d1", "t", "", ts, [1.0] * len(ts), [flags] * len(ts))


def test_percentile_nearest_rank():
    """p50 and p99 of 1..100 are 50 and 99; of nothing, None."""
    values = [float(v) for v in range(100, 0, -1)]

    assert (percentile(values, 0.5), percentile(values, 0.99)) == (50.0, 99.0)
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.99) == 7.0


def test_figures_rates_over_the_interval():
    """200 new readings and 10 rejects in 10 s: 20/s and 1/s."""
    metrics, clock = IngestMetrics(), Clock()
    figures = HubFigures(metrics, "hub-1", 256, clock)
    result = WriteResult(new=[block([T0 + i for i in range(200)])])
    metrics.record_write(0.02, result, 200, Counter())
    metrics.record_write(0.04, WriteResult(), 0, Counter())
    metrics.count_rejects(Counter({"nan": 6, "bad_unit": 4}))
    clock.now += 10 * S

    body = figures.figures()

    assert (body["v"], body["hub"], body["ts"]) == (1, "hub-1", T0 + 10 * S)
    assert (body["interval_s"], body["readings_per_s"], body["rejects_per_s"]) == (
        10.0,
        20.0,
        1.0,
    )
    assert body["write_latency_s"] == pytest.approx(0.03)
    assert (body["queue_depth"], body["queue_max"], body["queue_fill"]) == (0, 256, 0)
    assert body["counters"]["readings_new"] == 200
    # The next interval starts from here: nothing new, zero rates, no writes.
    clock.now += 5 * S
    again = figures.figures()
    assert (again["readings_per_s"], again["write_latency_s"]) == (0.0, None)


def test_figures_lag_of_live_readings_only():
    """Lags 1..4 s of live readings count; a late backlog reading does not."""
    metrics, clock = IngestMetrics(), Clock()
    figures = HubFigures(metrics, "hub-1", 256, clock)
    clock.now = T0 + 10 * S
    live = block([T0 + 6 * S, T0 + 7 * S, T0 + 8 * S, T0 + 9 * S])
    late = block([T0 - 3600 * S], FLAG_LATE)

    figures.on_committed(WriteResult(new=[live, late]))
    body = figures.figures()

    assert (body["lag_p50_s"], body["lag_p99_s"], body["lag_samples"]) == (
        2.0,
        4.0,
        4,
    )


def test_figures_lag_forgets_old_commits():
    """Lags of commits more than a minute old are out of the percentiles."""
    metrics, clock = IngestMetrics(), Clock()
    figures = HubFigures(metrics, "hub-1", 256, clock)
    figures.on_committed(WriteResult(new=[block([T0 - 100 * S])]))
    clock.now += 61 * S

    body = figures.figures()

    assert (body["lag_p99_s"], body["lag_samples"]) == (None, 0)


def test_stats_publisher_publishes_json_qos0():
    """One publish: the figures as JSON on the stats topic, QoS 0."""
    sent: list[tuple[str, bytes, int]] = []
    figures = HubFigures(IngestMetrics(), "hub-1", 8, Clock())
    publisher = StatsPublisher(
        figures, lambda t, p, q: sent.append((t, p, q)), stats_topic("hub-1"), 5
    )

    body = publisher.publish_once()

    ((topic, payload, qos),) = sent
    assert (topic, qos) == ("sf/v1/hub/hub-1/stats", 0)
    assert orjson.loads(payload) == body


def test_stats_topic_bad_id():
    """A client id with a wildcard never becomes a topic."""
    with pytest.raises(TopicError):
        stats_topic("hub/#")
