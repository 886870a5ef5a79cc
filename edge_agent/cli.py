"""``streamflow-edge``: run the edge agent on a gateway.

Settings come from ``--config FILE`` (or ``STREAMFLOW_EDGE_CONFIG``), the
environment (``STREAMFLOW_EDGE_*``) and the options below, which win. A bad
setting (a TLS file that cannot be read included) ends the program with exit
code 2 and one line naming it, and so does a data dir that another agent
holds (``data dir DIR is in use by pid N``).

Inputs: ``--input mqtt`` (the default) reads the local broker at
``local_url``; ``--input stdin`` (or ``-``) and ``--input FILE`` read JSON
lines as well, and the agent then exits once the input has ended and every
reading is acked (or on SIGINT/SIGTERM; what is not acked stays buffered).
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
import threading
from pathlib import Path
from typing import BinaryIO, NoReturn

import click

from edge_agent.agent import EdgeAgent
from edge_agent.config import EdgeSettings, load_settings
from edge_agent.errors import AgentStoppedError, BufferOpenError, SettingsError
from edge_agent.lock import DataDirInUse
from edge_agent.state import agent_version
from edge_agent.stream_input import read_lines

_LOGGER = logging.getLogger(__name__)

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_EXIT_SETTINGS = 2
_TLS_FILES = ("tls_ca_file", "tls_cert_file", "tls_key_file")


def configure_logging(verbose: int) -> None:
    """Configure logging once for the program.

    Args:
        verbose: 0 for INFO, 1 for DEBUG of the agent, 2 and more also for
            paho's packet log.
    """
    logging.basicConfig(level=logging.INFO, format=_FORMAT, stream=sys.stderr)
    if verbose >= 1:
        logging.getLogger("edge_agent").setLevel(logging.DEBUG)
    # paho logs every packet at DEBUG; keep that for -vv.
    paho_level = logging.DEBUG if verbose >= 2 else logging.INFO
    logging.getLogger("edge_agent.client.paho").setLevel(paho_level)


def _fail(setting: str, message: str) -> NoReturn:
    _fail_line(f"setting {setting}: {message}")


def _fail_line(message: str) -> NoReturn:
    click.echo(f"streamflow-edge: {message}", err=True)
    sys.exit(_EXIT_SETTINGS)


def _check_tls_files(settings: EdgeSettings) -> None:
    """Fail naming the setting and the file if a TLS file cannot be read."""
    for setting in _TLS_FILES:
        path = getattr(settings, setting)
        if path is None:
            continue
        if not path.is_file():
            _fail(setting, f"no such file {str(path)!r}")
        if not os.access(path, os.R_OK):
            _fail(setting, f"cannot read {str(path)!r}: permission denied")


def _tls_files(settings: EdgeSettings) -> str:
    named = [(s, getattr(settings, s)) for s in _TLS_FILES]
    return ", ".join(f"{s}={str(p)!r}" for s, p in named if p is not None)


@click.command(
    name="streamflow-edge", context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (default: $STREAMFLOW_EDGE_CONFIG).",
)
@click.option("--gateway-id", help="This gateway's id.")
@click.option("--hub-url", help="The hub broker, mqtt://host:port or mqtts://.")
@click.option("--local-url", help="The gateway's local broker.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the disk buffer.",
)
@click.option(
    "--input",
    "input_",
    default="mqtt",
    show_default=True,
    help="mqtt (the local broker), stdin or - (JSON lines), or a JSON-lines FILE.",
)
@click.option("-v", "--verbose", count=True, help="-v: debug log, -vv: with paho.")
@click.version_option(agent_version(), prog_name="streamflow-edge")
def main(
    config: Path | None,
    gateway_id: str | None,
    hub_url: str | None,
    local_url: str | None,
    data_dir: Path | None,
    input_: str,
    verbose: int,
) -> None:
    """Run the StreamFlow edge agent until SIGINT or SIGTERM."""
    configure_logging(verbose)
    try:
        settings = load_settings(
            config,
            gateway_id=gateway_id,
            hub_url=hub_url,
            local_url=local_url,
            data_dir=data_dir,
        )
    except SettingsError as exc:
        _fail(exc.setting, str(exc).removeprefix(f"{exc.setting}: "))
    _check_tls_files(settings)
    stream, name = _open_input(input_, settings)
    agent = EdgeAgent(settings)
    try:
        if stream is None:
            agent.run_forever()
        else:
            _run_with_stream(agent, stream, name)
    except DataDirInUse as exc:
        _fail_line(str(exc))
    except BufferOpenError as exc:
        _fail("data_dir", str(exc))
    except (OSError, ssl.SSLError) as exc:
        # Read above already; what is left is a file that is not valid PEM.
        _fail(
            "tls_ca_file/tls_cert_file/tls_key_file", f"{exc} ({_tls_files(settings)})"
        )


def _open_input(input_: str, settings: EdgeSettings) -> tuple[BinaryIO | None, str]:
    if input_ == "mqtt":
        if settings.local_url is None:
            _LOGGER.info("no local input: local_url is not set")
        return None, "mqtt"
    if input_ in ("stdin", "-"):
        return sys.stdin.buffer, "stdin"
    try:
        return open(input_, "rb"), input_  # closed by _run_with_stream
    except OSError as exc:
        _fail("input", f"cannot open {input_!r}: {exc.strerror}")


def _run_with_stream(agent: EdgeAgent, stream: BinaryIO, name: str) -> None:
    """Run with a JSON-lines input; end once it is read and all is acked."""
    ended = threading.Event()

    def feed() -> None:
        try:
            read_lines(
                stream,
                agent.submit_checked,
                max_future_skew_s=agent.settings.max_future_skew_s,
                name=name,
                stop=lambda: not agent.running,
                log_sink=agent.submit_logs,
            )
        except AgentStoppedError:
            _LOGGER.info("input stopped with the agent stream=%s", name)
        finally:
            ended.set()

    def drained() -> bool:
        # Log records too: pending ones count in ``pending``, sent ones in
        # ``batches`` until acked.
        s = agent.stats
        return ended.is_set() and s.readings == 0 and s.pending == 0 and not s.batches

    reader = threading.Thread(target=feed, name=f"edge-input-{name}", daemon=True)
    agent.start()
    reader.start()
    try:
        agent.run_forever(until=drained)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


if __name__ == "__main__":
    main()
