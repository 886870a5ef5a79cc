"""``streamflow`` for a first-time user: one-line errors, locks, the banner."""

from __future__ import annotations

import os
import signal
from importlib import metadata

import pytest
from click.testing import CliRunner

from edge_agent.lock import DirLock
from hub._errors import ConfigError
from hub.cli import cli
from hub.config import load_settings
from hub.security.passwords import Passwords
from hub.storage import open_store
from hub.up import (
    DEMO_DEVICE,
    FirstAdmin,
    first_admin,
    last_error_line,
    pick_device,
    sign_in_lines,
    try_lines,
)
from tests.hub.test_up import Up, up_args
from tests.services import free_port


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    """Settings pointing at a SQLite store in the test's folder."""
    monkeypatch.setenv("STREAMFLOW_DATA_DIR", str(tmp_path))
    return tmp_path


# --------------------------------------------------------------- the command


def test_version_is_package_version(runner):
    """--version prints the program name and the installed package's version."""
    result = runner.invoke(cli, ["--version"], prog_name="streamflow")

    assert result.exit_code == 0
    assert result.output == f"streamflow, version {metadata.version('streamflow')}\n"


def test_up_help_documents_data_dir_and_speedup(runner):
    """up --help says what --data-dir and --speedup are."""
    result = runner.invoke(cli, ["up", "--help"], terminal_width=200)

    lines = {line.split()[0]: line for line in result.output.splitlines() if line}
    assert result.exit_code == 0
    assert "Folder of the SQLite store" in lines["--data-dir"]
    assert "Demo replay speed" in lines["--speedup"]


@pytest.mark.parametrize(
    ("option", "setting"), [("--api-port", "api_port"), ("--mqtt-port", "broker_port")]
)
def test_up_port_zero_exits_2_with_one_line(runner, data_env, option, setting):
    """up with port 0 stops before anything starts: ports must be 1-65535."""
    result = runner.invoke(cli, ["up", option, "0"])

    assert result.exit_code == 2
    assert result.stderr == (
        f"streamflow: error: invalid port 0 for {option} ({setting}): ports must "
        "be 1-65535\n"
    )


def test_up_data_dir_in_use_exits_2_with_one_line(runner, tmp_path):
    """A second up on a data dir in use stops at once naming the holder's pid."""
    data_dir = tmp_path / "data"
    with DirLock(data_dir):
        result = runner.invoke(
            cli,
            ["up", "--data-dir", str(data_dir), "--api-port", str(free_port()),
             "--mqtt-port", str(free_port())],
        )  # fmt: skip

    assert result.exit_code == 2
    assert result.stderr == (
        f"streamflow: error: data dir {data_dir.resolve()} is in use by pid "
        f"{os.getpid()}\n"
    )
    assert not (data_dir / "logs").exists()  # nothing was started


# ------------------------------------------------------------------ settings


def test_settings_env_list_not_json_exits_2_naming_variable(
    runner, data_env, monkeypatch
):
    """A list setting in the environment that is not JSON names its variable."""
    monkeypatch.setenv("STREAMFLOW_ADAPTERS", "notjson")

    result = runner.invoke(cli, ["admin", "migrate"])

    assert result.exit_code == 2
    assert result.stderr == (
        "streamflow: error: invalid setting adapters (STREAMFLOW_ADAPTERS): "
        "not valid JSON\n"
    )


def test_settings_unknown_key_in_file_exits_2_naming_file(runner, data_env):
    """A misspelt key in the TOML file is reported as unknown, in that file."""
    config = data_env / "hub.toml"
    config.write_text("api_prot = 9000\n")

    result = runner.invoke(cli, ["--config", str(config), "admin", "migrate"])

    assert result.exit_code == 2
    assert result.stderr == (
        f"streamflow: error: unknown setting 'api_prot' in {config}\n"
    )


def test_settings_unknown_nested_key_in_file_names_file(tmp_path):
    """An unknown key in a table of the TOML file names its path and the file."""
    config = tmp_path / "hub.toml"
    config.write_text("[tls]\ncafile = '/x'\n")

    with pytest.raises(ConfigError) as info:
        load_settings(config)

    assert str(info.value) == f"unknown setting 'tls.cafile' in {config}"


def test_settings_unknown_nested_key_in_env_names_variable(monkeypatch):
    """An unknown nested key from the environment names its variable."""
    monkeypatch.setenv("STREAMFLOW_TLS__CAFILE", "/x")

    with pytest.raises(ConfigError) as info:
        load_settings()

    assert str(info.value) == "unknown setting 'tls.cafile' (STREAMFLOW_TLS__CAFILE)"


