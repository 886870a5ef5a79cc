"""``streamflow-edge`` for a first-time user: help, TLS files, settings errors."""

from __future__ import annotations

from importlib import metadata

import pytest
from click.testing import CliRunner

from edge_agent.cli import main
from edge_agent.config import load_settings
from edge_agent.errors import SettingsError
from tests.edge_agent.conftest import GW


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_cli_help_short_and_long(flag):
    """-h and --help both print the usage and exit 0."""
    result = run(flag)

    assert result.exit_code == 0
    assert result.output.startswith("Usage: streamflow-edge [OPTIONS]\n")


def test_cli_version_is_package_version():
    """--version prints the program name and the installed package's version."""
    result = run("--version")

    assert result.exit_code == 0
    assert result.output == (
        f"streamflow-edge, version {metadata.version('streamflow')}\n"
    )


@pytest.mark.parametrize("setting", ["tls_ca_file", "tls_cert_file", "tls_key_file"])
def test_cli_missing_tls_file_names_setting_and_path(tmp_path, monkeypatch, setting):
    """A TLS file that does not exist: exit 2, one line with the setting and path."""
    for name in ("tls_cert_file", "tls_key_file"):  # they go together
        other = tmp_path / f"{name}.pem"
        other.write_text("")
        monkeypatch.setenv(f"STREAMFLOW_EDGE_{name.upper()}", str(other))
    missing = tmp_path / "missing.pem"
    monkeypatch.setenv(f"STREAMFLOW_EDGE_{setting.upper()}", str(missing))

    result = run(
        "--gateway-id",
        GW,
        "--hub-url",
        "mqtts://127.0.0.1:8883",
        "--data-dir",
        str(tmp_path / "edge"),
        "--input",
        "-",
    )

    assert result.exit_code == 2
    assert result.stderr == (
        f"streamflow-edge: setting {setting}: no such file '{missing}'\n"
    )


def test_cli_env_list_not_json_names_variable(tmp_path, monkeypatch):
    """A list setting in the environment that is not JSON names its variable."""
    monkeypatch.setenv("STREAMFLOW_EDGE_INPUTS", "notjson")

    result = run("--gateway-id", GW, "--data-dir", str(tmp_path))

    assert result.exit_code == 2
    assert result.stderr == (
        "streamflow-edge: setting inputs: not valid JSON in STREAMFLOW_EDGE_INPUTS\n"
    )


def test_cli_unknown_key_in_file_names_file(tmp_path):
    """A misspelt key in the TOML file is reported as unknown, in that file."""
    config = tmp_path / "edge.toml"
    config.write_text(f'gateway_id = "{GW}"\nbatch_max_reading = 5\n')

    result = run("--config", str(config), "--data-dir", str(tmp_path))

    assert result.exit_code == 2
    assert result.stderr == (
        f"streamflow-edge: setting batch_max_reading: unknown setting in '{config}'\n"
    )


def test_settings_unknown_key_in_nested_table_names_file(tmp_path):
    """An unknown key inside an [[inputs]] table names its path and the file."""
    config = tmp_path / "edge.toml"
    config.write_text(f'gateway_id = "{GW}"\n[[inputs]]\nadaptr = "json"\n')

    with pytest.raises(SettingsError) as info:
        load_settings(config)

    assert (info.value.setting, str(info.value)) == (
        "inputs.0.adaptr",
        f"inputs.0.adaptr: unknown setting in '{config}'",
    )


def test_settings_unknown_value_in_code_not_blamed_on_file(tmp_path):
    """An unknown setting given in code is not said to be in the file."""
    config = tmp_path / "edge.toml"
    config.write_text(f'gateway_id = "{GW}"\n')

    with pytest.raises(SettingsError) as info:
        load_settings(config, batch_max_reading=5)

    assert str(info.value) == "batch_max_reading: unknown setting"


def test_cli_tls_file_not_pem_names_the_files(tmp_path):
    """A CA file that is not PEM: exit 2, one line naming the TLS files set."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not a certificate\n")

    result = run(
        "--gateway-id",
        GW,
        "--hub-url",
        "mqtts://127.0.0.1:8883",
        "--data-dir",
        str(tmp_path / "edge"),
        "--input",
        "-",
        env={"STREAMFLOW_EDGE_TLS_CA_FILE": str(ca_file)},
    )

    lines = result.stderr.splitlines()
    assert (result.exit_code, len(lines)) == (2, 1)
    assert lines[0].startswith(
        "streamflow-edge: setting tls_ca_file/tls_cert_file/tls_key_file: "
    )
    assert lines[0].endswith(f"(tls_ca_file='{ca_file}')")
