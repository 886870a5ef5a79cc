"""The REST API over a real SQLite store with data: exact JSON bodies."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import orjson
import pytest
from fastapi.testclient import TestClient

from hub.api import create_app
from hub.config import HubSettings
from hub.metrics import IngestMetrics
from hub.security.config import AuthConfig
from hub.storage import IngestItem, open_store
from protocol.const import RejectReason
from protocol.models import BufferState, GatewayState
from protocol.readings import Reject, SeriesBlock
from protocol.validate import now_us
from tests.auth_settings import FAST_PASSWORDS


def us(text: str) -> int:
    """An RFC 3339 time as epoch µs, exactly."""
    dt = datetime.fromisoformat(text)
    epoch = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
    delta = dt - epoch
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


RECEIVED = us("2026-11-30T07:00:00Z")


@pytest.fixture
def store(tmp_path):
    """A SQLite store with two devices of gateway gw-05 and one plain sensor."""
    s = open_store(f"sqlite:///{tmp_path}/api.db")
    s.migrate()
    soc = SeriesBlock(
        "dev-e05",
        "state_of_charge",
        "%",
        [us("2026-11-30T06:33:07.5Z"), us("2026-11-30T06:34:07Z")],
        [81.5, 82.0],
        [0, 0],
    )
    temp = SeriesBlock(
        "dev-e06", "temp", "C", [us("2026-11-30T06:00:00Z")], [19.0], [2]
    )
    nan = Reject(
        RejectReason.NON_FINITE_VALUE,
        "series[0].values[2]",
        "nan",
        "dev-e05",
        "state_of_charge",
        2,
    )
    s.write(
        [
            IngestItem(
                "gw-05",
                1,
                [soc, temp],
                RECEIVED,
                rejects=[nan],
                devices={"dev-e05", "dev-e06"},
            )
        ]
    )
    s.record_gateway_state(
        GatewayState(
            gw="gw-05",
            status="online",
            agent="edge/0.1",
            buffer=BufferState(readings=5, bytes=1200),
            dropped={"buffer_full": 3},
        ),
        RECEIVED + 1_000_000,
    )
    yield s
    s.close()


ADMIN_PASSWORD = "admin-password-of-the-api-tests"


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Auth on, as in production; the first admin gets ADMIN_PASSWORD."""
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)
    # Cheap argon2: these tests are about the read routes, not the hash.
    return HubSettings(data_dir=tmp_path, auth=FAST_PASSWORDS)


def signed_in(c: TestClient) -> TestClient:
    """Sign ``c`` in as the first admin: its requests carry the bearer token."""
    resp = c.post(
        "/v1/auth/token",
        data={
            "grant_type": "password",
            "username": "admin",
            "password": ADMIN_PASSWORD,
        },
    )
    assert resp.status_code == 200, resp.text
    c.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
    return c


@pytest.fixture
def client(store, settings):
    with TestClient(create_app(store, settings)) as c:
        yield signed_in(c)


def test_devices_listed_with_rfc3339_times(client):
    """GET /v1/devices lists every device with µs UTC times."""
    resp = client.get("/v1/devices")

    assert resp.status_code == 200
    assert resp.json() == [
        {
            "id": "dev-e05",
            "gateway": "gw-05",
            "name": None,
            "mqtt_topic": None,
            "online": True,
            "first_seen": "2026-11-30T07:00:00.000000Z",
            "last_seen": "2026-11-30T07:00:00.000000Z",
            "expected_interval_s": None,
            "tags": {},
        },
        {
            "id": "dev-e06",
            "gateway": "gw-05",
            "name": None,
            "mqtt_topic": None,
            "online": True,
            "first_seen": "2026-11-30T07:00:00.000000Z",
            "last_seen": "2026-11-30T07:00:00.000000Z",
            "expected_interval_s": None,
            "tags": {},
        },
    ]


def test_device_unknown_is_404_json(client):
    """An unknown device is a 404 in the one error shape, with a code."""
    resp = client.get("/v1/devices/nope")

    assert resp.status_code == 404
    assert resp.json() == {
        "error": {"code": "device_not_found", "message": "no device 'nope'"}
    }


def test_readings_keep_microseconds_in_utc(client):
    """C05: readings come back with µs kept, in UTC with Z."""
    resp = client.get("/v1/devices/dev-e05/readings")

    assert resp.status_code == 200
    assert resp.json() == [
        {
            "metric": "state_of_charge",
            "unit": "%",
            "ts": "2026-11-30T06:33:07.500000Z",
            "value": 81.5,
            "flags": 0,
        },
        {
            "metric": "state_of_charge",
            "unit": "%",
            "ts": "2026-11-30T06:34:07.000000Z",
            "value": 82.0,
            "flags": 0,
        },
    ]


