"""Harness of the end-to-end and fault tests: a StreamFlow site as real processes.

One site, every part its own process (so that a test can SIGKILL any of them)::

    streamflow replay --via mqtt  (the Intel lab data as plain JSON sensors)
        -> local Mosquitto (the gateway's broker; the fixture persists sessions)
        -> streamflow-edge        (disk buffer in the site's folder)
        -> hub broker             (amqtt or Mosquitto: the ``broker`` fixture)
        -> streamflow hub
        -> store                  (SQLite file, or TimescaleDB via ``pg_dsn``)

The expected result is computed in the test process from the same data file
with the loader (:func:`simulators.datasets.read_intel`), not from anything a
component reports. :class:`Site` starts, stops, kills and restarts each
process, keeps each one's log in the site folder (all runs appended), and
reads the outcome: the store's rows, the edge buffer's tables, the hub's
status file and the figures in the logs.

The fixtures at the bottom (``intel_slice``, ``store_url``, ``site``) and the
report hook are imported by ``tests/e2e/conftest.py`` and
``tests/faults/conftest.py``; on a failure the hook appends the tail of every
process log of the test's site to the report.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.storage import Store, open_store
from protocol import topics
from simulators.datasets import SHIPPED_DATA, LoadReport, read_intel
from tests.fix_brokers import BrokerProcess
from tests.services import wait_for, wait_port

#: The shipped slice with the corrupt record (mote id 65407, line 7056).
SLICE_SOURCE = SHIPPED_DATA / "intel_lab_2004-03-05_0630-0845.txt.gz"
#: Lines 6501-7300 of it: 800 lines, 13.5 minutes of the lab, 3,187 readings,
#: the corrupt line among them. At a speed-up of 60 a replay takes 13.5 s.
SLICE_FIRST_LINE = 6501
SLICE_LINES = 800
SPEEDUP = 60.0

GATEWAY = "gw-e2e"
REPLAY_CLIENT_ID = "sf-e2e-replay"

#: Settings of the edge agent that keep a test run short: a batch without an
#: ack goes again after 3 s (default 10 s), reconnects wait 2 s at most
#: (default 30 s) and the state goes every 2 s. Delivery works the same.
EDGE_ENV = {
    "STREAMFLOW_EDGE_ACK_TIMEOUT_S": "3",
    "STREAMFLOW_EDGE_RECONNECT_MAX_S": "2",
    "STREAMFLOW_EDGE_STATE_INTERVAL_S": "2",
}

#: Lines of each log shown in a failure report.
LOG_TAIL_LINES = 60
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 20.0

_RESENT_RE = re.compile(rb"batches resent reason=(\w+) count=(\d+)")
_REOPENED_RE = re.compile(rb"buffer opened .* batches=(\d+)")
_SUMMARY_RE = re.compile(
    r"replay (?P<stopped>\w+): read=(?P<read>\d+) sent=(?P<sent>\d+)"
    r" skipped=(?P<skipped>\d+) \((?P<reasons>[^)]*)\)"
    r".* unconfirmed=(?P<unconfirmed>\d+)"
)

#: A stored or expected reading: (device, metric, ts_us, value).
Row = tuple[str, str, int, float]


# -- the data ------------------------------------------------------------------


@dataclass(frozen=True)
class DataSlice:
    """A data file and what the loader reads from it, independently of the site.

    Attributes:
        path: the data file (gzip).
        lines: data lines in it.
        rows: the readings, deduplicated on (device, metric, ts), first kept.
        rejected: lines or values the loader rejected, by reason.
        missing: empty fields (no reading, not a reject), by metric.
        loaded: readings the loader yielded before deduplication.
    """

    path: Path
    lines: int
    rows: frozenset[Row]
    rejected: dict[str, int]
    missing: dict[str, int]
    loaded: int

    def device_rows(self, device: str) -> list[Row]:
        """The expected rows of one device, by (ts, metric)."""
        return sorted(
            (r for r in self.rows if r[0] == device), key=lambda r: (r[2], r[1])
        )


def cut_slice(source: Path, dest: Path, first_line: int, count: int) -> Path:
    """Write lines ``first_line .. first_line + count - 1`` of a gzip file to dest."""
    with gzip.open(source, "rt", encoding="utf-8", newline="") as src:
        lines = [line for i, line in enumerate(src, 1) if i >= first_line][:count]
    with gzip.open(dest, "wt", encoding="utf-8", newline="") as out:
        out.writelines(lines)
    return dest


def load_slice(path: Path) -> DataSlice:
    """Read a data file with the loader: the readings a perfect pipeline stores."""
    report = LoadReport(quiet=True)
    rows: dict[tuple[str, str, int], float] = {}
    loaded = 0
    for r in read_intel(path, report):
        loaded += 1
        rows.setdefault((r.device, r.metric, r.ts_us), r.value)
    return DataSlice(
        path=path,
        lines=report.lines,
        rows=frozenset((d, m, t, v) for (d, m, t), v in rows.items()),
        rejected=dict(report.rejected),
        missing=dict(report.missing),
        loaded=loaded,
    )


# -- one process ---------------------------------------------------------------


def _command(script: str, module: str) -> list[str]:
    """The console script next to this Python, else ``python -m module``."""
    found = Path(sys.executable).parent / script
    if found.exists():
        return [str(found)]
    return [sys.executable, "-m", module]


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    """The test's environment (already cleaned of STREAMFLOW_*) plus ``extra``."""
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Service:
    """One StreamFlow process that a test starts, stops, kills and restarts.

    Every run appends to the same log file, after a ``=== run N`` line.

    Args:
        name: the log file's name (``<name>.log``) and the name in reports.
        argv: the command.
        workdir: the folder of the log file, also the process's cwd.
        env: the whole environment of the process.
    """

    def __init__(
        self, name: str, argv: list[str], workdir: Path, env: dict[str, str]
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.runs = 0
        self.kills = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_offset = 0

    @property
    def running(self) -> bool:
        """Whether the process of the current run is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The pid of the current run, if any."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start a new run (the previous one must have ended)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.runs += 1
        with open(self.log_path, "ab") as log:
            self._run_offset = log.tell()
            log.write(f"=== run {self.runs}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.env,
            )

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait for the exit (SIGKILL after ``timeout``); the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the current run and reap it."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
            self.kills += 1
            with open(self.log_path, "ab") as log:
                log.write(f"=== run {self.runs} killed with SIGKILL\n".encode())

    def wait_exit(self, timeout: float) -> int:
        """Wait until the current run ends by itself; its exit code.

        Raises:
            TimeoutError: it still runs after ``timeout`` seconds.
        """
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name} still runs after {timeout} s") from None

    def run_log(self) -> bytes:
        """The log of the current run."""
        with open(self.log_path, "rb") as log:
            log.seek(self._run_offset)
            return log.read()

    def all_logs(self) -> bytes:
        """The log of every run."""
        return self.log_path.read_bytes() if self.log_path.exists() else b""

    def wait_log(self, text: str, timeout: float = _START_TIMEOUT_S) -> None:
        """Wait until the current run has logged ``text``.

        Raises:
            TimeoutError: not logged within ``timeout``, or the process ended.
        """
        needle = text.encode()

        def seen() -> bool:
            if needle in self.run_log():
                return True
            if not self.running:
                raise TimeoutError(f"{self.name} exited before logging {text!r}")
            return False

        wait_for(seen, timeout=timeout, interval=0.1, what=f"{self.name}: {text!r}")


# -- what the site holds -------------------------------------------------------


@dataclass(frozen=True)
class EdgeBuffer:
    """The edge agent's disk buffer, read from its SQLite file.

    Attributes:
        pending: readings not yet in a batch.
        batches: batches not acked by the hub.
        acked_batches: batches acked since the buffer was created.
        acked_readings: readings in them.
        rejected: readings rejected at the edge, by reason.
        dropped: readings dropped by the buffer's policy, by reason.
    """

    pending: int
    batches: int
    acked_batches: int
    acked_readings: int
    rejected: dict[str, int]
    dropped: dict[str, int]


def read_edge_buffer(path: Path) -> EdgeBuffer:
    """Read an edge buffer file (the agent may be running: WAL readers are fine)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        pending = db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
        batches = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()
    by_kind: dict[str, dict[str, int]] = {"rejected": {}, "dropped": {}}
    for key, value in meta.items():
        kind, _, reason = str(key).partition(":")
        if kind in by_kind and value:
            by_kind[kind][reason] = int(value)
    return EdgeBuffer(
        pending=int(pending),
        batches=int(batches),
        acked_batches=int(meta.get("acked_batches", 0)),
        acked_readings=int(meta.get("acked_readings", 0)),
        rejected=by_kind["rejected"],
        dropped=by_kind["dropped"],
    )


@dataclass(frozen=True)
class ReplaySummary:
    """The replay's final line, parsed."""

    stopped: str
    read: int
    sent: int
    skipped: dict[str, int]
    unconfirmed: int


def parse_replay_summary(log: bytes) -> ReplaySummary:
    """Find the summary line of ``streamflow replay`` in its output.

    Raises:
        ValueError: no summary line in the output.
    """
    matches = list(_SUMMARY_RE.finditer(log.decode("utf-8", "replace")))
    if not matches:
        raise ValueError("no replay summary line in the replay's output")
    match = matches[-1]  # the last run's
    reasons = {}
    for part in match["reasons"].split():
        reason, _, n = part.partition("=")
        if n:
            reasons[reason] = int(n)
    return ReplaySummary(
        stopped=match["stopped"],
        read=int(match["read"]),
        sent=int(match["sent"]),
        skipped=reasons,
        unconfirmed=int(match["unconfirmed"]),
    )


def edge_resends(log: bytes) -> dict[str, int]:
    """Batch resends in the edge agent's log, by reason.

    ``reconnect`` and ``ack_timeout`` are logged as such; ``restart`` counts
    the unacked batches a run found in the buffer at start (it sends them
    again).
    """
    resent: Counter[str] = Counter()
    for reason, count in _RESENT_RE.findall(log):
        resent[reason.decode()] += int(count)
    restarts = sum(int(n) for n in _REOPENED_RE.findall(log))
    if restarts:
        resent["restart"] += restarts
    return dict(resent)


@dataclass
class Outcome:
    """What a run left behind, read once every process has stopped.

    Attributes:
        rows: every stored reading, as (device, metric, ts_us, value), sorted.
        total: the store's own row count (``count_readings``).
        edge: the edge buffer.
        replay: the replay's summary.
        hub_rejects: readings the hub rejected, by reason (store accounting).
        hub_dropped: edge drops the hub recorded from gateway states.
        hub_received: readings stored for the gateway (store accounting).
        hub_duplicates: readings the hub skipped as already stored.
        edge_resent: batch resends by reason, summed over the agent's runs.
        hub_counters: the last status counters of each hub run, by pid.
    """

    rows: list[Row]
    total: int
    edge: EdgeBuffer
    replay: ReplaySummary
    hub_rejects: dict[str, int]
    hub_dropped: dict[str, int]
    hub_received: int
    hub_duplicates: int
    edge_resent: dict[str, int]
    hub_counters: dict[int, dict[str, Any]] = field(default_factory=dict)

    def figures(self, data: DataSlice) -> str:
        """One line of figures for the test log and the issue notes."""
        shed = sum(sum(c.get("shed", {}).values()) for c in self.hub_counters.values())
        errors = sum(c.get("store_errors", 0) for c in self.hub_counters.values())
        return (
            f"expected={len(data.rows)} stored={self.total}"
            f" hub_duplicates={self.hub_duplicates}"
            f" edge_resends={sum(self.edge_resent.values())} {self.edge_resent}"
            f" edge_acked_batches={self.edge.acked_batches}"
            f" hub_shed={shed} hub_store_errors={errors}"
        )


def assert_exact_accounting(out: Outcome, data: DataSlice) -> None:
    """The store holds exactly the accepted readings, once; every loss counted."""
    stored = set(out.rows)
    missing = data.rows - stored
    extra = stored - data.rows
    assert (len(missing), sorted(missing)[:5]) == (0, [])
    assert (len(extra), sorted(extra)[:5]) == (0, [])
    # Equal sets, and as many rows as readings: none stored twice.
    assert len(out.rows) == len(data.rows)
    assert out.total == len(data.rows)
    assert out.hub_received == len(data.rows)
    # Every line of the data was read and sent; the loader's rejects are the
    # only ones, counted by reason at the replay; nothing rejected or dropped
    # downstream.
    assert (out.replay.stopped, out.replay.read, out.replay.sent) == (
        "end",
        data.loaded,
        data.loaded,
    )
    assert out.replay.skipped == data.rejected
    assert out.replay.unconfirmed == 0
    assert out.edge.rejected == {}
    assert out.edge.dropped == {}
    assert out.hub_rejects == {}
    assert out.hub_dropped == {}
    # Every batch acked by the hub and deleted from the edge's disk.
    assert (out.edge.pending, out.edge.batches) == (0, 0)
    assert out.edge.acked_readings == len(data.rows)


# -- the site ------------------------------------------------------------------


class Site:
    """Replay, edge agent and hub on two brokers and a store, as processes.

    Args:
        root: the site's folder: logs, the edge buffer, the hub's data.
        local: the gateway's local broker (Mosquitto).
        hub_broker: the hub's broker.
        db_url: the store URL (``sqlite:///…`` or ``postgresql://…``).
        gateway: the edge agent's gateway id.
        edge_env: more ``STREAMFLOW_EDGE_*`` settings for the agent.
    """

    def __init__(
        self,
        root: Path,
        local: BrokerProcess,
        hub_broker: BrokerProcess,
        db_url: str,
        gateway: str = GATEWAY,
        edge_env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.local = local
        self.hub_broker = hub_broker
        self.db_url = db_url
        self.gateway = gateway
        self.edge_dir = root / "edge"
        self.hub_dir = root / "hub"
        for folder in (root, self.edge_dir, self.hub_dir):
            folder.mkdir(parents=True, exist_ok=True)

        self.hub = Service(
            "hub",
            [*_command("streamflow", "hub.cli"), "hub"],
            root,
            _child_env(
                {
                    "STREAMFLOW_DB": db_url,
                    "STREAMFLOW_MQTT_URL": hub_broker.url,
                    "STREAMFLOW_DATA_DIR": str(self.hub_dir),
                }
            ),
        )
        self.edge = Service(
            "edge",
            [
                *_command("streamflow-edge", "edge_agent.cli"),
                "--gateway-id",
                gateway,
                "--hub-url",
                hub_broker.url,
                "--local-url",
                local.url,
                "--data-dir",
                str(self.edge_dir),
            ],
            root,
            _child_env({**EDGE_ENV, **(edge_env or {})}),
        )
        self.replay: Service | None = None
        self.api: Service | None = None
        self._store: Store | None = None
        self.hub_counters: dict[int, dict[str, Any]] = {}

    # -- starting and stopping --------------------------------------------

    def start_hub(self) -> None:
        """Start the hub and wait until it is subscribed."""
        self.hub.start()
        self.hub.wait_log("subscriptions ready")

    def start_edge(self) -> None:
        """Start the edge agent; wait for its local subscription and uplink."""
        self.edge.start()
        self.edge.wait_log("local subscriptions ready")
        self.edge.wait_log("uplink connected")

    def start_replay(self, data: Path, speedup: float = SPEEDUP) -> None:
        """Start ``streamflow replay`` publishing ``data`` to the local broker."""
        self.replay = Service(
            "replay",
            [
                *_command("streamflow", "hub.cli"),
                "replay",
                "--via",
                "mqtt",
                "--mqtt-url",
                self.local.url,
                "--data",
                str(data),
                "--format",
                "intel",
                "--speedup",
                f"{speedup:g}",
                "--timestamps",
                "original",
                "--client-id",
                REPLAY_CLIENT_ID,
                "--no-progress",
            ],
            self.root,
            _child_env({}),
        )
        self.replay.start()

    def start_api(self, port: int) -> str:
        """Start ``streamflow api`` on the site's store; return its base URL."""
        self.api = Service(
            "api",
            [*_command("streamflow", "hub.cli"), "api", "--port", str(port)],
            self.root,
            dict(self.hub.env),
        )
        self.api.start()
        wait_port(port, timeout=_START_TIMEOUT_S)
        return f"http://127.0.0.1:{port}"

    def start(self, data: Path, speedup: float = SPEEDUP) -> None:
        """Start hub, edge agent and replay, in that order."""
        self.start_hub()
        self.start_edge()
        self.start_replay(data, speedup)

    def kill_edge(self) -> None:
        """SIGKILL the edge agent."""
        self.edge.kill()

    def kill_hub(self) -> None:
        """SIGKILL the hub, keeping the last counters its status file showed."""
        self.sample_hub()
        self.hub.kill()

    def close(self) -> None:
        """Stop every process of the site and close the store."""
        for service in (self.api, self.replay, self.edge, self.hub):
            if service is not None:
                service.stop()
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- watching --------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The site's store, opened in the test process (after the hub migrated)."""
        if self._store is None:
            self._store = open_store(self.db_url)
        return self._store

    def sample_hub(self) -> None:
        """Keep the counters of the hub's status file, by pid."""
        path = self.hub_dir / "hub-status.json"
        try:
            status = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        self.hub_counters[int(status["pid"])] = status["counters"]

    def stored_count(self) -> int:
        """The store's row count (sampling the hub's counters on the way)."""
        self.sample_hub()
        return self.store.count_readings()

    def edge_buffer(self) -> EdgeBuffer:
        """The edge agent's disk buffer now."""
        return read_edge_buffer(self.edge_dir / "buffer.sqlite")

    def wait_delivered(self, data: DataSlice, timeout: float) -> None:
        """Wait until the replay ended, the store holds as many rows as expected
        (or more) and the edge buffer is empty.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        if self.replay is not None:
            code = self.replay.wait_exit(max(1.0, deadline - time.monotonic()))
            if code != 0:
                raise RuntimeError(f"replay exited with status {code}")
        wait_for(
            lambda: self.stored_count() >= len(data.rows),
            timeout=max(1.0, deadline - time.monotonic()),
            interval=0.2,
            what=f"{len(data.rows)} readings in the store",
        )

        def drained() -> bool:
            buf = self.edge_buffer()
            return buf.pending == 0 and buf.batches == 0

        wait_for(
            drained,
            timeout=max(1.0, deadline - time.monotonic()),
            interval=0.2,
            what="an empty edge buffer",
        )

    def finish(self) -> Outcome:
        """Stop replay, edge agent and hub cleanly; read what they left.

        Raises:
            AssertionError: a process exited with an error on SIGTERM.
        """
        replay_log = self.replay.all_logs() if self.replay else b""
        if self.replay is not None:
            assert self.replay.stop() == 0, "replay failed"
        assert self.edge.stop() == 0, "edge agent failed to stop cleanly"
        self.sample_hub()
        assert self.hub.stop() == 0, "hub failed to stop cleanly"
        store = self.store
        rows: list[Row] = []
        for device in store.list_devices():
            readings = store.readings(device.id, limit=10_000_000)
            rows.extend((r.device, r.metric, r.ts_us, r.value) for r in readings)
        accounting = store.accounting("gateway", self.gateway)
        return Outcome(
            rows=sorted(rows),
            total=store.count_readings(),
            edge=self.edge_buffer(),
            replay=parse_replay_summary(replay_log),
            hub_rejects=dict(accounting.rejected),
            hub_dropped=dict(accounting.dropped),
            hub_received=accounting.received,
            hub_duplicates=accounting.duplicates,
            edge_resent=edge_resends(self.edge.all_logs()),
            hub_counters=dict(self.hub_counters),
        )

    # -- reports -----------------------------------------------------------------

    def log_files(self) -> list[Path]:
        """Every log of the site: processes, then the two brokers."""
        names = ("replay", "edge", "hub", "api")
        logs = [self.root / f"{name}.log" for name in names]
        for broker in (self.local, self.hub_broker):
            logs.append(broker.log_path)
        return [p for p in logs if p.exists()]

    def log_report(self, tail: int = LOG_TAIL_LINES) -> str:
        """The last ``tail`` lines of each log, for a failure report."""
        parts = []
        for path in self.log_files():
            lines = path.read_text("utf-8", "replace").splitlines()
            parts.append(f"----- {path} (last {tail} of {len(lines)} lines)")
            parts.extend(lines[-tail:])
        return "\n".join(parts)


# -- watchers for the fault tests ------------------------------------------------


class AckWatch:
    """Records when the hub publishes an ack to a gateway, seen on its broker.

    A clean-session QoS 0 subscriber of its own: it changes nothing in the
    sessions of the site.
    """

    def __init__(self, broker: BrokerProcess, gateway: str = GATEWAY) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.times: list[float] = []
        self._topic = topics.ack(gateway)
        self._ready = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sf-e2e-ackwatch-{os.getpid()}",
            clean_session=True,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self._ready.set()
        self._client.on_message = lambda *args: self.times.append(time.monotonic())
        self._client.connect(broker.host, broker.port, keepalive=10)
        self._client.loop_start()
        if not self._ready.wait(10):
            self.stop()
            raise TimeoutError(f"ack watcher not subscribed on {broker.url}")

    def _on_connect(self, client: Any, *args: Any) -> None:
        client.subscribe(self._topic, qos=0)

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    def between(self, start: float, end: float) -> list[float]:
        """The ack times in [start, end] (monotonic seconds)."""
        return [t for t in self.times if start <= t <= end]


class PgWatch:
    """Probes PostgreSQL every ``interval_s`` with a new connection; finds outages.

    Args:
        url: the database to probe.
        interval_s: the pause between probes.
    """

    def __init__(self, url: str, interval_s: float = 0.05) -> None:
        self.samples: list[tuple[float, bool]] = []
        self._url = url
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        while not self._stop.wait(self._interval_s):
            at = time.monotonic()
            try:
                with psycopg.connect(self._url, connect_timeout=1) as conn:
                    conn.execute("SELECT 1")
                up = True
            except psycopg.Error:
                up = False
            self.samples.append((at, up))

    def stop(self) -> None:
        """End the probing."""
        self._stop.set()
        self._thread.join(5)

    def outages(self) -> list[tuple[float, float]]:
        """(first, last) monotonic time of each run of failed probes."""
        runs: list[tuple[float, float]] = []
        start: float | None = None
        last = 0.0
        for at, up in self.samples:
            if not up:
                start = at if start is None else start
                last = at
            elif start is not None:
                runs.append((start, last))
                start = None
        if start is not None:
            runs.append((start, last))
        return runs


# -- fixtures and the report hook (imported by the conftest files) ---------------

_SITES = pytest.StashKey[list[Site]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Append the logs of the test's site processes to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for site in item.stash.get(_SITES, []):
            report.sections.append((f"logs of {site.root}", site.log_report()))


@pytest.fixture(scope="session")
def intel_slice(tmp_path_factory: pytest.TempPathFactory) -> DataSlice:
    """The 800 lines of real Intel lab data every scenario replays."""
    path = cut_slice(
        SLICE_SOURCE,
        tmp_path_factory.mktemp("data") / "intel_slice.txt.gz",
        SLICE_FIRST_LINE,
        SLICE_LINES,
    )
    return load_slice(path)


def pg_url(dsn: str) -> str:
    """A ``postgresql://`` URL from a conninfo string (what ``pg_dsn`` gives)."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(dsn)
    auth = str(p.get("user", ""))
    if p.get("password"):
        auth += f":{p['password']}"
    host = f"{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}"
    return f"postgresql://{auth}@{host}/{p['dbname']}"


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store URL: a SQLite file, or a fresh TimescaleDB database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hub-store/streamflow.db"
    return pg_url(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def site(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mosquitto_broker: BrokerProcess,
    broker: BrokerProcess,
    store_url: str,
) -> Iterator[Site]:
    """A site on a local Mosquitto, the hub broker and the store; stopped after."""
    if store_url.startswith("sqlite:"):
        Path(store_url.removeprefix("sqlite://")).parent.mkdir(parents=True)
    created = Site(tmp_path / "site", mosquitto_broker, broker, store_url)
    request.node.stash[_SITES] = [created]
    yield created
    created.close()


def run_command(command: str, timeout: float = 60.0) -> None:
    """Run a shell command of the test configuration (e.g. the PG restart).

    Raises:
        subprocess.CalledProcessError: it failed.
    """
    shell = shutil.which("sh") or "/bin/sh"
    subprocess.run(
        [shell, "-c", command],
        check=True,
        timeout=timeout,
        capture_output=True,
    )


def fault_seed(default: int) -> int:
    """The seed of a fault test: ``STREAMFLOW_TEST_FAULT_SEED`` (to reproduce a
    failure or to try other instants), else the test's own."""
    return int(os.environ.get("STREAMFLOW_TEST_FAULT_SEED", default))


def fault_times(
    seed: int, count: int, first_s: float, last_s: float, gap_s: float
) -> list[float]:
    """``count`` seeded random instants in [first_s, last_s], ``gap_s`` apart.

    The span is cut into ``count`` equal windows and one instant drawn in
    each, so that the faults fall early and late in a run, never together.
    """
    rng = random.Random(seed)
    width = (last_s - first_s) / count
    return [
        round(rng.uniform(first_s + i * width, first_s + (i + 1) * width - gap_s), 2)
        for i in range(count)
    ]


def sleep_until(started: float, at_s: float) -> None:
    """Sleep until ``at_s`` seconds after the monotonic instant ``started``."""
    time.sleep(max(0.0, started + at_s - time.monotonic()))


def kill_and_restart_twice(
    site: Site, data: DataSlice, seed: int, kill: Callable[[], None],
    restart: Callable[[], None],
) -> str:  # fmt: skip
    """Start the site, then kill and restart one part twice at seeded instants.

    Each kill is followed by a seeded downtime of 0.5-2 s before the restart.

    Returns:
        The instants and downtimes, for the test's figures line.
    """
    kills = fault_times(seed, 2, first_s=1.5, last_s=12.0, gap_s=1.0)
    downtimes = [round(random.Random(seed + i).uniform(0.5, 2.0), 2) for i in (1, 2)]
    site.start(data.path)
    started = time.monotonic()
    for at_s, down_s in zip(kills, downtimes, strict=True):
        sleep_until(started, at_s)
        kill()
        time.sleep(down_s)
        restart()
    return f"seed={seed} kills_at_s={kills} down_s={downtimes}"
