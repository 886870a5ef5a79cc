"""Scenario 2, alerts: reading time at the edge → alert on the stream and device.

Every part runs as its own process, as in a deployment: Mosquitto (the hub's
broker), the hub (:mod:`benchmarks._hubproc`, processors on, with a threshold
rule created in the store), ``streamflow monitor``, ``streamflow api``, and
two alerting gateways (``streamflow-edge``, each with its own local
Mosquitto, so that the downlink relay is real). Meanwhile load processes
(real edge agents, ``python -m benchmarks.alerts``) keep the hub at half the
ingest rate of scenario 1 in the same run (or of a short calibration ingest,
or ``--rate``).

Plain JSON sensors (a paho client on each local broker) publish one reading
per device every ``alerts_interval_s``, alternately breaching and clearing
the rule, so that every reading opens (or reopens) or resolves one alert.
The reading's time is its publish time. Measured from it, in this process:

- the alert change on ``GET /v1/alerts/stream`` (one SSE client, the first
  admin's token);
- the downlink on the device's topic at its gateway's local broker
  (``sf/v1/dev/{dev}/down/alert``), relayed by its edge agent;
- on the hub's broker, for the breakdown: the processor's event, the
  monitor's ``sf/v1/alerts/{dev}`` and the downlink before the relay.

Two phases, each with its own broker, hub, monitor and API:

1. production defaults: two alerting gateways at once, one with the edge's
   default ``batch_max_age_s`` (0.5 s), one tuned to 0.05 s (the edge's
   batching wait is the largest share of the path at low rates);
2. tuned: the 0.05 s gateway, with the hub's processors limited to rollups
   and thresholds (quality and anomaly cost per reading in Python on the
   one processor thread, which then falls behind at half load and makes
   the tail) and the API's ``api_stream_poll_s`` at 0.02 s.

Baseline, in the same run and under the same load: a QoS 1 publish to one
topic of the hub's broker, received by a subscriber (the floor of any path
through the broker). The notes give each stage of the path (commit, event,
alert, downlink before and after the relay, stream) from the hub's commit
log and the taps on the brokers, and how busy the processor thread was.

Every expected alert change must arrive on both paths: a lost one is shown
in the table (received beside expected) and fails the scenario.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import click
import httpx
import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks import _services as sv
from benchmarks._commitlog import CommitLog, read_logs
from benchmarks._context import BenchContext
from benchmarks._gateways import METRIC, SERIES_PER_GATEWAY, device_id, gateway_id
from benchmarks.errors import CheckError, ServiceError
from benchmarks.results import ScenarioResult
from hub import const
from protocol import codec, topics
from protocol.const import TOPIC_ROOT
from protocol.readings import Reading
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

NAME = "alerts"
#: The issue's target on this machine: alert p99 under this at half load.
TARGET_P99_MS = 250.0
RULE_ID = "bench-alert-hot"
#: A plausible hot reading (the quality processor flags temperatures above
#: 85 °C as impossible, which would add an alert of its own).
THRESHOLD = 35.0
BREACH_VALUE = 45.0
CLEAR_VALUE = 20.0
#: The tuned gateway's batching wait (the default is the edge's 0.5 s).
TUNED_BATCH_MAX_AGE_S = 0.05
#: The tuned hub: the processors that cost per reading in Python (quality,
#: anomaly) off, so that the one processor thread keeps up at half load.
TUNED_HUB_ENV = {
    "STREAMFLOW_PROCESSORS__ROUTES": '[{"processor": "rollups"}, '
    '{"processor": "thresholds"}]'
}
#: And the API's live stream reads the alert history 5 times as often.
TUNED_API_ENV = {"STREAMFLOW_API_STREAM_POLL_S": "0.02"}
TUNED_HUB_LABEL = "processors rollups+thresholds only, api_stream_poll_s 0.02"
#: The first admin's password; the same as scenario 4's, which shares the
#: scratch database's users (the API creates the admin only once).
ADMIN_PASSWORD = "bench-admin-password"
#: Period of the baseline's probe messages.
_PROBE_S = 0.05
_PROBE_TOPIC = "bench/alerts/probe"
#: Load before the first breach, so that the hub is at its steady state.
_WARMUP_S = 1.5
#: The longest wait for the last alerts once the load stopped (the default
#: hub's processors may be tens of seconds behind at half load).
_DRAIN_S = 60.0
#: Period of the load threads' submits.
_LOAD_TICK_S = 0.02
_ACK_TIMEOUT_S = 120.0
_START_S = 30.0


@dataclass(frozen=True, slots=True)
class Variant:
    """An alerting gateway: its id, its devices, its edge batching wait."""

    name: str
    gateway: str
    devices: tuple[str, ...]
    batch_max_age_s: float | None
    hub: str = "hub defaults"

    @property
    def label(self) -> str:
        """How the table names it."""
        if self.batch_max_age_s is None:
            return f"edge batch_max_age_s 0.5 (default), {self.hub}"
        return f"edge batch_max_age_s {self.batch_max_age_s:g} (tuned), {self.hub}"


def variants(devices: int) -> list[Variant]:
    """The default and the tuned gateway, ``devices`` devices each."""
    return [
        Variant(
            name,
            f"bench-alert-gw-{name}",
            tuple(f"bench-alert-{name}-{i:02d}" for i in range(devices)),
            age,
        )
        for name, age in (("default", None), ("tuned", TUNED_BATCH_MAX_AGE_S))
    ]


def fingerprint(device: str) -> str:
    """The fingerprint of the rule's alert on a device."""
    return f"device/{device}/threshold/{METRIC}:{RULE_ID}"


