"""Scenario 1, ingest: edge agents → Mosquitto → hub → TimescaleDB, acked.

Simulated gateways (real edge agents, in ``load_processes`` processes, see
:mod:`benchmarks._gateways`) send flat out; the run ends when every reading
is committed by the hub (its own process, :mod:`benchmarks._hubproc`) and
acked back to its gateway, and the stored row count is checked. Baselines,
in the same run and on the same database:

- the limit: the very same rows, exported, then written back with binary
  COPY in 10k-row transactions by one process that does nothing else;
- the naive pipeline: one paho subscriber INSERTing each message (one
  reading each) as it comes, autocommit (:mod:`benchmarks.naive`).

Also measured: the hub alone, fed pre-built batch envelopes by one paho
publisher (no edge agents), to tell the hub's share from the load's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks import _services as sv
from benchmarks._commitlog import CommitLog, read_logs, samples
from benchmarks._context import BenchContext
from benchmarks._copy import copy_rows, export_rows, truncate_readings
from benchmarks.errors import CheckError, ServiceError
from benchmarks.results import ScenarioResult
from protocol import topics
from protocol.readings import Reading
from protocol.validate import now_us
from simulators.sinks import MqttSensorSink

NAME = "ingest"
_MIB = 2**20
#: Readings in a pre-built batch (10 series of 100), as the edge agent sends.
_PREBUILT_SERIES = 10
_PREBUILT_PER_SERIES = 100
_WAIT_S = 300.0


def run(ctx: BenchContext) -> ScenarioResult:
    """Run scenario 1 and its baselines; return the figures."""
    result = ScenarioResult(NAME)
    db = ctx.database()
    work = ctx.workdir / NAME
    work.mkdir(parents=True, exist_ok=True)

    sv.reset_database(db)
    with sv.mosquitto(work) as url:
        e2e = _end_to_end(ctx, work, url, db)
    result.samples.extend(samples(e2e.log, NAME, ctx.started_us))
    rows = export_rows(db)
    truncate_readings(db)
    ctx.progress(NAME, f"limit: COPY of the same {len(rows):,} rows, one process")
    limit = len(rows) / copy_rows(db, rows)
    _check_count(db, len(rows), "COPY baseline")

    sv.reset_database(db)
    with sv.mosquitto(work, "mosquitto-alone") as url:
        alone = _hub_alone(ctx, work, url, db)
    sv.reset_database(db)
    with sv.mosquitto(work, "mosquitto-naive") as url:
        naive = measure_naive(ctx, work, url, db)

    copy_name = "binary COPY, one process, same rows and schema"
    naive_name = "naive: paho subscriber, one INSERT per message"
    result.add(
        "end to end, edge agents to commit and ack",
        "readings/s",
        e2e.rate,
        copy_name,
        limit,
    )
    result.add(
        "end to end, edge agents to commit and ack",
        "readings/s",
        e2e.rate,
        naive_name,
        naive.rate,
    )
    result.add("hub alone, pre-built batches", "readings/s", alone, copy_name, limit)
    result.add(
        "hub CPU per 100k readings",
        "CPU s",
        e2e.cpu_per_100k,
        "naive subscriber CPU per 100k readings",
        naive.cpu_per_100k,
    )
    result.add(
        "hub resident memory, peak",
        "MiB",
        e2e.peak_rss / _MIB,
        "naive subscriber, peak",
        naive.peak_rss / _MIB,
    )
    lat = e2e.log.latencies_s()
    result.notes.append(
        f"ingest: {e2e.readings:,} readings via {e2e.gateways} gateways in "
        f"{e2e.seconds:.1f} s, row count checked; reading-to-commit latency at "
        f"full load p50 {_pct(lat, 50):.3f} s, p99 {_pct(lat, 99):.3f} s"
    )
    return result


class _EndToEnd:
    """What the end-to-end run measured."""

    def __init__(
        self,
        readings: int,
        gateways: int,
        seconds: float,
        cpu_s: float,
        peak_rss: int,
        log_paths: list[Path],
    ) -> None:
        self.readings = readings
        self.gateways = gateways
        self.seconds = seconds
        self.rate = readings / seconds
        self.cpu_per_100k = cpu_s / readings * 100_000
        self.peak_rss = peak_rss
        self.log = read_logs(log_paths)


def _end_to_end(ctx: BenchContext, work: Path, url: str, db: str) -> _EndToEnd:
    s = ctx.sizes
    total = s.ingest_readings
    gateways = s.load_processes * s.gateways_per_process
    with sv.hub(work, url, db) as hub:
        loads = _start_loads(ctx, work, url)
        try:
            proc = hub.process
            cpu0 = sv.cpu_seconds(proc)
            ctx.progress(NAME, f"end to end: {total:,} readings, {gateways} gateways")
            with sv.Sampler(proc) as rss:
                for load, _ in loads:
                    _send_line(load, b"go\n")
                docs = _wait_loads(ctx, loads, hub.commit_logs()[-1], total)
            cpu = sv.cpu_seconds(proc) - cpu0
        finally:
            for load, _ in loads:
                load.stop()
    started = min(d["started_us"] for d in docs)
    acked = max(d["acked_us"] for d in docs)
    sent = sum(d["readings"] for d in docs)
    _check_count(db, sent, "end to end")
    seconds = (acked - started) / 1e6
    ctx.progress(NAME, f"end to end: {sent / seconds:,.0f} readings/s")
    return _EndToEnd(sent, gateways, seconds, cpu, rss.peak_rss, hub.commit_logs())


def _start_loads(
    ctx: BenchContext, work: Path, url: str
) -> list[tuple[sv.Child, sv.LineReader]]:
    s = ctx.sizes
    loads: list[tuple[sv.Child, sv.LineReader]] = []
    share = s.ingest_readings // s.load_processes
    for k in range(s.load_processes):
        readings = share + (s.ingest_readings % s.load_processes if k == 0 else 0)
        argv = [
            sys.executable, "-m", "benchmarks._gateways",
            "--hub-url", url,
            "--data-dir", str(work / "edge"),
            "--gateways", str(s.gateways_per_process),
            "--first-gateway", str(k * s.gateways_per_process),
            "--readings", str(readings),
        ]  # fmt: skip
        load = sv.Child(f"load-{k}", argv, work)
        load.start(stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        lines = sv.LineReader(load)
        loads.append((load, lines))
        lines.expect(b"ready")
    return loads


def _send_line(load: sv.Child, line: bytes) -> None:
    stdin = load.popen.stdin
    if stdin is None:
        raise ServiceError(f"{load.name} has no stdin")
    stdin.write(line)
    stdin.flush()


def _wait_loads(
    ctx: BenchContext,
    loads: list[tuple[sv.Child, sv.LineReader]],
    log: Path,
    total: int,
) -> list[dict[str, int]]:
    """Wait for every load process's JSON line, printing progress meanwhile."""
    deadline = time.monotonic() + _WAIT_S
    next_line = time.monotonic() + 2.0
    while any(load.running for load, _ in loads):
        if time.monotonic() > deadline:
            raise ServiceError(f"load processes still running after {_WAIT_S:g} s")
        if time.monotonic() >= next_line:
            next_line += 2.0
            done = CommitLog.read(log).readings
            ctx.progress(NAME, f"  committed {done:,} of {total:,}")
        time.sleep(0.1)
    docs = []
    for load, lines in loads:
        if load.popen.returncode != 0:
            raise ServiceError(f"{load.name} failed:\n{load.tail()}")
        docs.append(orjson.loads(lines.next_line(5.0)))
    return docs


