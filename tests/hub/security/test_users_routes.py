"""Users and clients routes (admin), on SQLite and TimescaleDB."""

from __future__ import annotations

import pytest

from tests.hub.security.conftest import ADMIN_PASSWORD, Api

NEW = {"name": "ada", "role": "operator", "password": "ada-password-1234"}


@pytest.fixture
def admin(api: Api):
    """An HTTP client and the admin's Authorization header."""
    headers = api.bearer("admin", ADMIN_PASSWORD)
    with api.http() as http:
        yield http, headers


def test_user_lifecycle(api: Api, admin):
    """Create, read, list, change and delete a user; the hash never shows."""
    http, h = admin

    made = http.post("/v1/users", json=NEW, headers=h)
    dup = http.post("/v1/users", json=NEW, headers=h)
    got = http.get("/v1/users/ada", headers=h).json()
    changed = http.patch("/v1/users/ada", json={"role": "viewer"}, headers=h).json()
    names = [u["name"] for u in http.get("/v1/users", headers=h).json()]
    deleted = http.delete("/v1/users/ada", headers=h)
    gone = http.get("/v1/users/ada", headers=h)

    assert made.status_code == 201
    assert set(made.json()) == {"name", "role", "disabled", "created", "updated"}
    assert (dup.status_code, dup.json()["error"]["code"]) == (409, "user_exists")
    assert (got["role"], changed["role"]) == ("operator", "viewer")
    assert names == ["ada", "admin"]
    assert deleted.status_code == 204
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "user_not_found")


def test_new_password_signs_in(api: Api, admin):
    """A password set by PATCH is the one that works."""
    http, h = admin
    http.post("/v1/users", json=NEW, headers=h)

    http.patch("/v1/users/ada", json={"password": "another-password-99"}, headers=h)

    assert api.sign_in("ada", "another-password-99")["access_token"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**NEW, "password": "short"}, "password"),
        ({**NEW, "role": "root"}, "role"),
        ({**NEW, "name": "has space"}, "name"),
        ({**NEW, "extra": 1}, "extra"),
    ],
)
def test_bad_user_refused(admin, body, field):
    """Bad fields answer 422 naming the field."""
    http, h = admin

    r = http.post("/v1/users", json=body, headers=h)

    assert r.status_code == 422
    assert r.json()["error"]["field"] == field


def test_last_admin_kept(admin):
    """The last enabled admin cannot be deleted, disabled or demoted."""
    http, h = admin

    codes = [
        http.delete("/v1/users/admin", headers=h),
        http.patch("/v1/users/admin", json={"disabled": True}, headers=h),
        http.patch("/v1/users/admin", json={"role": "viewer"}, headers=h),
    ]

    assert [(r.status_code, r.json()["error"]["code"]) for r in codes] == [
        (409, "last_admin")
    ] * 3


def test_client_lifecycle(admin):
    """A client's secret shows once; a new secret replaces the old one."""
    http, h = admin
    made = http.post(
        "/v1/clients",
        json={"id": "erp", "roles": ["integration", "device"], "name": "ERP"},
        headers=h,
    ).json()
    got = http.get("/v1/clients/erp", headers=h).json()
    renewed = http.post("/v1/clients/erp/secret", headers=h).json()
    patched = http.patch(
        "/v1/clients/erp", json={"allow_networks": ["10.0.0.0/8"]}, headers=h
    ).json()
    form = {"grant_type": "client_credentials"}
    old = http.post("/v1/auth/token", data=form, auth=("erp", made["client_secret"]))
    new = http.post("/v1/auth/token", data=form, auth=("erp", renewed["client_secret"]))
    bad_net = http.post(
        "/v1/clients", json={"id": "x", "allow_networks": ["nonsense"]}, headers=h
    )

    assert got["client_secret"] is None
    assert got["roles"] == ["integration", "device"]
    assert renewed["client_secret"] != made["client_secret"]
    assert patched["allow_networks"] == ["10.0.0.0/8"]
    assert old.status_code == 401
    assert new.status_code == 403  # right secret, but not from 10.0.0.0/8
    assert (bad_net.status_code, bad_net.json()["error"]["field"]) == (
        422,
        "allow_networks",
    )