# --------------------------------------------------------------------- the run


def run(ctx: BenchContext) -> ScenarioResult:
    """Run scenario 2 and its baseline, both phases; return the figures.

    Raises:
        ServiceError: a part did not start.
        CheckError: an alert change was lost on a path.
    """
    s = ctx.sizes
    result = ScenarioResult(NAME)
    db = ctx.database()
    work = ctx.workdir / NAME
    work.mkdir(parents=True, exist_ok=True)
    rate, source = _load_rate(ctx, work, db)
    background = rate / 2
    lost: dict[str, int] = {}
    for phase in phases(s.alerts_devices, s.alerts_tuned_phase):
        ctx.progress(
            NAME,
            f"{phase.title}: background {background:,.0f} readings/s (half of "
            f"{rate:,.0f}, {source}); {len(phase.variants) * s.alerts_devices} "
            f"alerting devices for {s.alerts_s:g} s",
        )
        done = _run_phase(ctx, work / phase.name, db, phase, background)
        _figures(result, done, phase, source)
        lost.update({k: v for k, v in done.match.lost().items() if v})
    if lost:
        what = ", ".join(f"{k}: {v}" for k, v in lost.items())
        raise AlertsLost(
            f"alert changes lost, not received {_DRAIN_S:g} s after the load "
            f"stopped ({what}): see the alerts received rows",
            result,
        )
    return result


class AlertsLost(CheckError):
    """Alert changes never arrived; the figures are kept for the table.

    Attributes:
        partial: what the scenario measured (the suite shows it anyway).
    """

    def __init__(self, message: str, partial: ScenarioResult) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True, slots=True)
class Phase:
    """One hub configuration and the alerting gateways measured on it.

    Attributes:
        name: its folder and the prefix of its ids.
        title: how the progress lines name it.
        hub_env: the hub's settings beside the defaults.
        variants: the alerting gateways.
        api_env: the API's settings beside the defaults.
    """

    name: str
    title: str
    hub_env: dict[str, str]
    variants: list[Variant]
    api_env: dict[str, str] = field(default_factory=dict)


def phases(devices: int, tuned_hub: bool = True) -> list[Phase]:
    """Production defaults (two edge settings), then the tuned hub if asked."""
    default, tuned = variants(devices)
    hub_tuned = Variant(
        "tunedhub",
        "bench-alert-gw-tunedhub",
        tuple(f"bench-alert-tunedhub-{i:02d}" for i in range(devices)),
        TUNED_BATCH_MAX_AGE_S,
        hub=TUNED_HUB_LABEL,
    )
    defaults = Phase("defaults", "hub on production defaults", {}, [default, tuned])
    if not tuned_hub:
        return [defaults]
    return [
        defaults,
        Phase(
            "tuned",
            f"hub and API tuned ({TUNED_HUB_LABEL})",
            TUNED_HUB_ENV,
            [hub_tuned],
            TUNED_API_ENV,
        ),
    ]


