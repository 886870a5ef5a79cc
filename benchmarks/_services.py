"""The servers a benchmark runs: Mosquitto, the hub, the API, a scratch database.

Every server binds to 127.0.0.1 on a free port, runs in its own process with
its log in the run's work folder, and is stopped by the context manager that
started it. Child processes get the environment without ``STREAMFLOW_*``
variables, so that a developer's own settings cannot change the figures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg

from benchmarks.errors import ServiceError
from hub.config import redact_url

_LOGGER = logging.getLogger(__name__)

#: How long a server may take to start.
START_TIMEOUT_S = 30.0
#: How long a server may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 30.0
#: The default test server (tests/fix_db.py), when STREAMFLOW_TEST_DSN is unset.
DEFAULT_DSN = "postgresql://streamflow:streamflow@127.0.0.1:5432/streamflow_test"


def default_dsn() -> str:
    """The server named by ``STREAMFLOW_TEST_DSN``, else the local test server."""
    return os.environ.get("STREAMFLOW_TEST_DSN", DEFAULT_DSN)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``.

    Raises:
        ServiceError: nothing did within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s")


def mqtt_address(url: str) -> tuple[str, int]:
    """(host, port) of an ``mqtt://host:port`` URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without ``STREAMFLOW_*`` variables, plus ``extra``.

    The folder holding the ``benchmarks`` package goes first on
    ``PYTHONPATH``, so that ``python -m benchmarks.…`` children start from
    any working directory.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
    env["PYTHONUNBUFFERED"] = "1"
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, env.get("PYTHONPATH", "")) if p
    )
    env.update(extra or {})
    return env


def cpu_seconds(proc: psutil.Process) -> float:
    """User plus system CPU seconds of a process (all its threads) so far."""
    times = proc.cpu_times()
    return float(times.user + times.system)


class Child:
    """A process the benchmark started, with its log file.

    Args:
        name: the log file's name (``<name>.log`` in ``workdir``).
        argv: the command.
        workdir: the folder of the log.
        env: its environment; :func:`child_env` when None.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        workdir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = workdir / f"{name}.log"
        self._env = env if env is not None else child_env()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The pid of the running process.

        Raises:
            ServiceError: it was never started.
        """
        if self._proc is None:
            raise ServiceError(f"{self.name} is not started")
        return self._proc.pid

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        """The running process's Popen.

        Raises:
            ServiceError: it was never started.
        """
        if self._proc is None:
            raise ServiceError(f"{self.name} is not started")
        return self._proc

    @property
    def process(self) -> psutil.Process:
        """The running process, for psutil's figures."""
        return psutil.Process(self.pid)

    @property
    def running(self) -> bool:
        """Whether the process runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(
        self, stdout: int | IO[bytes] | None = None, stdin: int | None = None
    ) -> subprocess.Popen[bytes]:
        """Start the process; stderr (and stdout unless given) go to the log."""
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=log if stdout is None else stdout,
                stderr=log,
                env=self._env,
            )
        return self._proc

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _LOGGER.warning("killing process name=%s pid=%d", self.name, proc.pid)
                proc.kill()
                proc.wait(5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        return proc.returncode

    def tail(self, lines: int = 20) -> str:
        """The last lines of the log, for an error message."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def mosquitto_binary() -> str:
    """The Mosquitto binary (``STREAMFLOW_TEST_MOSQUITTO`` or on PATH).

    Raises:
        ServiceError: no Mosquitto is installed.
    """
    named = os.environ.get("STREAMFLOW_TEST_MOSQUITTO")
    found = named or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).exists():
        raise ServiceError("mosquitto is not installed (scripts/setup-services)")
    return found


@contextlib.contextmanager
def mosquitto(workdir: Path, name: str = "mosquitto") -> Iterator[str]:
    """Run a Mosquitto on a free port; yield its ``mqtt://`` URL.

    The limits are the site configuration's (deploy/mosquitto): queues deep
    enough that a subscriber falling behind loses nothing, 100 messages in
    flight. No persistence: the broker is never restarted in a benchmark.

    Raises:
        ServiceError: it did not start.
    """
    port = free_port()
    conf = workdir / f"{name}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_queued_messages 1000000\n"
        "max_queued_bytes 0\n"
        "max_inflight_messages 100\n"
        "message_size_limit 0\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
    )
    child = Child(name, [mosquitto_binary(), "-c", str(conf)], workdir)
    child.start()
    try:
        wait_port(port)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        child.stop()


