"""The credential routes (served API) and the admin commands (real SQLite store)."""

from __future__ import annotations

import stat

import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.security.broker_creds import verify_secret
from hub.storage.sqlite import SQLiteStore
from tests.hub.security.conftest import ADMIN_PASSWORD, running, settings_for


@pytest.fixture
def api(tmp_path, monkeypatch):
    """The API over a migrated SQLite store, and an admin's header."""
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)
    store = SQLiteStore(tmp_path / "store.db")
    store.migrate()
    with running(store, settings_for(tmp_path)) as served:
        yield served, served.bearer("admin", ADMIN_PASSWORD)
    store.close()


def test_issue_rotate_get_revoke_gateway(api):
    """201 with the secret once; rotation invalidates it; GET never shows it."""
    served, admin = api
    with served.http() as http:
        made = http.post("/v1/gateways/gw-01/credentials", headers=admin)
        shown = http.get("/v1/gateways/gw-01/credentials", headers=admin)
        rotated = http.post("/v1/gateways/gw-01/credentials", headers=admin)
        stored = served.store.get_broker_credential("gw-01")
        revoked = http.delete("/v1/gateways/gw-01/credentials", headers=admin)
        after = http.get("/v1/gateways/gw-01/credentials", headers=admin)
        again = http.delete("/v1/gateways/gw-01/credentials", headers=admin)
        listed = http.get("/v1/broker/credentials", headers=admin)

    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["username"], body["kind"], body["id"], body["active"]) == (
        "gw-01",
        "gateway",
        "gw-01",
        True,
    )
    assert len(body["secret"]) == 43
    assert shown.status_code == 200
    assert shown.json()["secret"] is None
    assert "hash" not in shown.text
    assert body["secret"] not in shown.text
    new_secret = rotated.json()["secret"]
    assert rotated.status_code == 201
    assert new_secret != body["secret"]
    assert verify_secret(stored.secret_hash, new_secret)
    assert not verify_secret(stored.secret_hash, body["secret"])
    assert revoked.status_code == 204
    assert after.json()["active"] is False
    assert after.json()["revoked"] is not None
    assert (again.status_code, again.json()["error"]["code"]) == (
        404,
        "credential_not_found",
    )
    assert [c["username"] for c in listed.json()] == ["gw-01"]


def test_device_credentials_and_conflicts(api):
    """A device gets its own; an id taken by a gateway is 409; bad ids 422."""
    served, admin = api
    with served.http() as http:
        dev = http.post("/v1/devices/mote-1/credentials", headers=admin)
        gw = http.post("/v1/gateways/gw-01/credentials", headers=admin)
        clash = http.post("/v1/devices/gw-01/credentials", headers=admin)
        wrong_kind = http.get("/v1/gateways/mote-1/credentials", headers=admin)
        bad = http.post("/v1/devices/bad%2B/credentials", headers=admin)
        unknown = http.delete("/v1/devices/mote-9/credentials", headers=admin)
        anonymous = http.post("/v1/devices/mote-2/credentials")

    assert (dev.status_code, dev.json()["kind"]) == (201, "device")
    assert gw.status_code == 201
    assert (clash.status_code, clash.json()["error"]["code"]) == (
        409,
        "credential_conflict",
    )
    assert wrong_kind.status_code == 404
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_parameter")
    assert unknown.status_code == 404
    assert anonymous.status_code == 401
    assert served.store.get_broker_credential("mote-2") is None


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    for name in ("STREAMFLOW_DB", "STREAMFLOW_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMFLOW_DATA_DIR", str(tmp_path))
    return tmp_path


def test_broker_credential_command_and_export(data_env):
    """The CLI issues (secret once), revokes, and exports Mosquitto's files."""
    runner = CliRunner()
    hub = runner.invoke(cli, ["admin", "broker-credential", "service", "hub"])
    gw = runner.invoke(cli, ["admin", "broker-credential", "gateway", "gw-01"])
    dev = runner.invoke(cli, ["admin", "broker-credential", "device", "m-1"])
    revoke = ["admin", "broker-credential", "device", "m-1", "--revoke"]
    gone = runner.invoke(cli, revoke)
    twice = runner.invoke(cli, revoke)
    clash = runner.invoke(cli, ["admin", "broker-credential", "device", "gw-01"])
    passwd, acl = data_env / "out.passwd", data_env / "out.acl"
    export = runner.invoke(
        cli,
        ["admin", "export-mosquitto", "--passwords", str(passwd), "--acl", str(acl)],
    )

    assert [r.exit_code for r in (hub, gw, dev, gone)] == [0, 0, 0, 0]
    assert hub.stdout.startswith("broker user svc@hub: secret ")
    assert gone.stdout == "revoked broker user m-1\n"
    assert (twice.exit_code, clash.exit_code) == (2, 2)
    assert "another kind" in clash.stderr
    assert export.exit_code == 0, export.output
    assert export.stdout == f"wrote 2 user(s) to {passwd} and {acl}\n"
    lines = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    assert sorted(lines) == ["gw-01", "svc@hub"]
    secret = gw.stdout.split("secret ")[1].split()[0]
    assert verify_secret(lines["gw-01"], secret)
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o640
    assert "user gw-01\ntopic write sf/v1/gw/gw-01/up/#\n" in acl.read_text()
    assert "m-1" not in acl.read_text()
