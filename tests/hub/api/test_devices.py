"""Device and gateway registry routes over both stores: bodies, errors, paging."""

from __future__ import annotations

from typing import Any

import pytest

from hub.storage.base import IngestItem
from protocol.readings import SeriesBlock
from protocol.validate import now_us


def _device(**fields: Any) -> dict[str, Any]:
    return {
        "id": "dev-1",
        "gateway": "gw-1",
        "name": "east room",
        "mqtt_topic": "tele/east/SENSOR",
        "tags": {"room": "lab", "site": "north"},
        "expected_interval_s": 60.0,
        **fields,
    }


def _seen(store, device: str, gateway: str = "gw-1") -> None:
    """Make ``device`` alive through data, as ingest would."""
    ts = now_us() - 1_000_000
    block = SeriesBlock(device, "temp", "C", [ts], [20.0], [0])
    store.write([IngestItem(gateway, None, [block], ts, devices={device})])


def test_device_create_read_update_delete(client):
    """A device round-trips through POST, GET, PATCH and DELETE."""
    created = client.post("/v1/devices", json=_device())
    got = client.get("/v1/devices/dev-1")
    patched = client.patch(
        "/v1/devices/dev-1", json={"name": None, "tags": {"room": "hall"}}
    )
    deleted = client.delete("/v1/devices/dev-1")
    after = client.get("/v1/devices/dev-1")

    expected = {
        "id": "dev-1",
        "gateway": "gw-1",
        "name": "east room",
        "mqtt_topic": "tele/east/SENSOR",
        "online": False,
        "first_seen": None,
        "last_seen": None,
        "expected_interval_s": 60.0,
        "tags": {"room": "lab", "site": "north"},
    }
    assert (created.status_code, created.json()) == (201, expected)
    assert (got.status_code, got.json()) == (200, expected)
    assert (patched.status_code, patched.json()) == (
        200,
        {**expected, "name": None, "tags": {"room": "hall"}},
    )
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert after.status_code == 404
    assert after.json() == {
        "error": {"code": "device_not_found", "message": "no device 'dev-1'"}
    }


def test_device_create_twice_conflicts(client):
    """A second POST of one id is 409 ``device_exists`` and changes nothing."""
    client.post("/v1/devices", json=_device())

    resp = client.post("/v1/devices", json=_device(name="other"))

    assert resp.status_code == 409
    assert resp.json() == {
        "error": {"code": "device_exists", "message": "device 'dev-1' exists"}
    }
    assert client.get("/v1/devices/dev-1").json()["name"] == "east room"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "bad id"}, "id"),
        ({"id": "d", "expected_interval_s": 0}, "expected_interval_s"),
        ({"id": "d", "expected_interval_s": -5}, "expected_interval_s"),
        ({"id": "d", "gateway": "gw/1"}, "gateway"),
        ({"id": "d", "tags": {"room": 5}}, "tags.room"),
        ({"id": "d", "colour": "red"}, "colour"),
        ({"name": "no id"}, "id"),
    ],
)
def test_device_create_invalid_names_the_field(client, body, field):
    """A bad body is 422 ``invalid_parameter`` naming the field."""
    resp = client.post("/v1/devices", json=body)

    assert resp.status_code == 422
    error = resp.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_parameter", field)
    assert error["message"].startswith(f"{field}: ")


def test_device_mqtt_topic_taken_is_422_on_the_field(client):
    """Registering a topic another device holds names ``mqtt_topic``."""
    client.post("/v1/devices", json=_device())

    resp = client.post("/v1/devices", json=_device(id="dev-2"))

    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == "mqtt_topic"
    assert client.get("/v1/devices/dev-2").status_code == 404


def test_device_patch_missing_is_404(client):
    """PATCH of an unknown device is 404 ``device_not_found``."""
    resp = client.patch("/v1/devices/nope", json={"name": "x"})

    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "device_not_found"


