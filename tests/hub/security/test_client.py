"""hub.client.StreamFlowClient against a real server."""

from __future__ import annotations

import threading

import pytest

from hub.client import AuthError, StreamFlowClient
from hub.security.roles import Role
from protocol.validate import now_us
from tests.hub.security.conftest import ADMIN_PASSWORD, PASSWORD, Api


class Clock:
    """A monotonic clock the test moves forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _client(api: Api, clock: Clock, **creds) -> StreamFlowClient:
    creds = creds or {"username": "admin", "password": ADMIN_PASSWORD}
    return StreamFlowClient(api.url, clock=clock, **creds)


def test_signs_in_on_first_request(api: Api, clock):
    """The first request signs in; the next ones reuse the token."""
    with _client(api, clock) as client:
        first = client.get("/v1/devices")
        second = client.get("/v1/auth/me")

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["name"] == "admin"
    assert client.token_requests == 1


def test_refreshes_before_expiry(api: Api, clock):
    """At four fifths of the token's life the client refreshes first."""
    with _client(api, clock) as client:
        client.get("/v1/devices")
        clock.now += 0.79 * 300
        client.get("/v1/devices")
        assert client.token_requests == 1
        clock.now += 0.02 * 300
        r = client.get("/v1/devices")

    assert r.status_code == 200
    assert client.token_requests == 2


def test_retries_once_after_401(api: Api, clock):
    """A token revoked on the server: one 401, a new sign-in, the retry succeeds."""
    with _client(api, clock) as client:
        client.get("/v1/devices")
        api.store.revoke_subject("admin", "test", now_us())
        r = client.get("/v1/devices")

    assert r.status_code == 200
    # The refresh of the revoked family fails, then the password grant works.
    assert client.token_requests == 3


def test_second_401_is_returned(api: Api, clock):
    """A route that stays 401 after the retry answers 401 (no loop)."""
    api.add_user("ada", Role.VIEWER)
    with _client(api, clock, username="ada", password=PASSWORD) as client:
        r = client.get("/v1/users")

    assert r.status_code == 403  # not a 401: no retry, no new token
    assert client.token_requests == 1


def test_threads_share_one_refresh(api: Api, clock):
    """Eight threads after expiry cause one refresh, not eight."""
    results: list[int] = []
    with _client(api, clock) as client:
        client.get("/v1/devices")
        clock.now += 300

        def work() -> None:
            for _ in range(5):
                results.append(client.get("/v1/devices").status_code)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert results == [200] * 40
    assert client.token_requests == 2


def test_client_credentials(api: Api, clock):
    """A system signs in with its client id and secret."""
    admin = api.bearer("admin", ADMIN_PASSWORD)
    with api.http() as http:
        secret = http.post("/v1/clients", json={"id": "erp"}, headers=admin).json()[
            "client_secret"
        ]
    with _client(api, clock, client_id="erp", client_secret=secret) as client:
        me = client.get("/v1/auth/me").json()

    assert (me["name"], me["kind"]) == ("erp", "client")


def test_wrong_password_raises(api: Api, clock):
    """Refused credentials raise AuthError with the RFC 6749 code."""
    with (
        _client(api, clock, username="admin", password="nope") as client,
        pytest.raises(AuthError) as caught,
    ):
        client.get("/v1/devices")

    assert (caught.value.status, caught.value.error) == (400, "invalid_grant")


def test_logout(api: Api, clock):
    """logout() ends the sign-in on the server; the next call signs in anew."""
    with _client(api, clock) as client:
        client.get("/v1/devices")
        client.logout()
        r = client.get("/v1/devices")

    assert r.status_code == 200
    assert client.token_requests == 2


def test_needs_one_kind_of_credentials():
    """Neither or both kinds of credentials: ValueError."""
    with pytest.raises(ValueError, match="expected username and password"):
        StreamFlowClient("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="expected username and password"):
        StreamFlowClient(
            "http://127.0.0.1:1", username="a", password="b", client_id="c",
            client_secret="d",
        )  # fmt: skip