@dataclass(frozen=True, slots=True)
class _PhaseResult:
    match: Matched
    background: float
    achieved: float
    hub_status: dict[str, Any]
    seconds: float


def _run_phase(
    ctx: BenchContext, work: Path, db: str, phase: Phase, background: float
) -> _PhaseResult:
    work.mkdir(parents=True, exist_ok=True)
    sv.reset_database(db)
    _create_rule(db)
    gateways = phase.variants
    with ExitStack() as stack:
        hub_url = stack.enter_context(sv.mosquitto(work))
        locals_ = [
            stack.enter_context(sv.mosquitto(work, f"mosquitto-local-{v.name}"))
            for v in gateways
        ]
        hub = sv.HubProcess(work, hub_url, db, env=phase.hub_env)
        hub.start_hub()
        stack.callback(hub.stop)
        stack.enter_context(_monitor(work, hub_url, db))
        api_url = stack.enter_context(_api(work, db, phase.api_env))
        for v, local in zip(gateways, locals_, strict=True):
            stack.enter_context(_relay(work, hub_url, local, v))
        taps = Taps(hub_url, locals_, gateways)
        stack.callback(taps.close)
        stream = stack.enter_context(_stream(api_url))
        loads = _start_loads(ctx, work, hub_url, background)
        stack.callback(_stop_all, loads)
        started = time.monotonic()
        for load, _ in loads:
            _send_line(load, b"go\n")
        time.sleep(_WARMUP_S)
        injected = _inject(ctx, locals_, gateways, taps)
        # The load stops first: alerts that are late behind it still come
        # (and show in the latencies); those that never come are lost.
        load_docs = _finish_loads(loads)
        _wait_received(ctx, injected, taps, stream)
        seconds = time.monotonic() - started
    achieved = sum(d["sent"] for d in load_docs) / max(
        max(d["seconds"] for d in load_docs), 1e-6
    )
    match = Matched(injected, taps, stream, read_logs(hub.commit_logs()))
    match.dump(work / "latencies.json")
    try:
        status = orjson.loads((hub.data_dir / const.STATUS_FILE_NAME).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        status = {}
    return _PhaseResult(match, background, achieved, status, seconds)


def _load_rate(ctx: BenchContext, work: Path, db: str) -> tuple[float, str]:
    """The full ingest rate the load is half of, and where it comes from."""
    if ctx.alerts_rate is not None:
        return ctx.alerts_rate, "--rate"
    if ctx.ingest_rate is not None:
        return ctx.ingest_rate, "scenario 1 of this run"
    from benchmarks import ingest

    n = ctx.sizes.alerts_calibration_readings
    ctx.progress(NAME, f"calibration ingest: {n:,} readings end to end")
    calib = replace(ctx, sizes=replace(ctx.sizes, ingest_readings=n))
    sv.reset_database(db)
    cal_work = work / "calibration"
    cal_work.mkdir(parents=True, exist_ok=True)
    with sv.mosquitto(cal_work) as url:
        e2e = ingest._end_to_end(calib, cal_work, url, db)
    return e2e.rate, f"calibration ingest of {n:,} readings in this run"


def _create_rule(db: str) -> None:
    from hub.processors.thresholds import Selector, ThresholdRule, create_rule
    from hub.storage.timescale import TimescaleStore

    rule = ThresholdRule(
        id=RULE_ID,
        name="bench alert latency",
        condition="above",
        threshold=THRESHOLD,
        severity="critical",
        selector=Selector(devices=["bench-alert-*"], metrics=[METRIC]),
    )
    with TimescaleStore(db) as store:
        create_rule(store, rule, replace=True)


# ------------------------------------------------------------------ the parts


def wait_log(child: sv.Child, text: str, timeout_s: float = _START_S) -> None:
    """Wait until ``text`` is in the child's log.

    Raises:
        ServiceError: it exited, or the text did not come within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    needle = text.encode()
    while time.monotonic() < deadline:
        try:
            if needle in child.log_path.read_bytes():
                return
        except OSError:
            pass
        if not child.running:
            break
        time.sleep(0.05)
    raise ServiceError(
        f"{child.name} did not log {text!r} in {timeout_s:g} s or exited; "
        f"log tail:\n{child.tail()}"
    )


@contextmanager
def _monitor(work: Path, hub_url: str, db: str) -> Iterator[sv.Child]:
    """``streamflow monitor`` on the hub's broker and store, subscribed."""
    env = sv.child_env(
        {
            "STREAMFLOW_DB": db,
            "STREAMFLOW_MQTT_URL": hub_url,
            "STREAMFLOW_DATA_DIR": str(work / "monitor"),
            "STREAMFLOW_MONITOR__METRICS_PORT": "0",
        }
    )
    child = sv.Child("monitor", [sys.executable, "-m", "hub.cli", "monitor"], work, env)
    child.start()
    try:
        wait_log(child, "subscriptions ready")
        yield child
    finally:
        child.stop()


@contextmanager
def _api(work: Path, db: str, extra: dict[str, str]) -> Iterator[str]:
    """``streamflow api`` on a free port; yield its URL once it answers."""
    port = sv.free_port()
    argv = [sys.executable, "-m", "hub.cli", "api", "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip
    env = sv.child_env(
        {
            "STREAMFLOW_DB": db,
            "STREAMFLOW_DATA_DIR": str(work / "api"),
            "STREAMFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **extra,
        }
    )
    child = sv.Child("api", argv, work, env)
    child.start()
    try:
        sv.wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.stop()


@contextmanager
def _relay(work: Path, hub_url: str, local_url: str, v: Variant) -> Iterator[None]:
    """``streamflow-edge`` of an alerting gateway, subscribed and connected."""
    argv = [
        sys.executable, "-m", "edge_agent.cli",
        "--gateway-id", v.gateway,
        "--hub-url", hub_url,
        "--local-url", local_url,
        "--data-dir", str(work / f"edge-{v.name}"),
    ]  # fmt: skip
    extra = {}
    if v.batch_max_age_s is not None:
        extra["STREAMFLOW_EDGE_BATCH_MAX_AGE_S"] = f"{v.batch_max_age_s:g}"
    child = sv.Child(f"edge-{v.name}", argv, work, sv.child_env(extra))
    child.start()
    try:
        wait_log(child, "local subscriptions ready")
        wait_log(child, "uplink connected")
        yield
    finally:
        child.stop()


def _client(url: str, name: str) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"sf-bench-alerts-{name}"
    )
    client.max_inflight_messages_set(100)
    client.connect(*sv.mqtt_address(url), keepalive=30)
    client.loop_start()
    return client


class Taps:
    """Subscribers that stamp each message's arrival: hub broker and locals.

    On the hub's broker: the rule's events, the monitor's alerts and the
    downlinks of the alerting gateways, and the baseline's probes (a second
    client publishes them). On each local broker: the devices' downlinks.
    """

    def __init__(self, hub_url: str, locals_: list[str], gateways: list[Variant]):
        self.messages: list[tuple[str, str, bytes, int]] = []
        self._lock = threading.Lock()
        self._clients: list[mqtt.Client] = []
        self._ready: list[threading.Event] = []
        hub_filters = [_PROBE_TOPIC]
        for v in gateways:
            hub_filters.append(f"{TOPIC_ROOT}/gw/{v.gateway}/down/dev/+/alert")
            for dev in v.devices:
                hub_filters += [topics.event("threshold", dev), topics.alert(dev)]
        self._subscribe("hub", hub_url, hub_filters)
        for v, url in zip(gateways, locals_, strict=True):
            self._subscribe(v.name, url, [f"{TOPIC_ROOT}/dev/+/down/alert"])
        for ready in self._ready:
            if not ready.wait(10):
                self.close()
                raise ServiceError("taps not subscribed within 10 s")
        self._prober = _client(hub_url, "probe-pub")
        self._clients.append(self._prober)
        self._stop = threading.Event()
        self.probes = 0
        self._thread = threading.Thread(target=self._probe, name="bench-probe")
        self._thread.start()

    def _subscribe(self, where: str, url: str, filters: list[str]) -> None:
        ready = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sf-bench-alerts-tap-{where}"
        )

        def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
            stamped = now_us()
            with self._lock:
                self.messages.append((where, msg.topic, bytes(msg.payload), stamped))

        client.on_connect = lambda c, *a: c.subscribe([(f, 1) for f in filters])
        client.on_subscribe = lambda *a: ready.set()
        client.on_message = on_message
        client.connect(*sv.mqtt_address(url), keepalive=30)
        client.loop_start()
        self._clients.append(client)
        self._ready.append(ready)

    def _probe(self) -> None:
        while not self._stop.wait(_PROBE_S):
            self._prober.publish(_PROBE_TOPIC, str(now_us()).encode(), qos=1)
            self.probes += 1

    def stop_probes(self) -> None:
        """Stop the baseline's probes."""
        self._stop.set()
        self._thread.join(5)

    def snapshot(self) -> list[tuple[str, str, bytes, int]]:
        """Every message so far: where, topic, payload, arrival µs."""
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        """Stop the probes and disconnect every client."""
        self.stop_probes()
        for client in self._clients:
            client.disconnect()
            client.loop_stop()
        self._clients.clear()


