"""``streamflow up`` in a subprocess: starts, answers, stops cleanly on SIGINT.

Auth is on, as by default: ``up`` creates the first admin and its banner
shows the generated password, which the tests sign in with.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import psutil
import pytest

from hub.client import StreamFlowClient
from hub.up import _JQ_TOKEN, _PYTHON_TOKEN
from tests.services import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


class Up:
    """A ``streamflow up`` process, with its output read as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        #: The monitor's Prometheus port: a free one, not the shared default.
        self.metrics_port = free_port()
        # The first admin's password is generated unless a test chooses it.
        inherited = {k: v for k, v in os.environ.items() if k != ADMIN_PASSWORD_ENV}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "up", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **inherited,
                "STREAMFLOW_MONITOR__METRICS_PORT": str(self.metrics_port),
                **(env or {}),
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

    def admin_password(self) -> str:
        """The generated admin password the banner shows."""
        for line in self.lines:
            found = _GENERATED.match(line)
            if found:
                return found.group(1)
        raise AssertionError(f"no generated password in the banner: {self.lines}")

    def try_lines(self) -> list[str]:
        """The banner's example commands (after ``Try``, before Ctrl-C)."""
        start = next(i for i, line in enumerate(self.lines) if line.startswith("Try"))
        end = self.lines.index("Press Ctrl-C to stop.")
        return [line.strip() for line in self.lines[start + 1 : end]]

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


ADMIN_PASSWORD_ENV = "STREAMFLOW_ADMIN_PASSWORD"
_GENERATED = re.compile(r"^  sign-in user admin, password (\S+) \(generated; ")


def run_shell(lines: list[str], env: dict[str, str]) -> str:
    """Run commands as the banner gives them in bash; return the last's output."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


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
    assert (
        f'  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:{api_port}'
        "/v1/devices" in lines
    )
    assert lines[-2:] == ["streamflow: SIGINT: stopping", "streamflow: stopped"]
    assert not any(c.is_running() for c in children)


def test_up_banner_password_and_try_lines_work(up, tmp_path):
    """The banner's generated password signs in, and its two-step example
    (a token, then a call with it) answers, with jq and with python3."""
    running, api_port, _mqtt_port = up
    password = running.admin_password()
    healthz_line, token_line, devices_line, _readings = running.try_lines()

    with_jq = run_shell([token_line, devices_line], {"PW": password})
    with_python = run_shell(
        [token_line.replace(_JQ_TOKEN, _PYTHON_TOKEN), devices_line],
        {"PW": password},
    )
    unsigned = httpx.get(f"http://127.0.0.1:{api_port}/v1/devices", timeout=5)

    assert healthz_line == f"curl http://127.0.0.1:{api_port}/healthz"
    assert _JQ_TOKEN in token_line
    assert httpx.Response(200, text=with_jq).json() == []
    assert httpx.Response(200, text=with_python).json() == []
    assert unsigned.status_code == 401
    # Shown once, in the banner only: not in the API's log.
    api_log = (tmp_path / "data" / "logs" / "api.log").read_text()
    assert password not in api_log


def test_up_admin_password_from_env_is_not_shown(tmp_path):
    """With STREAMFLOW_ADMIN_PASSWORD the banner names the variable, not the
    password, and its example uses the variable."""
    chosen = "chosen-admin-password"
    api_port = free_port()
    running = Up(
        up_args(tmp_path, api_port, free_port()), env={ADMIN_PASSWORD_ENV: chosen}
    )
    try:
        running.wait_ready()
        devices = run_shell(running.try_lines()[1:3], {ADMIN_PASSWORD_ENV: chosen})
        running.proc.send_signal(signal.SIGINT)
        lines, err = running.finish(timeout=15)
    finally:
        running.kill()

    assert running.proc.returncode == 0, err
    assert "  sign-in user admin, password from STREAMFLOW_ADMIN_PASSWORD" in lines
    assert not any(chosen in line for line in lines)
    assert httpx.Response(200, text=devices).json() == []


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
    -8983 %, 0.03 V) is an ``impossible`` alert within 120 s of the start,
    read through the API signed in as the banner's admin, and the monitor's
    metrics count it."""
    started = time.monotonic()
    api_port = free_port()
    running = Up([*up_args(tmp_path, api_port, free_port()), "--demo"])
    api = None
    try:
        running.wait_ready(timeout=60)
        api = StreamFlowClient(
            f"http://127.0.0.1:{api_port}",
            username="admin",
            password=running.admin_password(),
        )

        def impossible() -> list[dict[str, Any]]:
            resp = api.get(
                "/v1/alerts", params={"device": "mote-8", "kind": "impossible"}
            )
            assert resp.status_code == 200, resp.text
            found: list[dict[str, Any]] = resp.json()["alerts"]
            return found

        alerts = wait_for(
            impossible,
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
        if api is not None:
            api.close()
        running.kill()

    print(f"first mote-8 alert seen after {seen_after_s:.1f} s")
    assert seen_after_s < 120
    assert {a["metric"] for a in alerts} <= {"humidity", "voltage", "temperature"}
    assert all(a["fingerprint"].startswith("device/mote-8/impossible/") for a in alerts)
    assert all(a["gateway"] == "demo-gw" and not a["past"] for a in alerts)
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


@pytest.mark.slow
def test_up_demo_with_broker_auth_gives_each_part_its_login(tmp_path):
    """broker_auth on: up issues logins for the hub, the monitor and the demo's
    gateway; the broker admits them (the demo's readings are stored) and
    refuses a client without one."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from hub.storage import open_store

    api_port, mqtt_port = free_port(), free_port()
    running = Up(
        [*up_args(tmp_path, api_port, mqtt_port), "--demo"],
        env={"STREAMFLOW_BROKER_AUTH": "on"},
    )
    try:
        running.wait_ready(timeout=60)
        store = open_store(f"sqlite:///{tmp_path / 'data' / 'streamflow.db'}")
        try:
            stored = wait_for(
                lambda: store.count_readings(), timeout=60, what="demo readings"
            )
            users = {c.username for c in store.list_broker_credentials()}
        finally:
            store.close()

        codes: list[Any] = []
        anonymous = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="nobody")
        anonymous.on_connect = lambda c, u, f, rc, p: codes.append(rc)
        anonymous.connect("127.0.0.1", mqtt_port)
        anonymous.loop_start()
        try:
            wait_for(lambda: codes, timeout=10, what="the CONNACK")
        finally:
            anonymous.loop_stop()
            anonymous.disconnect()
        running.proc.send_signal(signal.SIGINT)
        _, err = running.finish(timeout=30)
    finally:
        running.kill()

    assert stored > 0
    assert {"svc@hub", "svc@monitor", "demo-gw"} <= users
    assert codes[0].is_failure, codes
    assert running.proc.returncode == 0, err
