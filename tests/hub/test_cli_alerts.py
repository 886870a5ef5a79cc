"""``streamflow alerts``: list, ack and resolve against a real API server.

The API is uvicorn on 127.0.0.1 in a thread over a real store (SQLite, and
TimescaleDB for the round trip), with auth on: an operator and a viewer.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hub.api import create_app
from hub.cli import cli
from hub.config import HubSettings
from hub.security.passwords import Passwords
from hub.security.roles import Role
from hub.security.store import UserRecord
from hub.storage import open_store
from tests.auth_settings import FAST_PASSWORDS
from tests.hub._alerts import MIN, T0, alert, open_alerts
from tests.services import free_port
from tests.web.server import serve

ADMIN_PASSWORD = "admin-password-of-the-cli-alerts-tests"
USERS = {
    "ada": (Role.OPERATOR, "ada-password-12"),
    "vic": (Role.VIEWER, "vic-password-12"),
}


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store(request, tmp_path):
    """A migrated store with four alerts; a2 acknowledged, a3 resolved."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/alerts.db"
    else:
        url = request.getfixturevalue("pg_dsn")
    s = open_store(url)
    s.migrate()
    open_alerts(
        s,
        alert("al-one", T0 + 1 * MIN, severity="critical"),
        alert("al-two", T0 + 2 * MIN, device="dev-2"),
        alert("al-three", T0 + 3 * MIN, kind="offline"),
        alert("al-four", T0 + 4 * MIN, device="dev-2"),
    )
    assert s.transition_alert("al-two", "acknowledged", "ann", T0 + 5 * MIN, ("open",))
    assert s.transition_alert(
        "al-three", "resolved", "monitor", T0 + 6 * MIN, ("open",)
    )
    yield s
    s.close()


@pytest.fixture
def api_url(store, tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)
    settings = HubSettings(data_dir=tmp_path, auth=FAST_PASSWORDS)
    passwords = Passwords.from_config(settings.auth)
    for name, (role, password) in USERS.items():
        assert store.create_user(UserRecord(name, role, passwords.hash(password)))
    with serve(create_app(store, settings)) as url:
        yield url


def run(api_url: str, user: str, *args: str, password: str | None = None):
    """``streamflow alerts ARGS`` as ``user``, the password from the environment."""
    env = {
        "STREAMFLOW_API_URL": api_url,
        "STREAMFLOW_API_USERNAME": user,
        "STREAMFLOW_API_PASSWORD": password or USERS[user][1],
        "COLUMNS": "200",
    }
    return CliRunner().invoke(cli, ["alerts", *args], env=env)


def listed(output: str) -> list[str]:
    """The alert ids of the table, in order."""
    return [
        cell
        for line in output.splitlines()
        for cell in line.replace("│", " ").split()[:1]
        if cell.startswith("al-")
    ]


def test_list_shows_seeded_alerts_newest_first(api_url):
    result = run(api_url, "vic", "list")

    assert result.exit_code == 0, result.output
    assert listed(result.output) == ["al-four", "al-three", "al-two", "al-one"]
    assert "summary of al-one" in result.output
    assert result.output.rstrip().endswith("4 alert(s)")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--state", "open"], ["al-four", "al-one"]),
        (["--device", "dev-2"], ["al-four", "al-two"]),
        (["--state", "open", "--device", "dev-2"], ["al-four"]),
        (["--state", "resolved"], ["al-three"]),
    ],
)
def test_list_filters(api_url, args, expected):
    result = run(api_url, "vic", "list", *args)

    assert result.exit_code == 0, result.output
    assert listed(result.output) == expected


def test_list_limit_says_more(api_url):
    result = run(api_url, "vic", "list", "--limit", "1")

    assert result.exit_code == 0, result.output
    assert listed(result.output) == ["al-four"]
    assert "1 alert(s) (more: raise --limit)" in result.output


def test_ack_names_the_user_in_history(api_url, store):
    result = run(api_url, "ada", "ack", "al-one", "--note", "on my way")

    assert result.exit_code == 0, result.output
    assert result.output == "alert al-one acknowledged\n"
    last = store.alert_history("al-one")[-1]
    assert (last.from_state, last.to_state, last.actor, last.note) == (
        "open",
        "acknowledged",
        "ada",
        "on my way",
    )


def test_resolve_an_acknowledged_alert(api_url, store):
    result = run(api_url, "ada", "resolve", "al-two")

    assert result.exit_code == 0, result.output
    assert result.output == "alert al-two resolved\n"
    alert = store.get_alert("al-two")
    assert alert is not None
    assert alert.state == "resolved"
    assert store.alert_history("al-two")[-1].actor == "ada"


def test_viewer_ack_is_refused_with_403(api_url, store):
    result = run(api_url, "vic", "ack", "al-one")

    assert result.exit_code == 2
    assert result.output == (
        "streamflow: error: user 'vic' (role viewer) may not do this (403"
        " insufficient_scope): this route needs the scope 'alerts:write'\n"
    )
    alert = store.get_alert("al-one")
    assert alert is not None
    assert alert.state == "open"


def test_wrong_password_is_one_line_exit_2(api_url):
    result = run(api_url, "ada", "list", password="not-the-password")

    assert result.exit_code == 2
    assert result.output == (
        "streamflow: error: sign-in refused: wrong user name or password"
        " (invalid_grant)\n"
    )


def test_unknown_alert_is_exit_1(api_url):
    result = run(api_url, "ada", "ack", "al-nope")

    assert result.exit_code == 1
    assert result.output.startswith("streamflow: error: ")
    assert "'al-nope'" in result.output
    assert "(404 " in result.output


def test_wrong_state_is_exit_1_naming_the_state(api_url):
    result = run(api_url, "ada", "ack", "al-three")

    assert result.exit_code == 1
    assert result.output == (
        "streamflow: error: alert 'al-three' is resolved: only an open alert can"
        " be acknowledged (409 wrong_state)\n"
    )


def test_no_credentials_is_exit_2():
    result = CliRunner().invoke(
        cli,
        ["alerts", "list"],
        env={"STREAMFLOW_API_USERNAME": None, "STREAMFLOW_API_PASSWORD": None},
    )

    assert result.exit_code == 2
    assert "sign in with --username and --password" in result.output


def test_api_not_answering_is_exit_2():
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        cli,
        ["alerts", "list", "--api-url", url, "--username", "ada"],
        env={"STREAMFLOW_API_PASSWORD": "x"},
    )

    assert result.exit_code == 2
    assert result.output.startswith(f"streamflow: error: cannot reach the API at {url}")