@dataclass(slots=True)
class Stream:
    """The SSE client's received alert changes: (arrival µs, alert JSON)."""

    changes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


@contextmanager
def _stream(api_url: str) -> Iterator[Stream]:
    """Sign in as the first admin and follow ``GET /v1/alerts/stream``."""
    http = httpx.Client(base_url=api_url, timeout=httpx.Timeout(10.0, read=60.0))
    stream = Stream()
    try:
        resp = http.post(
            "/v1/auth/token",
            data={
                "grant_type": "password",
                "username": "admin",
                "password": ADMIN_PASSWORD,
            },
        )
        resp.raise_for_status()
        http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
    except httpx.HTTPError as exc:
        http.close()
        raise ServiceError(f"API sign-in failed: {exc}") from exc
    request = http.build_request("GET", "/v1/alerts/stream")
    response = http.send(request, stream=True)
    thread = threading.Thread(
        target=_follow, args=(response, stream), name="bench-sse", daemon=True
    )
    thread.start()
    try:
        if not stream.connected.wait(10):
            raise ServiceError(f"alert stream did not start: {stream.error}")
        yield stream
    finally:
        response.close()
        thread.join(5)
        http.close()


def _follow(response: httpx.Response, stream: Stream) -> None:
    try:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data:"):
                stamped = now_us()
                stream.changes.append((stamped, orjson.loads(line[5:])))
            elif line.startswith("retry:"):
                stream.connected.set()
    except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
        stream.error = str(exc)
    except Exception as exc:  # a closed response ends the iteration oddly
        stream.error = f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- the readings


