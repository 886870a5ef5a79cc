"""Scenario 5, the edge agent: its rate on one core and its memory.

Two measurements:

1. Through the disk buffer: ``benchmarks/edge_footprint.py`` (the edge
   agent's own footprint tool, run as it is) feeds the agent JSON lines on
   stdin, pinned to one core, and reports the readings/s acked by a
   stand-in hub and the resident memory.
2. From the local broker, beside the simplest forwarder
   (:mod:`benchmarks.forwarder`), measured the same way: each program runs
   in its own process, pinned to CPU 0 (the broker and this process on CPU
   1); it starts once, idles ``edge_rest_s`` (resident memory at rest), and
   stops; then ``edge_messages`` sensor messages (one reading each, QoS 1)
   are queued at the broker for its persistent session, and it starts
   again: the rate is the messages forwarded (for the agent: readings acked
   by a stand-in hub) over the time from the first to the last arrival
   upstream, and the peak resident memory is read meanwhile. Queuing first
   keeps the sensors' publisher (a Python client, slower than either
   program) out of the figure.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks import _services as sv
from benchmarks._context import BenchContext
from benchmarks.errors import CheckError, ServiceError
from benchmarks.forwarder import UPSTREAM_PREFIX
from benchmarks.results import ScenarioResult
from protocol import topics
from protocol.models import BatchAck
from protocol.readings import Reading
from protocol.validate import now_us
from simulators.sinks import MqttSensorSink

NAME = "edge"
GATEWAY = "gw-bench-edge"
_MIB = 2**20
_WAIT_S = 180.0
_FOOTPRINT = Path(__file__).with_name("edge_footprint.py")
_MAX_LINE = re.compile(rb"^max: .*forwarded_per_s=(\d+).*rss_mib=([\d.]+)", re.M)


@dataclass(slots=True)
class Upstream:
    """The upstream side: acks the agent's batches, counts what arrives.

    Readings in the agent's batches and forwarded messages are counted
    apart, with the wall-clock time (epoch µs) of the first and the last.
    """

    url: str
    received: int = 0
    first_us: int = 0
    last_us: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: Client | None = None

    def start(self) -> None:
        """Connect and subscribe to the agent's batches and the forwards."""
        client = Client(CallbackAPIVersion.VERSION2, client_id="sf-bench-upstream")
        client.on_message = self._on_message
        client.connect(*sv.mqtt_address(self.url))
        client.subscribe([(topics.BATCH_FILTER, 1), (UPSTREAM_PREFIX + "#", 1)])
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        """Disconnect."""
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def reset(self) -> None:
        """Count from zero again."""
        with self._lock:
            self.received, self.first_us, self.last_us = 0, 0, 0

    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        if msg.topic.startswith(UPSTREAM_PREFIX):
            n = 1
        else:
            doc = orjson.loads(msg.payload)
            n = sum(len(s["ts"]) for s in doc["series"])
            ack = BatchAck(seqs=[(doc["seq"], doc["seq"])])
            client.publish(topics.ack(doc["gw"]), ack.model_dump_json().encode(), 1)
        now = now_us()
        with self._lock:
            self.received += n
            self.first_us = self.first_us or now
            self.last_us = now

    def wait_for(self, count: int, timeout_s: float = _WAIT_S) -> None:
        """Wait until ``count`` readings arrived.

        Raises:
            CheckError: they did not within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while self.received < count:
            if time.monotonic() > deadline:
                raise CheckError(f"{self.received:,} of {count:,} arrived upstream")
            time.sleep(0.01)


@dataclass(frozen=True, slots=True)
class _Subject:
    """One measured program: its name and command."""

    name: str
    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Measured:
    rate: float
    rest_rss: int
    load_rss: int


def run(ctx: BenchContext) -> ScenarioResult:
    """Run scenario 5; return the figures."""
    result = ScenarioResult(NAME)
    work = ctx.workdir / NAME
    work.mkdir(parents=True, exist_ok=True)
    buffered = _through_buffer(ctx, work)
    with sv.mosquitto(work) as url:
        upstream = Upstream(url)
        upstream.start()
        try:
            agent = _measure(ctx, work, url, upstream, _agent(url, work))
            fwd = _measure(ctx, work, url, upstream, _forwarder(url))
        finally:
            upstream.stop()
    base = "simplest forwarder, local MQTT in, one core"
    result.add("agent, disk buffer, JSON lines in, one core", "readings/s",
               buffered.rate, base, fwd.rate)  # fmt: skip
    result.add("agent, local MQTT in (one reading a message), one core",
               "readings/s", agent.rate, base, fwd.rate)  # fmt: skip
    result.add("agent resident memory at rest", "MiB", agent.rest_rss / _MIB,
               "simplest forwarder at rest", fwd.rest_rss / _MIB)  # fmt: skip
    result.add("agent resident memory under load, peak", "MiB",
               agent.load_rss / _MIB, "simplest forwarder under load, peak",
               fwd.load_rss / _MIB)  # fmt: skip
    result.add("agent resident memory, disk buffer run", "MiB",
               buffered.load_rss / _MIB, "simplest forwarder under load, peak",
               fwd.load_rss / _MIB)  # fmt: skip
    return result


def _through_buffer(ctx: BenchContext, work: Path) -> _Measured:
    """Run the edge agent's footprint tool's maximum-rate phase."""
    n = ctx.sizes.edge_buffer_readings
    ctx.progress(NAME, f"agent through its disk buffer: {n:,} JSON lines (footprint)")
    argv = [sys.executable, str(_FOOTPRINT), "--input", "stdin",
            "--skip", "rest", "steady", "--max-readings", str(n)]  # fmt: skip
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=_WAIT_S, env=sv.child_env(), check=True
        )
    except (subprocess.SubprocessError, OSError) as exc:
        raise ServiceError(f"edge_footprint.py failed: {exc}") from exc
    (work / "footprint.log").write_bytes(done.stdout + done.stderr)
    match = _MAX_LINE.search(done.stdout)
    if match is None:
        raise ServiceError(f"no max: line from edge_footprint.py: {done.stdout!r}")
    rate, rss_mib = float(match[1]), float(match[2])
    ctx.progress(NAME, f"  {rate:,.0f} readings/s, {rss_mib:.1f} MiB")
    return _Measured(rate, 0, int(rss_mib * _MIB))


def _agent(url: str, work: Path) -> _Subject:
    argv = [sys.executable, "-m", "edge_agent.cli", "--gateway-id", GATEWAY,
            "--hub-url", url, "--local-url", url,
            "--data-dir", str(work / "agent")]  # fmt: skip
    # As the footprint tool does: the agent's backlog pacing off, so that
    # messages queued before it started go out as fast as it can send them.
    env = sv.child_env({"STREAMFLOW_EDGE_BACKLOG_RATE": "1000000"})
    return _Subject("agent", argv, env)


def _forwarder(url: str) -> _Subject:
    argv = [sys.executable, "-m", "benchmarks.forwarder",
            "--local-url", url, "--upstream-url", url]  # fmt: skip
    return _Subject("forwarder", argv, sv.child_env())


def _measure(
    ctx: BenchContext, work: Path, url: str, upstream: Upstream, subject: _Subject
) -> _Measured:
    n = ctx.sizes.edge_messages
    sensors = MqttSensorSink(url, client_id="sf-bench-edge-sensors")
    sensors.start()
    try:
        # First run: the session and subscription exist, then idle.
        child = sv.Child(subject.name, subject.argv, work, subject.env)
        child.start()
        upstream.reset()
        _probe(sensors, upstream, child)
        time.sleep(ctx.sizes.edge_rest_s)
        rest_rss = child.process.memory_info().rss
        child.stop()

        # Queue the messages for its session, then start it on CPU 0.
        ctx.progress(NAME, f"{subject.name}: {n:,} messages queued at the broker")
        _publish(sensors, n)
        upstream.reset()
        mine = psutil.Process()
        previous = mine.cpu_affinity()
        mine.cpu_affinity([1])
        try:
            child.start()
            child.process.cpu_affinity([0])
            with sv.Sampler(child.process, 0.1) as rss:
                upstream.wait_for(n)
        finally:
            mine.cpu_affinity(previous)
            child.stop()
    finally:
        sensors.close(10)
    rate = n / max((upstream.last_us - upstream.first_us) / 1e6, 1e-6)
    ctx.progress(NAME, f"  {subject.name}: {rate:,.0f} readings/s")
    return _Measured(rate, rest_rss, rss.peak_rss)


def _probe(sensors: MqttSensorSink, upstream: Upstream, child: sv.Child) -> None:
    """Publish readings until one arrives upstream: the program is connected."""
    deadline = time.monotonic() + sv.START_TIMEOUT_S
    while upstream.received == 0:
        if time.monotonic() > deadline or not child.running:
            raise ServiceError(f"{child.name} forwards nothing:\n{child.tail()}")
        _publish(sensors, 1)
        time.sleep(0.5)


def _publish(sensors: MqttSensorSink, n: int) -> None:
    """Publish ``n`` messages of one reading each; wait for their PUBACKs."""
    base = now_us()
    for i in range(0, n, 1000):
        sensors.send(
            [
                Reading(f"edge-dev-{j % 20:02d}", "temperature", base + j, float(j))
                for j in range(i, min(n, i + 1000))
            ]
        )
    deadline = time.monotonic() + _WAIT_S
    while sensors.messages_acked < sensors.messages_published:
        if time.monotonic() > deadline:
            raise ServiceError("the broker did not acknowledge the sensor messages")
        time.sleep(0.01)