@pytest.mark.parametrize("name", ["ca_file", "cert_file", "key_file"])
def test_settings_missing_tls_file_exits_2_naming_setting_and_path(
    runner, data_env, monkeypatch, name
):
    """A TLS file that does not exist fails at load: setting, variable, path."""
    missing = data_env / "missing.pem"
    monkeypatch.setenv(f"STREAMFLOW_TLS__{name.upper()}", str(missing))

    result = runner.invoke(cli, ["hub"])

    assert result.exit_code == 2
    assert result.stderr == (
        f"streamflow: error: invalid setting tls.{name} "
        f"(STREAMFLOW_TLS__{name.upper()}): no such file '{missing}'\n"
    )


def test_settings_existing_tls_file_accepted(tmp_path, monkeypatch):
    """A TLS file that exists loads (its content is the TLS library's business)."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("")
    monkeypatch.setenv("STREAMFLOW_TLS__CA_FILE", str(ca_file))

    assert load_settings().tls.ca_file == ca_file


# ------------------------------------------------------------- up's helpers


@pytest.mark.parametrize(
    ("lines", "cause"),
    [
        (
            [
                "2026-12-01 10:00:00,000 INFO hub.service started",
                "streamflow: error: cannot connect to the MQTT broker at "
                "mqtt://127.0.0.1:1: [Errno 111] Connection refused",
                "",
            ],
            "cannot connect to the MQTT broker at mqtt://127.0.0.1:1: "
            "[Errno 111] Connection refused",
        ),
        (
            [
                "Traceback (most recent call last):",
                '  File "x.py", line 1, in <module>',
                "FileNotFoundError: [Errno 2] No such file or directory: 'x'",
            ],
            "FileNotFoundError: [Errno 2] No such file or directory: 'x'",
        ),
        (
            [
                "2026-12-01 10:00:00,000 ERROR hub.api store lost kind=sqlite",
                "2026-12-01 10:00:01,000 INFO hub.api stopped",
            ],
            "store lost kind=sqlite",
        ),
        (["just a line", "the last line"], "the last line"),
        ([], "no output"),
    ],
)
def test_last_error_line_picks_the_cause(lines, cause):
    """The cause is the CLI error, else the exception, else the last ERROR line."""
    assert last_error_line(lines) == cause


@pytest.mark.parametrize(
    ("devices", "with_readings", "expected"),
    [
        (["mote-10", "mote-1", "mote-2"], {"mote-1", "mote-2"}, DEMO_DEVICE),
        (["dev-a", "mote-1", "dev-b"], {"dev-b"}, "dev-b"),
        (["dev-a", "dev-b"], set(), None),
        ([], set(), None),
    ],
)
def test_pick_device_names_one_with_readings(devices, with_readings, expected):
    """The banner names the demo's mote-1 if it has readings, else another that has."""
    assert pick_device(devices, with_readings.__contains__) == expected


# ------------------------------------------------------------ up, end to end


@pytest.mark.parametrize("speedup", ["0", "-5"])
def test_up_speedup_not_above_zero_exits_2(runner, data_env, speedup):
    """--speedup must be above 0: refused before anything starts."""
    result = runner.invoke(cli, ["up", "--demo", "--speedup", speedup])

    assert result.exit_code == 2
    assert "--speedup" in result.stderr
    assert f"{float(speedup)} is not in the range x>0" in result.stderr


@pytest.mark.e2e
def test_up_child_failing_at_start_is_one_line_exit_2(tmp_path):
    """A hub that cannot reach --mqtt-url: one line with its cause, exit 2."""
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True)
    (logs / "hub.log").write_text("streamflow: error: an old run's failure\n")
    port = free_port()
    running = Up(
        ["--data-dir", str(tmp_path / "data"), "--api-port", str(free_port()),
         "--mqtt-url", f"mqtt://127.0.0.1:{port}"]
    )  # fmt: skip
    try:
        lines, err = running.finish(timeout=60)
    finally:
        running.kill()

    errors = [line for line in err.splitlines() if " INFO " not in line]
    assert running.proc.returncode == 2
    # The first admin's password is shown before the parts start, so that a
    # start that fails does not lose it (the banner never comes then).
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "streamflow: first start: created user 'admin' with password "
    )
    assert errors == [
        f"streamflow: error: hub exited with code 2 while starting: cannot connect "
        f"to the MQTT broker at mqtt://127.0.0.1:{port}: [Errno 111] Connection "
        f"refused (log {logs.resolve() / 'hub.log'})"
    ]


