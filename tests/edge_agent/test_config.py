"""Settings: defaults, environment, TOML file, precedence and bad values."""

from __future__ import annotations

import pytest

from edge_agent.config import load_settings, parse_broker_url
from edge_agent.errors import SettingsError


def test_config_defaults():
    """Only gateway_id is required; the documented defaults apply."""
    s = load_settings(gateway_id="gw-1")
    assert (s.hub_url, s.mqtt_version, s.buffer_full_policy) == (
        "mqtt://127.0.0.1:1883",
        "3.1.1",
        "drop_oldest",
    )
    assert (s.batch_max_readings, s.batch_max_bytes, s.inflight_batches) == (
        1000,
        128 * 1024,
        8,
    )
    assert [(i.adapter, i.filter) for i in s.inputs] == [
        ("json", "sf/v1/dev/+/up/telemetry")
    ]
    assert (s.uplink_client_id, s.local_session_id) == (
        "sf-edge-gw-1",
        "sf-edge-gw-1-local",
    )


def test_config_environment(monkeypatch):
    """STREAMFLOW_EDGE_* variables set fields, lists as JSON."""
    monkeypatch.setenv("STREAMFLOW_EDGE_GATEWAY_ID", "gw-env")
    monkeypatch.setenv("STREAMFLOW_EDGE_BACKLOG_RATE", "500")
    monkeypatch.setenv(
        "STREAMFLOW_EDGE_INPUTS", '[{"adapter": "tasmota", "filter": "tele/+/SENSOR"}]'
    )
    s = load_settings()
    assert (s.gateway_id, s.backlog_rate) == ("gw-env", 500.0)
    assert [(i.adapter, i.filter) for i in s.inputs] == [("tasmota", "tele/+/SENSOR")]


def test_config_toml_file_and_precedence(tmp_path, monkeypatch):
    """Values given in code beat the environment, which beats the TOML file."""
    path = tmp_path / "edge.toml"
    path.write_text(
        'gateway_id = "gw-file"\nbatch_max_readings = 500\nack_timeout_s = 3.0\n'
        '[[inputs]]\nadapter = "zigbee2mqtt"\nfilter = "zigbee2mqtt/+"\n'
    )
    monkeypatch.setenv("STREAMFLOW_EDGE_BATCH_MAX_READINGS", "700")
    s = load_settings(path, ack_timeout_s=1.5)
    assert (s.gateway_id, s.batch_max_readings, s.ack_timeout_s) == (
        "gw-file",
        700,
        1.5,
    )
    assert [i.adapter for i in s.inputs] == ["zigbee2mqtt"]


def test_config_file_from_environment(tmp_path, monkeypatch):
    """STREAMFLOW_EDGE_CONFIG names the TOML file when none is passed."""
    path = tmp_path / "edge.toml"
    path.write_text('gateway_id = "gw-envfile"\n')
    monkeypatch.setenv("STREAMFLOW_EDGE_CONFIG", str(path))
    assert load_settings().gateway_id == "gw-envfile"


def test_config_password_never_shown():
    """The password is a secret: repr and str do not show it."""
    s = load_settings(gateway_id="gw-1", password="hunter2")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s)
    assert s.password.get_secret_value() == "hunter2"


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        ({}, "gateway_id"),
        ({"gateway_id": "bad id"}, "gateway_id"),
        ({"gateway_id": "g", "hub_url": "http://hub"}, "hub_url"),
        ({"gateway_id": "g", "hub_url": "mqtt://u:p@hub"}, "hub_url"),
        ({"gateway_id": "g", "local_url": "mqtt://"}, "local_url"),
        ({"gateway_id": "g", "mqtt_version": "4"}, "mqtt_version"),
        ({"gateway_id": "g", "batch_max_bytes": 300_000}, "batch_max_bytes"),
        ({"gateway_id": "g", "buffer_full_policy": "drop_all"}, "buffer_full_policy"),
        ({"gateway_id": "g", "reconnect_min_s": 60}, "reconnect_min_s"),
        ({"gateway_id": "g", "downlink_topic": "x/{device}"}, "downlink_topic"),
        ({"gateway_id": "g", "downlink_topic": "x/#/{dev}"}, "downlink_topic"),
        ({"gateway_id": "g", "tls_ca_file": "/ca.pem"}, "hub_url"),
        ({"gateway_id": "g", "inputs": [{"adapter": "homie"}]}, "inputs.0.adapter"),
        ({"gateway_id": "g", "inputs": [{"filter": "a/#/b"}]}, "inputs.0.filter"),
        ({"gateway_id": "g", "inputs": []}, "inputs"),
        ({"gateway_id": "g", "buffer_max_bytes": 100_000}, "buffer_max_bytes"),
    ],
)
def test_config_bad_value_names_setting(values, setting):
    """A bad or missing setting raises SettingsError naming it."""
    with pytest.raises(SettingsError) as info:
        load_settings(**values)
    assert info.value.setting == setting


def test_config_missing_file(tmp_path):
    """A config file that does not exist is an error naming 'config'."""
    with pytest.raises(SettingsError, match="no such file") as info:
        load_settings(tmp_path / "missing.toml")
    assert info.value.setting == "config"


def test_config_bad_toml(tmp_path):
    """A TOML syntax error is an error naming 'config'."""
    path = tmp_path / "edge.toml"
    path.write_text("gateway_id = \n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert info.value.setting == "config"


def test_config_unknown_key_in_file(tmp_path):
    """A misspelt key in the file is refused, not ignored."""
    path = tmp_path / "edge.toml"
    path.write_text('gateway_id = "g"\nbatch_max_reading = 5\n')
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert info.value.setting == "batch_max_reading"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://hub", ("hub", 1883, False)),
        ("mqtts://hub", ("hub", 8883, True)),
        ("mqtt://10.0.0.2:1884", ("10.0.0.2", 1884, False)),
        ("mqtts://[::1]:8884/", ("::1", 8884, True)),
    ],
)
def test_parse_broker_url(url, expected):
    """Broker URLs give host, port (scheme default) and TLS."""
    parsed = parse_broker_url(url)
    assert (parsed.host, parsed.port, parsed.tls) == expected
