"""Fixtures of the v1 resource tests: each store, an app with auth on, clients.

The app runs in FastAPI's TestClient (in process, lifespan included) over a
SQLite file or a fresh TimescaleDB database (``pg_dsn``); every request
carries a real bearer token, signed in at the token endpoint.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api import create_app
from hub.config import HubSettings
from hub.security.passwords import hash_secret
from hub.security.roles import Role
from hub.security.store import ClientRecord, UserRecord
from hub.storage.sqlite import SQLiteStore
from tests.auth_settings import FAST_PASSWORDS

ADMIN_PASSWORD = "admin-password-of-the-v1-tests"
PASSWORD = "password-of-a-v1-test-user"

_ids = itertools.count()


def unique(prefix: str) -> str:
    """An id no other example of this test process used (hypothesis runs)."""
    return f"{prefix}-{next(_ids)}"


def open_store(kind: str, tmp_path, request) -> Any:
    """A migrated store of ``kind``."""
    if kind == "sqlite":
        opened: Any = SQLiteStore(tmp_path / "store.db")
    else:
        from hub.storage.timescale import TimescaleStore

        opened = TimescaleStore(request.getfixturevalue("pg_dsn"))
    opened.migrate()
    return opened


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store(request, tmp_path) -> Iterator[Any]:
    """A migrated, empty store of each kind, closed afterwards."""
    opened = open_store(request.param, tmp_path, request)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Any]:
    """A migrated SQLite store, for the property tests that run many examples."""
    opened = SQLiteStore(tmp_path / "store.db")
    opened.migrate()
    yield opened
    opened.close()


def settings_for(tmp_path, **values: Any) -> HubSettings:
    """Settings with auth on (unless ``auth`` says otherwise), cheap passwords."""
    auth = {**FAST_PASSWORDS, **values.pop("auth", {})}
    return HubSettings(data_dir=tmp_path, auth=auth, **values)


def sign_in(c: TestClient, username: str, password: str) -> str:
    """The access token of a password grant."""
    resp = c.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
    )
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


def client_token(c: TestClient, store: Any, client_id: str, role: Role) -> str:
    """Create an API client of ``role`` in the store; return its access token."""
    secret = f"secret-of-{client_id}-" + "x" * 20
    store.create_client(ClientRecord(client_id, hash_secret(secret), (role,)))
    resp = c.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


def add_user(c: TestClient, name: str, role: Role) -> str:
    """Create a user of ``role``; return its access token."""
    ctx = c.app.state.security  # type: ignore[attr-defined]
    assert c.app.state.store.create_user(  # type: ignore[attr-defined]
        UserRecord(name, role, ctx.passwords.hash(PASSWORD))
    )
    return sign_in(c, name, PASSWORD)


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def build(store: Any, tmp_path, monkeypatch, **values: Any) -> TestClient:
    """A TestClient (not entered) of the app over ``store``."""
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)
    return TestClient(create_app(store, settings_for(tmp_path, **values)))


@pytest.fixture
def client(store, tmp_path, monkeypatch) -> Iterator[TestClient]:
    """The app over each store, signed in as the first admin."""
    with build(store, tmp_path, monkeypatch) as c:
        c.headers.update(bearer(sign_in(c, "admin", ADMIN_PASSWORD)))
        yield c


@pytest.fixture
def sqlite_client(sqlite_store, tmp_path, monkeypatch) -> Iterator[TestClient]:
    """The app over SQLite, signed in as the first admin (property tests)."""
    with build(sqlite_store, tmp_path, monkeypatch) as c:
        c.headers.update(bearer(sign_in(c, "admin", ADMIN_PASSWORD)))
        yield c