class HubProcess(Child):
    """The hub (:mod:`benchmarks._hubproc`) in its own process.

    Args:
        workdir: the folder of its log, status file and commit log.
        mqtt_url: the broker.
        db: the store URL.
        name: names its log and files, so that restarts keep one log.
        env: hub settings for this run (``STREAMFLOW_*`` variables), on top
            of :func:`child_env`.
    """

    def __init__(
        self,
        workdir: Path,
        mqtt_url: str,
        db: str,
        name: str = "hub",
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = workdir / f"{name}-data"
        self._runs = 0
        self._mqtt_url = mqtt_url
        self._db = db
        self._workdir = workdir
        super().__init__(name, [], workdir, child_env(env) if env else None)

    def start_hub(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the hub and wait until it is subscribed.

        Each run appends to the same commit log (the recorder of a restarted
        hub starts a new part file, and :meth:`commit_logs` lists them all).

        Raises:
            ServiceError: it exited or did not get ready in ``timeout_s``.
        """
        self._runs += 1
        self.argv = [
            sys.executable,
            "-m",
            "benchmarks._hubproc",
            "--mqtt-url",
            self._mqtt_url,
            "--db",
            self._db,
            "--data-dir",
            str(self.data_dir),
            "--commit-log",
            str(self.commit_log_part(self._runs)),
        ]
        self.start(stdout=subprocess.PIPE)
        try:
            LineReader(self).expect(b"ready", timeout_s)
        except ServiceError:
            self.stop(5)
            raise

    def commit_log_part(self, run: int) -> Path:
        """The commit log of one run of the hub."""
        return self._workdir / f"{self.name}-commits-{run}.bin"

    def commit_logs(self) -> list[Path]:
        """The commit logs of every run so far, in order."""
        return [self.commit_log_part(r) for r in range(1, self._runs + 1)]


class LineReader:
    """Reads a child's stdout line by line in a thread, for waits with a timeout.

    Args:
        child: a child started with ``stdout=subprocess.PIPE``.
    """

    def __init__(self, child: Child) -> None:
        self._child = child
        self._lines: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._read, name=f"bench-read-{child.name}", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        stdout = self._child.popen.stdout
        if stdout is None:
            return
        for line in stdout:
            self._lines.put(line.strip())

    def next_line(self, timeout_s: float = START_TIMEOUT_S) -> bytes:
        """The next non-empty line.

        Raises:
            ServiceError: the child exited, or printed nothing in ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                if not self._child.running and self._lines.empty():
                    break
                continue
            if line:
                return line
        raise ServiceError(
            f"{self._child.name} printed nothing in {timeout_s:g} s or exited;"
            f" log tail:\n{self._child.tail()}"
        )

    def expect(self, line: bytes, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait for ``line`` (lines before it are skipped).

        Raises:
            ServiceError: it did not come in ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while (got := self.next_line(max(0.0, deadline - time.monotonic()))) != line:
            _LOGGER.debug("skipped line name=%s line=%r", self._child.name, got)


@contextlib.contextmanager
def hub(
    workdir: Path, mqtt_url: str, db: str, name: str = "hub"
) -> Iterator[HubProcess]:
    """Run the hub (started and subscribed); stop it at the end."""
    proc = HubProcess(workdir, mqtt_url, db, name)
    proc.start_hub()
    try:
        yield proc
    finally:
        proc.stop()


def with_dbname(dsn: str, dbname: str) -> str:
    """The same server's DSN naming another database."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path=f"/{dbname}"))
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo("", **params)


@dataclass(frozen=True, slots=True)
class ScratchDatabase:
    """A database made for one benchmark run, dropped afterwards.

    Attributes:
        server: the DSN the database was made through.
        name: the database's name.
        url: its DSN.
    """

    server: str
    name: str
    url: str


@contextlib.contextmanager
def scratch_database(server: str) -> Iterator[ScratchDatabase]:
    """Make a database with TimescaleDB and StreamFlow's schema; drop it after.

    Raises:
        ServiceError: the server cannot be reached, or the database made.
    """
    from hub.storage.timescale import TimescaleStore

    name = f"sf_bench_{uuid.uuid4().hex[:10]}"
    url = with_dbname(server, name)
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as exc:
        raise ServiceError(
            f"cannot make a scratch database on {redact_url(server)}: {exc}"
        ) from exc
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        with TimescaleStore(url) as store:
            store.migrate()
        _LOGGER.info("scratch database made name=%s", name)
        yield ScratchDatabase(server, name, url)
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        _LOGGER.info("scratch database dropped name=%s", name)


#: Tables of readings and registry that a scenario empties before it starts.
_DATA_TABLES = (
    "readings",
    "latest",
    "batches",
    "series",
    "devices",
    "gateways",
    "accounting",
    "dead_letters",
)


def reset_database(url: str) -> None:
    """Empty every data table, so that a scenario starts on an empty store."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(_DATA_TABLES)} RESTART IDENTITY")


def count_readings(url: str) -> int:
    """Exact count of the stored readings."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    return int(row[0]) if row else 0


class Sampler:
    """Samples a process's resident memory in a thread, keeps the peak.

    Args:
        proc: the process.
        interval_s: the sampling period.
    """

    def __init__(self, proc: psutil.Process, interval_s: float = 0.2) -> None:
        self._proc = proc
        self._interval_s = interval_s
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sample()

    def _sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()
