"""``streamflow up`` in a subprocess: starts, answers, stops cleanly on SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest

from tests.services import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


class Up:
    """A ``streamflow up`` process, with its output read as it comes."""

    def __init__(self, argv: list[str]) -> None:
        #: The monitor's Prometheus port: a free one, not the shared default.
        self.metrics_port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "up", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "STREAMFLOW_MONITOR__METRICS_PORT": str(self.metrics_port),
            },
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait for the banner's last line: every part is up."""
        wait_for(
            lambda: (
                "Press Ctrl-C to stop." in self.lines or self.proc.poll() is not None
            ),
            timeout=timeout,
            what="the banner",
        )
        assert self.proc.poll() is None, self.proc.stderr.read()

    def finish(self, timeout: float = 15) -> tuple[list[str], str]:
        """Wait for the exit; return stdout lines and stderr."""
        assert self.proc.stderr is not None
        self.proc.wait(timeout)
        self._reader.join(5)
        err = self.proc.stderr.read()
        self._close()
        return self.lines, err

    def _close(self) -> None:
        self._reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
            self.proc.kill()
            self.proc.wait(10)
        self._close()


def up_args(tmp_path, api_port: int, mqtt_port: int) -> list[str]:
    """Options of an ``up`` on the given ports with its data under ``tmp_path``."""
    return [
        "--data-dir",
        str(tmp_path / "data"),
        "--api-port",
        str(api_port),
        "--mqtt-port",
        str(mqtt_port),
    ]


def healthz(api_port: int) -> dict | None:
    """The /healthz body, or None while nothing answers."""
    try:
        resp = httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=1.0)
    except httpx.HTTPError:
        return None
    return resp.json() if resp.status_code == 200 else None


@pytest.fixture
def up(tmp_path):
    """A running ``streamflow up``; killed at the end if a test left it running."""
    api_port, mqtt_port = free_port(), free_port()
    running = Up(up_args(tmp_path, api_port, mqtt_port))
    try:
        running.wait_ready()
        yield running, api_port, mqtt_port
    finally:
        running.kill()


def test_up_serves_then_stops_cleanly_on_sigint(up):
    """up answers /healthz with the hub connected, and SIGINT exits 0 within 15 s."""
    running, api_port, mqtt_port = up
    body = healthz(api_port)
    children = psutil.Process(running.proc.pid).children()

    started = time.monotonic()
    running.proc.send_signal(signal.SIGINT)
    lines, err = running.finish(timeout=15)

    assert running.proc.returncode == 0, err
    assert time.monotonic() - started < 15
    assert (body["status"], body["store"]) == ("ok", "sqlite")
    assert body["hub"]["connected"] is True
    assert body["hub"]["broker"] == f"mqtt://127.0.0.1:{mqtt_port}"
    assert len(children) == 4  # broker, hub, monitor, API: each its own process
    assert f"  curl http://127.0.0.1:{api_port}/v1/devices" in lines
    assert lines[-2:] == ["streamflow: SIGINT: stopping", "streamflow: stopped"]
    assert not any(c.is_running() for c in children)


def test_up_child_dying_is_reported_and_exits_1(up):
    """A part that dies on its own is reported; up stops the rest and exits 1."""
    running, _api_port, _mqtt_port = up
    (broker,) = [
        c
        for c in psutil.Process(running.proc.pid).children()
        if "hub.broker" in c.cmdline()
    ]

    broker.kill()
    lines, err = running.finish(timeout=30)

    assert running.proc.returncode == 1
    assert "streamflow: error: broker exited unexpectedly with code -9" in err
    assert lines[-1] == "streamflow: stopped after a failure"


def test_up_port_in_use_exits_2_naming_option(tmp_path):
    """A taken API port stops up before anything starts, naming --api-port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        running = Up(up_args(tmp_path, port, free_port()))
        _lines, err = running.finish(timeout=15)

    assert running.proc.returncode == 2
    assert err.splitlines()[-1] == (
        f"streamflow: error: port {port} on 127.0.0.1 is already in use: stop what "
        "listens there or choose another port with --api-port"
    )


@pytest.mark.db
def test_up_with_external_broker_and_timescaledb(tmp_path, mosquitto_broker, pg_dsn):
    """--mqtt-url and --db run hub and API only, on Mosquitto and TimescaleDB."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(pg_dsn)
    where = f"{p['host']}:{p['port']}/{p['dbname']}"
    api_port = free_port()
    running = Up(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--api-port",
            str(api_port),
            "--mqtt-url",
            mosquitto_broker.url,
            "--db",
            f"postgresql://{p['user']}:{p['password']}@{where}",
        ]
    )
    try:
        running.wait_ready()
        body = healthz(api_port)
        children = psutil.Process(running.proc.pid).children()
        running.proc.send_signal(signal.SIGINT)
        lines, err = running.finish(timeout=15)
    finally:
        running.kill()

    assert running.proc.returncode == 0, err
    assert (body["store"], body["hub"]["broker"]) == (
        "timescaledb",
        mosquitto_broker.url,
    )
    assert len(children) == 3  # hub, monitor and API: no embedded broker
    assert f"  store   postgresql://{p['user']}:***@{where}" in lines


@pytest.mark.slow
def test_up_demo_opens_mote_8_impossible_alert_within_two_minutes(tmp_path):
    """``up --demo`` at its default speed-up: mote 8's real glitch (humidity
    -8983 %, 0.03 V) is an ``impossible`` alert within 120 s of the start, in
    the store the API and its live stream read, and the monitor's metrics
    count it."""
    from hub.storage import open_store

    started = time.monotonic()
    running = Up([*up_args(tmp_path, free_port(), free_port()), "--demo"])
    store = None
    try:
        running.wait_ready(timeout=60)
        store = open_store(f"sqlite:///{tmp_path}/data/streamflow.db")
        alerts = wait_for(
            lambda: store.list_alerts(device="mote-8", kind="impossible"),
            timeout=max(1.0, 120 - (time.monotonic() - started)),
            interval=0.5,
            what="an impossible alert for mote-8",
        )
        seen_after_s = time.monotonic() - started
        metrics = httpx.get(
            f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=5
        ).text
        running.proc.send_signal(signal.SIGINT)
        lines, err = running.finish(timeout=30)
    finally:
        if store is not None:
            store.close()
        running.kill()

    print(f"first mote-8 alert seen after {seen_after_s:.1f} s")
    assert seen_after_s < 120
    assert {a.metric for a in alerts} <= {"humidity", "voltage", "temperature"}
    assert all(a.fingerprint.startswith("device/mote-8/impossible/") for a in alerts)
    assert all(a.gateway == "demo-gw" and not a.past for a in alerts)
    assert 'streamflow_monitor_signals_total{kind="impossible",state="raised"}' in (
        metrics
    )
    assert running.proc.returncode == 0, err
    assert any(line.startswith("  alerts  ") for line in lines)


def test_up_demo_scales_monitor_durations_by_speedup(tmp_path):
    """At a speed-up of 60 the monitor's 600 s floor is 10 s of wall time."""
    from hub.config import load_settings
    from hub.up import Supervisor, UpOptions

    settings = load_settings(data_dir=tmp_path)
    demo = Supervisor(UpOptions(settings=settings, demo=True, speedup=60.0))
    plain = Supervisor(UpOptions(settings=settings))

    assert demo._monitor_env() == {
        "STREAMFLOW_MONITOR__MIN_SILENCE_S": "10",
        "STREAMFLOW_MONITOR__INTERVAL_REFRESH_S": "5",
    }
    assert plain._monitor_env() == {}
