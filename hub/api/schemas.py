"""Response bodies of the REST API (pydantic models, with OpenAPI examples)."""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from hub.api._time import format_us, format_us_in_zone
from hub.storage.base import Accounting, Bucket, DeviceInfo, GatewayInfo
from protocol.readings import Reading


def _time(ts_us: int | None) -> str | None:
    return None if ts_us is None else format_us(ts_us)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class DeviceOut(_Out):
    """A device as the registry knows it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "dev-e05",
                    "gateway": "gw-05",
                    "name": None,
                    "mqtt_topic": None,
                    "online": True,
                    "first_seen": "2026-11-30T06:32:07.507569Z",
                    "last_seen": "2026-11-30T06:33:07.500000Z",
                    "expected_interval_s": 60.0,
                    "tags": {"room": "lab"},
                }
            ]
        }
    )

    id: str
    gateway: str | None
    name: str | None
    mqtt_topic: str | None
    online: bool
    first_seen: str | None = Field(description="RFC 3339, UTC, µs")
    last_seen: str | None = Field(description="RFC 3339, UTC, µs")
    expected_interval_s: float | None
    tags: dict[str, str]

    @classmethod
    def of(cls, d: DeviceInfo) -> DeviceOut:
        """The response body of a device."""
        return cls(
            id=d.id,
            gateway=d.gateway,
            name=d.name,
            mqtt_topic=d.mqtt_topic,
            online=d.online,
            first_seen=_time(d.first_seen_us),
            last_seen=_time(d.last_seen_us),
            expected_interval_s=d.expected_interval_s,
            tags=dict(d.tags),
        )


class ReadingOut(_Out):
    """One reading."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "metric": "state_of_charge",
                    "unit": "%",
                    "ts": "2026-11-30T06:33:07.500000Z",
                    "value": 81.5,
                    "flags": 0,
                }
            ]
        }
    )

    metric: str
    unit: str
    ts: str = Field(description="reading time, RFC 3339, UTC, µs kept")
    value: float
    flags: int = Field(description="bit set: 1 stamped on receipt, 2 late")

    @classmethod
    def of(cls, r: Reading) -> ReadingOut:
        """The response body of a reading."""
        return cls(
            metric=r.metric,
            unit=r.unit,
            ts=format_us(r.ts_us),
            value=r.value,
            flags=r.flags,
        )


class BucketOut(_Out):
    """One time bucket of an aggregate."""

    start: str = Field(
        description="bucket start, RFC 3339 in the requested zone with its offset",
        examples=["2022-11-06T01:00:00-05:00"],
    )
    count: int
    min: float
    max: float
    avg: float
    sum: float
    last: float

    @classmethod
    def of(cls, b: Bucket, zone: ZoneInfo) -> BucketOut:
        """The response body of a bucket, its start shown in ``zone``."""
        return cls(
            start=format_us_in_zone(b.start_us, zone),
            count=b.count,
            min=b.min,
            max=b.max,
            avg=b.avg,
            sum=b.sum,
            last=b.last,
        )


class AggregateOut(_Out):
    """Buckets of one metric of one device."""

    device: str
    metric: str
    bucket: str
    tz: str
    buckets: list[BucketOut]


class AccountingOut(_Out):
    """What happened to a device's or gateway's data over a window."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "received": 1438,
                    "duplicates": 12,
                    "rejected": {"non_finite_value": 2},
                    "dropped": {},
                    "notices": {"clock_not_set": 7},
                    "completeness": 0.9986,
                }
            ]
        }
    )

    received: int
    duplicates: int
    rejected: dict[str, int]
    dropped: dict[str, int]
    notices: dict[str, int]
    completeness: float | None = Field(
        description="stored / (stored + rejected + dropped); null with no data"
    )

    @classmethod
    def of(cls, a: Accounting) -> AccountingOut:
        """The response body of an accounting."""
        return cls(
            received=a.received,
            duplicates=a.duplicates,
            rejected=dict(a.rejected),
            dropped=dict(a.dropped),
            notices=dict(a.notices),
            completeness=a.completeness,
        )


class GatewayOut(_Out):
    """A gateway with its last reported state."""

    id: str
    status: str
    agent: str
    first_seen: str | None
    last_seen: str | None
    buffer_readings: int
    buffer_bytes: int
    dropped: dict[str, int]

    @classmethod
    def of(cls, g: GatewayInfo) -> GatewayOut:
        """The response body of a gateway."""
        return cls(
            id=g.id,
            status=g.status,
            agent=g.agent,
            first_seen=_time(g.first_seen_us),
            last_seen=_time(g.last_seen_us),
            buffer_readings=g.buffer_readings,
            buffer_bytes=g.buffer_bytes,
            dropped=dict(g.dropped),
        )


class HealthOut(_Out):
    """Whether the API and its store answer, with the hub's counters."""

    status: Literal["ok", "degraded"]
    store: str
    stats: dict[str, Any] = Field(default_factory=dict)
    hub: dict[str, Any] | None = Field(
        default=None,
        description="the hub's state and counters (same process, or its status "
        "file when it runs in another process on this machine)",
    )
