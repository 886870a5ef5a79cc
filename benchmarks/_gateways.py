"""A load process: simulated gateways (real edge agents) sending flat out.

``python -m benchmarks._gateways --hub-url URL --data-dir DIR --gateways N
--readings R --first-gateway K`` starts N edge agents
(:func:`simulators.gateways.make_agent`, each buffering on disk in its own
folder), prints ``ready`` and waits for a line on stdin, so that several load
processes start together, then has one thread per agent submit its share of R readings
as fast as the agent takes them, and waits until the hub has acked them all.
It prints one JSON line: the wall-clock times (epoch µs) of the first
submit, of the last submit and of the last ack, and the readings sent.

Each gateway has ``SERIES_PER_GATEWAY`` devices with one metric; a submit is
``SUBMIT_READINGS`` readings stamped with the current time (unique per
series), so the latency from reading time to commit is the real one.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import orjson

from edge_agent.agent import EdgeAgent
from protocol.readings import Reading
from protocol.validate import now_us
from simulators.gateways import make_agent

_LOGGER = logging.getLogger(__name__)

SERIES_PER_GATEWAY = 10
SUBMIT_READINGS = 1000
METRIC = "temperature"
#: The longest wait for the hub's acks after the last submit.
ACK_TIMEOUT_S = 300.0


def gateway_id(index: int) -> str:
    """The id of simulated gateway ``index`` (from 0)."""
    return f"bench-gw-{index:03d}"


def device_id(gateway: int, series: int) -> str:
    """The id of device ``series`` of gateway ``gateway``."""
    return f"bench-gw-{gateway:03d}-dev-{series:02d}"


@dataclass(slots=True)
class _Feed:
    """Submits readings to one agent; stamps them with the time of the submit."""

    index: int
    agent: EdgeAgent
    readings: int
    sent: int = 0
    _last_us: int = 0

    def chunk(self, rng: np.random.Generator) -> list[Reading]:
        n = min(SUBMIT_READINGS, self.readings - self.sent)
        per = max(1, n // SERIES_PER_GATEWAY)
        series = min(SERIES_PER_GATEWAY, n)
        base = max(now_us(), self._last_us + 1)
        self._last_us = base + per
        values = np.round(rng.normal(21.0, 1.5, series * per), 3).tolist()
        return [
            Reading(
                device_id(self.index, s), METRIC, base + i, values[s * per + i], "C"
            )
            for s in range(series)
            for i in range(per)
        ]

    def run(self) -> None:
        rng = np.random.default_rng(self.index)
        while self.sent < self.readings:
            batch = self.chunk(rng)
            self.agent.submit(batch)
            self.sent += len(batch)


def _wait_acked(agents: list[EdgeAgent], timeout_s: float) -> int:
    """Wait until no agent holds a reading; the wall-clock µs when that was seen."""
    deadline = time.monotonic() + timeout_s
    # The agents' figures are snapshots taken after each turn of their loops.
    time.sleep(0.05)
    while time.monotonic() < deadline:
        if all(a.stats.readings == 0 for a in agents):
            return now_us()
        time.sleep(0.01)
    held = sum(a.stats.readings for a in agents)
    raise click.ClickException(f"hub acked not all readings: held={held}")


@click.command()
@click.option("--hub-url", required=True)
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--gateways", type=int, default=2, show_default=True)
@click.option("--first-gateway", type=int, default=0, show_default=True)
@click.option("--readings", type=int, required=True, help="in all, for N gateways")
def main(
    hub_url: str,
    data_dir: Path,
    gateways: int,
    first_gateway: int,
    readings: int,
) -> None:
    """Run simulated gateways flat out; print the times as one JSON line."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    indexes = range(first_gateway, first_gateway + gateways)
    agents = [
        make_agent(gateway_id(i), hub_url, data_dir / gateway_id(i), {})
        for i in indexes
    ]
    for agent in agents:
        agent.start()
    share = readings // gateways
    feeds = [
        _Feed(i, a, share + (1 if k < readings % gateways else 0))
        for k, (i, a) in enumerate(zip(indexes, agents, strict=True))
    ]
    threads = [threading.Thread(target=f.run, name=f"feed-{f.index}") for f in feeds]
    print("ready", flush=True)
    sys.stdin.readline()
    started = now_us()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fed = now_us()
    try:
        acked = _wait_acked(agents, ACK_TIMEOUT_S)
    finally:
        for agent in agents:
            agent.stop()
    doc = {
        "started_us": started,
        "fed_us": fed,
        "acked_us": acked,
        "readings": sum(f.sent for f in feeds),
    }
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")


if __name__ == "__main__":
    main()
