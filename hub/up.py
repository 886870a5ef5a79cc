"""``streamflow up``: broker, hub, monitor, API (and the demo) on one machine.

Each part runs as its own child process, as it would in a deployment, and
the children talk only through the broker and the store. ``up`` starts them
in order (broker, hub, monitor, API, demo), waits until each answers, prints
where to look, and supervises them. Ctrl-C or SIGTERM stops them in the
reverse order, each cleanly: the demo's edge agent first, then the monitor,
then the hub (which drains its queue into the store and acks), then the API,
then the broker.

Failures are one line each, with the log to read: a part that does not come
up is reported with the cause its log ends with (the rest are stopped, exit
2); a part that dies later is reported with its exit code (the rest are
stopped, exit 1). The data dir is locked (``<data-dir>/.lock``) while ``up``
runs, so that a second ``up`` on it stops at once instead of sharing its
store and status file.

With auth on (the default) ``up`` creates the first admin itself, before the
API starts: the API's output goes to its log file, where a generated
password would never be seen. The banner shows it once.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import secrets
import shutil
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

from edge_agent.lock import DirLock
from hub import const
from hub._errors import ConfigError, HubError
from hub._ports import ensure_port_free
from hub.config import HubSettings, redact_url
from hub.security.context import SecurityContext
from hub.security.setup import ADMIN_NAME, ADMIN_PASSWORD_ENV, ensure_admin
from hub.service import open_checked_store
from hub.storage.base import Store
from protocol.validate import now_us

#: How long each part may take to come up.
START_TIMEOUT_S = 30.0
#: How long each part may take to stop before it is killed; the hub's drain
#: has its own grace inside this.
STOP_TIMEOUT_S: dict[str, float] = {
    "demo": 10.0,
    "monitor": 15.0,
    "hub": const.STOP_GRACE_S + 5.0,
    "api": 10.0,
    "broker": 10.0,
}
_POLL_S = 0.1
#: The demo device the README's examples name, preferred in the banner.
DEMO_DEVICE = "mote-1"
#: Devices asked whether they have readings, for the banner's example.
_DEVICES_PROBED = 20
# The banner's example: the access token out of the token endpoint's JSON.
_JQ_TOKEN = "jq -r .access_token"
_PYTHON_TOKEN = (
    "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
)
# A log line as the entry points write it: date, time, level, logger, message.
_LOG_LINE_LEVELS = (" ERROR ", " CRITICAL ")
_CLI_ERROR_PREFIX = "streamflow: error: "


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
    #: Where this run's part of the (appended) log starts.
    log_start: int = 0
    #: Its failure was reported already (no second line when stopping).
    reported: bool = False

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def cause(self) -> str:
        """The line of this run's log that best says why the child failed."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_start)
                text = f.read().decode(errors="replace")
        except OSError:
            return "no log"
        return last_error_line(text.splitlines())


class ChildFailed(HubError):
    """A part of ``up`` exited or did not come up."""


@dataclass(frozen=True, slots=True)
class FirstAdmin:
    """What the banner says about signing in.

    Attributes:
        auth: whether auth is on (``auth.enabled``).
        created: the admin was created by this start.
        generated: the password generated for it (shown once), or None.
    """

    auth: bool
    created: bool = False
    generated: str | None = None