@dataclass(frozen=True, slots=True)
class Injected:
    """A reading published by a sensor: gateway variant, device, time, breach."""

    variant: str
    device: str
    ts_us: int
    breach: bool


def _inject(
    ctx: BenchContext,
    locals_: list[str],
    gateways: list[Variant],
    taps: Taps,
) -> list[Injected]:
    """Publish the sensors' readings on schedule; stop the probes after."""
    s = ctx.sizes
    rounds = max(2, int(s.alerts_s / s.alerts_interval_s) // 2 * 2)
    step = s.alerts_interval_s / s.alerts_devices
    sensors = [
        _client(url, f"sensors-{v.name}")
        for v, url in zip(gateways, locals_, strict=True)
    ]
    injected: list[Injected] = []
    try:
        ctx.progress(NAME, f"{rounds} breach/clear rounds, a reading every "
                     f"{step:.2f} s per gateway")  # fmt: skip
        t0 = time.monotonic()
        for n in range(rounds * s.alerts_devices):
            delay = t0 + n * step - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            j, k = n % s.alerts_devices, n // s.alerts_devices
            breach = k % 2 == 0
            value = BREACH_VALUE + k * 0.001 if breach else CLEAR_VALUE
            for v, client in zip(gateways, sensors, strict=True):
                # Each its own time: the commit log tells readings by it.
                ts = now_us()
                doc = {"ts": ts, METRIC: value}
                client.publish(topics.telemetry(v.devices[j]), codec.dumps(doc), 1)
                injected.append(Injected(v.name, v.devices[j], ts, breach))
    finally:
        taps.stop_probes()
        for client in sensors:
            client.disconnect()
            client.loop_stop()
    return injected


def _wait_received(
    ctx: BenchContext, injected: list[Injected], taps: Taps, stream: Stream
) -> None:
    expected = len(injected)
    deadline = time.monotonic() + _DRAIN_S
    while time.monotonic() < deadline:
        wanted = {fingerprint(i.device) for i in injected}
        got_sse = sum(1 for _, a in stream.changes if a.get("fingerprint") in wanted)
        got_down = sum(
            1
            for where, _, payload, _ in taps.snapshot()
            if where != "hub"
            and orjson.loads(payload)["body"].get("fingerprint") in wanted
        )
        if got_sse >= expected and got_down >= expected:
            return
        time.sleep(0.1)
    ctx.progress(
        NAME, f"[red]not every alert arrived {_DRAIN_S:g} s after the load[/red]"
    )


# ------------------------------------------------------------------- matching


class Matched:
    """Each injected reading beside the arrival of its alert change, per path.

    Within a device, the alert changes come in the order of its readings
    (one publisher, QoS 1; the stream in history order), so the k-th change
    of the rule's alert on a device answers the device's k-th reading. A
    change of the wrong kind (a breach answered by ``resolved``) counts as
    lost.
    """

    PATHS = (
        "commit",
        "event",
        "alert_mqtt",
        "downlink_hub",
        "downlink_device",
        "stream",
    )
    #: How the notes name each path.
    STAGES: ClassVar[dict[str, str]] = {
        "commit": "committed by the hub",
        "event": "processor event on the broker",
        "alert_mqtt": "monitor's alert on sf/v1/alerts",
        "downlink_hub": "downlink on the hub broker",
        "downlink_device": "relayed to the device",
        "stream": "SSE stream",
    }

    def __init__(
        self,
        injected: list[Injected],
        taps: Taps,
        stream: Stream,
        commits: CommitLog,
    ):
        self.injected = injected
        # A sensor's reading is alone in its series block: count 1, its time.
        single = commits.count == 1
        committed = dict(
            zip(
                commits.first_us[single].tolist(),
                commits.committed_us[single].tolist(),
                strict=True,
            )
        )
        per: dict[str, dict[str, list[tuple[int, str]]]] = {p: {} for p in self.PATHS}
        events: dict[tuple[str, int], int] = {}
        for where, topic, payload, t in taps.snapshot():
            if topic == _PROBE_TOPIC:
                continue
            doc = orjson.loads(payload)
            if "/events/" in topic:
                events.setdefault((doc["device"], int(doc["ts_us"])), t)
            elif "/down/" in topic:
                body = doc["body"]
                path = "downlink_hub" if where == "hub" else "downlink_device"
                if body.get("fingerprint") == fingerprint(doc["dev"]):
                    per[path].setdefault(doc["dev"], []).append((t, body["change"]))
            elif doc.get("fingerprint") == fingerprint(doc.get("device") or ""):
                per["alert_mqtt"].setdefault(doc["device"], []).append(
                    (t, doc["change"])
                )
        for t, alert in stream.changes:
            dev = alert.get("device") or ""
            if alert.get("fingerprint") == fingerprint(dev):
                per["stream"].setdefault(dev, []).append((t, alert["change"]))
        self.probe_ms = np.array(
            [
                (t - int(payload)) / 1e3
                for _, topic, payload, t in taps.snapshot()
                if topic == _PROBE_TOPIC
            ]
        )
        # latency[path][variant] = ms of each answered reading; lost likewise.
        self.latency: dict[str, dict[str, list[float]]] = {p: {} for p in self.PATHS}
        self.received: dict[str, dict[str, int]] = {p: {} for p in self.PATHS}
        self.expected: dict[str, int] = {}
        by_device: dict[str, list[Injected]] = {}
        for i in injected:
            by_device.setdefault(i.device, []).append(i)
            self.expected[i.variant] = self.expected.get(i.variant, 0) + 1
        for dev, readings in by_device.items():
            variant = readings[0].variant
            for path in self.PATHS:
                lat = self.latency[path].setdefault(variant, [])
                got = self.received[path].setdefault(variant, 0)
                if path in ("commit", "event"):
                    answers = [
                        committed.get(r.ts_us)
                        if path == "commit"
                        else events.get((dev, r.ts_us))
                        for r in readings
                    ]
                    pairs = [(r, a) for r, a in zip(readings, answers, strict=True)]
                    ok = [(r, a) for r, a in pairs if a is not None]
                    lat += [(a - r.ts_us) / 1e3 for r, a in ok]
                    self.received[path][variant] = got + len(ok)
                    continue
                arrivals = per[path].get(dev, [])
                ok_count = 0
                for r, (t, change) in zip(readings, arrivals, strict=False):
                    if r.breach == (change in ("opened", "reopened")):
                        lat.append((t - r.ts_us) / 1e3)
                        ok_count += 1
                self.received[path][variant] = got + ok_count

    def dump(self, path: Path) -> None:
        """Write every latency (ms, in reading order) per path and gateway."""
        path.write_bytes(orjson.dumps(self.latency, option=orjson.OPT_INDENT_2))

    def lost(self) -> dict[str, int]:
        """Changes missing on the measured paths, per ``path/variant``."""
        return {
            f"{path}/{variant}": self.expected[variant] - got
            for path in ("stream", "downlink_device")
            for variant, got in self.received[path].items()
        }


def _q(values: list[float] | np.ndarray, q: float) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.percentile(arr, q)) if len(arr) else float("nan")


