"""Fixtures of the security tests: stores of both kinds, a served API.

The API runs in a real uvicorn server on 127.0.0.1 in a thread
(:func:`serve`), over a SQLite file or a fresh TimescaleDB database
(``pg_dsn``). Passwords use cheap argon2 parameters so that sign-ins stay
fast; everything else is the production path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hub.api import create_app
from hub.config import HubSettings
from hub.security.context import SecurityContext
from hub.security.roles import Role
from hub.security.store import UserRecord
from hub.storage.sqlite import SQLiteStore
from tests.auth_settings import FAST_PASSWORDS
from tests.web.server import serve

ADMIN_PASSWORD = "admin-password-0f-tests"
PASSWORD = "password-of-a-test-user"


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store(request, tmp_path):
    """A migrated, empty store of each kind, closed afterwards."""
    if request.param == "sqlite":
        opened: Any = SQLiteStore(tmp_path / "store.db")
    else:
        from hub.storage.timescale import TimescaleStore

        opened = TimescaleStore(request.getfixturevalue("pg_dsn"))
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path):
    """A migrated SQLite store (for tests that need one kind only)."""
    opened = SQLiteStore(tmp_path / "store.db")
    opened.migrate()
    yield opened
    opened.close()


def settings_for(tmp_path, **auth: Any) -> HubSettings:
    """Hub settings with cheap passwords and the ``auth`` values given."""
    return HubSettings(data_dir=tmp_path, auth={**FAST_PASSWORDS, **auth})


@dataclass
class Api:
    """A served API and helpers to sign in to it."""

    url: str
    app: FastAPI
    store: Any

    @property
    def ctx(self) -> SecurityContext:
        """The application's security context."""
        ctx: SecurityContext = self.app.state.security
        return ctx

    def http(self, local_address: str | None = None) -> httpx.Client:
        """A client of the API, sending from ``local_address`` if given."""
        transport = httpx.HTTPTransport(local_address=local_address)
        return httpx.Client(base_url=self.url, transport=transport, timeout=10)

    def add_user(self, name: str, role: Role, password: str = PASSWORD) -> None:
        """Create a user straight in the store."""
        record = UserRecord(name, role, self.ctx.passwords.hash(password))
        assert self.store.create_user(record)

    def sign_in(
        self, name: str, password: str = PASSWORD, local_address: str | None = None
    ) -> dict[str, Any]:
        """The token answer of a password grant (asserting it succeeded)."""
        with self.http(local_address) as http:
            r = http.post(
                "/v1/auth/token",
                data={"grant_type": "password", "username": name, "password": password},
            )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def bearer(self, name: str, password: str = PASSWORD) -> dict[str, str]:
        """An Authorization header for ``name``."""
        return {
            "Authorization": f"Bearer {self.sign_in(name, password)['access_token']}"
        }

    def flush_audit(self) -> None:
        """Wait until every audit record so far is in the store."""
        assert self.ctx.audit is not None
        assert self.ctx.audit.flush(10)


@contextmanager
def running(store: Any, settings: HubSettings) -> Iterator[Api]:
    """The API over ``store``, served; the first admin has ADMIN_PASSWORD."""
    app = create_app(store, settings)
    with serve(app) as url:
        yield Api(url, app, store)


@pytest.fixture
def api(store, tmp_path, monkeypatch) -> Iterator[Api]:
    """The API with default security settings (cheap passwords), on each store."""
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)
    with running(store, settings_for(tmp_path)) as served:
        yield served
