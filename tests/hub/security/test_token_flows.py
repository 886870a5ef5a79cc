"""The token endpoint and sign-out over a real server, on SQLite and TimescaleDB."""

from __future__ import annotations

import time

import pytest

from hub.security.passwords import Passwords
from hub.security.roles import Role
from hub.security.store import AuditQuery, UserRecord
from tests.hub.security.conftest import (
    ADMIN_PASSWORD,
    PASSWORD,
    Api,
    running,
    settings_for,
)
from tests.services import wait_for

TOKEN = "/v1/auth/token"


def _password(http, name, password, **extra):
    data = {"grant_type": "password", "username": name, "password": password}
    return http.post(TOKEN, data={**data, **extra})


def _refresh(http, token):
    return http.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": token}
    )


def _bearer(body) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


def test_password_grant_answers_tokens(api: Api):
    """The first admin signs in: Bearer token, 300 s, every scope, a refresh token."""
    with api.http() as http:
        r = _password(http, "admin", ADMIN_PASSWORD)
        me = http.get("/v1/auth/me", headers=_bearer(r.json()))

    body = r.json()
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 300)
    assert (
        body["scope"] == "alerts:read alerts:write audit:read devices:write ingest "
        "metrics read rules:write users:admin"
    )
    assert len(body["refresh_token"]) >= 43
    assert me.json()["name"] == "admin"
    assert (me.json()["role"], me.json()["kind"]) == ("admin", "user")


@pytest.mark.parametrize(
    ("name", "password"), [("admin", "wrong-password"), ("nobody", "whatever")]
)
def test_wrong_credentials_answer_invalid_grant(api: Api, name, password):
    """A wrong password and an unknown user get the same RFC 6749 error."""
    with api.http() as http:
        r = _password(http, name, password)

    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_grant",
        "error_description": "wrong user name or password",
    }


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"data": {"grant_type": "implicit"}}, "unsupported_grant_type"),
        ({"data": {"grant_type": "password", "username": "a"}}, "invalid_request"),
        ({"data": {}}, "invalid_request"),
        ({"json": {"grant_type": "password"}}, "invalid_request"),
        (
            {"data": {"grant_type": "password", "username": "admin",
                      "password": ADMIN_PASSWORD, "scope": "root"}},
            "invalid_scope",
        ),
    ],
)  # fmt: skip
def test_malformed_token_requests(api: Api, kwargs, error):
    """Bad requests get 400 with the RFC 6749 error code."""
    with api.http() as http:
        r = http.post(TOKEN, **kwargs)

    assert (r.status_code, r.json()["error"]) == (400, error)


def test_scope_narrowed_on_request(api: Api):
    """Asking for scope=read gives a token with read only."""
    with api.http() as http:
        body = _password(http, "admin", ADMIN_PASSWORD, scope="read").json()
        users = http.get("/v1/users", headers=_bearer(body))

    assert body["scope"] == "read"
    assert (users.status_code, users.json()["error"]["code"]) == (
        403,
        "insufficient_scope",
    )


def test_refresh_rotates(api: Api):
    """A refresh answers a new pair; the new access token works."""
    with api.http() as http:
        first = _password(http, "admin", ADMIN_PASSWORD).json()
        second = _refresh(http, first["refresh_token"])
        devices = http.get("/v1/devices", headers=_bearer(second.json()))

    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert second.json()["access_token"] != first["access_token"]
    assert devices.status_code == 200


def test_refresh_reuse_revokes_the_family(api: Api):
    """Reusing a spent refresh token ends the whole sign-in, and is audited."""
    with api.http() as http:
        first = _password(http, "admin", ADMIN_PASSWORD).json()
        second = _refresh(http, first["refresh_token"]).json()
        reuse = _refresh(http, first["refresh_token"])
        newest = _refresh(http, second["refresh_token"])
        access = http.get("/v1/devices", headers=_bearer(second))
        other = _password(http, "admin", ADMIN_PASSWORD).json()
        unaffected = http.get("/v1/devices", headers=_bearer(other))
    api.flush_audit()

    assert (reuse.status_code, reuse.json()["error"]) == (400, "invalid_grant")
    assert (newest.status_code, newest.json()["error"]) == (400, "invalid_grant")
    assert access.status_code == 401
    assert access.json()["error"] == {
        "code": "invalid_token",
        "message": "token revoked",
    }
    assert unaffected.status_code == 200  # another sign-in is another family
    events = api.store.list_audit(AuditQuery(kind="refresh_reused"), 10)
    assert [(e.actor, e.request_id) for e in events] == [
        ("admin", reuse.headers["x-request-id"])
    ]


def test_logout_ends_the_sign_in(api: Api):
    """After logout the access and refresh tokens of that sign-in are refused."""
    with api.http() as http:
        body = _password(http, "admin", ADMIN_PASSWORD).json()
        out = http.post("/v1/auth/logout", headers=_bearer(body))
        after = http.get("/v1/auth/me", headers=_bearer(body))
        refresh = _refresh(http, body["refresh_token"])

    assert out.status_code == 204
    assert after.status_code == 401
    assert refresh.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("which", ["refresh_token", "access_token"])
def test_revoke_either_token(api: Api, which):
    """RFC 7009: revoking either token of a sign-in ends it; 200."""
    with api.http() as http:
        body = _password(http, "admin", ADMIN_PASSWORD).json()
        r = http.post("/v1/auth/revoke", data={"token": body[which]})
        after = http.get("/v1/auth/me", headers=_bearer(body))
        unknown = http.post("/v1/auth/revoke", data={"token": "never-issued"})

    assert r.status_code == 200
    assert after.status_code == 401
    assert unknown.status_code == 200  # RFC 7009 section 2.2


