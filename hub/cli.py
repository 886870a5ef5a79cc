"""The ``streamflow`` command: run the parts, administer the store.

Errors a user can fix (bad settings, an unreachable broker or database, a
port in use) end the command with one line on stderr and exit status 2;
URLs in them never show a password.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from hub._errors import HubError
from hub.config import HubSettings, load_settings, redact_url

_LOGGER = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: Exit status of an error the user can fix (as click uses for bad usage).
EXIT_USER_ERROR = 2


@dataclass(frozen=True, slots=True)
class _Options:
    config: Path | None
    verbose: int


def _package_version() -> str:
    try:
        return metadata.version("streamflow")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "0+unknown"


def _fail(message: str) -> NoReturn:
    click.echo(f"streamflow: error: {message}", err=True)
    sys.exit(EXIT_USER_ERROR)


def _reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the hub's own errors into one line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except HubError as exc:
            _fail(str(exc))

    return wrapper


def _settings(**values: Any) -> HubSettings:
    """The settings from the group's --config, the environment and ``values``."""
    opts: _Options = click.get_current_context().find_object(_Options) or _Options(
        None, 0
    )
    settings = load_settings(
        opts.config, **{k: v for k, v in values.items() if v is not None}
    )
    _setup_logging(settings.log_level, opts.verbose)
    return settings


def _setup_logging(level: str, verbose: int) -> None:
    # Entry points configure logging once; library modules never do.
    logging.basicConfig(
        level=logging.DEBUG if verbose else getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        force=True,
    )
    # amqtt and its state machine log every packet at INFO; -vv shows them.
    for noisy in ("amqtt", "transitions", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(
            logging.DEBUG if verbose > 1 else logging.WARNING
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (default: $STREAMFLOW_CONFIG, else none).",
)
@click.option("-v", "--verbose", count=True, help="Log DEBUG (-vv: also libraries).")
@click.version_option(_package_version(), prog_name="streamflow")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: int) -> None:
    """StreamFlow: an MQTT IoT hub with edge buffering and TimescaleDB storage."""
    ctx.obj = _Options(config, verbose)


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the SQLite store, the hub's status and the logs "
    "(default ./streamflow-data); one `up` at a time may use it.",
)
@click.option("--api-port", type=int, help="REST API port, 1-65535 (default 8000).")
@click.option(
    "--mqtt-port", type=int, help="Embedded broker port, 1-65535 (default 1883)."
)
@click.option("--db", help="Store URL, e.g. postgresql://… (default: SQLite).")
@click.option("--mqtt-url", help="Use this broker instead of the embedded one.")
@click.option("--host", help="Address the servers bind to (default 127.0.0.1).")
@click.option("--demo", is_flag=True, help="Also replay the Intel lab demo data.")
@click.option(
    "--speedup",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Demo replay speed: data seconds per wall second (60: an hour a minute).",
)
@_reports_errors
def up(
    data_dir: Path | None,
    api_port: int | None,
    mqtt_port: int | None,
    db: str | None,
    mqtt_url: str | None,
    host: str | None,
    demo: bool,
    speedup: float,
) -> None:
    """Run broker, hub, monitor and API together on this machine (Ctrl-C stops)."""
    from edge_agent.lock import DataDirInUse
    from hub.up import UpOptions, run_up

    opts: _Options = click.get_current_context().find_object(_Options) or _Options(
        None, 0
    )
    settings = _settings(
        data_dir=data_dir,
        api_port=api_port,
        broker_port=mqtt_port,
        db=db,
        mqtt_url=mqtt_url,
        api_host=host,
        broker_host=host,
    )
    try:
        code = run_up(
            UpOptions(
                settings=settings,
                embedded_broker=mqtt_url is None,
                demo=demo,
                speedup=speedup,
                config=opts.config,
                verbose=opts.verbose,
            )
        )
    except DataDirInUse as exc:  # an edge_agent error: not caught as a HubError
        _fail(str(exc))
    sys.exit(code)


@cli.command()
@_reports_errors
def hub() -> None:
    """Run the hub: ingest from the broker into the store, ack gateways."""
    from hub.service import run_hub

    drained = run_hub(_settings())
    sys.exit(0 if drained else 1)


