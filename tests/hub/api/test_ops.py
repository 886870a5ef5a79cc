"""/readyz and /metrics: readiness checks and the Prometheus exposition."""

from __future__ import annotations

import socket

from prometheus_client.parser import text_string_to_metric_families

from hub.security.passwords import hash_secret
from hub.security.roles import Role
from hub.security.store import ClientRecord
from tests.hub.api.conftest import bearer, build, client_token


def test_readyz_ready(client):
    """A reachable, migrated store: 200 ``ready``, no token needed."""
    resp = client.get("/readyz", headers={"Authorization": ""})

    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ready",
        "checks": {"store": "ok", "migrations": "ok"},
    }


def test_readyz_store_down_is_503(sqlite_store, tmp_path, monkeypatch):
    """A store that does not answer: 503 with the reason."""
    with build(sqlite_store, tmp_path, monkeypatch) as c:
        sqlite_store.close()

        resp = c.get("/readyz")

    assert resp.status_code == 503
    assert resp.json() == {
        "status": "unavailable",
        "checks": {"store": "unreachable (ProgrammingError)"},
    }


def test_readyz_pending_migration_is_503(client):
    """A schema behind this version's migrations: 503 naming them."""
    store = client.app.state.store
    latest = max(store.schema_versions())
    if store.kind == "sqlite":
        store._query("DELETE FROM schema_migrations WHERE version = ?", (latest,))
    else:
        with store._pool.connection() as conn:
            conn.execute("DELETE FROM schema_migrations WHERE version = %s", [latest])

    resp = client.get("/readyz")

    assert resp.status_code == 503
    assert resp.json()["checks"] == {
        "store": "ok",
        "migrations": f"pending: [{latest}]",
    }


def test_readyz_checks_the_broker_when_given(client):
    """With a broker to check: ok while it listens, 503 once it is gone."""
    app = client.app
    with socket.create_server(("127.0.0.1", 0)) as listener:
        app.state.ready_broker = ("127.0.0.1", listener.getsockname()[1])
        up = client.get("/readyz")
    down = client.get("/readyz")

    assert (up.status_code, up.json()["checks"]["broker"]) == (200, "ok")
    assert down.status_code == 503
    assert down.json()["checks"]["broker"].startswith("unreachable (127.0.0.1:")


def test_metrics_parse_and_count_requests(client):
    """The exposition parses, counts requests by route template, has store figures."""
    client.post("/v1/devices", json={"id": "dev-m"})
    client.get("/v1/devices/dev-m")
    client.get("/v1/devices/nope")

    resp = client.get("/metrics")

    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }
    route = "/v1/devices/{device_id}"
    assert (
        samples[
            (
                "streamflow_api_requests_total",
                (("method", "GET"), ("route", route), ("status", "200")),
            )
        ]
        == 1.0
    )
    assert (
        samples[
            (
                "streamflow_api_requests_total",
                (("method", "GET"), ("route", route), ("status", "404")),
            )
        ]
        == 1.0
    )
    assert (
        samples[
            (
                "streamflow_api_request_duration_seconds_count",
                (("method", "POST"), ("route", "/v1/devices")),
            )
        ]
        == 1.0
    )
    assert samples[("streamflow_api_store_up", ())] == 1.0
    assert samples[("streamflow_store_devices", ())] == 1.0
    assert ("streamflow_api_audit_dropped", ()) in samples


def test_metrics_needs_the_metrics_scope(client):
    """Prometheus as an integration client narrowed to ``metrics`` may scrape."""
    store = client.app.state.store
    secret = "secret-of-prom-" + "x" * 20
    store.create_client(ClientRecord("prom", hash_secret(secret), (Role.INTEGRATION,)))
    token = client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "scope": "metrics"},
        auth=("prom", secret),
    ).json()["access_token"]
    device = client_token(client, store, "mote-1", Role.DEVICE)

    scraped = client.get("/metrics", headers=bearer(token))
    refused = client.get("/metrics", headers=bearer(device))
    narrowed_read = client.get("/v1/devices", headers=bearer(token))

    assert scraped.status_code == 200
    assert refused.status_code == 403
    assert narrowed_read.status_code == 403


def test_metrics_store_down_still_answers(sqlite_store, tmp_path, monkeypatch):
    """A scrape while the store is down says so instead of failing."""
    with build(sqlite_store, tmp_path, monkeypatch, auth={"enabled": False}) as c:
        sqlite_store.close()

        resp = c.get("/metrics")

    assert resp.status_code == 200
    values = {
        s.name: s.value
        for f in text_string_to_metric_families(resp.text)
        for s in f.samples
    }
    assert values["streamflow_api_store_up"] == 0.0
