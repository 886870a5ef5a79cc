"""The live API for the fuzz tests: real uvicorn, a real seeded store.

The API runs in a real uvicorn server on 127.0.0.1 in a thread
(:func:`tests.web.server.serve`) over a SQLite file or a fresh TimescaleDB
database (``pg_dsn``), with auth on as in production (cheap argon2 only).
The store is seeded through its own methods with devices, readings, logs,
alerts, rules, users and a client, so that operations with ids in their
paths meet real objects (:data:`Live.ids`).

Every HTTP request of a test goes through :class:`CountingSession`, which
numbers it with an ``X-Request-ID`` and keeps its status: the audit log
must hold exactly one record of each.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests

from hub.api import create_app
from hub.config import HubSettings
from hub.security.context import SecurityContext
from hub.security.passwords import hash_secret
from hub.security.roles import Role
from hub.security.store import AuditQuery, AuditRecord, ClientRecord, UserRecord
from hub.storage import IngestItem, open_store
from hub.storage.base import AlertRecord, DeviceInfo, RuleRecord, Store
from protocol.logs import LogRecord
from protocol.models import BufferState, GatewayState
from protocol.readings import SeriesBlock
from protocol.validate import now_us
from tests.auth_settings import FAST_PASSWORDS
from tests.web.server import serve

ADMIN = "admin"
ADMIN_PASSWORD = "admin-password-of-the-fuzz-tests"
PASSWORD = "password-of-a-fuzz-test-user"
MIN = 60_000_000
#: Records the audit checks read at most (a run makes a few thousand).
AUDIT_LIMIT = 1_000_000


class CountingSession(requests.Session):
    """A session that numbers every request it sends and keeps its answer.

    Each request gets ``X-Request-ID: <prefix>-<n>`` (the audit log keeps a
    well-formed one), so that the log's records can be matched one to one
    with what was sent; ``sent`` maps each id to ``(method, path, status)``
    (``status`` None: no answer came).
    """

    def __init__(self, prefix: str = "fuzz") -> None:
        super().__init__()
        self._prefix = prefix
        self._numbers = itertools.count(1)
        self.sent: dict[str, tuple[str, str, int | None]] = {}

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        """Send ``request`` with a new request id, and record it."""
        request_id = f"{self._prefix}-{next(self._numbers)}"
        request.headers["X-Request-ID"] = request_id
        # As the server sees it (decoded), and the audit log keeps it (with
        # a NUL escaped: hub.api.errors.NulFilterMiddleware).
        path = unquote(urlsplit(request.url or "").path).replace("\x00", "%00")
        self.sent[request_id] = (request.method or "", path, None)
        response = super().send(request, **kwargs)
        self.sent[request_id] = (request.method or "", path, response.status_code)
        return response


@dataclass
class Live:
    """The served API, its store, and an admin's bearer token."""

    url: str
    app: Any
    store: Any
    http: CountingSession
    token: str
    #: Seeded ids by the path parameter name that takes them.
    ids: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ctx(self) -> SecurityContext:
        """The application's security context."""
        ctx: SecurityContext = self.app.state.security
        return ctx

    @property
    def bearer(self) -> dict[str, str]:
        """The admin's Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}

    def sign_in(self, name: str = ADMIN, password: str = ADMIN_PASSWORD) -> str:
        """A new sign-in's access token (through the counting session)."""
        r = self.http.post(
            f"{self.url}/v1/auth/token",
            data={"grant_type": "password", "username": name, "password": password},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token

    def audit_requests(self) -> list[AuditRecord]:
        """Every ``request`` record of the audit log, after a flush."""
        assert self.ctx.audit is not None
        assert self.ctx.audit.flush(15), "the audit writer did not catch up"
        records: list[AuditRecord] = self.store.list_audit(
            AuditQuery(kind="request"), AUDIT_LIMIT
        )
        return records


def seed(store: Store, ctx: SecurityContext) -> dict[str, list[str]]:
    """Devices with readings and logs, a gateway, alerts, rules, users, a client.

    The first id of each kind is the one the OpenAPI examples name
    (``dev-e05``, ``gw-05``, ``al-7f3c2a``, ``ada``, ``erp``).

    Returns:
        The ids by the path parameter name that takes them.
    """
    now = now_us()
    ts = [now - k * MIN for k in range(30, 0, -1)]
    blocks = [
        SeriesBlock(
            "dev-e05", "temp", "C", ts, [20.0 + k % 5 for k in range(30)], [0] * 30
        ),
        SeriesBlock("dev-e06", "humidity", "%", ts[-3:], [55.0, 56.5, 54.0], [0] * 3),
    ]
    logs = [
        LogRecord("dev-e05", ts[0], "info", "booted", "main"),
        LogRecord("dev-e05", ts[5], "error", "sensor timeout", "i2c"),
    ]
    store.write(
        [
            IngestItem(
                "gw-05",
                1,
                blocks,
                now,
                devices={"dev-e05", "dev-e06"},
                logs=logs,
            )
        ]
    )
    store.record_gateway_state(
        GatewayState(gw="gw-05", status="online", buffer=BufferState(readings=2)),
        now,
    )
    store.upsert_device(DeviceInfo(id="dev-off", name="cellar", tags={"room": "b1"}))
    alerts = [
        AlertRecord(
            id="al-7f3c2a",
            fingerprint="device/dev-e05/threshold/temp:above_max",
            kind="threshold",
            severity="critical",
            summary="dev-e05 temp 27 C above 26 C",
            opened_us=now - 20 * MIN,
            device="dev-e05",
            metric="temp",
        ),
        AlertRecord(
            id="al-off",
            fingerprint="device/dev-off/offline/",
            kind="offline",
            severity="warning",
            summary="dev-off silent for 5 min",
            opened_us=now - 10 * MIN,
            device="dev-off",
        ),
    ]
    for alert in alerts:
        assert store.open_alert(alert, "monitor")
    rules = [
        RuleRecord("hot", "threshold", {"condition": "above", "threshold": 26.0}),
        RuleRecord("dry", "threshold", {"condition": "below", "threshold": 30.0}),
    ]
    for rule in rules:
        store.create_rule(rule)
    for name, role in (("ada", Role.OPERATOR), ("vic", Role.VIEWER)):
        assert ctx.store.create_user(
            UserRecord(name, role, ctx.passwords.hash(PASSWORD))
        )
    assert ctx.store.create_client(
        ClientRecord(
            id="erp", secret_hash=hash_secret("s3cret"), roles=(Role.INTEGRATION,)
        )
    )
    return {
        "device_id": ["dev-e05", "dev-e06", "dev-off"],
        "gateway_id": ["gw-05"],
        "alert_id": ["al-7f3c2a", "al-off"],
        "rule_id": ["hot", "dry"],
        "name": ["ada", "vic"],
        "client_id": ["erp"],
    }


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store_url(request, tmp_path) -> str:
    """A store of each kind: a SQLite file, or a fresh TimescaleDB database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fuzz.db"
    url: str = request.getfixturevalue("pg_dsn")
    return url


@pytest.fixture
def live(store_url, tmp_path, monkeypatch) -> Iterator[Live]:
    """The API served over a seeded store, with an admin signed in."""
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)
    store = open_store(store_url)
    try:
        store.migrate()
        # Tokens outlive the run; a short flush keeps the audit wait short.
        settings = HubSettings(
            data_dir=tmp_path,
            auth={**FAST_PASSWORDS, "access_ttl_s": 3600, "audit_flush_s": 0.05},
        )
        app = create_app(store, settings)
        ids = seed(store, app.state.security)
        with serve(app) as url, CountingSession() as http:
            live = Live(url, app, store, http, "", ids)
            live.token = live.sign_in()
            yield live
    finally:
        store.close()