def test_client_credentials_basic_and_form(api: Api):
    """A client signs in by HTTP Basic or form fields; no refresh token."""
    with api.http() as http:
        admin = _bearer(_password(http, "admin", ADMIN_PASSWORD).json())
        made = http.post("/v1/clients", json={"id": "erp"}, headers=admin).json()
        secret = made["client_secret"]
        basic = http.post(
            TOKEN, data={"grant_type": "client_credentials"}, auth=("erp", secret)
        )
        form = http.post(
            TOKEN,
            data={
                "grant_type": "client_credentials",
                "client_id": "erp",
                "client_secret": secret,
            },
        )
        me = http.get("/v1/auth/me", headers=_bearer(basic.json()))
        listed = http.get("/v1/clients", headers=admin).json()

    assert basic.status_code == form.status_code == 200
    assert "refresh_token" not in basic.json()
    assert basic.json()["scope"] == "ingest metrics read"
    assert me.json() | {"expires_at": None} == {
        "name": "erp",
        "role": "integration",
        "kind": "client",
        "scopes": ["ingest", "metrics", "read"],
        "client": "erp",
        "expires_at": None,
    }
    assert listed[0]["client_secret"] is None  # shown once only


def test_client_wrong_secret(api: Api):
    """A wrong secret: 401 invalid_client with a Basic challenge."""
    with api.http() as http:
        admin = _bearer(_password(http, "admin", ADMIN_PASSWORD).json())
        http.post("/v1/clients", json={"id": "erp"}, headers=admin)
        r = http.post(
            TOKEN, data={"grant_type": "client_credentials"}, auth=("erp", "nope")
        )

    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    assert r.headers["www-authenticate"] == 'Basic realm="streamflow"'


def test_deleted_client_token_refused(api: Api):
    """Deleting a client ends its tokens at once."""
    with api.http() as http:
        admin = _bearer(_password(http, "admin", ADMIN_PASSWORD).json())
        secret = http.post("/v1/clients", json={"id": "erp"}, headers=admin).json()[
            "client_secret"
        ]
        token = http.post(
            TOKEN, data={"grant_type": "client_credentials"}, auth=("erp", secret)
        ).json()
        before = http.get("/v1/devices", headers=_bearer(token))
        http.delete("/v1/clients/erp", headers=admin)
        after = http.get("/v1/devices", headers=_bearer(token))

    assert (before.status_code, after.status_code) == (200, 401)


def test_disabled_user_signed_out(api: Api):
    """Disabling a user ends their sign-ins and refuses new ones."""
    api.add_user("ada", Role.VIEWER)
    with api.http() as http:
        admin = _bearer(_password(http, "admin", ADMIN_PASSWORD).json())
        ada = _password(http, "ada", PASSWORD).json()
        http.patch("/v1/users/ada", json={"disabled": True}, headers=admin)
        access = http.get("/v1/devices", headers=_bearer(ada))
        refresh = _refresh(http, ada["refresh_token"])
        again = _password(http, "ada", PASSWORD)

    assert access.status_code == 401
    assert refresh.json()["error"] == "invalid_grant"
    assert again.json()["error"] == "invalid_grant"


def test_role_change_applies_at_refresh(api: Api):
    """A demoted user's refreshed token carries the new role's scopes only."""
    api.add_user("op", Role.OPERATOR)
    with api.http() as http:
        op = _password(http, "op", PASSWORD).json()
        api.store.update_user("op", role=Role.VIEWER)  # no sign-out from the store
        refreshed = _refresh(http, op["refresh_token"]).json()

    assert op["scope"] == "alerts:read alerts:write devices:write read rules:write"
    assert refreshed["scope"] == "alerts:read read"


def test_password_rehashed_at_sign_in(api: Api):
    """A hash made with other argon2 parameters is replaced at sign-in."""
    old = Passwords(time_cost=2, memory_kib=2048).hash(PASSWORD)
    assert api.store.create_user(UserRecord("ada", Role.VIEWER, old))
    with api.http() as http:
        r = _password(http, "ada", PASSWORD)

    stored = api.store.get_user("ada").password_hash
    assert r.status_code == 200
    assert stored != old
    assert "m=1024,t=1" in stored
    assert api.ctx.passwords.verify(stored, PASSWORD)


def test_throttle_locks_out_then_lets_in(store, tmp_path, monkeypatch):
    """3 failures lock the user out (429, Retry-After) even with the right password.

    After the lock-out the right password works; the failures and the refused
    attempt are in the audit log with their counts.
    """
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)
    settings = settings_for(tmp_path, throttle_max_failures=3, throttle_lockout_s=1)
    with running(store, settings) as api, api.http() as http:
        failures = [_password(http, "admin", f"wrong-{i}") for i in range(3)]
        locked = _password(http, "admin", ADMIN_PASSWORD)
        retry_after = int(locked.headers["retry-after"])
        time.sleep(retry_after)
        ok = wait_for(
            lambda: _password(http, "admin", ADMIN_PASSWORD).status_code == 200,
            timeout=5,
            interval=0.2,
        )
        api.flush_audit()
        failed = api.store.list_audit(AuditQuery(kind="sign_in_failed"), 10)
        throttled = api.store.list_audit(AuditQuery(kind="sign_in_throttled"), 10)

    assert [f.status_code for f in failures] == [400, 400, 400]
    assert locked.status_code == 429
    assert locked.json()["error"] == "temporarily_unavailable"
    assert 1 <= retry_after <= 1
    assert ok
    assert [f.detail["failures_subject"] for f in failed] == [1, 2, 3]
    assert [f.detail["reason"] for f in failed] == ["bad_password"] * 3
    assert [(t.actor, t.detail["failures"], t.detail["by"]) for t in throttled] == [
        ("admin", 3, "subject")
    ]
