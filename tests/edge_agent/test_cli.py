"""``streamflow-edge``: options, settings errors, and a JSON-lines run."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from edge_agent import Buffer
from edge_agent.cli import main
from tests.edge_agent.conftest import GW


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        ((), "gateway_id"),
        (("--gateway-id", "bad id"), "gateway_id"),
        (("--gateway-id", "g", "--hub-url", "http://x"), "hub_url"),
        (("--gateway-id", "g", "--local-url", "tcp://x"), "local_url"),
        (("--config", "/nonexistent/edge.toml"), "config"),
        (("--gateway-id", "g", "--input", "/nonexistent/lines"), "input"),
    ],
)
def test_cli_bad_setting_exits_2(args, setting, tmp_path):
    """A bad setting exits with code 2 and one line naming it."""
    result = run("--data-dir", str(tmp_path), *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"streamflow-edge: setting {setting}: ")


def test_cli_buffer_of_other_gateway_exits_2(tmp_path):
    """A data_dir holding another gateway's buffer exits 2 naming data_dir."""
    Buffer(tmp_path / "buffer.sqlite", gateway_id="gw-other", max_bytes=1 << 20).close()
    result = run("--gateway-id", GW, "--data-dir", str(tmp_path), "--input", "-")
    assert result.exit_code == 2
    assert "setting data_dir: " in result.stderr
    assert "gw-other" in result.stderr


def test_cli_version():
    """--version prints the program name and version."""
    result = run("--version")
    assert (result.exit_code, result.output.split(",")[0]) == (0, "streamflow-edge")


@pytest.mark.broker
@pytest.mark.e2e
def test_cli_stdin_delivers_then_exits(tmp_path, mosquitto_broker, mosquitto_responder):
    """With --input -, the agent delivers every line and exits 0 once acked."""
    lines = (
        b"".join(
            b'{"dev":"dev-%d","metric":"t","ts":"2026-11-30T12:00:%02dZ","value":%d}\n'
            % (i % 3, i % 60, i)
            for i in range(3000)
        )
        + b"not json\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "--gateway-id",
            GW,
            "--hub-url",
            mosquitto_broker.url,
            "--data-dir",
            str(tmp_path / "edge"),
            "--input",
            "-",
        ],
        input=lines,
        capture_output=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "STREAMFLOW_EDGE_RECONNECT_MIN_S": "0.1"},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    stored = mosquitto_responder.stored()
    assert sorted(v for *_, v in stored) == list(range(3000))
    assert b"lines=3001 readings=3000 rejects=1" in proc.stderr
