"""A failing store: every answer in the documented shape, no traceback.

The store is broken for real under the running API: its data tables are
renamed away through a connection of its own (SQLite file or TimescaleDB),
so the store's queries fail inside the driver. Every read operation of the
live OpenAPI document is then called with seeded ids: the 5xx answers
must be exactly the documented ``internal_error`` body (or /healthz's
``degraded``), no body may show a traceback or an exception class name,
and each request still has its one audit record.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from hub.api.errors import error_body
from tests.hub.api_fuzz.checks import leaks
from tests.hub.api_fuzz.conftest import Live

pytestmark = pytest.mark.e2e

#: Data tables renamed away (the auth tables stay: requests still sign in).
BROKEN_TABLES = ("devices", "gateways", "alerts", "rules", "series", "device_logs")
INTERNAL = error_body("internal_error", "internal error; see the API's log")
#: Their 4xx answers are RFC 6749's shape (403 may be either).
OAUTH_PATHS = ("/v1/auth/token", "/v1/auth/revoke")
#: The errors hub.api.errors documents on every operation that can answer them.
COMMON_ERRORS = ("400", "401", "403", "404", "409", "422", "500")


def _break(live: Live, store_url: str) -> None:
    renames = [f"ALTER TABLE {t} RENAME TO {t}_gone" for t in BROKEN_TABLES]
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            for table, sql in zip(BROKEN_TABLES, renames, strict=True):
                if table in tables:
                    conn.execute(sql)
        return
    import psycopg

    with psycopg.connect(store_url, autocommit=True) as conn:
        for sql in renames:
            conn.execute(sql.replace("ALTER TABLE", "ALTER TABLE IF EXISTS"))


def _url(live: Live, path: str) -> str:
    for name, ids in live.ids.items():
        path = path.replace("{" + name + "}", ids[0])
    return live.url + path


def _reads(live: Live) -> list[str]:
    doc: dict[str, Any] = live.http.get(f"{live.url}/openapi.json", timeout=10).json()
    paths = []
    for path, item in doc["paths"].items():
        get = item.get("get")
        if get is None:
            continue
        ok = get["responses"].get("200", {}).get("content", {})
        if set(ok) == {"text/event-stream"}:
            continue  # never ends; its store failures are the feed's, logged
        paths.append(path)
    return paths


def test_a_broken_store_answers_the_one_error_shape(live: Live, store_url: str):
    """5xx bodies are the documented shape; none shows what failed inside."""
    paths = _reads(live)
    _break(live, store_url)

    answers = {}
    for path in paths:
        r = live.http.get(_url(live, path), headers=live.bearer, timeout=10)
        answers[path] = r
        assert leaks(r.text) == [], (path, r.status_code, r.text)
        if r.status_code >= 400:
            assert r.headers["content-type"] == "application/json", path

    failed = {p: r for p, r in answers.items() if r.status_code >= 500}
    # The routes that read the renamed tables fail, the others answer.
    assert "/v1/devices" in failed
    assert "/v1/alerts" in failed
    assert "/healthz" in failed
    assert answers["/v1/auth/me"].status_code == 200
    for path, r in failed.items():
        if path == "/healthz":
            assert r.status_code == 503
            assert r.json()["status"] == "degraded"
            continue
        assert (r.status_code, r.json()) == (500, INTERNAL), path

    records = {rec.request_id: rec.status for rec in live.audit_requests()}
    assert records == {rid: status for rid, (_, _, status) in live.http.sent.items()}


def test_an_unexpected_error_in_a_route_is_the_one_shape(live: Live, monkeypatch):
    """An exception whose text names a secret path answers only internal_error."""

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire at /secret/path/store.db")

    monkeypatch.setattr(live.store, "list_gateways", fail)
    r = live.http.get(f"{live.url}/v1/gateways", headers=live.bearer, timeout=10)

    assert (r.status_code, r.json()) == (500, INTERNAL)
    assert "secret" not in r.text
    assert leaks(r.text) == []


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("GET", "/v1/devices/dev%00e05", {}, "path"),
        ("GET", "/v1/devices", {"params": {"gateway": "gw\x0005"}}, "gateway"),
        ("PATCH", "/v1/clients/erp", {"json": {"name": "a\x00b"}}, "name"),
        (
            "POST",
            "/v1/alerts/al-off/ack",
            {"json": {"note": "on \x00 it"}},
            "note",
        ),
    ],
)
def test_a_nul_is_a_422_naming_the_field(live: Live, method, path, kwargs, field):
    """No store sees a NUL (PostgreSQL cannot hold one); the audit log keeps all."""
    r = live.http.request(
        method, live.url + path, headers=live.bearer, timeout=10, **kwargs
    )

    assert r.status_code == 422, r.text
    assert r.json() == error_body(
        "invalid_parameter", f"{field}: must not hold a NUL character", field
    )
    records = {rec.request_id: rec.status for rec in live.audit_requests()}
    assert records == {rid: status for rid, (_, _, status) in live.http.sent.items()}


def test_the_token_endpoint_refuses_a_nul_in_its_own_shape(live: Live):
    """A NUL in a sign-in form is RFC 6749's invalid_request, not a 500."""
    r = live.http.post(
        f"{live.url}/v1/auth/token",
        data={"grant_type": "password", "username": "ad\x00min", "password": "x"},
        timeout=10,
    )

    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_request",
        "error_description": "username holds a NUL character",
    }


def test_every_operation_documents_its_errors_in_the_one_shape(live: Live):
    """500 and 403 everywhere; 401 with a token; 404 with path ids; one shape."""
    doc = live.http.get(f"{live.url}/openapi.json", timeout=10).json()
    error = {"$ref": "#/components/schemas/ErrorOut"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            label = f"{method.upper()} {path}"
            assert {"403", "500"} <= set(responses), label
            if "security" in op:
                assert "401" in responses, label
            if "{" in path:
                assert "404" in responses, label
            for code, response in responses.items():
                if int(code) < 400:
                    continue
                # Every error has a JSON body; those any route may answer are
                # the one shape (a 503 of /healthz or /readyz is its own).
                schema = response["content"]["application/json"]["schema"]
                if code in COMMON_ERRORS and path not in OAUTH_PATHS:
                    assert schema == error, (label, code)
    me = doc["paths"]["/v1/auth/me"]["get"]
    assert me["security"] == [{"bearer": []}]
    token = doc["paths"]["/v1/auth/token"]["post"]["responses"]
    oauth = {"$ref": "#/components/schemas/OAuthErrorOut"}
    assert token["400"]["content"]["application/json"]["schema"] == oauth
