"""Device log routes: counts by level over time, and the last records.

``GET /v1/devices/{id}/logs/counts?from=&to=&bucket=`` reads the per-minute
counts the store keeps in the same transaction as each batch (so a batch
sent twice counts once); ``GET /v1/devices/{id}/logs?limit=&level=`` shows
the last records the store keeps of the device (a bounded number).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from hub.api._time import format_us, parse_rfc3339
from hub.api.errors import invalid, not_found
from hub.api.routes import DeviceId, FromQ, StoreDep, ToQ
from hub.security.deps import require
from hub.security.roles import Scope
from hub.storage.base import LogCount, Store
from protocol.logs import LEVELS, LogRecord
from protocol.validate import now_us

router = APIRouter()

#: Both routes read data, like the readings routes: viewer and up.
READ_ACCESS = require(Scope.READ)
_READ = [Depends(READ_ACCESS)]

LogBucketName = Literal["1m", "5m", "15m", "1h", "1d"]
LevelName = Literal["debug", "info", "warning", "error", "critical"]
_BUCKET_S: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
_DAY_US = 86_400 * 1_000_000
#: Raw records returned at most.
_MAX_RECORDS = 1000


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class LogBucketOut(_Out):
    """One time bucket: the device's log records in it, by level."""

    start: str = Field(
        description="bucket start, RFC 3339 UTC", examples=["2026-11-30T06:00:00Z"]
    )
    total: int
    levels: dict[str, int] = Field(
        description="records by level (debug, info, warning, error, critical); "
        "levels with none are left out",
        examples=[{"info": 12, "error": 3}],
    )


class LogCountsOut(_Out):
    """A device's log records by level over a window."""

    device: str
    bucket: str
    start: str = Field(description="window start, inclusive, RFC 3339 UTC")
    end: str = Field(description="window end, exclusive, RFC 3339 UTC")
    totals: dict[str, int] = Field(description="records in the window by level")
    buckets: list[LogBucketOut]

    @classmethod
    def of(
        cls,
        device: str,
        bucket: str,
        from_us: int,
        to_us: int,
        counts: list[LogCount],
    ) -> LogCountsOut:
        """The response body of a device's counts."""
        by_start: dict[int, dict[str, int]] = {}
        totals: dict[str, int] = {}
        for c in counts:
            levels = by_start.setdefault(c.start_us, {})
            levels[c.level] = levels.get(c.level, 0) + c.count
            totals[c.level] = totals.get(c.level, 0) + c.count
        return cls(
            device=device,
            bucket=bucket,
            start=format_us(from_us),
            end=format_us(to_us),
            totals=_in_level_order(totals),
            buckets=[
                LogBucketOut(
                    start=format_us(start),
                    total=sum(levels.values()),
                    levels=_in_level_order(levels),
                )
                for start, levels in sorted(by_start.items())
            ],
        )


class LogRecordOut(_Out):
    """One stored log record."""

    ts: str = Field(description="when the device logged it, RFC 3339 UTC")
    level: str
    msg: str
    src: str = ""
    flags: int = 0

    @classmethod
    def of(cls, r: LogRecord) -> LogRecordOut:
        """The response body of a record."""
        return cls(
            ts=format_us(r.ts_us),
            level=r.level,
            msg=r.message,
            src=r.source,
            flags=r.flags,
        )


def _in_level_order(counts: dict[str, int]) -> dict[str, int]:
    return {lv: counts[lv] for lv in LEVELS if lv in counts}


def _time(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError as exc:
        raise invalid(name, str(exc)) from None


def _require_device(store: Store, device_id: str) -> None:
    if store.get_device(device_id) is None:
        raise not_found("device", device_id)


@router.get(
    "/v1/devices/{device_id}/logs/counts",
    response_model=LogCountsOut,
    tags=["logs"],
    dependencies=_READ,
)
def device_log_counts(
    device_id: DeviceId,
    store: StoreDep,
    bucket: Annotated[LogBucketName, Query(description="bucket length")] = "1h",
    from_: FromQ = None,
    to: ToQ = None,
) -> Any:
    """A device's log records by level, in fixed buckets of UTC time.

    Counted per minute; a bucket holds the minutes that start in it. Without
    ``from``/``to`` the window is the last day.
    """
    to_us = _time("to", to)
    to_us = to_us if to_us is not None else now_us()
    from_us = _time("from", from_)
    from_us = from_us if from_us is not None else to_us - _DAY_US
    if to_us < from_us:
        raise invalid("to", "must not be before from")
    _require_device(store, device_id)
    counts = store.log_counts(device_id, from_us, to_us, _BUCKET_S[bucket])
    return LogCountsOut.of(device_id, bucket, from_us, to_us, counts)


@router.get(
    "/v1/devices/{device_id}/logs",
    response_model=list[LogRecordOut],
    tags=["logs"],
    dependencies=_READ,
)
def device_logs(
    device_id: DeviceId,
    store: StoreDep,
    limit: Annotated[
        int, Query(ge=1, le=_MAX_RECORDS, description="records at most")
    ] = 100,
    level: Annotated[LevelName | None, Query(description="only this level")] = None,
) -> Any:
    """The device's last stored log records, newest first."""
    _require_device(store, device_id)
    return [LogRecordOut.of(r) for r in store.recent_logs(device_id, limit, level)]
