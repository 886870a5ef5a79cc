"""Scenario 3, catch-up: gateways buffer through a hub outage, then drain.

A live fleet (:func:`simulators.fleet.simulate`, every device reporting two
metrics each second) runs through real edge agents in this process
(:class:`simulators.gateways.EdgeGatewaySink`) to Mosquitto and the hub
(its own process). After ``catchup_live_s`` of live data the hub process is
stopped for ``catchup_outage_s``: the agents keep every reading on disk.
Then the hub starts again and the backlog drains while live data goes on.

From the hub's commit log (:mod:`benchmarks._commitlog`):

- the backlog is every reading stamped before the hub was back and not
  committed before the outage; it is empty when the last of them commits;
- the drain rate is the backlog's readings over the time from the restarted
  hub's first commit to that moment, beside the live rate before the outage;
- the live latency during the drain is that of the readings stamped after
  the hub was back, until the backlog was empty, beside the live latency
  before the outage.

At the end the store must hold exactly the readings the fleet produced.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from benchmarks import _services as sv
from benchmarks._commitlog import CommitLog, read_logs, samples
from benchmarks._context import BenchContext
from benchmarks.errors import CheckError
from benchmarks.results import ScenarioResult
from protocol.readings import Reading
from protocol.validate import now_us
from simulators.fleet import NO_FAULTS, FleetSpec, simulate
from simulators.gateways import EdgeGatewaySink

NAME = "catchup"
#: The longest the drain may take before the scenario gives up.
_DRAIN_TIMEOUT_S = 300.0
#: Margin kept off the edges of the live window before the outage (at most
#: a fifth of the window).
_SETTLE_US = 1_000_000
#: The longest the fleet may run (a bound; the scenario stops it itself).
_FLEET_CAP_S = 900.0


@dataclass(slots=True)
class CountingSink:
    """An edge gateway sink that remembers the time of every reading sent."""

    inner: EdgeGatewaySink
    _ts: list[np.ndarray] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start the agents."""
        self.inner.start()

    def send(self, readings: list[Reading]) -> None:
        """Send to the agents, then remember the readings' times."""
        self.inner.send(readings)
        stamps = np.fromiter((r.ts_us for r in readings), np.int64, len(readings))
        with self._lock:
            self._ts.append(stamps)

    def close(self, timeout: float = 60.0) -> int:
        """Wait for the hub's acks of everything, then stop the agents."""
        return self.inner.close(timeout)

    def stamps(self) -> np.ndarray:
        """The times of every reading sent so far."""
        with self._lock:
            return np.concatenate(self._ts) if self._ts else np.empty(0, np.int64)


def run(ctx: BenchContext) -> ScenarioResult:
    """Run scenario 3; return the figures."""
    s = ctx.sizes
    result = ScenarioResult(NAME)
    db = ctx.database()
    work = ctx.workdir / NAME
    work.mkdir(parents=True, exist_ok=True)
    sv.reset_database(db)
    spec = FleetSpec(
        gateways=s.catchup_gateways,
        devices=s.catchup_devices,
        interval_s=1.0,
        faults=NO_FAULTS,
        prefix="catchup-gw",
    )
    rate = spec.gateways * spec.devices * len(spec.metrics) / spec.interval_s
    with sv.mosquitto(work) as url:
        hub = sv.HubProcess(work, url, db)
        hub.start_hub()
        sink = CountingSink(EdgeGatewaySink(spec.gateway_ids(), url, work / "edge"))
        sink.start()
        stop = threading.Event()
        fleet = threading.Thread(
            target=simulate,
            args=(spec, sink),
            kwargs={"duration_s": _FLEET_CAP_S, "stop": stop},
            name="bench-fleet",
            daemon=True,
        )
        try:
            ctx.progress(
                NAME, f"live fleet: {rate:,.0f} readings/s, {s.catchup_live_s:g} s"
            )
            live_from = now_us()
            fleet.start()
            times = _outage_and_drain(ctx, hub, sink, live_from)
        finally:
            stop.set()
            fleet.join(30)
            left = sink.close(60.0)
            hub.stop()
    log = read_logs(hub.commit_logs())
    _check_exact(db, sink.stamps(), left)
    _figures(result, log, times)
    result.samples.extend(samples(log, NAME, ctx.started_us))
    return result