def test_device_patch_null_tags_is_422(client):
    """Tags cannot be null; ``{}`` clears them."""
    client.post("/v1/devices", json=_device())

    resp = client.patch("/v1/devices/dev-1", json={"tags": None})
    cleared = client.patch("/v1/devices/dev-1", json={"tags": {}})

    assert (resp.status_code, resp.json()["error"]["field"]) == (422, "tags")
    assert cleared.json()["tags"] == {}


def test_device_list_filters(client, store):
    """``gateway``, ``tag`` (all of them) and ``online`` filter the list."""
    client.post("/v1/devices", json=_device(id="a", mqtt_topic=None))
    client.post(
        "/v1/devices",
        json=_device(id="b", mqtt_topic=None, tags={"room": "lab"}, gateway="gw-2"),
    )
    client.post("/v1/devices", json=_device(id="c", mqtt_topic=None, tags={}))
    _seen(store, "b", "gw-2")

    def ids(**params: Any) -> list[str]:
        resp = client.get("/v1/devices", params=params)
        assert resp.status_code == 200, resp.text
        return [d["id"] for d in resp.json()]

    assert ids() == ["a", "b", "c"]
    assert ids(gateway="gw-1") == ["a", "c"]
    assert ids(tag="room:lab") == ["a", "b"]
    assert ids(tag=["room:lab", "site:north"]) == ["a"]
    assert ids(online="true") == ["b"]
    assert ids(online="false") == ["a", "c"]
    assert ids(tag="room:hall") == []


def test_device_list_bad_tag_is_422(client):
    """A tag filter without ``:`` names ``tag``."""
    resp = client.get("/v1/devices", params={"tag": "room"})

    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == "tag"


def test_device_list_pages_visit_every_device_once(client):
    """Following X-Next-Cursor visits each device once, in id order."""
    for i in range(7):
        client.post("/v1/devices", json={"id": f"d{i:02d}"})

    seen, params, pages = [], {"limit": 3}, 0
    while True:
        resp = client.get("/v1/devices", params=params)
        pages += 1
        seen += [d["id"] for d in resp.json()]
        cursor = resp.headers.get("x-next-cursor")
        if cursor is None:
            assert "link" not in resp.headers
            break
        assert resp.headers["link"].endswith('; rel="next"')
        params = {"limit": 3, "cursor": cursor}

    assert seen == [f"d{i:02d}" for i in range(7)]
    assert pages == 3


def test_device_list_bad_cursor_is_422(client):
    """A cursor that is not ours names ``cursor``."""
    resp = client.get("/v1/devices", params={"cursor": "bm90LWEtY3Vyc29y"})

    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == "cursor"


def test_gateway_create_and_delete(client):
    """A gateway is registered ahead of its data, then deleted."""
    created = client.post("/v1/gateways", json={"id": "gw-9"})
    again = client.post("/v1/gateways", json={"id": "gw-9"})
    listed = client.get("/v1/gateways/gw-9")
    deleted = client.delete("/v1/gateways/gw-9")

    assert (created.status_code, created.json()) == (
        201,
        {"id": "gw-9", "status": "unknown", "first_seen": None},
    )
    assert (again.status_code, again.json()["error"]["code"]) == (409, "gateway_exists")
    assert listed.json()["status"] == "unknown"
    assert deleted.status_code == 204
    assert client.get("/v1/gateways/gw-9").status_code == 404
    assert client.delete("/v1/gateways/gw-9").json()["error"]["code"] == (
        "gateway_not_found"
    )


def test_gateway_in_use_is_not_deleted(client, store):
    """A gateway that a device names is 409 ``gateway_in_use``."""
    _seen(store, "dev-7", "gw-7")

    resp = client.delete("/v1/gateways/gw-7")

    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "gateway_in_use"
    assert client.get("/v1/gateways/gw-7").status_code == 200


def test_gateway_create_invalid_id_is_422(client):
    """A gateway id outside the id grammar names ``id``."""
    resp = client.post("/v1/gateways", json={"id": "gw 1"})

    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == "id"