@cli.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Prometheus port on monitor.metrics_host (default 9464; 0: none).",
)
@_reports_errors
def monitor(metrics_port: int | None) -> None:
    """Run the monitor: events, silences and service figures into alerts."""
    from hub.monitor.service import run_monitor

    settings = _settings()
    if metrics_port is not None:
        config = settings.monitor.model_copy(update={"metrics_port": metrics_port})
        settings = settings.model_copy(update={"monitor": config})
    run_monitor(settings)


@cli.command()
@click.option("--host", help="Address to bind (default: api_host).")
@click.option("--port", type=int, help="Port (default: api_port).")
@_reports_errors
def api(host: str | None, port: int | None) -> None:
    """Serve the REST API."""
    import uvicorn

    from hub._ports import ensure_port_free
    from hub.api import create_app
    from hub.service import open_checked_store

    settings = _settings(api_host=host, api_port=port)
    ensure_port_free(settings.api_host, settings.api_port, "--port or api_port")
    store = open_checked_store(settings)
    try:
        app = create_app(store, settings)
        _LOGGER.info(
            "api serving url=http://%s:%d store=%s",
            settings.api_host,
            settings.api_port,
            redact_url(settings.db),
        )
        uvicorn.run(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            access_log=False,
        )
    finally:
        store.close()


@cli.command()
@click.option("--host", help="Address to bind (default: broker_host).")
@click.option("--port", type=int, help="Port (default: broker_port).")
@_reports_errors
def broker(host: str | None, port: int | None) -> None:
    """Run the embedded MQTT broker (amqtt, MQTT 3.1.1)."""
    import asyncio

    from hub._ports import ensure_port_free
    from hub.broker import serve

    settings = _settings(broker_host=host, broker_port=port)
    ensure_port_free(settings.broker_host, settings.broker_port, "--port")
    asyncio.run(serve(settings.broker_host, settings.broker_port, settings))


@cli.group()
def admin() -> None:
    """Administer the store."""


@admin.command()
@_reports_errors
def migrate() -> None:
    """Apply pending schema migrations."""
    from hub.service import open_checked_store

    settings = _settings()
    store = open_checked_store(settings, migrate=False)
    try:
        applied = store.migrate()
    finally:
        store.close()
    where = redact_url(settings.db)
    if applied:
        click.echo(f"migrated {where}: applied {', '.join(map(str, applied))}")
    else:
        click.echo(f"{where}: schema up to date")


@admin.command()
@click.option("--gateway", help="Only the devices of this gateway.")
@_reports_errors
def devices(gateway: str | None) -> None:
    """List the devices in the store."""
    from hub.api._time import format_us
    from hub.service import open_checked_store

    store = open_checked_store(_settings())
    try:
        rows = store.list_devices(gateway)
    finally:
        store.close()
    click.echo(f"{'id':<24} {'gateway':<16} {'online':<7} last_seen")
    for d in rows:
        seen = format_us(d.last_seen_us) if d.last_seen_us is not None else "-"
        online = "yes" if d.online else "no"
        click.echo(f"{d.id:<24} {d.gateway or '-':<16} {online:<7} {seen}")
    click.echo(f"{len(rows)} device(s)")


@admin.command("add-device")
@click.argument("device_id")
@click.option("--gateway", help="The gateway it sits behind, if known.")
@click.option("--name", help="A name for people (any UTF-8).")
@click.option("--mqtt-topic", help="The exact topic it publishes on (adapters).")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE, repeatable.")
@click.option("--interval", type=float, help="Expected reporting interval, s.")
@_reports_errors
def add_device(
    device_id: str,
    gateway: str | None,
    name: str | None,
    mqtt_topic: str | None,
    tags: tuple[str, ...],
    interval: float | None,
) -> None:
    """Register a device ahead of its first reading, or update its fields."""
    from hub.service import open_checked_store
    from hub.storage import DeviceInfo
    from protocol.errors import TopicError

    pairs = [t.partition("=") for t in tags]
    if any(not sep or not key for key, sep, _ in pairs):
        _fail(f"invalid --tag in {tags!r}: expected KEY=VALUE")
    device = DeviceInfo(
        id=device_id,
        gateway=gateway,
        name=name,
        mqtt_topic=mqtt_topic,
        tags={key: value for key, _, value in pairs},
        expected_interval_s=interval,
    )
    store = open_checked_store(_settings())
    try:
        store.upsert_device(device)
    except (ValueError, TopicError) as exc:
        _fail(str(exc))
    finally:
        store.close()
    click.echo(f"device {device_id} registered")


