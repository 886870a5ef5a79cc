"""Data routes: bucketed figures with percentiles, and device and fleet statistics.

``GET /v1/devices/{id}/buckets`` answers count, min, max, avg, sum, last and
percentiles (``p50``, ``p95``, ``p99.9``, …) per bucket. It is served from the
1-minute rollups (``rollups_1m``, kept by the rollup processor) when they
can give the same answer as the raw readings: the bucket is a whole number
of minutes, the window starts and ends on a minute, every figure asked is one
a rollup holds (not a percentile), and the rollups of the window count as
many readings as the store holds there (readings that reached the store
without the processors, over HTTP ingest, or while the processors were off,
have no rollup). Otherwise the raw readings serve it; ``source`` says which.
Percentiles are continuous (PostgreSQL's ``percentile_cont``, numpy's
linear method on SQLite).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from hub.api._time import format_us, format_us_in_zone
from hub.api.errors import invalid, not_found
from hub.api.routes import DeviceId, FromQ, StoreDep, ToQ, _window, _zone
from hub.api.schemas_v1 import (
    BucketsOut,
    DeviceStatsOut,
    FleetStatsOut,
    LatestOut,
)
from hub.security.deps import require
from hub.security.roles import Scope
from hub.storage._common import bucket_spec, local_day_bounds
from hub.storage._data_common import bucket_starts
from hub.storage.base import Bucket, Store
from protocol.validate import now_us

router = APIRouter()

_READ = [Depends(require(Scope.READ))]

BucketName = Literal["10s", "1m", "5m", "15m", "1h", "6h", "1d", "7d"]
_BUCKET_S: dict[str, int] = {
    "10s": 10,
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "6h": 21_600,
    "1d": 86_400,
    "7d": 604_800,
}
_MINUTE_US = 60_000_000
_DAY_US = 86_400 * 1_000_000
#: The figures a rollup row holds; a percentile needs the raw readings.
ROLLUP_FIGURES = ("count", "min", "max", "avg", "sum", "last")
_PERCENTILE_RE = re.compile(r"p(\d{1,2}(?:\.\d{1,3})?|100)")
#: Figures asked for at most in one request.
_MAX_FIGURES = 16


def parse_figures(text: str) -> list[str]:
    """The figures of a ``figures`` parameter, in order, without repeats.

    Raises:
        ApiError: a 422 naming ``figures`` for an unknown figure.
    """
    out: list[str] = []
    for name in (n.strip() for n in text.split(",")):
        if name not in ROLLUP_FIGURES and not _PERCENTILE_RE.fullmatch(name):
            raise invalid(
                "figures",
                f"unknown figure {name!r}: expected count, min, max, avg, sum, "
                "last or a percentile such as p95",
            )
        if name not in out:
            out.append(name)
    if len(out) > _MAX_FIGURES:
        raise invalid("figures", f"at most {_MAX_FIGURES} figures")
    return out


def _quantile(figure: str) -> float:
    return float(figure[1:]) / 100.0


@router.get(
    "/v1/devices/{device_id}/buckets",
    response_model=BucketsOut,
    tags=["readings"],
    dependencies=_READ,
)
def device_buckets(
    device_id: DeviceId,
    store: StoreDep,
    metric: Annotated[str, Query(description="the metric", examples=["temp"])],
    bucket: Annotated[BucketName, Query(description="bucket length")] = "1h",
    figures: Annotated[
        str,
        Query(
            description="comma-separated: count, min, max, avg, sum, last, pNN",
            examples=["count,avg,p95"],
        ),
    ] = ",".join(ROLLUP_FIGURES),
    tz: Annotated[
        str, Query(description="IANA zone; day buckets follow its local days")
    ] = "UTC",
    from_: FromQ = None,
    to: ToQ = None,
) -> Any:
    """Figures of one metric per bucket over any window (default: the last day).

    Buckets shorter than a day are fixed lengths of absolute time; day
    buckets follow local days in ``tz``, as ``…/aggregate``.
    """
    wanted = parse_figures(figures)
    zone = _zone(tz)
    from_us, to_us = _window(from_, to)
    if to_us is None:
        # Up to the next whole minute, so that the default window can be
        # served from rollups.
        now = now_us()
        to_us = now - now % _MINUTE_US + _MINUTE_US
    if from_us is None:
        from_us = to_us - _DAY_US
    if store.get_device(device_id) is None:
        raise not_found("device", device_id)
    bucket_s = _BUCKET_S[bucket]
    if _rollups_cover(store, device_id, metric, bucket_s, wanted, from_us, to_us, tz):
        source: Literal["rollups", "readings"] = "rollups"
        rows = _from_rollups(store, device_id, metric, bucket_s, from_us, to_us, tz)
    else:
        source = "readings"
        rows = _from_readings(
            store, device_id, metric, bucket_s, from_us, to_us, tz, wanted
        )
    return BucketsOut(
        device=device_id,
        metric=metric,
        bucket=bucket,
        tz=tz,
        figures=wanted,
        source=source,
        buckets=[_bucket_json(start, figs, wanted, zone) for start, figs in rows],
    )


def _bucket_json(
    start: int, figs: dict[str, float], wanted: list[str], zone: ZoneInfo
) -> dict[str, Any]:
    out: dict[str, Any] = {"start": format_us_in_zone(start, zone)}
    for name in wanted:
        value = figs[name]
        out[name] = int(value) if name == "count" else value
    return out


def _rollups_cover(
    store: Store,
    device: str,
    metric: str,
    bucket_s: int,
    wanted: list[str],
    from_us: int,
    to_us: int,
    tz: str,
) -> bool:
    if bucket_s % 60 or not set(wanted) <= set(ROLLUP_FIGURES):
        return False
    if from_us % _MINUTE_US or to_us % _MINUTE_US or from_us >= to_us:
        return False
    spec = bucket_spec(bucket_s, tz)
    if spec.days and any(
        b % _MINUTE_US for b in local_day_bounds(spec, from_us, to_us)
    ):
        # A zone whose offset was not whole minutes then (local mean time
        # before 1900 and the like): a minute would straddle two days.
        return False
    # TODO: equal totals could hide a stale minute balanced by one whose
    # readings retention dropped (rollups are not dropped with them); a
    # per-minute comparison would rule it out at the cost of reading them all.
    counted = sum(r.count for r in store.rollups(device, metric, from_us, to_us))
    return counted > 0 and counted == store.count_series(device, metric, from_us, to_us)


def _from_rollups(
    store: Store,
    device: str,
    metric: str,
    bucket_s: int,
    from_us: int,
    to_us: int,
    tz: str,
) -> list[tuple[int, dict[str, float]]]:
    spec = bucket_spec(bucket_s, tz)
    minutes = store.rollups(device, metric, from_us, to_us)
    starts = bucket_starts(spec, [m.start_us for m in minutes])
    out: dict[int, dict[str, float]] = {}
    for start, m in zip(starts, minutes, strict=True):
        figs = out.get(start)
        total = m.mean * m.count
        if figs is None:
            out[start] = {
                "count": m.count,
                "min": m.min,
                "max": m.max,
                "sum": total,
                "last": m.last,
            }
            continue
        figs["count"] += m.count
        figs["min"] = min(figs["min"], m.min)
        figs["max"] = max(figs["max"], m.max)
        figs["sum"] += total
        figs["last"] = m.last  # minutes come oldest first
    for figs in out.values():
        figs["avg"] = figs["sum"] / figs["count"]
    return sorted(out.items())


def _from_readings(
    store: Store,
    device: str,
    metric: str,
    bucket_s: int,
    from_us: int,
    to_us: int,
    tz: str,
    wanted: list[str],
) -> list[tuple[int, dict[str, float]]]:
    out: dict[int, dict[str, float]] = {}
    b: Bucket
    for b in store.aggregate(device, metric, bucket_s, from_us, to_us, tz):
        out[b.start_us] = {
            "count": b.count,
            "min": b.min,
            "max": b.max,
            "avg": b.avg,
            "sum": b.sum,
            "last": b.last,
        }
    percentiles = [f for f in wanted if f not in ROLLUP_FIGURES]
    if percentiles:
        quantiles = [_quantile(f) for f in percentiles]
        rows = store.percentiles(
            device, metric, bucket_s, from_us, to_us, quantiles, tz
        )
        for start, values in rows:
            figs = out.setdefault(start, {})
            figs.update(zip(percentiles, values, strict=True))
    return sorted(
        (start, figs)
        for start, figs in out.items()
        if all(name in figs for name in wanted)
    )


@router.get(
    "/v1/devices/{device_id}/stats",
    response_model=DeviceStatsOut,
    tags=["devices"],
    dependencies=_READ,
)
def device_stats(device_id: DeviceId, store: StoreDep) -> Any:
    """A device's latest values, readings stored and online state."""
    device = store.get_device(device_id)
    if device is None:
        raise not_found("device", device_id)
    latest = store.latest(device_id)
    return DeviceStatsOut(
        device=device.id,
        online=device.online,
        last_seen=None
        if device.last_seen_us is None
        else format_us(device.last_seen_us),
        readings=store.count_readings(device_id),
        metrics=len(latest),
        latest=[
            LatestOut(
                metric=r.metric, unit=r.unit, ts=format_us(r.ts_us), value=r.value
            )
            for r in latest
        ],
    )


@router.get(
    "/v1/stats",
    response_model=FleetStatsOut,
    tags=["devices"],
    dependencies=_READ,
)
def fleet_stats(store: StoreDep) -> Any:
    """The fleet: devices and the share online, gateways, readings stored."""
    devices = store.list_devices()
    gateways = store.list_gateways()
    online = sum(1 for d in devices if d.online)
    figures = store.stats()
    return FleetStatsOut(
        devices=len(devices),
        online=online,
        online_share=online / len(devices) if devices else None,
        gateways=len(gateways),
        gateways_online=sum(1 for g in gateways if g.status == "online"),
        readings=int(figures.get("readings", 0)),
        series=int(figures.get("series", 0)),
        dead_letters=int(figures.get("dead_letters", 0)),
    )
