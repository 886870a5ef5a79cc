"""replay and simulate that cannot start: one line, exit 2, in seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from simulators.cli import main, replay, simulate
from simulators.datasets import SHIPPED_DATA
from tests.services import free_port, wait_for


def test_replay_shipped_data_other_format_exits_2_with_hint():
    """--format nab on the shipped (Intel) data says what the shipped data is."""
    result = CliRunner().invoke(replay, ["--format", "nab", "--limit", "5"])

    assert result.exit_code == 2
    assert result.output == (
        f"Error: no nab files in {SHIPPED_DATA}; the shipped data is intel: "
        "give --data FILE|DIR with nab data\n"
    )


def test_replay_folder_without_format_exits_2_naming_what_it_holds(tmp_path):
    """--format uci on a folder of Intel files names the format it holds."""
    shutil.copy(next(SHIPPED_DATA.glob("intel_*.txt.gz")), tmp_path)

    result = CliRunner().invoke(
        replay, ["--data", str(tmp_path), "--format", "uci", "--limit", "5"]
    )

    assert result.exit_code == 2
    assert result.output == (
        f"Error: no uci files in {tmp_path}; it holds intel files\n"
    )


def test_replay_file_of_unknown_format_exits_2(tmp_path):
    """A data file whose format is not known is one line and exit 2."""
    path = tmp_path / "junk.txt"
    path.write_text("no known header\n")

    result = CliRunner().invoke(replay, ["--data", str(path), "--limit", "5"])

    assert result.exit_code == 2
    assert result.output == (
        f"Error: unknown dataset format in '{path}': expected intel, nab or uci\n"
    )


def test_replay_folder_without_data_exits_2(tmp_path):
    """A folder with no data file is one line and exit 2."""
    result = CliRunner().invoke(replay, ["--data", str(tmp_path), "--limit", "5"])

    assert result.exit_code == 2
    assert result.output == f"Error: no dataset files in '{tmp_path}'\n"


@pytest.mark.parametrize("command", [replay, simulate])
def test_via_edge_no_broker_fails_fast(tmp_path, command):
    """--via edge with nothing at --hub-url: exit 2 in under 5 s, one line."""
    url = f"mqtt://127.0.0.1:{free_port()}"
    started = time.monotonic()

    result = CliRunner().invoke(
        command,
        ["--hub-url", url, "--edge-dir", str(tmp_path / "edge"), "--no-progress"],
    )

    assert time.monotonic() - started < 5
    assert result.exit_code == 2
    assert result.output == f"Error: cannot connect to {url}: Connection refused\n"
    assert not (tmp_path / "edge").exists()  # no agent was started


@pytest.mark.parametrize("command", [replay, simulate])
def test_via_mqtt_no_broker_exits_2(command):
    """--via mqtt with nothing at --mqtt-url: exit 2 and one line."""
    url = f"mqtt://127.0.0.1:{free_port()}"

    result = CliRunner().invoke(
        command, ["--via", "mqtt", "--mqtt-url", url, "--no-progress"]
    )

    assert result.exit_code == 2
    assert result.output == f"Error: cannot connect to {url}: Connection refused\n"


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_replay_same_edge_dir_second_fails_with_one_line(tmp_path, mosquitto_broker):
    """Two replays on one --edge-dir: the second stops at once naming the first."""
    edge_dir = tmp_path / "edge"
    args = ["replay", "--hub-url", mosquitto_broker.url, "--edge-dir", str(edge_dir),
            "--speedup", "1", "--no-progress"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
    first = subprocess.Popen(
        [sys.executable, "-m", "simulators.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        lock_file = edge_dir / "replay-gw-1" / ".lock"
        wait_for(
            lambda: lock_file.is_file() and lock_file.read_text() == f"{first.pid}\n",
            timeout=20,
            what="the first replay's lock",
        )
        second = CliRunner().invoke(main, args)
    finally:
        first.kill()  # what it had not delivered stays in its buffer
        first.wait(10)

    assert second.exit_code == 2
    assert second.output == (
        f"Error: edge agent 'replay-gw-1' did not start: data dir "
        f"{edge_dir / 'replay-gw-1'} is in use by pid {first.pid}\n"
    )