def _check_count(db: str, expected: int, what: str) -> None:
    stored = sv.count_readings(db)
    if stored != expected:
        raise CheckError(f"{what}: {stored:,} readings stored, expected {expected:,}")


def _prebuilt_payloads(total: int) -> list[tuple[str, bytes]]:
    """Batch envelopes of 1,000 readings, 20 gateways, stamped up to now."""
    per_batch = _PREBUILT_SERIES * _PREBUILT_PER_SERIES
    count = max(1, total // per_batch)
    gateways = 20
    end_us = now_us()
    out: list[tuple[str, bytes]] = []
    for k in range(count):
        gw, seq = f"bench-pre-{k % gateways:02d}", k // gateways
        base = end_us - (count - k) * _PREBUILT_PER_SERIES
        ts = list(range(base, base + _PREBUILT_PER_SERIES))
        series = [
            {
                "dev": f"{gw}-dev-{d:02d}",
                "metric": "temperature",
                "unit": "C",
                "ts": ts,
                "values": [20.0 + 0.01 * i for i in range(_PREBUILT_PER_SERIES)],
            }
            for d in range(_PREBUILT_SERIES)
        ]
        doc = {"v": 1, "gw": gw, "seq": seq, "sent": end_us, "series": series}
        out.append((topics.batch(gw), orjson.dumps(doc)))
    return out


def _hub_alone(ctx: BenchContext, work: Path, url: str, db: str) -> float:
    payloads = _prebuilt_payloads(ctx.sizes.hub_alone_readings)
    total = len(payloads) * _PREBUILT_SERIES * _PREBUILT_PER_SERIES
    ctx.progress(NAME, f"hub alone: {total:,} readings in pre-built batches")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sf-bench-prebuilt")
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    address = sv.mqtt_address(url)
    with sv.hub(work, url, db, name="hub-alone") as hub:
        client.connect(*address)
        client.loop_start()
        started = now_us()
        for topic, payload in payloads:
            client.publish(topic, payload, qos=1)
        done = _wait_committed(hub.commit_logs()[-1], total)
        client.disconnect()
        client.loop_stop()
    _check_count(db, total, "hub alone")
    rate = total / ((done - started) / 1e6)
    ctx.progress(NAME, f"hub alone: {rate:,.0f} readings/s")
    return rate


def _wait_committed(log: Path, total: int, timeout_s: float = _WAIT_S) -> int:
    """Wait until the commit log holds ``total`` readings; the last commit's µs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = CommitLog.read(log)
        if got.readings >= total:
            return int(got.committed_us.max())
        time.sleep(0.05)
    raise CheckError(f"hub committed {CommitLog.read(log).readings:,} of {total:,}")


@dataclass(frozen=True, slots=True)
class NaiveResult:
    """What the naive pipeline measured.

    Attributes:
        readings: readings it stored.
        rate: readings/s, from its first message to its last INSERT.
        cpu_per_100k: its CPU seconds per 100k readings, over the same span.
        peak_rss: its peak resident memory, bytes.
    """

    readings: int
    rate: float
    cpu_per_100k: float
    peak_rss: int


def measure_naive(
    ctx: BenchContext, work: Path, url: str, db: str, label: str = NAME
) -> NaiveResult:
    """Run the naive pipeline on ``naive_readings`` messages of one reading each.

    Also keeps the rate in ``ctx.naive_rate`` for scenario 6.

    Args:
        ctx: the run.
        work: the folder of its log.
        url: the broker.
        db: the store (the scratch database, emptied by the caller).
        label: the scenario named in the progress lines.

    Raises:
        ServiceError: the naive subscriber did not start or finish.
        CheckError: the stored row count is wrong.
    """
    n = ctx.sizes.naive_readings
    ctx.progress(label, f"naive pipeline: {n:,} messages, one reading each")
    argv = [
        sys.executable, "-m", "benchmarks.naive",
        "--mqtt-url", url, "--db", db, "--count", str(n),
    ]  # fmt: skip
    naive = sv.Child("naive", argv, work)
    naive.start(stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    try:
        lines = sv.LineReader(naive)
        lines.expect(b"ready")
        with sv.Sampler(naive.process) as rss:
            _publish_sensor_readings(url, n)
            line = lines.next_line(_WAIT_S)
    finally:
        naive.stop()
    doc = orjson.loads(line)
    _check_count(db, n, "naive pipeline")
    seconds = (doc["last_us"] - doc["first_us"]) / 1e6
    result = NaiveResult(
        readings=n,
        rate=n / seconds,
        cpu_per_100k=doc["cpu_s"] / n * 100_000,
        peak_rss=rss.peak_rss,
    )
    ctx.naive_rate = result.rate
    ctx.progress(label, f"naive pipeline: {result.rate:,.0f} readings/s")
    return result


def _publish_sensor_readings(url: str, n: int, devices: int = 100) -> None:
    """Publish ``n`` plain sensor messages of one reading each, QoS 1."""
    sink = MqttSensorSink(url, client_id="sf-bench-naive-sensors")
    sink.start()
    base = now_us() - n
    for i in range(0, n, 1000):
        sink.send(
            [
                Reading(f"naive-dev-{j % devices:03d}", "temperature", base + j, 20.0)
                for j in range(i, min(n, i + 1000))
            ]
        )
    unconfirmed = sink.close()
    if unconfirmed:
        raise ServiceError(f"broker did not acknowledge {unconfirmed} messages")


def _pct(values: object, q: float) -> float:
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    return float(np.percentile(arr, q)) if len(arr) else float("nan")