def broker_logins(store: Store, demo: bool) -> dict[str, dict[str, str]]:
    """Broker logins for the children of ``up`` when the broker checks them.

    Each start issues new secrets (a rotation), handed to the children in
    their environment only, so that no secret of ``up``'s is ever written
    down. The demo's gateway gets one too.

    Returns:
        Per part (``hub``, ``monitor``, ``demo``), the variables to add.
    """
    from hub.security.broker_creds import PrincipalKind, issue

    wanted = [
        ("hub", PrincipalKind.SERVICE, "hub", "STREAMFLOW"),
        ("monitor", PrincipalKind.SERVICE, "monitor", "STREAMFLOW"),
    ]
    if demo:
        from simulators.replay import DEMO_GATEWAY

        wanted.append(("demo", PrincipalKind.GATEWAY, DEMO_GATEWAY, "STREAMFLOW_DEMO"))
    logins: dict[str, dict[str, str]] = {}
    for part, kind, ident, prefix in wanted:
        issued = issue(store, kind, ident)  # type: ignore[arg-type]
        if issued is None:
            raise ConfigError(
                f"broker_auth: the user name of {ident!r} belongs to another "
                "principal in the store"
            )
        record, secret = issued
        logins[part] = {
            f"{prefix}_USERNAME": record.username,
            f"{prefix}_PASSWORD": secret,
        }
    return logins


def first_admin(store: Store, settings: HubSettings) -> FirstAdmin:
    """Create the first admin (no user in the store yet) before the API starts.

    The password is ``STREAMFLOW_ADMIN_PASSWORD``, else generated here, so
    that ``up`` can show it in its banner (:func:`hub.security.setup.first_start`
    would print it, but not hand it back).

    Args:
        store: the migrated store (it holds the users as well).
        settings: the resolved settings (``auth``, the data dir of the JWT key).

    Returns:
        What happened, for the banner.

    Raises:
        OSError: the JWT key in the data dir cannot be created or read.
    """
    if not settings.auth.enabled:
        return FirstAdmin(auth=False)
    given = os.environ.get(ADMIN_PASSWORD_ENV)
    password = given or secrets.token_urlsafe(18)
    # The store is both a Store and an AuthStore (hub/storage/_*_auth.py).
    ctx = SecurityContext.build(
        settings.auth,
        store,  # type: ignore[arg-type]
        settings.data_dir,
    )
    if not ensure_admin(ctx, password=password):
        return FirstAdmin(auth=True)
    return FirstAdmin(auth=True, created=True, generated=None if given else password)


def sign_in_lines(admin: FirstAdmin) -> list[str]:
    """The banner's line on who signs in with what (none with auth off)."""
    if not admin.auth:
        return ["  sign-in none: auth.enabled is false, every route is open"]
    if admin.generated is not None:
        return [
            f"  sign-in user {ADMIN_NAME}, password {admin.generated} "
            f"(generated; shown only now, {ADMIN_PASSWORD_ENV} chooses it)"
        ]
    if admin.created:
        return [f"  sign-in user {ADMIN_NAME}, password from {ADMIN_PASSWORD_ENV}"]
    return [
        "  sign-in a user of the store (the first admin's password was shown "
        "at the first start)"
    ]


def try_lines(api_url: str, admin: FirstAdmin, device: str | None) -> list[str]:
    """The banner's example: get a token, then call the API with it.

    Args:
        api_url: where the API answers.
        admin: what :func:`first_admin` did.
        device: a device with readings, or None for a placeholder.

    Returns:
        The lines, each a command for a POSIX shell.
    """
    readings = f"'{api_url}/v1/devices/{device or '<device-id>'}/readings?limit=10'"
    if not admin.auth:
        return [
            "Try:",
            f"  curl {api_url}/healthz",
            f"  curl {api_url}/v1/devices",
            f"  curl {readings}",
        ]
    if admin.created and admin.generated is None:
        head, password = "Try:", f"${ADMIN_PASSWORD_ENV}"
    else:
        head, password = "Try (with PW set to the admin password):", "$PW"
    # jq where it is installed; Python is there wherever streamflow is.
    pick = _JQ_TOKEN if shutil.which("jq") else _PYTHON_TOKEN
    auth = '-H "Authorization: Bearer $TOKEN"'
    return [
        head,
        f"  curl {api_url}/healthz",
        f"  TOKEN=$(curl -s -d grant_type=password -d username={ADMIN_NAME} "
        f'--data-urlencode "password={password}" {api_url}/v1/auth/token | {pick})',
        f"  curl {auth} {api_url}/v1/devices",
        f"  curl {auth} {readings}",
    ]


