"""What the monitor's detectors find: a condition beginning or ending.

A :class:`Finding` has the fields of the alert lifecycle's ``Signal``
(:mod:`hub.alerts.lifecycle`), so that the detectors stay pure functions of
what they are shown and are tested without the lifecycle; the service turns
each finding into a signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: Where a condition stands, as the lifecycle reads it.
FindingState = Literal["raised", "cleared", "instant"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One change of a condition the monitor watches.

    Attributes:
        fingerprint: ``scope/subject/kind/rule``, e.g. ``device/mote-24/offline/``.
        kind: ``offline`` or ``service``.
        state: ``raised`` or ``cleared``.
        at_us: when the change was found, epoch µs.
        severity: ``info``, ``warning`` or ``critical``.
        summary: one line for people.
        device: the device it is about, if any.
        gateway: the gateway it is about or reaches its device through.
        metric: the figure of a service rule, if any.
        details: facts for people (intervals, silences, values).
        group_key: the storm group: findings with one cause share it.
    """

    fingerprint: str
    kind: str
    state: FindingState
    at_us: int
    severity: str
    summary: str
    device: str | None = None
    gateway: str | None = None
    metric: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    group_key: str | None = None
