"""Click commands ``replay`` and ``simulate`` (mounted under ``streamflow``).

Both hand readings either to real edge agents running in this process
(``--via edge``, the default: each simulated gateway buffers on disk and
forwards batches to the hub's broker) or to a broker as plain JSON sensors
(``--via mqtt``: what a site's local broker sees from gateway-less devices).
They stop by themselves at their bound, or on Ctrl-C, and print one summary
line with exact counts.

What stops a run before it starts (a data path without data of the format
asked, a broker that does not answer, an edge agent that cannot start, such
as on a data dir another run holds) is one line and exit status 2; a failure
during the run is one line and exit status 1.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import click

from protocol.readings import Reading
from simulators.datasets import SHIPPED_DATA, dataset_files
from simulators.errors import DatasetError, SimulatorError
from simulators.fleet import FaultRates, FleetSpec
from simulators.fleet import simulate as simulate_fleet
from simulators.gateways import EdgeGatewaySink, gateway_ids
from simulators.http_sink import HttpIngestSink, api_options, make_http_sink
from simulators.load import (
    LoadDisplay,
    LoadGenerator,
    LoadPlan,
    LoadSummary,
    edge_probe,
    mqtt_probe,
    parse_ramp,
)
from simulators.replay import ReplayOptions, replay_path
from simulators.sinks import (
    DEFAULT_ACK_TIMEOUT_S,
    MqttSensorSink,
    Sink,
    check_reachable,
)
from simulators.timeline import TimestampMode

_LOGGER = logging.getLogger(__name__)

_VIA = click.Choice(["edge", "mqtt", "http"])
_RATES = FaultRates()


class _StartError(click.ClickException):
    """A run that cannot start: one line, exit status 2 (as for bad usage)."""

    exit_code = 2


class _Started:
    """A sink that tells a failure to start apart from a failure later."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.started = False

    def start(self) -> None:
        self.sink.start()
        self.started = True

    def send(self, readings: list[Reading]) -> None:
        self.sink.send(readings)

    def close(self, timeout: float = DEFAULT_ACK_TIMEOUT_S) -> int:
        return self.sink.close(timeout)


def _check_data(data: Path, fmt: str) -> None:
    """Fail now, with a hint, if ``data`` holds no data of the format asked."""
    try:
        dataset_files(data, fmt)
    except DatasetError as exc:
        raise _StartError(_dataset_hint(data, fmt, exc)) from exc


def _dataset_hint(data: Path, fmt: str, exc: DatasetError) -> str:
    if fmt == "auto" or not data.is_dir():
        return str(exc)
    try:
        found = sorted({f.value for _, f in dataset_files(data, "auto")})
    except DatasetError:
        return str(exc)
    held = " and ".join(found)
    if data.resolve() == SHIPPED_DATA.resolve():
        return (
            f"no {fmt} files in {data}; the shipped data is {held}: "
            f"give --data FILE|DIR with {fmt} data"
        )
    return f"no {fmt} files in {data}; it holds {held} files"


def _stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so that a run ends cleanly."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        _LOGGER.info("stopping on signal=%d", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    return stop


def _make_sink(
    via: str,
    gateways: list[str],
    hub_url: str,
    mqtt_url: str,
    edge_dir: Path,
    client_id: str,
    username: str | None,
    password: str | None,
) -> Sink:
    """The sink ``--via`` names.

    Raises:
        _StartError: with ``--via edge``, nothing listens at ``hub_url`` (the
            agents would only retry, so the run would wait for nothing).
    """
    if via == "http":
        return make_http_sink(gateways)
    if via == "mqtt":
        return MqttSensorSink(
            mqtt_url, client_id=client_id, username=username, password=password
        )
    try:
        check_reachable(hub_url)
    except SimulatorError as exc:
        raise _StartError(str(exc)) from exc
    settings: dict[str, Any] = {}
    if username:
        settings["username"] = username
    if password:
        settings["password"] = password
    return EdgeGatewaySink(gateways, hub_url, edge_dir, settings)