def _figures(
    result: ScenarioResult, done: _PhaseResult, phase: Phase, source: str
) -> None:
    m = done.match
    probe = "MQTT QoS 1 publish → subscriber, hub broker, same load"
    paths = (("stream", "alert on the SSE stream"),
             ("downlink_device", "downlink on the device's local topic"))  # fmt: skip
    for v in phase.variants:
        for path, title in paths:
            lat = m.latency[path].get(v.name, [])
            for name, q in (("p50", 50.0), ("p99", 99.0), ("max", 100.0)):
                result.add(
                    f"{title} {name}, {v.label}",
                    "ms",
                    _q(lat, q),
                    f"{probe}, {name}",
                    _q(m.probe_ms, q),
                )
    for v in phase.variants:
        for path, title in paths:
            result.add(
                f"alerts received: {title.split(' ', 3)[-1]}, {v.label}",
                "alerts",
                float(m.received[path].get(v.name, 0)),
                "alerts expected (breach/clear readings sent)",
                float(m.expected.get(v.name, 0)),
            )
    result.add(
        f"background load, {phase.title}",
        "readings/s",
        done.achieved,
        f"half the ingest rate ({source})",
        done.background,
    )
    for v in phase.variants:
        stages = ", ".join(
            f"{m.STAGES[p]} {_q(m.latency[p].get(v.name, []), 50):.0f}/"
            f"{_q(m.latency[p].get(v.name, []), 99):.0f}"
            for p in m.PATHS
        )
        p99 = max(
            _q(m.latency["stream"].get(v.name, []), 99),
            _q(m.latency["downlink_device"].get(v.name, []), 99),
        )
        verdict = "met" if p99 < TARGET_P99_MS else "missed"
        result.notes.append(
            f"alerts, {v.label}: ms from the reading to each stage, p50/p99: "
            f"{stages}; target p99 < {TARGET_P99_MS:g} ms {verdict} ({p99:.0f} ms)"
        )
    procs = done.hub_status.get("processors") or {}
    busy = float(procs.get("seconds", 0.0))
    readings = int(procs.get("readings", 0))
    capacity = f"{readings / busy:,.0f}" if busy else "-"
    result.notes.append(
        f"alerts, {phase.title}: background {done.achieved:,.0f} readings/s "
        f"(asked {done.background:,.0f}); the hub's processor thread was busy "
        f"{busy:.1f} s of the {done.seconds:.1f} s from the load's start to "
        f"the last alert ({readings:,} readings, "
        f"{capacity} readings/s when busy); {len(m.probe_ms)} probes"
    )


