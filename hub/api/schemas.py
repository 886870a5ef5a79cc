"""Response bodies of the REST API (pydantic models, with OpenAPI examples)."""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from hub.alerts.notice import alert_json, iso_us
from hub.api._time import format_us, format_us_in_zone
from hub.storage.base import (
    Accounting,
    AlertRecord,
    AlertTransition,
    Bucket,
    DeviceInfo,
    GatewayInfo,
)
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


# -- alerts (hub/api/alerts.py) -----------------------------------------------

_ALERT_EXAMPLE: dict[str, Any] = {
    "id": "al-7f3c2a",
    "fingerprint": "device/mote-8/threshold/temperature:above_max",
    "kind": "threshold",
    "severity": "critical",
    "state": "open",
    "summary": "mote-8 temperature 41.2 C above 40 C",
    "device": "mote-8",
    "gateway": "gw-05",
    "metric": "temperature",
    "past": False,
    "opened": "2026-11-30T06:33:07.500000Z",
    "last_seen": "2026-11-30T06:35:07.500000Z",
    "updated": "2026-11-30T06:33:07.612000Z",
    "resolved": None,
    "occurrences": 3,
    "flapping": False,
    "group": None,
    "details": {"value": 41.2, "max": 40.0},
}


class AlertOut(_Out):
    """An alert, in the one JSON shape it has everywhere (``alert_json``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ALERT_EXAMPLE]})

    id: str
    fingerprint: str = Field(description="scope/subject/kind/rule")
    kind: str = Field(description="offline, threshold, anomaly, service, ...")
    severity: str = Field(description="info, warning or critical")
    state: str = Field(description="open, acknowledged or resolved")
    summary: str
    device: str | None
    gateway: str | None
    metric: str | None
    past: bool = Field(description="raised from late readings: it happened then")
    opened: str | None = Field(description="event time it began, RFC 3339, UTC")
    last_seen: str | None = Field(description="event time of its latest occurrence")
    updated: str | None = Field(description="wall time of the latest state change")
    resolved: str | None = Field(description="wall time it was resolved, or null")
    occurrences: int
    flapping: bool
    group: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, a: AlertRecord) -> AlertOut:
        """The response body of an alert."""
        return cls.model_validate(alert_json(a))


class AlertTransitionOut(_Out):
    """One entry of an alert's history."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 42,
                    "at": "2026-11-30T06:40:00.000000Z",
                    "from_state": "open",
                    "to_state": "acknowledged",
                    "actor": "api",
                    "note": "looking at it",
                }
            ]
        }
    )

    seq: int = Field(description="increasing across all alerts; the stream's id")
    at: str | None = Field(description="wall time of the change, RFC 3339, UTC")
    from_state: str | None = Field(description="null for the opening entry")
    to_state: str
    actor: str = Field(description="monitor, api, or a user name")
    note: str

    @classmethod
    def of(cls, t: AlertTransition) -> AlertTransitionOut:
        """The response body of a history entry."""
        return cls(
            seq=t.seq,
            at=iso_us(t.at_us),
            from_state=t.from_state,
            to_state=t.to_state,
            actor=t.actor,
            note=t.note,
        )


class AlertDetailOut(AlertOut):
    """An alert with its history, oldest change first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_ALERT_EXAMPLE,
                    "history": [
                        {
                            "seq": 41,
                            "at": "2026-11-30T06:33:07.612000Z",
                            "from_state": None,
                            "to_state": "open",
                            "actor": "monitor",
                            "note": "",
                        }
                    ],
                }
            ]
        }
    )

    history: list[AlertTransitionOut]

    @classmethod
    def with_history(
        cls, a: AlertRecord, history: list[AlertTransition]
    ) -> AlertDetailOut:
        """The response body of an alert and its history."""
        return cls.model_validate(
            {
                **alert_json(a),
                "history": [AlertTransitionOut.of(t) for t in history],
            }
        )


class AlertPageOut(_Out):
    """One page of alerts, newest first, and the cursor of the next page."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "alerts": [_ALERT_EXAMPLE],
                    "next_cursor": "WzE3OTY1MzgzODc1MDAwMDAsImFsLTdmM2MyYSJd",
                }
            ]
        }
    )

    alerts: list[AlertOut]
    next_cursor: str | None = Field(
        description="pass as cursor for the next page; null on the last page"
    )


class AlertChangeOut(AlertOut):
    """One ``alert`` event of the live stream: the alert now, and its change."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_ALERT_EXAMPLE,
                    "change": "opened",
                    "actor": "monitor",
                    "at": "2026-11-30T06:33:07.612000Z",
                }
            ]
        }
    )

    change: str = Field(description="opened, acknowledged, resolved or reopened")
    actor: str
    at: str | None = Field(description="wall time of the change, RFC 3339, UTC")


class AlertNoteIn(BaseModel):
    """The optional body of an acknowledge or a resolve."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"note": "replaced the sensor"}]},
    )

    note: str = Field(default="", max_length=2000, description="kept in the history")
