"""streamflow admin add-device and retention, on a real SQLite store."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.storage import IngestItem, open_store
from protocol.readings import SeriesBlock
from protocol.validate import now_us

DAY_US = 86_400 * 1_000_000


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMFLOW_DATA_DIR", str(tmp_path))
    return tmp_path


def store_of(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/streamflow.db")
    store.migrate()
    return store


def test_add_device_registers_fields_before_first_reading(data_env):
    """add-device stores name, exact topic (NFC), tags and interval; it is offline."""
    result = CliRunner().invoke(
        cli,
        [
            "admin", "add-device", "kitchen-1", "--name", "Küche Sensor 1",
            "--mqtt-topic", "zigbee2mqtt/Küche Sensor 1", "--tag", "room=kitchen",
            "--interval", "60",
        ],
    )  # fmt: skip
    assert (result.exit_code, result.stdout) == (0, "device kitchen-1 registered\n")

    store = store_of(data_env)
    device = store.get_device("kitchen-1")
    assert (device.name, device.tags, device.expected_interval_s, device.online) == (
        "Küche Sensor 1",
        {"room": "kitchen"},
        60.0,
        False,
    )
    assert store.device_for_topic("zigbee2mqtt/Küche Sensor 1") == "kitchen-1"
    store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mqtt-topic", "zigbee2mqtt/bulb #1"], "'#' is a wildcard"),
        (["--mqtt-topic", "zigbee2mqtt/plug+2"], "'+' is a wildcard"),
        (["--tag", "room"], "expected KEY=VALUE"),
    ],
)
def test_add_device_bad_input_exits_2_creating_nothing(data_env, args, message):
    """A wildcard in the topic or a malformed tag: one line, exit 2, no device."""
    result = CliRunner().invoke(cli, ["admin", "add-device", "bulb-1", *args])

    assert result.exit_code == 2
    assert message in result.stderr
    store = store_of(data_env)
    assert store.get_device("bulb-1") is None
    store.close()


def test_retention_drops_only_readings_older_than_the_cutoff(data_env):
    """--older-than 30 removes the 40-day-old reading and keeps yesterday's."""
    now = now_us()
    store = store_of(data_env)
    block = SeriesBlock(
        "d", "m", "", [now - 40 * DAY_US, now - DAY_US], [1.0, 2.0], [0, 0]
    )
    store.write([IngestItem(None, None, [block], now)])
    store.close()

    result = CliRunner().invoke(cli, ["admin", "retention", "--older-than", "30"])

    assert (result.exit_code, result.stdout) == (
        0,
        "dropped 1 readings older than 30 days\n",
    )
    store = store_of(data_env)
    assert [r.value for r in store.readings("d")] == [2.0]
    store.close()
