"""Footprint of the edge agent: memory at rest, CPU at 1,000 readings/s, maximum rate.

The agent runs as ``streamflow-edge`` in its own process (so that psutil sees
only it), against a real Mosquitto on loopback, with a stand-in hub in this
process that acks every batch (a paho subscriber answering with BatchAck).

    .venv/bin/python benchmarks/edge_footprint.py [--input stdin|mqtt]
        [--steady-s 20] [--max-readings 300000] [--synchronous full|normal]

Phases:

1. rest: the agent connected and idle; resident memory and CPU over 10 s.
2. steady: 1,000 readings/s for ``--steady-s`` seconds; CPU of the agent as a
   share of one core, resident memory, and the latency from a reading's
   timestamp (its hand-over) to the hub's ack of its batch.
3. max: the agent pinned to CPU 0 (broker and this process on CPU 1), fed as
   fast as it takes readings; readings/s buffered (input consumed) and
   forwarded (acked by the hub).

``--input stdin`` feeds JSON lines on the agent's stdin; ``--input mqtt``
publishes one reading per QoS 1 message on the local broker (the same
Mosquitto), as sensors do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from protocol import topics
from protocol.models import BatchAck

GW = "gw-bench"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        "max_queued_messages 100000\nmax_inflight_messages 100\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


class Hub:
    """Acks every batch and records readings acked and their latency."""

    def __init__(self, port: int) -> None:
        self.acked = 0
        self.latencies: list[float] = []
        self.record = False
        self.last_ack = 0.0
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-hub")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topics.BATCH_FILTER, qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        doc = orjson.loads(message.payload)
        now_us = time.time() * 1e6
        n = sum(len(s["ts"]) for s in doc["series"])
        ack = BatchAck(seqs=[(doc["seq"], doc["seq"])]).model_dump_json().encode()
        client.publish(topics.ack(doc["gw"]), ack, qos=1)
        with self._lock:
            self.acked += n
            self.last_ack = time.monotonic()
            if self.record:
                for s in doc["series"]:
                    self.latencies.extend((now_us - t) / 1e6 for t in s["ts"])

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def line(i: int) -> bytes:
    ts = int(time.time() * 1e6)
    return b'{"dev":"dev-%d","metric":"temp","ts":%d,"value":%d}\n' % (i % 20, ts, i)


class Feeder:
    """Hands readings to the agent: JSON lines on stdin, or MQTT messages."""

    def __init__(self, mode: str, proc: subprocess.Popen[bytes], port: int) -> None:
        self.mode = mode
        self.proc = proc
        self.sent = 0
        if mode == "mqtt":
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sensor")
            self.client.max_inflight_messages_set(1000)
            self.client.connect("127.0.0.1", port)
            self.client.loop_start()

    def send(self, n: int, wait: bool = False) -> None:
        if self.mode == "stdin":
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"".join(line(self.sent + i) for i in range(n)))
            self.proc.stdin.flush()
        else:
            info = None
            for i in range(n):
                ts = int(time.time() * 1e6)
                payload = b'{"temp":%d,"ts":%d}' % (self.sent + i, ts)
                info = self.client.publish(
                    f"sf/v1/dev/dev-{(self.sent + i) % 20}/up/telemetry", payload, qos=1
                )
            # paho keys unacknowledged messages by message id: more than 65535
            # outstanding would overwrite each other, so wait for each chunk.
            if wait and info is not None:
                info.wait_for_publish(30)
        self.sent += n


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def phase_rest(agent: psutil.Process) -> None:
    time.sleep(3)
    c0, t0 = cpu_s(agent), time.monotonic()
    time.sleep(10)
    cpu = (cpu_s(agent) - c0) / (time.monotonic() - t0)
    rss = agent.memory_info().rss / 2**20
    print(f"rest: rss_mib={rss:.1f} cpu_pct_of_core={cpu * 100:.2f}")


def phase_steady(agent: psutil.Process, feeder: Feeder, hub: Hub, seconds: float):
    hub.record = True
    start_acked = hub.acked
    times0 = agent.cpu_times()
    c0, t0 = cpu_s(agent), time.monotonic()
    tick = 0.01
    per_tick = 10  # 1,000 readings/s
    next_at = t0
    while time.monotonic() - t0 < seconds:
        feeder.send(per_tick)
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    wall = time.monotonic() - t0
    cpu = (cpu_s(agent) - c0) / wall
    times1 = agent.cpu_times()
    user = (times1.user - times0.user) / wall
    system = (times1.system - times0.system) / wall
    deadline = time.monotonic() + 10
    while hub.acked - start_acked < feeder.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    hub.record = False
    lat = sorted(hub.latencies)
    p50 = statistics.median(lat)
    p99 = lat[int(len(lat) * 0.99)]
    rss = agent.memory_info().rss / 2**20
    rate = (hub.acked - start_acked) / wall
    print(
        f"steady: readings_per_s={rate:.0f} cpu_pct_of_core={cpu * 100:.1f}"
        f" (user={user * 100:.1f} system={system * 100:.1f})"
        f" rss_mib={rss:.1f} latency_p50_ms={p50 * 1000:.0f}"
        f" latency_p99_ms={p99 * 1000:.0f}"
    )


def phase_max(agent: psutil.Process, feeder: Feeder, hub: Hub, total: int) -> None:
    agent.cpu_affinity([0])
    psutil.Process().cpu_affinity([1])
    start_acked = hub.acked
    c0, t0 = cpu_s(agent), time.monotonic()
    chunk = 1000
    for _ in range(total // chunk):
        feeder.send(chunk, wait=True)  # a pipe write blocks while the agent is behind
    fed = time.monotonic() - t0
    deadline = time.monotonic() + 120
    while hub.acked - start_acked < total and time.monotonic() < deadline:
        time.sleep(0.02)
    done = hub.last_ack - t0
    cpu = (cpu_s(agent) - c0) / max(done, 1e-9)
    print(
        f"max: readings={hub.acked - start_acked} fed_per_s={total / fed:.0f}"
        f" forwarded_per_s={(hub.acked - start_acked) / done:.0f}"
        f" agent_cpu_pct_of_core={cpu * 100:.0f}"
        f" rss_mib={agent.memory_info().rss / 2**20:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", choices=["stdin", "mqtt"], default="stdin")
    parser.add_argument("--steady-s", type=float, default=20.0)
    parser.add_argument("--max-readings", type=int, default=300_000)
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    parser.add_argument("--skip", nargs="*", default=[], help="phases to skip")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edge-footprint-"))
    broker, port = start_mosquitto(work)
    hub = Hub(port)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")},
        "STREAMFLOW_EDGE_BUFFER_SYNCHRONOUS": args.synchronous,
        "STREAMFLOW_EDGE_BACKLOG_RATE": "1000000",
    }
    cmd = [
        sys.executable,
        "-m",
        "edge_agent.cli",
        "--gateway-id",
        GW,
        "--hub-url",
        f"mqtt://127.0.0.1:{port}",
        "--data-dir",
        str(work / "edge"),
    ]
    if args.input == "stdin":
        cmd += ["--input", "-"]
    else:
        cmd += ["--local-url", f"mqtt://127.0.0.1:{port}"]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stderr=(work / "agent.log").open("wb"), env=env
    )
    agent = psutil.Process(proc.pid)
    feeder = Feeder(args.input, proc, port)
    print(f"input={args.input} synchronous={args.synchronous} work={work}")
    try:
        time.sleep(2)
        if "rest" not in args.skip:
            phase_rest(agent)
        if "steady" not in args.skip:
            phase_steady(agent, feeder, hub, args.steady_s)
        if "max" not in args.skip:
            phase_max(agent, feeder, hub, args.max_readings)
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.terminate()
        proc.wait(30)
        hub.stop()
        broker.terminate()
        broker.wait(10)
        if not os.environ.get("EDGE_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
