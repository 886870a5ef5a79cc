"""Request and response bodies of the v1 resource routes (pydantic, with examples).

Devices and gateways (hub/api/devices.py), data (hub/api/data.py), HTTP
ingest (hub/api/ingest.py), rules (hub/api/rules.py) and readiness
(hub/api/ops.py). The older read routes keep theirs in :mod:`hub.api.schemas`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hub.api._time import format_us
from hub.processors.thresholds import ThresholdRule
from hub.storage.base import GatewayInfo, RuleRecord
from protocol.const import ID_PATTERN

Id = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$")]
#: Tag keys and values: short printable text.
TagText = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- devices and gateways ----------------------------------------------------

_DEVICE_IN_EXAMPLE: dict[str, Any] = {
    "id": "dev-e05",
    "gateway": "gw-05",
    "name": "battery room east",
    "mqtt_topic": None,
    "tags": {"room": "lab", "site": "north"},
    "expected_interval_s": 60.0,
}


class DeviceIn(BaseModel):
    """A device to register ahead of its data."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [_DEVICE_IN_EXAMPLE]}
    )

    id: Id
    gateway: Id | None = Field(default=None, description="the gateway it sends through")
    name: str | None = Field(default=None, max_length=200)
    mqtt_topic: str | None = Field(
        default=None,
        max_length=65_535,
        description="an exact topic it publishes plain JSON on (adapters)",
    )
    tags: dict[TagText, TagText] = Field(default_factory=dict, max_length=64)
    expected_interval_s: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="how often it reports; the monitor calls it offline after that",
    )


class DevicePatch(BaseModel):
    """Registry fields to change; fields left out keep their value."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"tags": {"room": "lab"}, "expected_interval_s": 30.0}]
        },
    )

    gateway: Id | None = None
    name: str | None = Field(default=None, max_length=200)
    mqtt_topic: str | None = Field(default=None, max_length=65_535)
    tags: dict[TagText, TagText] | None = Field(default=None, max_length=64)
    expected_interval_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class GatewayIn(BaseModel):
    """A gateway to register ahead of its data."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"id": "gw-05"}]}
    )

    id: Id


class GatewayStateOut(_Out):
    """A gateway as registered (the read routes give its full state)."""

    id: str
    status: str
    first_seen: str | None

    @classmethod
    def of(cls, g: GatewayInfo) -> GatewayStateOut:
        """The response body of a gateway just registered."""
        first = None if g.first_seen_us is None else format_us(g.first_seen_us)
        return cls(id=g.id, status=g.status, first_seen=first)


# -- data --------------------------------------------------------------------

Figure = Literal[
    "count", "min", "max", "avg", "sum", "last", "p50", "p90", "p95", "p99"
]


class FigureBucketOut(_Out):
    """One bucket: its start and the figures asked for (others are absent)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"start": "2026-11-30T06:00:00+00:00", "count": 60, "avg": 81.9}
            ]
        },
    )

    start: str = Field(description="RFC 3339 in the requested zone, with its offset")


class BucketsOut(_Out):
    """Buckets of one series, and what served them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "device": "dev-e05",
                    "metric": "state_of_charge",
                    "bucket": "1h",
                    "tz": "UTC",
                    "figures": ["count", "avg", "p95"],
                    "source": "readings",
                    "buckets": [
                        {
                            "start": "2026-11-30T06:00:00+00:00",
                            "count": 60,
                            "avg": 81.9,
                            "p95": 83.1,
                        }
                    ],
                }
            ]
        }
    )

    device: str
    metric: str
    bucket: str
    tz: str
    figures: list[str]
    source: Literal["rollups", "readings"] = Field(
        description="rollups_1m when they cover the window and hold every figure "
        "asked for; the raw readings otherwise"
    )
    buckets: list[dict[str, Any]]


class LatestOut(_Out):
    """A metric's newest reading."""

    metric: str
    unit: str
    ts: str
    value: float


class DeviceStatsOut(_Out):
    """One device's figures."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "device": "dev-e05",
                    "online": True,
                    "last_seen": "2026-11-30T06:33:07.500000Z",
                    "readings": 1438,
                    "metrics": 2,
                    "latest": [
                        {
                            "metric": "state_of_charge",
                            "unit": "%",
                            "ts": "2026-11-30T06:33:07.500000Z",
                            "value": 81.5,
                        }
                    ],
                }
            ]
        }
    )

    device: str
    online: bool
    last_seen: str | None
    readings: int = Field(description="readings stored, all time")
    metrics: int
    latest: list[LatestOut]


class FleetStatsOut(_Out):
    """The fleet's figures."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "devices": 40,
                    "online": 38,
                    "online_share": 0.95,
                    "gateways": 3,
                    "gateways_online": 3,
                    "readings": 1250000,
                    "series": 120,
                    "dead_letters": 4,
                }
            ]
        }
    )

    devices: int
    online: int
    online_share: float | None = Field(description="online / devices; null with none")
    gateways: int
    gateways_online: int
    readings: int = Field(
        description="readings stored; on TimescaleDB its estimate "
        "(approximate_row_count), as an exact count scans every chunk"
    )
    series: int
    dead_letters: int


# -- ingest ------------------------------------------------------------------


class IngestAckOut(_Out):
    """The ack a gateway would get on ``sf/v1/gw/{gw}/down/ack``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": 1,
                    "seqs": [[42, 42]],
                    "rejected": [
                        {
                            "seq": 42,
                            "dev": "dev-e05",
                            "metric": "temp",
                            "index": 2,
                            "field": "series[0].values[2]",
                            "reason": "non_finite_value",
                        }
                    ],
                }
            ]
        }
    )

    v: int = 1
    seqs: list[tuple[int, int]] = Field(description="committed seqs, as ranges")
    rejected: list[dict[str, Any]] = Field(
        description="readings refused, each with its field path and reason; "
        "headers X-Stored-Readings and X-Duplicate-Readings count the rest"
    )


# -- rules -------------------------------------------------------------------

RULE_EXAMPLE: dict[str, Any] = {
    "id": "battery-hot",
    "name": "battery too hot",
    "condition": "above",
    "threshold": 45.0,
    "for_s": 120.0,
    "hysteresis": 2.0,
    "severity": "critical",
    "enabled": True,
    "selector": {"devices": ["dev-*"], "metrics": ["temp"], "tags": {}},
}


class RuleOut(ThresholdRule):
    """A threshold rule with its stored times."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **RULE_EXAMPLE,
                    "created": "2026-11-30T06:00:00.000000Z",
                    "updated": "2026-11-30T06:00:00.000000Z",
                }
            ]
        }
    )

    created: str | None = None
    updated: str | None = None

    @classmethod
    def of(cls, record: RuleRecord) -> RuleOut:
        """The response body of a stored rule.

        Raises:
            pydantic.ValidationError: the stored spec is not a valid rule.
        """
        return cls.model_validate(
            {
                **record.spec,
                "id": record.id,
                "created": format_us(record.created_us) if record.created_us else None,
                "updated": format_us(record.updated_us) if record.updated_us else None,
            }
        )


# -- readiness ---------------------------------------------------------------


class ReadyOut(_Out):
    """Whether this API process can serve: each check and why it failed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "unavailable",
                    "checks": {"store": "ok", "migrations": "pending: [7]"},
                }
            ]
        }
    )

    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="'ok' or the reason it failed")
