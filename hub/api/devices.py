"""Device and gateway registry: list with filters and paging, create, change, delete.

Devices and gateways also register themselves from their data; these
routes let people and systems register them ahead of time, set what only
people know (name, tags, the expected reporting interval) and remove them.
Deleting a device removes it from the registry only: its readings stay
until retention, and a device that sends again is registered again. A
gateway that devices still name cannot be deleted (409 ``gateway_in_use``).
Credentials of devices and gateways are managed elsewhere (the broker's).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam

from hub.api._paging import decode_cursor, encode_cursor, set_next
from hub.api.errors import ApiError, invalid, not_found
from hub.api.routes import StoreDep
from hub.api.schemas import DeviceOut
from hub.api.schemas_v1 import DeviceIn, DevicePatch, GatewayIn, GatewayStateOut
from hub.security.deps import require
from hub.security.roles import Scope
from hub.storage.base import DeviceInfo, Store

router = APIRouter()

_READ = [Depends(require(Scope.READ))]
_WRITE = [Depends(require(Scope.DEVICES_WRITE))]

DeviceId = Annotated[str, PathParam(description="device id", examples=["dev-e05"])]
GatewayId = Annotated[str, PathParam(description="gateway id", examples=["gw-05"])]


def _tag_filter(tags: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag in tags:
        key, sep, value = tag.partition(":")
        if not sep or not key:
            raise invalid("tag", f"expected key:value, got {tag!r}")
        out[key] = value
    return out


@router.get(
    "/v1/devices",
    response_model=list[DeviceOut],
    tags=["devices"],
    dependencies=_READ,
    responses={
        200: {
            "description": "one page of devices, ordered by id; when more follow, "
            "the X-Next-Cursor header and a Link rel=next name the next page",
        }
    },
)
def list_devices(
    request: Request,
    response: Response,
    store: StoreDep,
    gateway: Annotated[str | None, Query(description="only this gateway's")] = None,
    tag: Annotated[
        list[str],
        Query(description="key:value; repeat for all of them", examples=["room:lab"]),
    ] = [],  # noqa: B006 (FastAPI copies defaults; Query lists need a list)
    online: Annotated[bool | None, Query(description="only online or offline")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="at most")] = 1000,
    cursor: Annotated[
        str | None, Query(description="X-Next-Cursor of the previous page")
    ] = None,
) -> Any:
    """Devices ordered by id, filtered by gateway, tags and online state."""
    wanted = _tag_filter(tag)
    after = decode_cursor(cursor, str)[0] if cursor is not None else None
    # TODO: filtering and paging in Python reads the whole registry per page;
    # fine for fleets of thousands, a store query once fleets are far larger.
    devices = [
        d
        for d in store.list_devices(gateway)
        if (after is None or d.id > after)
        and (online is None or d.online == online)
        and all(d.tags.get(k) == v for k, v in wanted.items())
    ]
    page = devices[:limit]
    set_next(
        request, response, encode_cursor(page[-1].id) if len(devices) > limit else None
    )
    return [DeviceOut.of(d) for d in page]


def _upsert(store: Store, device: DeviceInfo) -> None:
    try:
        store.upsert_device(device)
    except ValueError as exc:
        # The store names the field first: "invalid mqtt_topic …".
        text = str(exc)
        field = next(
            (f for f in ("mqtt_topic", "gateway", "expected_interval_s") if f in text),
            "id",
        )
        raise invalid(field, text) from None


@router.post(
    "/v1/devices",
    response_model=DeviceOut,
    status_code=201,
    tags=["devices"],
    dependencies=_WRITE,
    responses={409: {"description": "device_exists"}},
)
def create_device(body: DeviceIn, store: StoreDep) -> Any:
    """Register a device ahead of its data."""
    if store.get_device(body.id) is not None:
        raise ApiError(409, "device_exists", f"device {body.id!r} exists")
    # TODO: two creates of one id at once both pass the check above and the
    # second overwrites the first; an insert-only store call would say 409.
    _upsert(store, DeviceInfo(**body.model_dump()))
    created = store.get_device(body.id)
    if created is None:  # deleted between the two calls
        raise not_found("device", body.id)
    return DeviceOut.of(created)


@router.patch(
    "/v1/devices/{device_id}",
    response_model=DeviceOut,
    tags=["devices"],
    dependencies=_WRITE,
)
def update_device(device_id: DeviceId, body: DevicePatch, store: StoreDep) -> Any:
    """Change registry fields; fields left out keep their value.

    ``name``, ``mqtt_topic`` and ``expected_interval_s`` may be set to null;
    ``gateway`` may be changed but not cleared (it is learned from data).
    """
    device = store.get_device(device_id)
    if device is None:
        raise not_found("device", device_id)
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    if changes.get("tags", ...) is None:
        raise invalid("tags", "expected an object; {} clears the tags")
    _upsert(store, dataclasses.replace(device, **changes))
    updated = store.get_device(device_id)
    if updated is None:
        raise not_found("device", device_id)
    return DeviceOut.of(updated)


@router.delete(
    "/v1/devices/{device_id}",
    status_code=204,
    tags=["devices"],
    dependencies=_WRITE,
)
def delete_device(device_id: DeviceId, store: StoreDep) -> Response:
    """Remove a device from the registry (its readings stay until retention)."""
    if not store.delete_device(device_id):
        raise not_found("device", device_id)
    return Response(status_code=204)


@router.post(
    "/v1/gateways",
    response_model=GatewayStateOut,
    status_code=201,
    tags=["gateways"],
    dependencies=_WRITE,
    responses={409: {"description": "gateway_exists"}},
)
def create_gateway(body: GatewayIn, store: StoreDep) -> Any:
    """Register a gateway ahead of its data (status ``unknown`` until it reports)."""
    if not store.create_gateway(body.id):
        raise ApiError(409, "gateway_exists", f"gateway {body.id!r} exists")
    gateway = store.get_gateway(body.id)
    if gateway is None:
        raise not_found("gateway", body.id)
    return GatewayStateOut.of(gateway)


@router.delete(
    "/v1/gateways/{gateway_id}",
    status_code=204,
    tags=["gateways"],
    dependencies=_WRITE,
    responses={409: {"description": "gateway_in_use: devices still name it"}},
)
def delete_gateway(gateway_id: GatewayId, store: StoreDep) -> Response:
    """Remove a gateway that no device names any more."""
    if store.get_gateway(gateway_id) is None:
        raise not_found("gateway", gateway_id)
    using = store.list_devices(gateway_id)
    if using:
        raise ApiError(
            409,
            "gateway_in_use",
            f"gateway {gateway_id!r} still has {len(using)} device(s), "
            f"e.g. {using[0].id!r}",
        )
    store.delete_gateway(gateway_id)
    return Response(status_code=204)
