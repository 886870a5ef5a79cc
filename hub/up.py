"""``streamflow up``: broker, hub, API (and the demo) on one machine.

Each part runs as its own child process, as it would in a deployment, and
the children talk only through the broker and the store. ``up`` starts them
in order (broker, hub, API, demo), waits until each answers, prints where to
look, and supervises them. Ctrl-C or SIGTERM stops them in the reverse order,
each cleanly: the demo's edge agent first, then the hub (which drains its
queue into the store and acks), then the API, then the broker. A child that
dies on its own is reported and the rest are stopped; ``up`` then exits 1.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import click
import orjson

from hub import const
from hub._errors import ConfigError, HubError
from hub._ports import ensure_port_free
from hub.config import HubSettings, redact_url
from hub.service import open_checked_store
from protocol.validate import now_us

#: How long each part may take to come up.
START_TIMEOUT_S = 30.0
#: How long each part may take to stop before it is killed; the hub's drain
#: has its own grace inside this.
STOP_TIMEOUT_S: dict[str, float] = {
    "demo": 10.0,
    "hub": const.STOP_GRACE_S + 5.0,
    "api": 10.0,
    "broker": 10.0,
}
_POLL_S = 0.1
_LOG_TAIL_LINES = 15


@dataclass(frozen=True, slots=True)
class UpOptions:
    """What ``streamflow up`` runs.

    Attributes:
        settings: the resolved settings (data dir, ports, store, broker).
        embedded_broker: run the amqtt broker; otherwise use ``mqtt_url``.
        demo: also run the demo replay.
        speedup: the demo's replay speed-up.
        config: the TOML file, passed on to the children.
        verbose: the ``-v`` count, passed on to the children.
    """

    settings: HubSettings
    embedded_broker: bool = True
    demo: bool = False
    speedup: float = 60.0
    config: Path | None = None
    verbose: int = 0


@dataclass(slots=True)
class _Child:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-_LOG_TAIL_LINES:])


class ChildFailed(HubError):
    """A part of ``up`` exited or did not come up."""


class _Interrupted(Exception):
    """SIGINT or SIGTERM arrived while the parts were starting."""


def _connect_host(host: str) -> str:
    # A server bound to every address is reached through loopback.
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # Linux: the child gets SIGTERM if `up` itself is killed (prctl
    # PR_SET_PDEATHSIG), so that no orphan keeps a port.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Supervisor:
    """Starts, watches and stops the children of ``up``."""

    def __init__(self, opts: UpOptions) -> None:
        self.opts = opts
        s = opts.settings
        self.data_dir = s.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.api_url = f"http://{_connect_host(s.api_host)}:{s.api_port}"
        self.mqtt_url = (
            f"mqtt://{_connect_host(s.broker_host)}:{s.broker_port}"
            if opts.embedded_broker
            else s.mqtt_url
        )
        self.children: list[_Child] = []
        self._stop = threading.Event()
        self._signal: str | None = None

    # ---------------------------------------------------------------- children

    def _env(self) -> dict[str, str]:
        s = self.opts.settings
        env = dict(os.environ)
        env.update(
            {
                "STREAMFLOW_DATA_DIR": str(self.data_dir),
                "STREAMFLOW_DB": s.db,
                "STREAMFLOW_MQTT_URL": self.mqtt_url,
                "STREAMFLOW_API_HOST": s.api_host,
                "STREAMFLOW_API_PORT": str(s.api_port),
                "STREAMFLOW_BROKER_HOST": s.broker_host,
                "STREAMFLOW_BROKER_PORT": str(s.broker_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.opts.config is not None:
            env["STREAMFLOW_CONFIG"] = str(self.opts.config.resolve())
        return env

    def _spawn(self, name: str, argv: list[str]) -> _Child:
        child = _Child(name, argv, self.log_dir / f"{name}.log")
        child.log = open(child.log_path, "ab")  # noqa: SIM115 - closed in stop()
        child.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=child.log,
            stderr=subprocess.STDOUT,
            env=self._env(),
            # Its own session: a Ctrl-C in the terminal reaches `up` only,
            # which then stops the children in order.
            start_new_session=True,
            # Safe here: `up` starts no thread of its own.
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.children.append(child)
        return child

    def _python(self, module: str, *args: str) -> list[str]:
        verbose = ["-" + "v" * self.opts.verbose] if self.opts.verbose else []
        return [sys.executable, "-m", module, *args, *verbose]

    def _wait(self, child: _Child, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = child.exited()
            if code is not None:
                raise ChildFailed(
                    f"{child.name} exited with code {code} while starting "
                    f"(log {child.log_path}):\n{child.tail()}"
                )
            if self._stop.is_set():
                raise _Interrupted
            if ready():
                return
            time.sleep(_POLL_S)
        raise ChildFailed(
            f"{child.name} did not come up within {START_TIMEOUT_S:g} s: {what} "
            f"(log {child.log_path}):\n{child.tail()}"
        )

    # ------------------------------------------------------------------- parts

    def start_broker(self) -> None:
        s = self.opts.settings
        child = self._spawn(
            "broker",
            [
                sys.executable,
                "-m",
                "hub.broker",
                "--host",
                s.broker_host,
                "--port",
                str(s.broker_port),
            ],
        )
        host = _connect_host(s.broker_host)
        self._wait(child, lambda: _port_open(host, s.broker_port), "broker port")

    def start_hub(self) -> None:
        status_path = self.data_dir / const.STATUS_FILE_NAME
        status_path.unlink(missing_ok=True)
        child = self._spawn("hub", self._python("hub.service"))
        pid = child.proc.pid if child.proc else -1
        self._wait(child, lambda: _hub_connected(status_path, pid), "hub connected")

    def start_api(self) -> None:
        child = self._spawn("api", self._python("hub.api"))
        self._wait(child, lambda: _http_ok(self.api_url + "/healthz"), "GET /healthz")

    def start_demo(self) -> None:
        self._spawn(
            "demo",
            [
                sys.executable,
                "-m",
                "hub._demo",
                "--mqtt-url",
                self.mqtt_url,
                "--data-dir",
                str(self.data_dir),
                "--speedup",
                str(self.opts.speedup),
            ],
        )

    # ---------------------------------------------------------------- run/stop

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signal = signal.Signals(signum).name
        self._stop.set()

    def run(self) -> int:
        """Start every part, supervise until a signal or a failure, stop all.

        Returns:
            0 after a clean stop, 1 when a part failed.

        Raises:
            PortInUse: a port is taken.
            StoreUnreachable: the store cannot be opened.
            ConfigError: ``--demo`` without the simulators installed.
        """
        self._check()
        old = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        failed = False
        try:
            self._start_all()
            self._print_banner()
            failed = self._supervise()
        except _Interrupted:
            click.echo(f"streamflow: {self._signal}: stopping")
        except ChildFailed as exc:
            click.echo(f"streamflow: error: {exc}", err=True)
            failed = True
        finally:
            failed = not self.stop() or failed
            for sig, handler in old.items():
                signal.signal(sig, handler)
        click.echo("streamflow: stopped" + (" after a failure" if failed else ""))
        return 1 if failed else 0

    def _check(self) -> None:
        s = self.opts.settings
        if self.opts.demo and importlib.util.find_spec("simulators.replay") is None:
            raise ConfigError("--demo needs the simulators package (simulators.replay)")
        ensure_port_free(s.api_host, s.api_port, "--api-port")
        if self.opts.embedded_broker:
            ensure_port_free(s.broker_host, s.broker_port, "--mqtt-port")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Migrate once here, so that hub and API never race on the schema,
        # and an unreachable database is reported before anything starts.
        open_checked_store(s).close()

    def _start_all(self) -> None:
        if self.opts.embedded_broker:
            self.start_broker()
        self.start_hub()
        self.start_api()
        if self.opts.demo:
            self.start_demo()

    def _supervise(self) -> bool:
        """Watch the children until a signal (False) or a failure (True)."""
        while not self._stop.wait(_POLL_S * 2):
            for child in self.children:
                code = child.exited()
                if code is not None:
                    click.echo(
                        f"streamflow: error: {child.name} exited unexpectedly with "
                        f"code {code} (log {child.log_path}):\n{child.tail()}",
                        err=True,
                    )
                    return True
        click.echo(f"streamflow: {self._signal}: stopping")
        return False

    def stop(self) -> bool:
        """Stop the children in reverse order of start; True if all exited 0."""
        clean = True
        order = {"demo": 0, "hub": 1, "api": 2, "broker": 3}
        for child in sorted(self.children, key=lambda c: order[c.name]):
            clean = _stop_child(child) and clean
        self.children.clear()
        return clean

    def _print_banner(self) -> None:
        s = self.opts.settings
        broker = "embedded amqtt" if self.opts.embedded_broker else "external"
        device = self._demo_device() if self.opts.demo else None
        lines = [
            "StreamFlow is up.",
            f"  broker  {redact_url(self.mqtt_url)} ({broker})",
            f"  API     {self.api_url}  (OpenAPI: {self.api_url}/docs)",
            f"  store   {redact_url(s.db)}",
            f"  logs    {self.log_dir}",
            "Try:",
            f"  curl {self.api_url}/healthz",
            f"  curl {self.api_url}/v1/devices",
            f"  curl '{self.api_url}/v1/devices/{device or '<device-id>'}"
            "/readings?limit=10'",
            "Press Ctrl-C to stop.",
        ]
        click.echo("\n".join(lines))

    def _demo_device(self) -> str | None:
        # The demo's first readings take a moment to arrive; name a real
        # device in the example when one shows up soon, else a placeholder.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not self._stop.is_set():
            body = _http_json(self.api_url + "/v1/devices")
            if isinstance(body, list) and body:
                first = body[0]
                ident = first.get("id") if isinstance(first, dict) else None
                if isinstance(ident, str):
                    return ident
            time.sleep(0.5)
        return None


def _stop_child(child: _Child) -> bool:
    proc = child.proc
    if proc is None:
        return True
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(STOP_TIMEOUT_S[child.name])
    except subprocess.TimeoutExpired:
        click.echo(
            f"streamflow: {child.name} did not stop within "
            f"{STOP_TIMEOUT_S[child.name]:g} s: killed",
            err=True,
        )
        proc.kill()
        code = proc.wait(5)
    if child.log is not None:
        child.log.close()
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly,
    # so "killed by SIGTERM" after our SIGTERM is a clean stop too.
    clean = code in (0, -signal.SIGTERM)
    if not clean:
        click.echo(f"streamflow: {child.name} exited with code {code}", err=True)
    return clean


def _port_open(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _hub_connected(path: Path, pid: int) -> bool:
    try:
        status = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    fresh = now_us() - int(status.get("updated_us", 0)) < 30_000_000
    return bool(status.get("pid") == pid and status.get("connected") and fresh)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _http_json(url: str) -> object:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return orjson.loads(resp.read())
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError):
        return None


def run_up(opts: UpOptions) -> int:
    """Run ``streamflow up`` until Ctrl-C or SIGTERM.

    Returns:
        The exit status: 0 after a clean stop, 1 when a part failed.

    Raises:
        PortInUse: a port is taken (the message names the option to change it).
        StoreUnreachable: the store cannot be opened.
        ConfigError: ``--demo`` without the simulators installed.
    """
    return Supervisor(opts).run()