@pytest.mark.e2e
@pytest.mark.broker
def test_up_child_dying_later_is_one_line_with_code_and_log(tmp_path):
    """A part killed after start: one line naming it, its code and its log."""
    import psutil

    running = Up(up_args(tmp_path, free_port(), free_port()))
    try:
        running.wait_ready()
        (broker,) = [
            c
            for c in psutil.Process(running.proc.pid).children()
            if "hub.broker" in c.cmdline()
        ]
        broker.kill()
        lines, err = running.finish(timeout=30)
    finally:
        running.kill()

    log = (tmp_path / "data" / "logs" / "broker.log").resolve()
    # Only up's own lines: the log lines of the store's migrations may name
    # a "broker" table too.
    reports = [
        line
        for line in err.splitlines()
        if line.startswith("streamflow:") and "broker" in line
    ]
    assert running.proc.returncode == 1
    assert reports == [
        f"streamflow: error: broker exited unexpectedly with code -9 (log {log})"
    ]
    assert lines[-1] == "streamflow: stopped after a failure"


@pytest.mark.e2e
@pytest.mark.broker
def test_up_demo_banner_names_mote_1(tmp_path):
    """With --demo the banner's readings example names mote-1, which has readings."""
    api_port = free_port()
    running = Up([*up_args(tmp_path, api_port, free_port()), "--demo"])
    try:
        running.wait_ready(timeout=40)
        banner = list(running.lines)
        running.proc.send_signal(signal.SIGINT)
        _lines, err = running.finish(timeout=30)
    finally:
        running.kill()

    assert running.proc.returncode == 0, err
    assert (
        '  curl -H "Authorization: Bearer $TOKEN" '
        f"'http://127.0.0.1:{api_port}/v1/devices/mote-1/readings?limit=10'" in banner
    )


# ------------------------------------------------------------- first admin


@pytest.fixture
def auth_store(tmp_path):
    """A migrated SQLite store (users included) and settings with cheap argon2."""
    settings = load_settings(data_dir=tmp_path)
    settings = settings.model_copy(
        update={
            "auth": settings.auth.model_copy(
                update={"password_time_cost": 1, "password_memory_kib": 1024}
            )
        }
    )
    store = open_store(f"sqlite:///{tmp_path}/streamflow.db")
    store.migrate()
    yield store, settings
    store.close()


def test_first_admin_generates_password_once(auth_store, monkeypatch):
    """The first start creates admin with a generated password that verifies;
    the next start creates nothing and shows no password."""
    monkeypatch.delenv("STREAMFLOW_ADMIN_PASSWORD", raising=False)
    store, settings = auth_store

    first = first_admin(store, settings)
    second = first_admin(store, settings)

    assert first.created
    assert first.generated
    user = store.get_user("admin")
    assert user is not None
    assert user.role == "admin"
    assert Passwords.from_config(settings.auth).verify(
        user.password_hash, first.generated
    )
    assert second == FirstAdmin(auth=True)
    assert sign_in_lines(second) == [
        "  sign-in a user of the store (the first admin's password was shown "
        "at the first start)"
    ]


def test_first_admin_from_env_is_not_in_banner(auth_store, monkeypatch):
    """With STREAMFLOW_ADMIN_PASSWORD the admin gets it, and the banner and
    its example name the variable instead of the password."""
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", "env-password-1234")
    store, settings = auth_store

    admin = first_admin(store, settings)
    lines = sign_in_lines(admin) + try_lines("http://h:1", admin, None)

    assert admin == FirstAdmin(auth=True, created=True, generated=None)
    user = store.get_user("admin")
    assert user is not None
    assert Passwords.from_config(settings.auth).verify(
        user.password_hash, "env-password-1234"
    )
    assert lines[0] == "  sign-in user admin, password from STREAMFLOW_ADMIN_PASSWORD"
    assert '"password=$STREAMFLOW_ADMIN_PASSWORD"' in lines[3]
    assert not any("env-password-1234" in line for line in lines)


def test_first_admin_with_auth_off_creates_nobody(tmp_path):
    """Auth off: no user, and the example calls the API without a token."""
    settings = load_settings(data_dir=tmp_path, auth={"enabled": False})
    store = open_store(f"sqlite:///{tmp_path}/streamflow.db")
    store.migrate()
    try:
        admin = first_admin(store, settings)
        users = store.list_users()  # type: ignore[attr-defined]
    finally:
        store.close()

    assert (admin, users) == (FirstAdmin(auth=False), [])
    assert try_lines("http://h:1", admin, "mote-1") == [
        "Try:",
        "  curl http://h:1/healthz",
        "  curl http://h:1/v1/devices",
        "  curl 'http://h:1/v1/devices/mote-1/readings?limit=10'",
    ]
