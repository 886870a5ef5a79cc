"""IP access control from several loopback addresses, over a real server.

Linux routes all of 127.0.0.0/8 to the loopback interface, so a client bound
to 127.0.0.2 or 127.0.0.3 (httpx ``local_address``) reaches the server on
127.0.0.1 with that source address.
"""

from __future__ import annotations

import pytest

from hub.security.roles import Role
from hub.security.store import AuditQuery
from tests.hub.security.conftest import (
    ADMIN_PASSWORD,
    PASSWORD,
    running,
    settings_for,
)

TOKEN = "/v1/auth/token"


@pytest.fixture
def with_admin(monkeypatch):
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)


def _health(api, source: str, headers: dict[str, str] | None = None):
    with api.http(source) as http:
        return http.get("/healthz", headers=headers or {})


@pytest.mark.usefixtures("with_admin")
@pytest.mark.parametrize(
    ("allow", "deny", "expected"),
    [
        ([], [], {"127.0.0.1": 200, "127.0.0.2": 200, "127.0.0.3": 200}),
        (["127.0.0.2"], [], {"127.0.0.1": 403, "127.0.0.2": 200, "127.0.0.3": 403}),
        ([], ["127.0.0.3/32"], {"127.0.0.1": 200, "127.0.0.2": 200, "127.0.0.3": 403}),
        (
            ["127.0.0.0/30"],
            ["127.0.0.2"],
            {"127.0.0.1": 200, "127.0.0.2": 403, "127.0.0.3": 200},
        ),
    ],
)
def test_global_lists(store, tmp_path, allow, deny, expected):
    """Each source address is let in or refused (403 ip_denied) by the lists."""
    settings = settings_for(tmp_path, allow_networks=allow, deny_networks=deny)
    with running(store, settings) as api:
        got = {src: _health(api, src) for src in expected}

    assert {src: r.status_code for src, r in got.items()} == expected
    refused = [r for r in got.values() if r.status_code == 403]
    assert all(r.json()["error"]["code"] == "ip_denied" for r in refused)


@pytest.mark.usefixtures("with_admin")
def test_refused_requests_are_audited(sqlite_store, tmp_path):
    """A request the IP filter refuses is still recorded, with its address."""
    settings = settings_for(tmp_path, deny_networks=["127.0.0.3"])
    with running(sqlite_store, settings) as api:
        r = _health(api, "127.0.0.3")
        api.flush_audit()
        records = sqlite_store.list_audit(AuditQuery(), 10)

    assert [(x.address, x.status, x.request_id) for x in records] == [
        ("127.0.0.3", 403, r.headers["x-request-id"])
    ]


@pytest.mark.usefixtures("with_admin")
@pytest.mark.parametrize(
    ("source", "forwarded", "seen"),
    [
        # From the trusted proxy 127.0.0.2: the header is believed.
        ("127.0.0.2", "127.0.0.9", "127.0.0.9"),
        ("127.0.0.2", "127.0.0.3, 127.0.0.9", "127.0.0.9"),
        # Spoofed left entries change nothing: right-most untrusted wins.
        ("127.0.0.2", "127.0.0.3, 127.0.0.9, 127.0.0.2", "127.0.0.9"),
        # From an untrusted peer the header is ignored.
        ("127.0.0.3", "127.0.0.9", "127.0.0.3"),
    ],
)
def test_forwarded_for_from_trusted_proxy_only(
    sqlite_store, tmp_path, source, forwarded, seen
):
    """The deny list and the audit see the X-Forwarded-For client only via a proxy."""
    settings = settings_for(
        tmp_path, trusted_proxies=["127.0.0.2"], deny_networks=["127.0.0.9"]
    )
    with running(sqlite_store, settings) as api:
        r = _health(api, source, {"X-Forwarded-For": forwarded})
        api.flush_audit()
        (record,) = sqlite_store.list_audit(AuditQuery(), 10)

    assert record.address == seen
    assert r.status_code == (403 if seen == "127.0.0.9" else 200)


@pytest.mark.usefixtures("with_admin")
def test_client_networks_checked_at_sign_in_and_after(sqlite_store, tmp_path):
    """A client limited to 127.0.0.2 signs in and calls only from there."""
    with running(sqlite_store, settings_for(tmp_path)) as api:
        admin = api.bearer("admin", ADMIN_PASSWORD)
        with api.http() as http:
            made = http.post(
                "/v1/clients",
                json={"id": "erp", "allow_networks": ["127.0.0.2/32"]},
                headers=admin,
            ).json()
        auth = ("erp", made["client_secret"])
        form = {"grant_type": "client_credentials"}
        with api.http("127.0.0.3") as http:
            denied = http.post(TOKEN, data=form, auth=auth)
        with api.http("127.0.0.2") as http:
            granted = http.post(TOKEN, data=form, auth=auth)
            bearer = {"Authorization": f"Bearer {granted.json()['access_token']}"}
            from_allowed = http.get("/v1/devices", headers=bearer)
        with api.http("127.0.0.3") as http:
            from_other = http.get("/v1/devices", headers=bearer)

    assert (denied.status_code, denied.json()["error"]) == (403, "access_denied")
    assert granted.status_code == 200
    assert from_allowed.status_code == 200
    assert (from_other.status_code, from_other.json()["error"]["code"]) == (
        403,
        "ip_denied",
    )


@pytest.mark.usefixtures("with_admin")
def test_client_deny_list(sqlite_store, tmp_path):
    """A client's deny list refuses its sign-in from that address only."""
    with running(sqlite_store, settings_for(tmp_path)) as api:
        admin = api.bearer("admin", ADMIN_PASSWORD)
        with api.http() as http:
            secret = http.post(
                "/v1/clients",
                json={"id": "erp", "deny_networks": ["127.0.0.3"]},
                headers=admin,
            ).json()["client_secret"]
        form = {"grant_type": "client_credentials"}
        codes = {}
        for source in ("127.0.0.2", "127.0.0.3"):
            with api.http(source) as http:
                codes[source] = http.post(TOKEN, data=form, auth=("erp", secret))

    assert {s: r.status_code for s, r in codes.items()} == {
        "127.0.0.2": 200,
        "127.0.0.3": 403,
    }


@pytest.mark.usefixtures("with_admin")
def test_throttle_per_address(sqlite_store, tmp_path):
    """Failures from 127.0.0.2 lock that address out, not 127.0.0.3."""
    settings = settings_for(
        tmp_path, throttle_max_failures=100, throttle_max_failures_address=3
    )
    with running(sqlite_store, settings) as api:
        api.add_user("ada", Role.VIEWER)
        form = {"grant_type": "password", "password": "wrong"}
        with api.http("127.0.0.2") as http:
            for name in ("a", "b", "c"):
                http.post(TOKEN, data={**form, "username": name})
            locked = http.post(
                TOKEN,
                data={
                    "grant_type": "password",
                    "username": "ada",
                    "password": PASSWORD,
                },
            )
        elsewhere = api.sign_in("ada", local_address="127.0.0.3")

    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1
    assert "access_token" in elsewhere