def _common(func: Any) -> Any:
    """The options replay and simulate share: where readings go."""
    options = [
        click.option(
            "--via",
            type=_VIA,
            default="edge",
            show_default=True,
            help="edge: through in-process edge agents to the hub's broker; "
            "mqtt: publish as plain JSON sensors to --mqtt-url; "
            "http: POST batch envelopes to --api-url/v1/ingest",
        ),
        *api_options(),
        click.option(
            "--hub-url",
            default="mqtt://127.0.0.1:1883",
            show_default=True,
            help="the hub's broker, for --via edge",
        ),
        click.option(
            "--mqtt-url",
            default="mqtt://127.0.0.1:1883",
            show_default=True,
            help="the broker sensors publish to, for --via mqtt",
        ),
        click.option(
            "--edge-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("sim-edge-data"),
            show_default=True,
            help="folder of the simulated gateways' disk buffers (--via edge)",
        ),
        click.option(
            "--username",
            envvar="STREAMFLOW_SIM_USERNAME",
            help="broker user name [env STREAMFLOW_SIM_USERNAME]",
        ),
        click.option(
            "--password",
            envvar="STREAMFLOW_SIM_PASSWORD",
            help="broker password [env STREAMFLOW_SIM_PASSWORD]",
        ),
        click.option(
            "--progress/--no-progress",
            default=None,
            help="live progress bar [default: when stderr is a terminal]",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("replay")
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    default=SHIPPED_DATA,
    show_default="the shipped Intel lab slice",
    help="a data file or a folder of them",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["intel", "nab", "uci", "auto"]),
    default="auto",
    show_default=True,
    help="the data format; auto detects it from each file's first line",
)
@click.option(
    "--speedup",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="data seconds per wall second (60: an hour a minute); 0: as fast as possible",
)
@click.option(
    "--timestamps",
    type=click.Choice([m.value for m in TimestampMode]),
    default=TimestampMode.NOW.value,
    show_default=True,
    help="now: shift to a live clock, compressed by the speed-up; original: "
    "keep the recorded times",
)
@click.option(
    "--gateways",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="simulated gateways; devices are spread over them round-robin",
)
@click.option(
    "--gateway-prefix",
    default="replay-gw",
    show_default=True,
    help="gateway ids are PREFIX-1 ... PREFIX-N",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="stop after this many seconds",
)
@click.option("--limit", type=click.IntRange(min=0), help="stop after N readings")
@click.option(
    "--loop/--no-loop",
    default=False,
    help="start again at the beginning when the data ends (needs --speedup > 0)",
)
@click.option(
    "--client-id",
    default="sf-replay",
    show_default=True,
    help="MQTT client id for --via mqtt (its persistent session)",
)
@_common
def replay(
    data: Path,
    fmt: str,
    speedup: float,
    timestamps: str,
    gateways: int,
    gateway_prefix: str,
    duration: float | None,
    limit: int | None,
    loop: bool,
    client_id: str,
    via: str,
    hub_url: str,
    mqtt_url: str,
    edge_dir: Path,
    username: str | None,
    password: str | None,
    progress: bool | None,
) -> None:
    """Replay recorded sensor data as a live site."""
    try:
        options = ReplayOptions(
            speedup=speedup,
            timestamps=TimestampMode(timestamps),
            duration_s=duration,
            limit=limit,
            loop=loop,
            progress=sys.stderr.isatty() if progress is None else progress,
        )
        ids = gateway_ids(gateways, gateway_prefix)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    _check_data(data, fmt)
    sink = _Started(
        _make_sink(via, ids, hub_url, mqtt_url, edge_dir, client_id, username, password)
    )
    try:
        summary = replay_path(data, sink, fmt, options, _stop_on_signals())
    except DatasetError as exc:
        raise _StartError(str(exc)) from exc
    except SimulatorError as exc:
        if not sink.started:
            raise _StartError(str(exc)) from exc
        raise click.ClickException(str(exc)) from exc
    click.echo(summary.line())
    if isinstance(sink.sink, HttpIngestSink):
        click.echo(sink.sink.counts.line())