# ---------------------------------------------------------- the load processes


def _start_loads(
    ctx: BenchContext, work: Path, url: str, rate: float
) -> list[tuple[sv.Child, sv.LineReader]]:
    s = ctx.sizes
    loads: list[tuple[sv.Child, sv.LineReader]] = []
    per_process = rate / s.load_processes
    for k in range(s.load_processes):
        argv = [
            sys.executable, "-m", "benchmarks.alerts",
            "--hub-url", url,
            "--data-dir", str(work / "load"),
            "--gateways", str(s.gateways_per_process),
            "--first-gateway", str(k * s.gateways_per_process),
            "--rate", f"{per_process:.1f}",
        ]  # fmt: skip
        load = sv.Child(f"load-{k}", argv, work)
        load.start(stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        lines = sv.LineReader(load)
        loads.append((load, lines))
        try:
            lines.expect(b"ready")
        except ServiceError:
            _stop_all(loads)
            raise
    return loads


def _send_line(load: sv.Child, line: bytes) -> None:
    stdin = load.popen.stdin
    if stdin is None:
        raise ServiceError(f"{load.name} has no stdin")
    stdin.write(line)
    stdin.flush()


def _finish_loads(loads: list[tuple[sv.Child, sv.LineReader]]) -> list[dict[str, Any]]:
    for load, _ in loads:
        _send_line(load, b"stop\n")
    docs = []
    for load, lines in loads:
        docs.append(orjson.loads(lines.next_line(_ACK_TIMEOUT_S)))
        load.popen.wait(30)
        if load.popen.returncode != 0:
            raise ServiceError(f"{load.name} failed:\n{load.tail()}")
    return docs


def _stop_all(loads: list[tuple[sv.Child, sv.LineReader]]) -> None:
    for load, _ in loads:
        load.stop()


@dataclass(slots=True)
class _PacedFeed:
    """Submits readings to one agent at ``rate`` readings/s until stopped."""

    index: int
    agent: Any
    rate: float
    sent: int = 0
    _last_us: int = 0

    def chunk(self, n: int, rng: np.random.Generator) -> list[Reading]:
        per = max(1, n // SERIES_PER_GATEWAY)
        base = max(now_us(), self._last_us + 1)
        self._last_us = base + per
        values = np.round(rng.normal(21.0, 1.5, SERIES_PER_GATEWAY * per), 3)
        flat = values.tolist()
        return [
            Reading(device_id(self.index, s), METRIC, base + i, flat[s * per + i], "C")
            for s in range(SERIES_PER_GATEWAY)
            for i in range(per)
        ]

    def run(self, started: float, stop: threading.Event) -> None:
        rng = np.random.default_rng(self.index)
        while not stop.wait(_LOAD_TICK_S):
            due = int(self.rate * (time.monotonic() - started)) - self.sent
            if due >= SERIES_PER_GATEWAY:
                batch = self.chunk(min(due, 5000), rng)
                self.agent.submit(batch)
                self.sent += len(batch)


@click.command()
@click.option("--hub-url", required=True)
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--gateways", type=int, default=2, show_default=True)
@click.option("--first-gateway", type=int, default=0, show_default=True)
@click.option("--rate", type=float, required=True, help="readings/s, all gateways")
def main(
    hub_url: str, data_dir: Path, gateways: int, first_gateway: int, rate: float
) -> None:
    """Background load: edge agents at a steady rate from a line to the next.

    Prints ``ready``, starts on a line on stdin, stops on the next one (or
    end of input), waits for the hub's acks and prints one JSON line: the
    readings sent and the seconds they were sent over.
    """
    from benchmarks._gateways import _wait_acked
    from simulators.gateways import make_agent

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    indexes = range(first_gateway, first_gateway + gateways)
    agents = [
        make_agent(gateway_id(i), hub_url, data_dir / gateway_id(i), {})
        for i in indexes
    ]
    for agent in agents:
        agent.start()
    feeds = [
        _PacedFeed(i, a, rate / gateways) for i, a in zip(indexes, agents, strict=True)
    ]
    print("ready", flush=True)
    sys.stdin.readline()
    stop = threading.Event()
    started = time.monotonic()
    threads = [
        threading.Thread(target=f.run, args=(started, stop), name=f"feed-{f.index}")
        for f in feeds
    ]
    for t in threads:
        t.start()
    sys.stdin.readline()
    stop.set()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    try:
        _wait_acked(agents, _ACK_TIMEOUT_S)
    finally:
        for agent in agents:
            agent.stop()
    doc = {"sent": sum(f.sent for f in feeds), "seconds": seconds}
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")


if __name__ == "__main__":
    main()