@dataclass(frozen=True, slots=True)
class _Times:
    """The instants of the run (epoch µs)."""

    live_from: int
    outage_from: int
    back: int
    drained: int
    backlog: int


def _outage_and_drain(
    ctx: BenchContext, hub: sv.HubProcess, sink: CountingSink, live_from: int
) -> _Times:
    s = ctx.sizes
    time.sleep(s.catchup_live_s)
    outage_from = now_us()
    ctx.progress(NAME, f"hub stopped for {s.catchup_outage_s:g} s; gateways buffer")
    hub.stop()
    before = read_logs(hub.commit_logs())
    time.sleep(s.catchup_outage_s)
    hub.start_hub()
    back = now_us()
    stamps = sink.stamps()
    committed_before = _count_before(before, back)
    backlog = int((stamps < back).sum()) - committed_before
    ctx.progress(NAME, f"hub back; backlog {backlog:,} readings, draining")
    drained = _wait_drained(hub, back, int((stamps < back).sum()))
    ctx.progress(
        NAME, f"backlog empty {(drained - back) / 1e6:.1f} s after the restart"
    )
    # Some live data after the drain, so that the end is not an edge case.
    time.sleep(0.5)
    return _Times(live_from, outage_from, back, drained, backlog)


def _count_before(log: CommitLog, before_us: int) -> int:
    ts, _ = log.reading_times()
    return int((ts < before_us).sum())


def _wait_drained(hub: sv.HubProcess, back: int, expected: int) -> int:
    """Wait until every reading stamped before ``back`` is committed.

    Returns:
        The commit time of the last of them (epoch µs).

    Raises:
        CheckError: they were not all committed within the time-out.
    """
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        log = read_logs(hub.commit_logs())
        ts, committed = log.reading_times()
        old = ts < back
        if int(old.sum()) >= expected:
            return int(committed[old].max())
        time.sleep(0.2)
    raise CheckError(f"backlog not drained after {_DRAIN_TIMEOUT_S:g} s")


def _check_exact(db: str, stamps: np.ndarray, left: int) -> None:
    if left:
        raise CheckError(f"{left} readings still unacknowledged at the end")
    stored = sv.count_readings(db)
    if stored != len(stamps):
        raise CheckError(f"{stored:,} readings stored, the fleet sent {len(stamps):,}")


def _figures(result: ScenarioResult, log: CommitLog, t: _Times) -> None:
    ts, committed = log.reading_times()
    latency = (committed - ts) / 1e6

    # Live before the outage: without the first second (agents connecting)
    # and the last two (readings still in flight when the hub stopped).
    settle = min(_SETTLE_US, (t.outage_from - t.live_from) // 5)
    live_to = t.outage_from - settle * 2
    live = (ts >= t.live_from + settle) & (ts < live_to)
    live_rate = live.sum() / ((live_to - t.live_from - settle) / 1e6)
    # The drain: backlog readings committed by the restarted hub.
    backlog = (ts < t.back) & (committed >= t.back)
    first = committed[committed >= t.back].min()
    drain_rate = backlog.sum() / max((t.drained - first) / 1e6, 1e-6)
    during = (ts >= t.back) & (ts <= t.drained)
    if not during.any():  # the drain was quicker than one report interval
        during = (ts >= t.back) & (ts <= t.drained + 1_000_000)

    result.add("drain rate after the outage", "readings/s", float(drain_rate),
               "live rate before the outage", float(live_rate))  # fmt: skip
    outage_s = (t.back - t.outage_from) / 1e6
    result.add("time until the backlog is empty", "s", (t.drained - t.back) / 1e6,
               "outage length", outage_s)  # fmt: skip
    for q in (50, 99):
        result.add(
            f"live latency p{q} during the drain",
            "s",
            float(np.percentile(latency[during], q)),
            f"live latency p{q} before the outage",
            float(np.percentile(latency[live], q)),
        )
    result.notes.append(
        f"catchup: backlog {t.backlog:,} readings after a {outage_s:.1f} s outage; "
        f"live {live_rate:,.0f} readings/s; store holds exactly what the fleet sent"
    )