@click.command("simulate")
@click.option(
    "--gateways",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="simulated gateways",
)
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="devices per gateway",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="seconds between two reports of a device",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="random generator seed"
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="stop after this many seconds [default: until Ctrl-C]",
)
@click.option("--count", type=click.IntRange(min=0), help="stop after N readings")
@click.option(
    "--spike-rate",
    type=click.FloatRange(0, 1),
    default=_RATES.spike,
    show_default=True,
    help="chance that a reading is a spike",
)
@click.option(
    "--stuck-rate",
    type=click.FloatRange(0, 1),
    default=_RATES.stuck,
    show_default=True,
    help="chance per report that a device gets stuck (30 reports)",
)
@click.option(
    "--dropout-rate",
    type=click.FloatRange(0, 1),
    default=_RATES.dropout,
    show_default=True,
    help="chance per report that a device goes silent (60 reports)",
)
@click.option(
    "--client-id",
    default="sf-simulate",
    show_default=True,
    help="MQTT client id for --via mqtt (its persistent session)",
)
@click.option(
    "--load",
    "load_mode",
    is_flag=True,
    help="load mode: measure achieved throughput, acks and lag (implied by "
    "--ramp); needs --duration or --count",
)
@click.option(
    "--ramp",
    "ramps",
    multiple=True,
    metavar="KEY=FROM..TO",
    help="load mode: ramp devices per gateway (devices=10..1000) or reports "
    "per device per second (rate=0.1..2) over --ramp-time; repeatable",
)
@click.option(
    "--ramp-time",
    type=click.FloatRange(min=0),
    help="seconds the ramp takes [default: --duration, else 10]",
)
@click.option(
    "--drain",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="load mode: after stopping, wait this long at most for the acks",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="load mode: write the summary as JSON to FILE ('-': stdout)",
)
@_common
def simulate(
    gateways: int,
    devices: int,
    interval: float,
    seed: int,
    duration: float | None,
    count: int | None,
    spike_rate: float,
    stuck_rate: float,
    dropout_rate: float,
    client_id: str,
    load_mode: bool,
    ramps: tuple[str, ...],
    ramp_time: float | None,
    drain: float,
    json_out: Path | None,
    via: str,
    hub_url: str,
    mqtt_url: str,
    edge_dir: Path,
    username: str | None,
    password: str | None,
    progress: bool | None,
) -> None:
    """Simulate a synthetic fleet: daily cycles, noise, drift and faults.

    With --ramp or --load it runs as a load generator instead: many devices
    from this one process, ramped over time, with a live table of achieved
    readings/s, acks, lag and connected gateways, and a final summary.
    """
    show = sys.stderr.isatty() if progress is None else progress
    if (load_mode or ramps) and via == "http":
        # TODO: load mode over HTTP; LoadGenerator's probes know brokers only.
        raise click.UsageError("--load and --ramp need --via edge or mqtt")
    if load_mode or ramps:
        plan = _load_plan(
            gateways, devices, interval, seed, duration, count, ramps, ramp_time, drain
        )
        sink = _make_sink(
            via,
            list(plan.gateways),
            hub_url,
            mqtt_url,
            edge_dir,
            client_id,
            username,
            password,
        )
        _echo_load(_run_load(plan, sink, show), json_out)
        return
    if json_out is not None or drain != 30.0 or ramp_time is not None:
        raise click.UsageError("--json, --drain and --ramp-time need --ramp or --load")
    spec = FleetSpec(
        gateways=gateways,
        devices=devices,
        interval_s=interval,
        seed=seed,
        faults=FaultRates(spike=spike_rate, stuck=stuck_rate, dropout=dropout_rate),
    )
    sink = _make_sink(
        via,
        spec.gateway_ids(),
        hub_url,
        mqtt_url,
        edge_dir,
        client_id,
        username,
        password,
    )
    if isinstance(sink, EdgeGatewaySink | HttpIngestSink):
        # The fleet knows which gateway each device sits behind.
        sink.assignment.update({dev: gw for gw, dev in spec.device_ids()})
    try:
        sink.start()
    except SimulatorError as exc:
        raise _StartError(str(exc)) from exc
    try:
        result = simulate_fleet(spec, sink, duration, count, _stop_on_signals(), show)
    except SimulatorError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        sink.close()
    click.echo(result.summary.line())
    if isinstance(sink, HttpIngestSink):
        click.echo(sink.counts.line())
    kinds = Counter(event.kind for event in result.faults)
    click.echo(
        "faults injected: "
        + (" ".join(f"{k}={v}" for k, v in sorted(kinds.items())) or "none")
    )


def _load_plan(
    gateways: int,
    devices: int,
    interval: float,
    seed: int,
    duration: float | None,
    count: int | None,
    ramps: tuple[str, ...],
    ramp_time: float | None,
    drain: float,
) -> LoadPlan:
    """The load plan of the options.

    What no --ramp moves, --devices and --interval hold for the whole run.

    Raises:
        click.UsageError: a bad --ramp, or no --duration nor --count.
    """
    ends: dict[str, tuple[float, float]] = {
        "devices": (devices, devices),
        "rate": (1 / interval, 1 / interval),
    }
    try:
        for text in ramps:
            key, lo, hi = parse_ramp(text)
            ends[key] = (lo, hi)
        return LoadPlan(
            gateways=tuple(gateway_ids(gateways)),
            devices=(int(ends["devices"][0]), int(ends["devices"][1])),
            rate=ends["rate"],
            ramp_s=ramp_time if ramp_time is not None else duration or 10.0,
            duration_s=duration,
            count=count,
            drain_s=drain,
            seed=seed,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _run_load(plan: LoadPlan, sink: Sink, show: bool) -> LoadSummary:
    """Start the sink, run the plan, close the sink; the summary."""
    if isinstance(sink, EdgeGatewaySink):
        for gw, devs in zip(plan.gateways, plan.device_ids(), strict=True):
            sink.assignment.update(dict.fromkeys(devs, gw))
        probe = edge_probe(sink)
    else:
        probe = mqtt_probe(sink, len(plan.metrics))
    try:
        sink.start()
    except SimulatorError as exc:
        raise _StartError(str(exc)) from exc
    try:
        with LoadDisplay(show) as display:
            generator = LoadGenerator(plan, sink, probe, display)
            summary = generator.run(_stop_on_signals())
    except SimulatorError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        # The drain already waited for the acks: close without waiting again.
        sink.close(0)
    return summary


def _echo_load(summary: LoadSummary, json_out: Path | None) -> None:
    text = json.dumps(summary.as_dict(), indent=2)
    if json_out is not None and str(json_out) == "-":
        click.echo(text)
        return
    if json_out is not None:
        json_out.write_text(text + "\n")
    click.echo(summary.line())


@click.group()
@click.option("-v", "--verbose", count=True, help="more log output (-v, -vv)")
def main(verbose: int) -> None:
    """StreamFlow simulators (standalone; ``streamflow`` mounts the same)."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")


main.add_command(replay)
main.add_command(simulate)


if __name__ == "__main__":
    main()
