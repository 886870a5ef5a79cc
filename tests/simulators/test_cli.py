"""The replay and simulate commands: options, bounds and the summary line."""

from __future__ import annotations

import re

import orjson
import pytest
from click.testing import CliRunner

from simulators.cli import main, replay, simulate
from tests.services import free_port, wait_for


def test_replay_help_lists_options():
    """replay --help documents every option with its default."""
    result = CliRunner().invoke(replay, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--data",
        "--format",
        "--speedup",
        "--timestamps",
        "--gateways",
        "--duration",
        "--limit",
        "--via",
        "--mqtt-url",
        "--hub-url",
    ):
        assert option in result.output
    assert "[default: auto]" in result.output


def test_simulate_help_lists_options():
    """simulate --help documents the fleet and fault options."""
    result = CliRunner().invoke(simulate, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--gateways",
        "--devices",
        "--interval",
        "--seed",
        "--count",
        "--spike-rate",
        "--stuck-rate",
        "--dropout-rate",
    ):
        assert option in result.output


def test_replay_loop_at_speedup_zero_is_usage_error():
    """--loop with --speedup 0 is refused as a usage error (exit 2)."""
    result = CliRunner().invoke(replay, ["--speedup", "0", "--loop"])
    assert result.exit_code == 2
    assert "loop needs a speedup above 0" in result.output


def test_replay_no_broker_fails_cleanly():
    """No broker at --mqtt-url: exit 2 with a one-line error, no traceback."""
    url = f"mqtt://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        replay, ["--via", "mqtt", "--mqtt-url", url, "--speedup", "0", "--limit", "5"]
    )
    assert result.exit_code == 2
    assert "cannot connect to mqtt://127.0.0.1:" in result.output
    assert "Traceback" not in result.output


@pytest.mark.broker
def test_replay_cli_via_mqtt_limit(mosquitto_broker, subscribe):
    """replay --via mqtt --limit 400 of the shipped slice sends exactly 400."""
    sub = subscribe(mosquitto_broker, "sf/v1/dev/+/up/telemetry")
    result = CliRunner().invoke(
        main,
        ["replay", "--via", "mqtt", "--mqtt-url", mosquitto_broker.url,
         "--speedup", "0", "--limit", "400", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert re.match(r"replay limit: read=400 sent=400 skipped=0 ", result.output)
    # 400 readings of whole lines (4 each, mote 28's lack light): 101 messages.
    wait_for(lambda: sub.count() >= 101, timeout=10, what="101 messages")
    readings = sum(len(orjson.loads(p)) - 1 for _, p in sub.messages)
    assert readings == 400


@pytest.mark.broker
def test_simulate_cli_via_mqtt_count(mosquitto_broker, subscribe):
    """simulate --via mqtt --count 40 publishes 40 readings as 20 messages."""
    sub = subscribe(mosquitto_broker, "sf/v1/dev/+/up/telemetry")
    result = CliRunner().invoke(
        main,
        ["simulate", "--via", "mqtt", "--mqtt-url", mosquitto_broker.url,
         "--gateways", "1", "--devices", "10", "--interval", "0.1",
         "--count", "40", "--spike-rate", "0", "--stuck-rate", "0",
         "--dropout-rate", "0", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("simulate limit: read=40 sent=40")
    assert result.output.splitlines()[1] == "faults injected: none"
    wait_for(lambda: sub.count() >= 20, timeout=10, what="20 messages")
    assert sorted({t for t, _ in sub.messages}) == [
        f"sf/v1/dev/sim-gw-1-dev-{i:03d}/up/telemetry" for i in range(1, 11)
    ]
