"""Replay --via mqtt: the exact readings arrive as plain JSON sensor messages."""

from __future__ import annotations

import gzip

import orjson
import pytest

from simulators.datasets import local_to_us, zone
from simulators.replay import ReplayOptions, replay_path
from simulators.sinks import MqttSensorSink
from simulators.timeline import TimestampMode
from tests.services import wait_for

pytestmark = [
    pytest.mark.broker,
]

METRICS = ("temperature", "humidity", "light", "voltage")


def _expected(path) -> list[tuple[str, dict[str, float]]]:
    """The messages, made straight from the file's lines (not the loader)."""
    from datetime import datetime

    tz = zone("America/Los_Angeles")
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ")
            ts = local_to_us(datetime.fromisoformat(f"{parts[0]} {parts[1]}"), tz)
            doc: dict[str, float] = {"ts": ts}
            doc.update(
                {m: float(v) for m, v in zip(METRICS, parts[4:], strict=True) if v}
            )
            out.append((f"sf/v1/dev/mote-{parts[3]}/up/telemetry", doc))
    return out


def test_replay_via_mqtt_publishes_exact_readings(broker, subscribe, intel_head):
    """Every line of the data arrives once, as its device's JSON message."""
    sub = subscribe(broker, "sf/v1/dev/+/up/telemetry")
    sink = MqttSensorSink(broker.url, client_id="t-replay-mqtt")
    opts = ReplayOptions(speedup=0, timestamps=TimestampMode.ORIGINAL)
    summary = replay_path(intel_head, sink, "intel", opts)
    expected = _expected(intel_head)
    assert len(expected) == 300
    wait_for(lambda: sub.count() >= 300, timeout=20, what="300 messages")
    got = [(topic, orjson.loads(payload)) for topic, payload in sub.messages]
    key = lambda m: (m[0], m[1]["ts"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert (summary.sent, sink.messages_published, sink.messages_acked) == (
        1184,
        300,
        300,
    )


def test_replay_via_mqtt_keeps_order_per_device(
    mosquitto_broker, subscribe, intel_head
):
    """One client at QoS 1 delivers each device's messages in time order."""
    sub = subscribe(mosquitto_broker, "sf/v1/dev/+/up/telemetry")
    sink = MqttSensorSink(mosquitto_broker.url, client_id="t-replay-order")
    replay_path(intel_head, sink, "intel", ReplayOptions(speedup=0, start_us=None))
    wait_for(lambda: sub.count() >= 300, timeout=20, what="300 messages")
    per_device: dict[str, list[int]] = {}
    for topic, payload in sub.messages:
        per_device.setdefault(topic, []).append(orjson.loads(payload)["ts"])
    assert len(per_device) == 52
    assert all(ts == sorted(ts) for ts in per_device.values())
