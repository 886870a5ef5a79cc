"""What processors emit: events about one series, in event time.

An :class:`Event` is published on ``sf/v1/events/{kind}/{dev}`` (QoS 1, JSON)
and stored in the ``events`` table. The monitor turns them into alerts:

- ``state`` says whether a condition began (``raised``), ended (``cleared``)
  or is a single occurrence with no duration (``instant``: a spike, a gap);
- ``fingerprint`` (device, metric, kind, rule) names the condition, so that
  a ``cleared`` event finds the ``raised`` one it ends;
- ``ts_us`` is the time of the reading that caused the event, never the time
  the hub saw it (that is ``detected_us``);
- ``past`` marks events caused by late readings (an edge backlog, or readings
  older than the processors' horizon): they happened, but not now, and the
  monitor does not raise them as live.

``id`` is derived from what the event is about, so that the same event found
twice (a restart replaying recent data) is stored and published once.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field

from hub.storage.base import EventRecord
from protocol import topics
from protocol.const import ID_PATTERN

#: Version of the event payload.
EVENT_VERSION: Final = 1

EventKindName = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$")]
DeviceId = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$")]


class EventKind(StrEnum):
    """The kinds of event the built-in processors emit (the topic's ``{kind}``)."""

    THRESHOLD = "threshold"
    ANOMALY = "anomaly"
    STUCK = "stuck"
    SPIKE = "spike"
    GAP = "gap"
    IMPOSSIBLE = "impossible"
    TREND = "trend"
    LOG_BURST = "log_burst"


class EventState(StrEnum):
    """Where a condition stands: begun, ended, or a single occurrence."""

    RAISED = "raised"
    CLEARED = "cleared"
    INSTANT = "instant"


class Severity(StrEnum):
    """How urgent an event is, as the monitor and people read it."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Event(BaseModel):
    """One finding of a processor about one series (see the module docstring).

    Attributes:
        kind: what was found; a valid topic level (``threshold``, ``anomaly``,
            ``stuck``, ``spike``, ``gap``, ``impossible``, ``trend``,
            ``log_burst``, or a site processor's own kind).
        state: raised, cleared or instant.
        device: the device of the series.
        metric: the metric of the series.
        ts_us: reading time of the reading that caused the event, epoch µs.
        value: that reading's value (None when no single value applies).
        severity: info, warning or critical.
        rule: what within the kind: a threshold rule's id, or the detector's
            condition (``below_range``, ``above_range``); part of the
            fingerprint.
        past: caused by a late reading; not to be raised as live.
        details: facts for people and the monitor (thresholds, scores, spans).
        detected_us: when the processor found it, epoch µs.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    v: Literal[1] = EVENT_VERSION
    kind: EventKindName
    state: EventState
    device: DeviceId
    metric: str = Field(min_length=1, max_length=128)
    ts_us: int
    value: float | None
    severity: Severity = Severity.WARNING
    rule: str = Field(default="", max_length=128)
    past: bool = False
    details: dict[str, Any] = Field(default_factory=dict)
    detected_us: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fingerprint(self) -> str:
        """The condition this event is about: device, metric, kind and rule."""
        return f"{self.device}/{self.metric}/{self.kind}/{self.rule}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        """A stable id: the same finding about the same reading, the same id."""
        key = f"{self.fingerprint}|{self.state}|{self.ts_us}|{int(self.past)}"
        return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()

    @property
    def topic(self) -> str:
        """The topic the event is published on, ``sf/v1/events/{kind}/{dev}``."""
        return topics.event(self.kind, self.device)

    def payload(self) -> bytes:
        """The event as published: JSON, with ``id`` and ``fingerprint``."""
        return orjson.dumps(self.model_dump(mode="json"))

    def to_record(self) -> EventRecord:
        """The event as the store keeps it."""
        return EventRecord(
            id=self.id,
            kind=self.kind,
            state=self.state.value,
            device=self.device,
            metric=self.metric,
            ts_us=self.ts_us,
            value=self.value,
            severity=self.severity.value,
            rule=self.rule,
            past=self.past,
            details=dict(self.details),
            detected_us=self.detected_us,
        )

    @classmethod
    def from_record(cls, record: EventRecord) -> Event:
        """The event a stored record holds.

        Raises:
            pydantic.ValidationError: the record holds an invalid field.
        """
        return cls(
            kind=record.kind,
            state=EventState(record.state),
            device=record.device,
            metric=record.metric,
            ts_us=record.ts_us,
            value=record.value,
            severity=Severity(record.severity),
            rule=record.rule,
            past=record.past,
            details=dict(record.details),
            detected_us=record.detected_us,
        )
