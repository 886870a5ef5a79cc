"""Scenario 6, fleet scale: how many devices one box sustains.

Every simulated device reports one reading every 10 s
(:func:`simulators.fleet.simulate`, each reading sent when its time comes)
through real edge agents in this process
(:class:`simulators.gateways.EdgeGatewaySink`) to Mosquitto and the hub (its
own process). The device count ramps through ``fleet_steps``; each step runs
``fleet_step_s``, then the agents drain. The ingest lag of a reading is the
time from its timestamp to its commit (the hub's commit log). The ramp stops
at the first step whose lag p99 reaches 2 s, or after the last step (then the
figure is a lower bound).

The baseline is the naive pipeline (:mod:`benchmarks.naive`, measured in
this run by scenario 1, or here when scenario 1 did not run): it keeps up
with ``rate x 10 s`` devices at most, lag aside.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from benchmarks import _services as sv
from benchmarks._commitlog import read_logs, samples
from benchmarks._context import BenchContext
from benchmarks.errors import CheckError
from benchmarks.ingest import measure_naive
from benchmarks.results import ScenarioResult
from protocol.validate import now_us
from simulators.fleet import DEFAULT_METRICS, NO_FAULTS, FleetSpec, simulate
from simulators.gateways import EdgeGatewaySink

NAME = "fleet"
INTERVAL_S = 10.0
#: The lag a step must stay under (p99), seconds.
MAX_LAG_S = 2.0
#: The longest the agents may take to drain after a step.
_DRAIN_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the ramp.

    Attributes:
        devices: devices reporting.
        rate: readings/s committed during the step.
        lag_p50_s: median ingest lag of the step's readings.
        lag_p99_s: 99th percentile of it.
    """

    devices: int
    rate: float
    lag_p50_s: float
    lag_p99_s: float

    @property
    def sustained(self) -> bool:
        """Whether the lag p99 stayed under :data:`MAX_LAG_S`."""
        return self.lag_p99_s < MAX_LAG_S


def run(ctx: BenchContext) -> ScenarioResult:
    """Run scenario 6; return the figures."""
    s = ctx.sizes
    result = ScenarioResult(NAME)
    db = ctx.database()
    work = ctx.workdir / NAME
    work.mkdir(parents=True, exist_ok=True)
    if ctx.naive_rate is None:
        sv.reset_database(db)
        with sv.mosquitto(work, "mosquitto-naive") as url:
            measure_naive(ctx, work, url, db, NAME)
    naive_rate = ctx.naive_rate or 0.0
    sv.reset_database(db)
    steps: list[Step] = []
    gateways = [f"fleet-gw-{g}" for g in range(1, s.fleet_gateways + 1)]
    with sv.mosquitto(work) as url, sv.hub(work, url, db) as hub:
        sink = EdgeGatewaySink(gateways, url, work / "edge")
        sink.start()
        try:
            for devices in s.fleet_steps:
                step = _step(ctx, hub, sink, devices)
                steps.append(step)
                if not step.sustained:
                    break
        finally:
            left = sink.close(60.0)
    if left:
        raise CheckError(f"{left} readings still unacknowledged at the end")
    result.samples.extend(samples(read_logs(hub.commit_logs()), NAME, ctx.started_us))
    _figures(result, steps, naive_rate)
    return result


def _step(
    ctx: BenchContext, hub: sv.HubProcess, sink: EdgeGatewaySink, devices: int
) -> Step:
    s = ctx.sizes
    per_gateway = max(1, devices // s.fleet_gateways)
    spec = FleetSpec(
        gateways=s.fleet_gateways,
        devices=per_gateway,
        interval_s=INTERVAL_S,
        faults=NO_FAULTS,
        metrics=(DEFAULT_METRICS[0],),
        prefix="fleet-gw",
    )
    total = spec.gateways * spec.devices
    ctx.progress(
        NAME, f"{total:,} devices, {total / INTERVAL_S:,.0f} readings/s, "
        f"{s.fleet_step_s:g} s"
    )  # fmt: skip
    started = now_us()
    simulate(spec, sink, duration_s=s.fleet_step_s, start_us=started)
    ended = now_us()
    _wait_drained(sink)
    ts, committed = read_logs(hub.commit_logs()).reading_times()
    mine = (ts >= started) & (ts < ended)
    lag = (committed[mine] - ts[mine]) / 1e6
    if len(lag) == 0:
        raise CheckError(f"no reading of the {total}-device step was committed")
    step = Step(
        devices=total,
        rate=len(lag) / ((ended - started) / 1e6),
        lag_p50_s=float(np.percentile(lag, 50)),
        lag_p99_s=float(np.percentile(lag, 99)),
    )
    ctx.progress(
        NAME, f"  lag p50 {step.lag_p50_s:.2f} s, p99 {step.lag_p99_s:.2f} s, "
        f"{step.rate:,.0f} readings/s"
    )  # fmt: skip
    return step


def _wait_drained(sink: EdgeGatewaySink) -> None:
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S
    time.sleep(0.2)
    while sink.pending():
        if time.monotonic() > deadline:
            raise CheckError(f"agents still hold {sink.pending():,} readings")
        time.sleep(0.1)
    # The commit log is flushed by the hub every half second.
    time.sleep(0.7)


def _figures(result: ScenarioResult, steps: list[Step], naive_rate: float) -> None:
    passed = [x for x in steps if x.sustained]
    best = passed[-1] if passed else None
    naive_devices = naive_rate * INTERVAL_S
    result.add(
        f"devices sustained, a reading every {INTERVAL_S:g} s, lag p99 < "
        f"{MAX_LAG_S:g} s",
        "devices",
        float(best.devices if best else 0),
        f"naive pipeline: its readings/s x {INTERVAL_S:g} s",
        naive_devices,
    )
    if best is not None:
        result.add(
            "ingest lag p99 at that count",
            "s",
            best.lag_p99_s,
            f"ingest lag p99 at {steps[0].devices:,} devices",
            steps[0].lag_p99_s,
        )
    capped = bool(steps) and steps[-1].sustained
    result.notes.append(
        "fleet: "
        + "; ".join(f"{x.devices:,} devices lag p99 {x.lag_p99_s:.2f} s" for x in steps)
        + (" (the last step passed: the count is a lower bound)" if capped else "")
    )