@admin.command()
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Drop readings older than this many days.",
)
@_reports_errors
def retention(days: float) -> None:
    """Drop old readings (whole chunks on TimescaleDB)."""
    from hub.service import open_checked_store
    from protocol.validate import now_us

    store = open_checked_store(_settings())
    try:
        removed = store.drop_before(now_us() - int(days * 86_400 * 1_000_000))
    finally:
        store.close()
    unit = "chunks" if store.kind == "timescaledb" else "readings"
    click.echo(f"dropped {removed} {unit} older than {days:g} days")


@admin.command("broker-credential")
@click.argument("kind", type=click.Choice(["gateway", "device", "service"]))
@click.argument("ident")
@click.option("--revoke", is_flag=True, help="Revoke it instead of issuing one.")
@_reports_errors
def broker_credential(kind: str, ident: str, revoke: bool) -> None:
    """Issue (or rotate) a broker credential; the secret is printed once.

    IDENT is the gateway's or device's id, or the service (hub, monitor, api).
    """
    from hub.security.broker_creds import PrincipalKind, issue, username_for
    from hub.service import open_checked_store
    from protocol.validate import now_us

    principal = PrincipalKind(kind)
    try:
        username = username_for(principal, ident)
    except ValueError as exc:
        _fail(str(exc))
    store: Any = open_checked_store(_settings())
    try:
        if revoke:
            if not store.revoke_broker_credential(username, now_us()):
                _fail(f"no active broker credential for user {username!r}")
            click.echo(f"revoked broker user {username}")
            return
        made = issue(store, principal, ident)
    finally:
        store.close()
    if made is None:
        _fail(f"broker user {username!r} belongs to a principal of another kind")
    click.echo(f"broker user {username}: secret {made[1]} (shown only now)")


@admin.command("export-mosquitto")
@click.option(
    "--passwords",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Mosquitto password_file to write.",
)
@click.option(
    "--acl",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Mosquitto acl_file to write.",
)
@_reports_errors
def export_mosquitto(passwords: Path, acl: Path) -> None:
    """Write Mosquitto's password and ACL files from the broker credentials.

    The rules are those of the embedded broker with broker_auth = on; send
    Mosquitto SIGHUP to reload them.
    """
    from hub.security.broker_acl import mosquitto_acl, mosquitto_passwords
    from hub.service import open_checked_store

    settings = _settings()
    store: Any = open_checked_store(settings)
    try:
        creds = store.list_broker_credentials()
    finally:
        store.close()
    reads = [a.filter for a in settings.adapters]
    _write_private(passwords, mosquitto_passwords(creds), 0o640)
    _write_private(acl, mosquitto_acl(creds, reads), 0o644)
    active = sum(1 for c in creds if c.active)
    click.echo(f"wrote {active} user(s) to {passwords} and {acl}")


def _write_private(path: Path, text: str, mode: int) -> None:
    # Replaced whole (a reloading Mosquitto never reads half a file), and
    # created with its mode, never readable by others first.
    import os

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        _fail(f"cannot write {str(path)!r}: {exc.strerror}")


def _add_evaluate_command() -> None:
    from hub.evaluate import evaluate_command

    cli.add_command(evaluate_command, "evaluate")


_add_evaluate_command()


def _add_simulator_commands() -> None:
    try:
        module = importlib.import_module("simulators.cli")
    except ImportError:  # a hub install without the simulators
        return
    for name in ("replay", "simulate"):
        command = getattr(module, name, None)
        if isinstance(command, click.Command):
            cli.add_command(command, name)


_add_simulator_commands()


def _add_alerts_commands() -> None:
    from hub.cli_alerts import alerts

    cli.add_command(alerts, "alerts")


_add_alerts_commands()


def _add_bench_command() -> None:
    # The benchmark suite lives beside the packages (benchmarks/); an install
    # without it simply has no ``bench``. Imported by name, like the
    # simulators, so that the hub's type check does not pull it in.
    try:
        module = importlib.import_module("benchmarks.cli")
    except ImportError:
        return
    command = getattr(module, "bench", None)
    if isinstance(command, click.Command):
        cli.add_command(command, "bench")


_add_bench_command()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``streamflow`` console script."""
    cli.main(args=argv, prog_name="streamflow")


if __name__ == "__main__":
    main()
