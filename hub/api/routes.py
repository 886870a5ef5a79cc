"""The read-only routes of the API: health, devices, readings, gateways.

Handlers are plain functions: FastAPI runs them in its thread pool, so a
store call never blocks the event loop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from hub import const
from hub.api._paging import decode_cursor, encode_cursor, set_next
from hub.api._time import parse_rfc3339
from hub.api.errors import invalid, not_found
from hub.api.schemas import (
    AccountingOut,
    AggregateOut,
    BucketOut,
    DeviceOut,
    GatewayOut,
    HealthOut,
    ReadingOut,
)
from hub.metrics import IngestMetrics
from hub.security.deps import require
from hub.security.roles import Scope
from hub.storage.base import Store
from protocol.readings import Reading
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

router = APIRouter()

#: Every route here but /healthz reads data: viewer and up (hub/security/roles).
_READ = [Depends(require(Scope.READ))]

BucketName = Literal["1m", "5m", "15m", "1h", "1d"]
_BUCKET_S: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
_DAY_US = 86_400 * 1_000_000
#: A status file older than this is reported as stale.
_STATUS_STALE_S = 5 * const.STATUS_INTERVAL_S

DeviceId = Annotated[str, PathParam(description="device id", examples=["dev-e05"])]
GatewayId = Annotated[str, PathParam(description="gateway id", examples=["gw-05"])]
FromQ = Annotated[
    str | None,
    Query(
        alias="from",
        description="start, inclusive, RFC 3339 with a zone",
        examples=["2026-11-30T06:00:00Z"],
    ),
]
ToQ = Annotated[
    str | None,
    Query(
        description="end, exclusive, RFC 3339 with a zone",
        examples=["2026-11-30T07:00:00Z"],
    ),
]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


#: Both stores are safe to share between threads (SQLite behind its own
#: lock, TimescaleDB through a pool), so handlers call the store directly.
StoreDep = Annotated[Store, Depends(_store)]


def _window(from_: str | None, to: str | None) -> tuple[int | None, int | None]:
    try:
        from_us = parse_rfc3339(from_) if from_ is not None else None
    except ValueError as exc:
        raise invalid("from", str(exc)) from None
    try:
        to_us = parse_rfc3339(to) if to is not None else None
    except ValueError as exc:
        raise invalid("to", str(exc)) from None
    if from_us is not None and to_us is not None and to_us < from_us:
        raise invalid("to", "must not be before from")
    return from_us, to_us


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid("tz", f"unknown time zone {tz!r}") from None


def _require_device(store: Store, device_id: str) -> None:
    if store.get_device(device_id) is None:
        raise not_found("device", device_id)


@router.get(
    "/healthz",
    response_model=HealthOut,
    tags=["health"],
    responses={503: {"model": HealthOut, "description": "the store does not answer"}},
)
def healthz(request: Request, store: StoreDep) -> Any:
    """Tell whether the API and its store answer; include the hub's counters."""
    hub = _hub_status(request)
    try:
        stats = store.stats()
    except Exception as exc:  # the store is down: say so, do not raise
        # Logged, not answered: no exception names reach a client.
        _LOGGER.warning("healthz: the store does not answer: %r", exc)
        body = HealthOut(
            status="degraded",
            store=store.kind,
            stats={"error": "the store does not answer; see the API's log"},
            hub=hub,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    return HealthOut(status="ok", store=store.kind, stats=stats, hub=hub)


def _hub_status(request: Request) -> dict[str, Any] | None:
    metrics: IngestMetrics | None = request.app.state.metrics
    if metrics is not None:
        return {"state": "running", "counters": metrics.snapshot()}
    path: Path | None = request.app.state.status_path
    if path is None:
        return None
    try:
        status: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    age_s = (now_us() - int(status.get("updated_us", 0))) / 1e6
    status["age_s"] = round(age_s, 3)
    if status.get("state") == "running" and age_s > _STATUS_STALE_S:
        status["state"] = "stale"
    return status


# GET /v1/devices, with its filters and paging, is in hub/api/devices.py.


@router.get(
    "/v1/devices/{device_id}",
    response_model=DeviceOut,
    tags=["devices"],
    dependencies=_READ,
)
def get_device(device_id: DeviceId, store: StoreDep) -> Any:
    """One device."""
    device = store.get_device(device_id)
    if device is None:
        raise not_found("device", device_id)
    return DeviceOut.of(device)


@router.get(
    "/v1/devices/{device_id}/readings",
    response_model=list[ReadingOut],
    tags=["readings"],
    dependencies=_READ,
)
def device_readings(
    request: Request,
    response: Response,
    device_id: DeviceId,
    store: StoreDep,
    from_: FromQ = None,
    to: ToQ = None,
    metric: Annotated[str | None, Query(description="only this metric")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000, description="at most")] = 1000,
    cursor: Annotated[
        str | None, Query(description="X-Next-Cursor of the previous page")
    ] = None,
) -> Any:
    """Readings of a device in ``[from, to)``, oldest first (then by metric).

    When more follow, the ``X-Next-Cursor`` header and a ``Link: rel="next"``
    name the next page; the body stays a plain array.
    """
    from_us, to_us = _window(from_, to)
    after = decode_cursor(cursor, int, str) if cursor is not None else None
    _require_device(store, device_id)
    if after is None:
        rows = store.readings(device_id, metric, from_us, to_us, limit + 1)
    else:
        rows = _readings_after(store, device_id, metric, after, to_us, limit)
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    set_next(
        request, response, encode_cursor(last.ts_us, last.metric) if last else None
    )
    return [ReadingOut.of(r) for r in page]