def test_readings_window_with_offset(client):
    """from/to take RFC 3339 with any offset; from is inclusive, to exclusive."""
    resp = client.get(
        "/v1/devices/dev-e05/readings",
        params={"from": "2026-11-30T07:33:07.5+01:00", "to": "2026-11-30T06:34:07Z"},
    )

    assert [r["ts"] for r in resp.json()] == ["2026-11-30T06:33:07.500000Z"]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        (
            {"from": "2026-11-30T06:34:00"},
            "from",
            "from: time '2026-11-30T06:34:00' has no zone: add Z or an offset",
        ),
        (
            {"to": "30/11/2026 06:32"},
            "to",
            "to: expected an RFC 3339 time such as 2026-11-30T06:00:00Z, "
            "got '30/11/2026 06:32'",
        ),
        ({"limit": "0"}, "limit", "limit: Input should be greater than or equal to 1"),
    ],
)
def test_readings_bad_parameter_is_422_naming_field(client, params, field, message):
    """A bad query parameter is a 422 naming the field, with no stack trace."""
    resp = client.get("/v1/devices/dev-e05/readings", params=params)

    assert resp.status_code == 422
    assert resp.json() == {
        "error": {"code": "invalid_parameter", "message": message, "field": field}
    }


def test_latest_is_newest_per_metric(client):
    """GET latest gives each metric's reading with the newest reading time."""
    resp = client.get("/v1/devices/dev-e05/latest")

    assert resp.json() == [
        {
            "metric": "state_of_charge",
            "unit": "%",
            "ts": "2026-11-30T06:34:07.000000Z",
            "value": 82.0,
            "flags": 0,
        }
    ]


def test_device_accounting_counts_rejects(client):
    """Accounting shows the stored and the rejected readings, and completeness."""
    resp = client.get("/v1/devices/dev-e05/accounting")

    assert resp.json() == {
        "received": 2,
        "duplicates": 0,
        "rejected": {"non_finite_value": 1},
        "dropped": {},
        "notices": {},
        "completeness": pytest.approx(2 / 3),
    }


def test_gateway_shows_reported_state(client):
    """GET /v1/gateways/{id} shows the last state the gateway reported."""
    resp = client.get("/v1/gateways/gw-05")

    assert resp.json() == {
        "id": "gw-05",
        "status": "online",
        "agent": "edge/0.1",
        "first_seen": "2026-11-30T07:00:00.000000Z",
        "last_seen": "2026-11-30T07:00:01.000000Z",
        "buffer_readings": 5,
        "buffer_bytes": 1200,
        "dropped": {"buffer_full": 3},
    }
    assert [g["id"] for g in client.get("/v1/gateways").json()] == ["gw-05"]


def test_gateway_accounting_includes_edge_drops(client):
    """A gateway's accounting has its readings and the drops its states reported."""
    resp = client.get("/v1/gateways/gw-05/accounting")

    body = resp.json()
    assert (body["received"], body["rejected"], body["dropped"]) == (
        3,
        {"non_finite_value": 1},
        {"buffer_full": 3},
    )


def test_gateway_unknown_is_404_json(client):
    """An unknown gateway is a 404 with code gateway_not_found."""
    resp = client.get("/v1/gateways/gw-x/accounting")

    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "gateway_not_found"


def test_unknown_route_is_404_json(client):
    """A path that is no route answers in the same error shape."""
    resp = client.get("/v2/nothing")

    assert resp.status_code == 404
    assert resp.json() == {"error": {"code": "not_found", "message": "Not Found"}}


@pytest.fixture
def dst_client(tmp_path, settings):
    """C15: one reading a minute across the 2022 fall-back day in Chicago."""
    s = open_store(f"sqlite:///{tmp_path}/dst.db")
    s.migrate()
    start = us("2022-11-06T05:00:00Z")
    n = 26 * 60  # 05:00Z on the 6th to 06:59Z on the 7th
    block = SeriesBlock(
        "dev-o15",
        "temperature",
        "",
        [start + i * 60_000_000 for i in range(n)],
        [float(i) for i in range(n)],
        [0] * n,
    )
    s.write([IngestItem(None, None, [block], RECEIVED, devices={"dev-o15"})])
    with TestClient(create_app(s, settings)) as c:
        yield signed_in(c)
    s.close()


def test_aggregate_hours_split_repeated_hour(dst_client):
    """C15: the two 01:00 hours of the fall-back day are two buckets of 60."""
    resp = dst_client.get(
        "/v1/devices/dev-o15/aggregate",
        params={
            "metric": "temperature",
            "bucket": "1h",
            "tz": "America/Chicago",
            "from": "2022-11-06T05:00:00Z",
            "to": "2022-11-06T09:00:00Z",
        },
    )

    body = resp.json()
    assert (body["device"], body["metric"], body["bucket"], body["tz"]) == (
        "dev-o15",
        "temperature",
        "1h",
        "America/Chicago",
    )
    assert [(b["start"], b["count"]) for b in body["buckets"]] == [
        ("2022-11-06T00:00:00-05:00", 60),
        ("2022-11-06T01:00:00-05:00", 60),
        ("2022-11-06T01:00:00-06:00", 60),
        ("2022-11-06T02:00:00-06:00", 60),
    ]
    assert body["buckets"][1] == {
        "start": "2022-11-06T01:00:00-05:00",
        "count": 60,
        "min": 60.0,
        "max": 119.0,
        "avg": 89.5,
        "sum": 5370.0,
        "last": 119.0,
    }


