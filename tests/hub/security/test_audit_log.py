"""The audit log over a real server: every request once, no secret, queries."""

from __future__ import annotations

import csv
import io

import orjson

from hub.security.roles import Role
from hub.security.store import AuditQuery
from tests.hub.security.conftest import ADMIN_PASSWORD, PASSWORD, Api

TOKEN = "/v1/auth/token"


def _all_records(api: Api):
    return api.store.list_audit(AuditQuery(), 100_000)


def _session(api: Api) -> tuple[list[str], list[str]]:
    """A mixed session; the request ids sent, and every secret used."""
    api.add_user("ada", Role.VIEWER)
    ids: list[str] = []
    secrets = [ADMIN_PASSWORD, PASSWORD, "wrong-password-xyz"]

    def call(http, method, url, **kw):
        rid = f"req-{len(ids)}"
        ids.append(rid)
        r = http.request(
            method, url, headers={"X-Request-ID": rid, **kw.pop("headers", {})}, **kw
        )
        assert r.headers["x-request-id"] == rid
        return r

    with api.http() as http:
        sign_in = {"grant_type": "password", "username": "admin"}
        body = call(
            http, "POST", TOKEN, data={**sign_in, "password": ADMIN_PASSWORD}
        ).json()
        secrets += [body["access_token"], body["refresh_token"]]
        admin = {"Authorization": f"Bearer {body['access_token']}"}
        call(http, "POST", TOKEN, data={**sign_in, "password": "wrong-password-xyz"})
        call(http, "GET", "/v1/devices")  # 401
        call(http, "GET", "/v1/users", headers={"Authorization": "Bearer forged.x.y"})
        call(http, "GET", "/v1/devices/nope", headers=admin)  # 404
        call(http, "GET", "/v1/devices?gateway=gw-1&access_token=leak", headers=admin)
        made = call(http, "POST", "/v1/clients", json={"id": "erp"}, headers=admin)
        secret = made.json()["client_secret"]
        secrets.append(secret)
        client = call(
            http, "POST", TOKEN, data={"grant_type": "client_credentials"},
            auth=("erp", secret),
        ).json()  # fmt: skip
        secrets.append(client["access_token"])
        refresh = {
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
        }
        renewed = call(http, "POST", TOKEN, data=refresh).json()
        secrets += [renewed["access_token"], renewed["refresh_token"]]
        call(
            http, "POST", "/v1/users",
            json={"name": "bo", "role": "viewer", "password": "bo-password-123456"},
            headers=admin,
        )  # fmt: skip
        secrets.append("bo-password-123456")
        ada = api.sign_in("ada")  # one more request, its id generated
        secrets += [ada["access_token"], ada["refresh_token"]]
    return ids, secrets


def test_every_request_recorded_once(api: Api):
    """Each request of the session has exactly one request record."""
    ids, _ = _session(api)
    api.flush_audit()

    records = [r for r in _all_records(api) if r.kind == "request"]
    by_id = [r.request_id for r in records]

    assert sorted(i for i in by_id if i.startswith("req-")) == sorted(ids)
    assert len(by_id) == len(ids) + 1  # api.sign_in's own request
    assert len(set(by_id)) == len(by_id)
    statuses = {r.request_id: r.status for r in records}
    assert [statuses[f"req-{i}"] for i in (0, 1, 2, 3, 4)] == [200, 400, 401, 401, 404]
    first = next(r for r in records if r.request_id == "req-4")
    assert (first.actor, first.role, first.method, first.path) == (
        "admin",
        "admin",
        "GET",
        "/v1/devices/nope",
    )
    assert first.address == "127.0.0.1"
    assert first.duration_ms >= 0


def test_failed_sign_in_recorded_with_counts(api: Api):
    """The failed sign-in has its own record: who, why, how many so far."""
    _session(api)
    api.flush_audit()

    (failed,) = api.store.list_audit(AuditQuery(kind="sign_in_failed"), 10)

    assert (failed.actor, failed.address, failed.request_id) == (
        "admin",
        "127.0.0.1",
        "req-1",
    )
    assert failed.detail == {
        "grant": "password",
        "reason": "bad_password",
        "failures_subject": 1,
        "failures_address": 1,
    }


def test_no_secret_in_any_record(api: Api):
    """No password, client secret or token appears anywhere in the log."""
    _, secrets = _session(api)
    api.flush_audit()

    dump = orjson.dumps([r.__repr__() for r in _all_records(api)]).decode()

    leaked = [s for s in secrets if s in dump]
    assert leaked == []
    assert "leak" not in dump  # query parameter named like a token: masked
    assert "gateway=gw-1" in dump


def test_audit_route_filters_and_pages(api: Api):
    """GET /v1/audit filters by who and status, and pages by cursor."""
    _session(api)
    api.flush_audit()
    with api.http() as http:
        admin = api.bearer("admin", ADMIN_PASSWORD)
        api.flush_audit()
        failed = http.get("/v1/audit", params={"status": 401}, headers=admin).json()
        by_ada = http.get("/v1/audit", params={"who": "ada"}, headers=admin).json()
        pages, cursor = [], None
        while True:
            params = {"limit": 4, "path": "/v1/auth/"} | (
                {"cursor": cursor} if cursor else {}
            )
            page = http.get("/v1/audit", params=params, headers=admin).json()
            pages.append(page["records"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        bad_cursor = http.get("/v1/audit", params={"cursor": "%%%"}, headers=admin)

    assert [r["request_id"] for r in failed["records"]] == ["req-2", "req-3"]
    assert {r["actor"] for r in by_ada["records"]} == {"ada"}
    flat = [r for p in pages for r in p]
    expected = api.store.list_audit(AuditQuery(path_prefix="/v1/auth/"), 1000)
    assert [r["id"] for r in flat] == [r.id for r in expected]
    assert all(len(p) <= 4 for p in pages)
    assert bad_cursor.status_code == 422


def test_audit_export_csv_and_jsonl(api: Api):
    """The export has every record, as CSV with a header and as JSON lines."""
    _session(api)
    with api.http() as http:
        admin = api.bearer("admin", ADMIN_PASSWORD)
        api.flush_audit()
        count = len(_all_records(api))
        as_csv = http.get("/v1/audit/export", params={"format": "csv"}, headers=admin)
        as_jsonl = http.get("/v1/audit/export", headers=admin)

    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    lines = [orjson.loads(x) for x in as_jsonl.text.splitlines()]
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert len(rows) == len(lines) == count
    assert [r["request_id"] for r in rows] == [x["request_id"] for x in lines]
    assert rows[0]["request_id"] == "req-0"
    assert lines[0]["status"] == 200