def _readings_after(
    store: Store,
    device: str,
    metric: str | None,
    after: list[Any],
    to_us: int | None,
    limit: int,
) -> list[Reading]:
    # Up to one reading per metric shares the cursor's time: fetch that many
    # more from it, and skip those up to the cursor's metric in the store's
    # own order (its collation, which Python's str order need not match).
    after_ts, after_metric = after
    extra = 1 if metric is not None else max(1, len(store.latest(device)))
    rows = store.readings(device, metric, after_ts, to_us, limit + 1 + extra)
    same = [i for i, r in enumerate(rows) if r.ts_us == after_ts]
    skip = next((i + 1 for i in same if rows[i].metric == after_metric), 0)
    return rows[skip:]


@router.get(
    "/v1/devices/{device_id}/latest",
    response_model=list[ReadingOut],
    tags=["readings"],
    dependencies=_READ,
)
def device_latest(device_id: DeviceId, store: StoreDep) -> Any:
    """Each metric's newest reading (by reading time, not arrival)."""
    _require_device(store, device_id)
    return [ReadingOut.of(r) for r in store.latest(device_id)]


@router.get(
    "/v1/devices/{device_id}/aggregate",
    response_model=AggregateOut,
    tags=["readings"],
    dependencies=_READ,
)
def device_aggregate(
    device_id: DeviceId,
    store: StoreDep,
    metric: Annotated[str, Query(description="the metric to aggregate")],
    bucket: Annotated[BucketName, Query(description="bucket length")] = "1h",
    tz: Annotated[
        str,
        Query(
            description="IANA zone of the buckets; days follow its local days",
            examples=["America/Chicago"],
        ),
    ] = "UTC",
    from_: FromQ = None,
    to: ToQ = None,
) -> Any:
    """Buckets of one metric: count, min, max, avg, sum and last in each.

    Buckets shorter than a day are fixed lengths of absolute time, so the
    repeated hour of a fall-back day is two buckets; day buckets follow local
    days in ``tz`` (23 or 25 hours on DST days). Without ``from``/``to`` the
    window is the last day.
    """
    zone = _zone(tz)
    from_us, to_us = _window(from_, to)
    to_us = to_us if to_us is not None else now_us()
    from_us = from_us if from_us is not None else to_us - _DAY_US
    _require_device(store, device_id)
    rows = store.aggregate(device_id, metric, _BUCKET_S[bucket], from_us, to_us, tz)
    return AggregateOut(
        device=device_id,
        metric=metric,
        bucket=bucket,
        tz=tz,
        buckets=[BucketOut.of(b, zone) for b in rows],
    )


@router.get(
    "/v1/devices/{device_id}/accounting",
    response_model=AccountingOut,
    tags=["accounting"],
    dependencies=_READ,
)
def device_accounting(
    device_id: DeviceId, store: StoreDep, from_: FromQ = None, to: ToQ = None
) -> Any:
    """What was stored, duplicated, rejected and dropped for a device."""
    from_us, to_us = _window(from_, to)
    _require_device(store, device_id)
    acc = store.accounting("device", device_id, from_us, to_us)
    return AccountingOut.of(acc)


@router.get(
    "/v1/gateways",
    response_model=list[GatewayOut],
    tags=["gateways"],
    dependencies=_READ,
)
def list_gateways(store: StoreDep) -> Any:
    """Every gateway, ordered by id."""
    return [GatewayOut.of(g) for g in store.list_gateways()]


@router.get(
    "/v1/gateways/{gateway_id}",
    response_model=GatewayOut,
    tags=["gateways"],
    dependencies=_READ,
)
def get_gateway(gateway_id: GatewayId, store: StoreDep) -> Any:
    """One gateway with its last reported state."""
    gateway = store.get_gateway(gateway_id)
    if gateway is None:
        raise not_found("gateway", gateway_id)
    return GatewayOut.of(gateway)


@router.get(
    "/v1/gateways/{gateway_id}/accounting",
    response_model=AccountingOut,
    tags=["accounting"],
    dependencies=_READ,
)
def gateway_accounting(
    gateway_id: GatewayId, store: StoreDep, from_: FromQ = None, to: ToQ = None
) -> Any:
    """What was stored, duplicated, rejected and dropped for a gateway."""
    from_us, to_us = _window(from_, to)
    if store.get_gateway(gateway_id) is None:
        raise not_found("gateway", gateway_id)
    acc = store.accounting("gateway", gateway_id, from_us, to_us)
    return AccountingOut.of(acc)