def test_aggregate_days_follow_local_days(dst_client):
    """C15: the fall-back day is one bucket of 25 hours, the next starts at -06:00."""
    resp = dst_client.get(
        "/v1/devices/dev-o15/aggregate",
        params={
            "metric": "temperature",
            "bucket": "1d",
            "tz": "America/Chicago",
            "from": "2022-11-06T05:00:00Z",
            "to": "2022-11-07T07:00:00Z",
        },
    )

    assert [(b["start"], b["count"]) for b in resp.json()["buckets"]] == [
        ("2022-11-06T00:00:00-05:00", 1500),
        ("2022-11-07T00:00:00-06:00", 60),
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"metric": "temperature", "tz": "Mars/Olympus"}, "tz"),
        ({"metric": "temperature", "bucket": "2h"}, "bucket"),
        ({}, "metric"),
    ],
)
def test_aggregate_bad_parameter_is_422(dst_client, params, field):
    """An unknown zone, bucket or a missing metric is a 422 naming the field."""
    resp = dst_client.get("/v1/devices/dev-o15/aggregate", params=params)

    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == field


def test_healthz_includes_in_process_counters(store, settings):
    """With the hub's metrics in the same process, /healthz shows its counters."""
    metrics = IngestMetrics()
    metrics.count_message()
    with TestClient(create_app(store, settings, metrics)) as c:
        body = c.get("/healthz").json()

    assert (body["status"], body["store"], body["stats"]["readings"]) == (
        "ok",
        "sqlite",
        3,
    )
    assert body["hub"]["state"] == "running"
    assert body["hub"]["counters"]["messages"] == 1


def test_healthz_reads_hub_status_file(client, settings):
    """From another process, /healthz shows the hub's status file with its age."""
    status = {"pid": 1, "state": "running", "updated_us": now_us(), "counters": {}}
    (settings.data_dir / "hub-status.json").write_bytes(orjson.dumps(status))

    hub = client.get("/healthz").json()["hub"]

    assert (hub["pid"], hub["state"]) == (1, "running")
    assert 0 <= hub["age_s"] < 5


def test_healthz_without_hub_status(client):
    """With no hub status known, /healthz still answers for the store."""
    body = client.get("/healthz").json()

    assert (body["status"], body["hub"]) == ("ok", None)


class BrokenStore:
    """A store whose every read fails."""

    kind = "sqlite"
    features: ClassVar[dict[str, bool]] = {}

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise RuntimeError("disk on fire at /secret/path")

        return fail


def no_auth(settings: HubSettings) -> HubSettings:
    """Auth off: a broken store cannot hold users or tokens either."""
    return settings.model_copy(update={"auth": AuthConfig(enabled=False)})


def test_unexpected_error_is_500_without_trace(settings):
    """A failing store gives a 500 in the error shape, with no detail leaked."""
    with TestClient(
        create_app(BrokenStore(), no_auth(settings)), raise_server_exceptions=False
    ) as c:
        resp = c.get("/v1/devices")

    assert resp.status_code == 500
    assert resp.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal error; see the API's log",
        }
    }


def test_healthz_store_down_is_503(settings):
    """/healthz says degraded with 503 when the store fails."""
    with TestClient(create_app(BrokenStore(), no_auth(settings))) as c:
        resp = c.get("/healthz")

    assert resp.status_code == 503
    assert resp.json()["status"] == "degraded"


def test_openapi_lists_routes(client):
    """The OpenAPI document lists these routes (the role matrix has every one)."""
    paths = client.get("/openapi.json").json()["paths"]

    assert set(paths) >= {
        "/healthz",
        "/v1/alerts",
        "/v1/alerts/stream",
        "/v1/alerts/{alert_id}",
        "/v1/alerts/{alert_id}/ack",
        "/v1/alerts/{alert_id}/resolve",
        "/v1/audit",
        "/v1/audit/export",
        "/v1/auth/logout",
        "/v1/auth/me",
        "/v1/auth/revoke",
        "/v1/auth/token",
        "/v1/clients",
        "/v1/clients/{client_id}",
        "/v1/clients/{client_id}/secret",
        "/v1/devices",
        "/v1/devices/{device_id}",
        "/v1/devices/{device_id}/accounting",
        "/v1/devices/{device_id}/aggregate",
        "/v1/devices/{device_id}/latest",
        "/v1/devices/{device_id}/readings",
        "/v1/gateways",
        "/v1/gateways/{gateway_id}",
        "/v1/gateways/{gateway_id}/accounting",
        "/v1/users",
        "/v1/users/{name}",
    }
