"""The ``streamflow`` command: one-line errors, admin commands, settings."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.config import AdapterRoute, load_settings, redact_url
from hub.storage import IngestItem, open_store
from protocol.readings import SeriesBlock
from tests.services import free_port

T0 = 1_796_040_000_000_000


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    """Settings pointing at a SQLite store in the test's folder."""
    monkeypatch.setenv("STREAMFLOW_DATA_DIR", str(tmp_path))
    return tmp_path


def test_bad_setting_exits_2_with_one_line(runner, data_env, monkeypatch):
    """An invalid setting ends the command with one line naming it and its variable."""
    monkeypatch.setenv("STREAMFLOW_MAX_PAYLOAD_BYTES", "-1")

    result = runner.invoke(cli, ["admin", "migrate"])

    assert result.exit_code == 2
    assert result.stderr == (
        "streamflow: error: invalid setting max_payload_bytes "
        "(STREAMFLOW_MAX_PAYLOAD_BYTES): Input should be greater than 0\n"
    )


def test_missing_config_file_exits_2(runner, tmp_path):
    """--config naming no file is a one-line error."""
    missing = tmp_path / "nope.toml"

    result = runner.invoke(cli, ["--config", str(missing), "admin", "migrate"])

    assert result.exit_code == 2
    assert (
        result.stderr == f"streamflow: error: config file '{missing}' does not exist\n"
    )


def test_hub_unreachable_broker_exits_2_without_password(runner, data_env, monkeypatch):
    """hub with no broker listening: exit 2, the URL shown without its password."""
    port = free_port()
    monkeypatch.setenv("STREAMFLOW_MQTT_URL", f"mqtt://hub:s3cret@127.0.0.1:{port}")

    result = runner.invoke(cli, ["hub"])

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"streamflow: error: cannot connect to the MQTT broker at "
        f"mqtt://hub:***@127.0.0.1:{port}: [Errno 111] Connection refused"
    )
    assert "s3cret" not in result.stderr


def test_unreachable_database_exits_2_without_password(runner, monkeypatch):
    """hub with no database listening: exit 2, the URL shown without its password."""
    port = free_port()
    monkeypatch.setenv(
        "STREAMFLOW_DB", f"postgresql://streamflow:s3cret@127.0.0.1:{port}/streamflow"
    )

    result = runner.invoke(cli, ["admin", "migrate"])

    assert result.exit_code == 2
    assert result.stderr == (
        f"streamflow: error: cannot open the store at "
        f"postgresql://streamflow:***@127.0.0.1:{port}/streamflow: connection "
        f'failed: connection to server at "127.0.0.1", port {port} failed: '
        "Connection refused\n"
    )


def test_admin_migrate_applies_then_reports_up_to_date(runner, data_env):
    """admin migrate applies the schema once, then says it is up to date."""
    first = runner.invoke(cli, ["admin", "migrate"])
    second = runner.invoke(cli, ["admin", "migrate"])

    url = f"sqlite:///{data_env}/streamflow.db"
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert first.stdout.startswith(f"migrated {url}: applied 1")
    assert second.stdout == f"{url}: schema up to date\n"


def test_admin_devices_lists_devices(runner, data_env):
    """admin devices prints one row per device with its last-seen time."""
    store = open_store(f"sqlite:///{data_env}/streamflow.db")
    store.migrate()
    block = SeriesBlock("dev-1", "t", "", [T0], [1.0], [0])
    store.write([IngestItem("gw-1", 1, [block], T0, devices={"dev-1"})])
    store.close()

    result = runner.invoke(cli, ["admin", "devices"])

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{'id':<24} {'gateway':<16} {'online':<7} last_seen",
        f"{'dev-1':<24} {'gw-1':<16} {'yes':<7} 2026-11-30T12:00:00.000000Z",
        "1 device(s)",
    ]