def last_error_line(lines: list[str]) -> str:
    """Pick the line of a child's log that names why it failed.

    The entry points' own one-line error (``streamflow: error: …``) wins,
    then the last line of a traceback (the exception), then the last ERROR
    or CRITICAL log line, then simply the last line.

    Args:
        lines: the log lines of this run of the child.

    Returns:
        The line, stripped of its prefix or timestamp, or ``no output``.
    """
    lines = [line.strip() for line in lines if line.strip()]
    for line in reversed(lines):
        if line.startswith(_CLI_ERROR_PREFIX):
            return line.removeprefix(_CLI_ERROR_PREFIX)
    if any(line.startswith("Traceback ") for line in lines):
        return lines[-1]
    for line in reversed(lines):
        if any(level in line for level in _LOG_LINE_LEVELS):
            # date time LEVEL logger message: keep the message.
            parts = line.split(" ", 4)
            return parts[4] if len(parts) == 5 else line
    return lines[-1] if lines else "no output"


def pick_device(devices: list[str], has_readings: Callable[[str], bool]) -> str | None:
    """The device the banner's example names: one that has readings.

    Args:
        devices: device ids as the API lists them.
        has_readings: whether a device has readings (asks the API).

    Returns:
        :data:`DEMO_DEVICE` if it has readings, else the first of the first
        devices listed that has, else None.
    """
    first = [DEMO_DEVICE] if DEMO_DEVICE in devices else []
    first += [d for d in devices if d != DEMO_DEVICE]
    return next((d for d in first[:_DEVICES_PROBED] if has_readings(d)), None)


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
        self.admin = FirstAdmin(auth=s.auth.enabled)
        #: Broker logins made for the children (broker_auth on): part -> env.
        self._logins: dict[str, dict[str, str]] = {}
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

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> _Child:
        child = _Child(name, argv, self.log_dir / f"{name}.log")
        child.log = open(child.log_path, "ab")  # noqa: SIM115 - closed in stop()
        # The log keeps earlier runs; a failure is explained from this one's.
        child.log_start = child.log.seek(0, os.SEEK_END)
        child.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=child.log,
            stderr=subprocess.STDOUT,
            env={**self._env(), **(env or {})},
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
                child.reported = True
                raise ChildFailed(
                    f"{child.name} exited with code {code} while starting: "
                    f"{child.cause()} (log {child.log_path})"
                )
            if self._stop.is_set():
                raise _Interrupted
            if ready():
                return
            time.sleep(_POLL_S)
        raise ChildFailed(
            f"{child.name} did not come up within {START_TIMEOUT_S:g} s "
            f"(waiting for {what}); its log ends: {child.cause()} "
            f"(log {child.log_path})"
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
        child = self._spawn("hub", self._python("hub.service"), self._logins.get("hub"))
        pid = child.proc.pid if child.proc else -1
        self._wait(child, lambda: _hub_connected(status_path, pid), "hub connected")

    def start_monitor(self) -> None:
        from hub.monitor.service import STATUS_FILE_NAME

        status_path = self.data_dir / STATUS_FILE_NAME
        status_path.unlink(missing_ok=True)
        child = self._spawn(
            "monitor",
            self._python("hub.monitor.service"),
            {**self._monitor_env(), **self._logins.get("monitor", {})},
        )
        pid = child.proc.pid if child.proc else -1
        # The monitor's status file has the hub's pid/connected/updated_us.
        self._wait(child, lambda: _hub_connected(status_path, pid), "monitor connected")

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
            self._logins.get("demo"),
        )

    # ---------------------------------------------------------------- run/stop

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signal = signal.Signals(signum).name
        self._stop.set()

    def run(self) -> int:
        """Start every part, supervise until a signal or a failure, stop all.

        Returns:
            0 after a clean stop, 1 when a part failed after start, 2 when a
            part did not come up.

        Raises:
            PortInUse: a port is taken.
            StoreUnreachable: the store cannot be opened.
            ConfigError: ``--demo`` without the simulators installed, or a
                port outside 1-65535.
            DataDirInUse: another ``up`` runs on the data dir.
        """
        self._check_ports()
        with DirLock(self.data_dir):
            self._check()
            return self._run()

    def _run(self) -> int:
        old = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        failed = start_failed = False
        try:
            self._start_all()
            self._print_banner()
            failed = self._supervise()
        except _Interrupted:
            click.echo(f"streamflow: {self._signal}: stopping")
        except ChildFailed as exc:
            click.echo(f"streamflow: error: {exc}", err=True)
            start_failed = True
        finally:
            failed = not self.stop() or failed
            for sig, handler in old.items():
                signal.signal(sig, handler)
        if start_failed:  # the one line above says it all
            return 2
        click.echo("streamflow: stopped" + (" after a failure" if failed else ""))
        return 1 if failed else 0

    def _check_ports(self) -> None:
        # Port 0 would let the OS choose, and then nobody knows where the
        # API or the broker is: `up` needs real ports to hand to its parts.
        s = self.opts.settings
        ports = [("--api-port", "api_port", s.api_port)]
        if self.opts.embedded_broker:
            ports.append(("--mqtt-port", "broker_port", s.broker_port))
        for option, setting, port in ports:
            if not 1 <= port <= 65535:
                raise ConfigError(
                    f"invalid port {port} for {option} ({setting}): ports must be "
                    "1-65535"
                )

    def _check(self) -> None:
        s = self.opts.settings
        if self.opts.demo and importlib.util.find_spec("simulators.replay") is None:
            raise ConfigError("--demo needs the simulators package (simulators.replay)")
        ensure_port_free(s.api_host, s.api_port, "--api-port")
        if self.opts.embedded_broker:
            ensure_port_free(s.broker_host, s.broker_port, "--mqtt-port")
        if s.monitor.metrics_port:
            ensure_port_free(
                s.monitor.metrics_host, s.monitor.metrics_port, "monitor.metrics_port"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Migrate once here, so that hub and API never race on the schema,
        # and an unreachable database is reported before anything starts.
        store = open_checked_store(s)
        try:
            self.admin = first_admin(store, s)
            if self.admin.generated:
                # Now, not only in the banner: should a part fail to start,
                # the banner never comes, and the password is shown once.
                print(
                    f"streamflow: first start: created user 'admin' with password "
                    f"{self.admin.generated} (shown only at this start; "
                    f"{ADMIN_PASSWORD_ENV} chooses it)",
                    flush=True,
                )
            if self.opts.embedded_broker and s.broker_auth == "on":
                self._logins = broker_logins(store, self.opts.demo)
        finally:
            store.close()

    def _start_all(self) -> None:
        if self.opts.embedded_broker:
            self.start_broker()
        self.start_hub()
        self.start_monitor()
        self.start_api()
        if self.opts.demo:
            self.start_demo()

    def _supervise(self) -> bool:
        """Watch the children until a signal (False) or a failure (True)."""
        while not self._stop.wait(_POLL_S * 2):
            for child in self.children:
                code = child.exited()
                if code is not None:
                    child.reported = True
                    click.echo(
                        f"streamflow: error: {child.name} exited unexpectedly with "
                        f"code {code} (log {child.log_path})",
                        err=True,
                    )
                    return True
        click.echo(f"streamflow: {self._signal}: stopping")
        return False

    def stop(self) -> bool:
        """Stop the children in reverse order of start; True if all exited 0."""
        clean = True
        order = {"demo": 0, "monitor": 1, "hub": 2, "api": 3, "broker": 4}
        for child in sorted(self.children, key=lambda c: order[c.name]):
            clean = _stop_child(child) and clean
        self.children.clear()
        return clean

    def _print_banner(self) -> None:
        s = self.opts.settings
        broker = "embedded amqtt" if self.opts.embedded_broker else "external"
        device = self._example_device()
        lines = [
            "StreamFlow is up.",
            f"  broker  {redact_url(self.mqtt_url)} ({broker})",
            f"  API     {self.api_url}  (OpenAPI: {self.api_url}/docs)",
            f"  store   {redact_url(s.db)}",
            f"  alerts  {self.api_url}/ (live page), {self.api_url}/v1/alerts, "
            f"MQTT sf/v1/alerts/#",
            *self._metrics_line(),
            f"  logs    {self.log_dir}",
            *sign_in_lines(self.admin),
            *try_lines(self.api_url, self.admin, device),
            "Press Ctrl-C to stop.",
        ]
        click.echo("\n".join(lines))

    def _monitor_env(self) -> dict[str, str]:
        # The demo compresses time by its speed-up (a mote's 31 s become half
        # a second at 60), so the monitor's durations in data time shrink
        # with it; the learned intervals shrink by themselves.
        if not self.opts.demo or self.opts.speedup <= 0:
            return {}
        m, speedup = self.opts.settings.monitor, self.opts.speedup
        return {
            "STREAMFLOW_MONITOR__MIN_SILENCE_S": f"{m.min_silence_s / speedup:g}",
            "STREAMFLOW_MONITOR__INTERVAL_REFRESH_S": (
                f"{m.interval_refresh_s / speedup:g}"
            ),
        }

    def _metrics_line(self) -> list[str]:
        m = self.opts.settings.monitor
        if not m.metrics_port:
            return []
        return [
            f"  metrics http://{_connect_host(m.metrics_host)}:{m.metrics_port}"
            "/metrics (Prometheus)"
        ]

    def _example_device(self) -> str | None:
        # The demo's first readings take a moment to arrive; name a device
        # with readings in the example when one shows up soon (the store may
        # hold some already), else a placeholder. Read from the store, the
        # API's own source: asking the API would need a sign-in, and `up`
        # knows a password only on the first start.
        wait_s = 10.0 if self.opts.demo else 0.0
        deadline = time.monotonic() + wait_s
        try:
            store = open_checked_store(self.opts.settings, migrate=False)
        except HubError:
            return None  # the banner shows a placeholder; the hub reports it
        try:
            while not self._stop.is_set():
                device = pick_device(_devices(store), store_has_readings(store))
                # The demo's devices appear one by one: give the README's
                # device its moment rather than naming whichever came first.
                settled = device == DEMO_DEVICE or not self.opts.demo
                if (device and settled) or time.monotonic() >= deadline:
                    return device
                time.sleep(0.25)
        finally:
            store.close()
        return None


def _devices(store: Store) -> list[str]:
    try:
        return [d.id for d in store.list_devices()]
    except Exception:  # the banner's example only: never fatal
        return []


def store_has_readings(store: Store) -> Callable[[str], bool]:
    """``has_readings`` for :func:`pick_device`, asking ``store``."""

    def has_readings(device: str) -> bool:
        try:
            return bool(store.latest(device))
        except Exception:  # the banner's example only: never fatal
            return False

    return has_readings


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
    if not clean and not child.reported:
        click.echo(
            f"streamflow: {child.name} exited with code {code} (log {child.log_path})",
            err=True,
        )
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


def run_up(opts: UpOptions) -> int:
    """Run ``streamflow up`` until Ctrl-C or SIGTERM.

    Returns:
        The exit status: 0 after a clean stop, 1 when a part failed after
        start, 2 when a part did not come up (one line said why).

    Raises:
        PortInUse: a port is taken (the message names the option to change it).
        StoreUnreachable: the store cannot be opened.
        ConfigError: ``--demo`` without the simulators installed, or a port
            outside 1-65535.
        DataDirInUse: another process holds the data dir.
    """
    return Supervisor(opts).run()
