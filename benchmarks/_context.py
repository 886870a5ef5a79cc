"""What every scenario is given: sizes, the database, a work folder, progress.

:class:`Sizes` holds every bound of a run (counts and durations), with three
presets: :data:`FULL` (about 10 minutes on 2 cores), :data:`QUICK` (about a
minute) and :data:`TINY` (the smoke tests, seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from protocol.validate import now_us


@dataclass(frozen=True, slots=True)
class Sizes:
    """The bounds of a run: every load is bounded by a count or a duration.

    Attributes:
        ingest_readings: readings sent end to end in scenario 1.
        load_processes: processes running simulated gateways in scenario 1.
        gateways_per_process: edge agents in each of them.
        hub_alone_readings: readings of pre-built batches in scenario 1.
        naive_readings: messages (one reading each) through the naive pipeline.
        catchup_live_s: live running before and after the outage.
        catchup_outage_s: how long the hub is stopped.
        catchup_gateways: gateways of the live fleet.
        catchup_devices: devices per gateway (two metrics, one report a second).
        query_readings: readings loaded for the queries (10,000 per series,
            and at least 100 series: fewer readings per series below 1M).
        query_runs: measured runs of each query at most.
        query_budget_s: time spent on one query at most (after 5 runs).
        edge_messages: sensor messages forwarded by the agent and the forwarder.
        edge_buffer_readings: readings through the agent's disk buffer (stdin).
        edge_rest_s: how long the agent and forwarder idle before RSS is read.
        fleet_steps: device counts of the ramp.
        fleet_step_s: how long each step runs.
        fleet_gateways: gateways the devices are spread over.
        alerts_s: how long breaching readings are injected in each phase
            of scenario 2.
        alerts_devices: devices of each alerting gateway (one reading each
            per ``alerts_interval_s``, alternately breaching and clearing).
        alerts_interval_s: period of each alerting device's readings.
        alerts_calibration_readings: readings of the short calibration
            ingest when scenario 1 does not run (and no ``--rate``).
        alerts_tuned_phase: also run scenario 2's diagnostic phase, the hub
            with fewer processors (``--alerts-tuned``; the smoke tests run it).
    """

    ingest_readings: int
    load_processes: int
    gateways_per_process: int
    hub_alone_readings: int
    naive_readings: int
    catchup_live_s: float
    catchup_outage_s: float
    catchup_gateways: int
    catchup_devices: int
    query_readings: int
    query_runs: int
    query_budget_s: float
    edge_messages: int
    edge_buffer_readings: int
    edge_rest_s: float
    fleet_steps: tuple[int, ...]
    fleet_step_s: float
    fleet_gateways: int
    alerts_s: float = 60.0
    alerts_devices: int = 3
    alerts_interval_s: float = 1.0
    alerts_calibration_readings: int = 200_000
    alerts_tuned_phase: bool = False


FULL = Sizes(
    ingest_readings=3_000_000,
    load_processes=3,
    gateways_per_process=2,
    hub_alone_readings=3_000_000,
    naive_readings=20_000,
    catchup_live_s=15.0,
    catchup_outage_s=20.0,
    catchup_gateways=4,
    catchup_devices=250,
    query_readings=10_000_000,
    query_runs=50,
    query_budget_s=10.0,
    edge_messages=100_000,
    edge_buffer_readings=300_000,
    edge_rest_s=5.0,
    fleet_steps=(1_000, 40_000, 80_000, 120_000, 160_000, 200_000),
    fleet_step_s=15.0,
    fleet_gateways=8,
    alerts_s=30.0,
    alerts_devices=4,
    alerts_interval_s=1.0,
    alerts_calibration_readings=300_000,
)
QUICK = Sizes(
    ingest_readings=300_000,
    load_processes=3,
    gateways_per_process=2,
    hub_alone_readings=300_000,
    naive_readings=3_000,
    catchup_live_s=5.0,
    catchup_outage_s=5.0,
    catchup_gateways=4,
    catchup_devices=250,
    query_readings=1_000_000,
    query_runs=10,
    query_budget_s=1.0,
    edge_messages=10_000,
    edge_buffer_readings=40_000,
    edge_rest_s=1.0,
    fleet_steps=(5_000, 50_000),
    fleet_step_s=8.0,
    fleet_gateways=8,
    alerts_s=10.0,
    alerts_devices=3,
    alerts_interval_s=1.0,
    alerts_calibration_readings=60_000,
)
TINY = Sizes(
    ingest_readings=10_000,
    load_processes=1,
    gateways_per_process=2,
    hub_alone_readings=10_000,
    naive_readings=200,
    catchup_live_s=2.0,
    catchup_outage_s=0.5,
    catchup_gateways=2,
    catchup_devices=10,
    query_readings=100_000,
    query_runs=2,
    query_budget_s=0.2,
    edge_messages=500,
    edge_buffer_readings=2_000,
    edge_rest_s=0.2,
    fleet_steps=(100,),
    fleet_step_s=1.5,
    fleet_gateways=2,
    alerts_s=3.0,
    alerts_devices=2,
    alerts_interval_s=0.5,
    alerts_calibration_readings=10_000,
    alerts_tuned_phase=True,
)


@dataclass(slots=True)
class BenchContext:
    """What a scenario runs with.

    Attributes:
        sizes: the bounds of the run.
        workdir: a folder for logs, buffers and commit logs (removed after).
        db_url: the scratch database's DSN, or None when no scenario needs one.
        console: where progress lines go (stderr).
        started_us: when the run started (the plot's time zero).
        naive_rate: the naive pipeline's readings/s once measured (scenario 1
            measures it; scenario 6 measures it only when 1 did not run).
        ingest_rate: scenario 1's end-to-end readings/s once measured (the
            alert scenario loads the hub with half of it).
        alerts_rate: the background readings/s asked for with ``--rate``
            (wins over ``ingest_rate``).
    """

    sizes: Sizes
    workdir: Path
    db_url: str | None
    console: Console
    started_us: int = field(default_factory=now_us)
    naive_rate: float | None = None
    ingest_rate: float | None = None
    alerts_rate: float | None = None
    _t0: float = field(default_factory=time.monotonic)

    def progress(self, scenario: str, message: str) -> None:
        """Print one progress line: elapsed time, scenario, message."""
        elapsed = time.monotonic() - self._t0
        self.console.print(
            f"[dim]{elapsed:6.1f}s[/dim] [bold]{scenario}[/bold] {message}",
            highlight=False,
        )

    def database(self) -> str:
        """The scratch database's DSN.

        Raises:
            RuntimeError: the run has no database (a bug in the CLI).
        """
        if self.db_url is None:
            raise RuntimeError("this scenario needs the scratch database")
        return self.db_url