def test_api_port_in_use_exits_2_naming_port(runner, data_env):
    """api on a taken port: exit 2 naming the port and how to change it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = runner.invoke(cli, ["api", "--port", str(port)])

    assert result.exit_code == 2
    assert result.stderr == (
        f"streamflow: error: port {port} on 127.0.0.1 is already in use: stop what "
        "listens there or choose another port with --port or api_port\n"
    )


def test_help_lists_commands(runner):
    """The group lists the parts it runs and the admin group."""
    result = runner.invoke(cli, ["--help"])

    listed = {
        line.split()[0]
        for line in result.stdout.split("Commands:")[1].splitlines()
        if line.strip()
    }
    assert {"admin", "api", "broker", "hub", "up"} <= listed


# -------------------------------------------------------------------- settings


def test_settings_env_wins_over_toml(tmp_path, monkeypatch):
    """The environment overrides the TOML file, which overrides the defaults."""
    config = tmp_path / "hub.toml"
    ca_file = tmp_path / "ca.pem"  # the TLS files must exist at load
    ca_file.write_text("")
    config.write_text(
        'mqtt_url = "mqtt://10.0.0.1:1883"\n'
        "queue_max_messages = 64\n"
        "[[adapters]]\n"
        'adapter = "tasmota"\n'
        'filter = "tele/+/SENSOR"\n'
        "[tls]\n"
        f'ca_file = "{ca_file}"\n'
    )
    monkeypatch.setenv("STREAMFLOW_QUEUE_MAX_MESSAGES", "32")

    settings = load_settings(config)

    assert (settings.mqtt_url, settings.queue_max_messages) == (
        "mqtt://10.0.0.1:1883",
        32,
    )
    assert settings.adapters == [
        AdapterRoute(adapter="tasmota", filter="tele/+/SENSOR")
    ]
    assert settings.tls.ca_file == ca_file
    assert settings.mqtt_tls is True


def test_settings_config_from_environment(tmp_path, monkeypatch):
    """STREAMFLOW_CONFIG names the TOML file when --config is not given."""
    config = tmp_path / "hub.toml"
    config.write_text('client_id = "hub-7"\n')
    monkeypatch.setenv("STREAMFLOW_CONFIG", str(config))

    assert load_settings().client_id == "hub-7"


def test_settings_nested_env_delimiter(monkeypatch):
    """Nested settings take ``__`` in the environment."""
    monkeypatch.setenv("STREAMFLOW_TLS__INSECURE", "true")

    assert load_settings().tls.insecure is True


def test_settings_defaults(tmp_path, monkeypatch):
    """The store defaults to SQLite under data_dir; the json adapter is on."""
    monkeypatch.setenv("STREAMFLOW_DATA_DIR", str(tmp_path))

    s = load_settings()

    assert s.db == f"sqlite:///{tmp_path}/streamflow.db"
    assert s.adapters == [
        AdapterRoute(adapter="json", filter="sf/v1/dev/+/up/telemetry")
    ]
    assert (s.mqtt_host, s.mqtt_port, s.api_host, s.api_port) == (
        "127.0.0.1",
        1883,
        "127.0.0.1",
        8000,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"shared_group": "hubs"},
            "invalid setting settings (STREAMFLOW_): shared_group needs mqtt_version "
            "5 (shared subscriptions)",
        ),
        (
            {"mqtt_url": "http://x:1"},
            "invalid setting mqtt_url (STREAMFLOW_MQTT_URL): expected "
            "mqtt://host:port or mqtts://host:port",
        ),
        (
            {"naive_time_zone": "Mars/Olympus"},
            "invalid setting naive_time_zone (STREAMFLOW_NAIVE_TIME_ZONE): expected "
            "an IANA time zone such as UTC",
        ),
        (
            {"adapters": [{"adapter": "tasmota", "filter": "tele/x+/SENSOR"}]},
            "invalid setting adapters.0.filter (STREAMFLOW_ADAPTERS__FILTER): "
            "wildcard inside a level of filter 'tele/x+/SENSOR'",
        ),
    ],
)
def test_settings_bad_value_rejected(values, message):
    """Invalid values fail early with the setting's name and variable."""
    from hub._errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_settings(**values)

    assert str(info.value) == message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://sf:pw@db:5432/x", "postgresql://sf:***@db:5432/x"),
        (
            "postgresql://db/x?password=pw&sslmode=require",
            "postgresql://db/x?password=***&sslmode=require",
        ),
        ("host=db password='p w' dbname=x", "host=db password=*** dbname=x"),
        ("mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1883"),
        ("sqlite:///data/streamflow.db", "sqlite:///data/streamflow.db"),
    ],
)
def test_redact_url_hides_password(url, shown):
    """Passwords never appear in a URL shown in a message or log."""
    assert redact_url(url) == shown


def test_unknown_adapter_is_config_error(tmp_path):
    """An adapter name nobody implements fails at start with a clear message."""
    from hub._errors import ConfigError
    from hub.service import load_adapters

    settings = load_settings(adapters=[{"adapter": "homie", "filter": "homie/#"}])

    with pytest.raises(ConfigError) as info:
        load_adapters(settings)

    assert str(info.value) == (
        "invalid setting adapters: unknown adapter 'homie': expected one of json, "
        "tasmota, zigbee2mqtt"
    )


def test_broker_port_in_use_exits_2(runner):
    """broker on a taken port: exit 2 naming the port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = runner.invoke(cli, ["broker", "--port", str(port)])

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"streamflow: error: port {port} on 127.0.0.1 is already in use: stop what "
        "listens there or choose another port with --port"
    )
