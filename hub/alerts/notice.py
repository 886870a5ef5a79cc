"""What alert delivery carries: notices, channels, and an alert's JSON shape.

The monitor decides what people and devices are told (storms grouped, flapping
held back, rate limits); a :class:`Channel` only delivers. One alert's state
change is a notice of kind ``alert``; a storm's alerts notified together are
one notice of kind ``digest``.

:func:`alert_json` is the one shape of an alert everywhere it leaves the hub:
``sf/v1/alerts/{subject}``, the live stream, webhook bodies and the device
downlink's body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from hub.storage.base import AlertRecord

#: What happened to the alert(s) of a notice.
Change = Literal["opened", "acknowledged", "resolved", "reopened"]


@dataclass(frozen=True, slots=True)
class Notice:
    """One delivery: an alert's state change, or a digest of a storm.

    Attributes:
        kind: ``alert`` (one alert in ``alerts``) or ``digest`` (several).
        change: what happened to them.
        alerts: the alerts as they are after the change.
        at_us: wall time of the change, epoch µs.
        actor: who made it (``monitor`` or a user name).
        title: one line for a subject or a heading.
    """

    kind: Literal["alert", "digest"]
    change: Change
    alerts: tuple[AlertRecord, ...]
    at_us: int
    actor: str = "monitor"
    title: str = ""

    def json(self) -> dict[str, Any]:
        """The notice as JSON: for webhooks and logs."""
        return {
            "kind": self.kind,
            "change": self.change,
            "at": iso_us(self.at_us),
            "actor": self.actor,
            "title": self.title,
            "alerts": [alert_json(a) for a in self.alerts],
        }


class DeliveryError(Exception):
    """A channel could not deliver a notice (the peer refused or was unreachable).

    ``retryable`` says whether trying again later may succeed.
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    """A way to deliver notices: email, a webhook, the device's downlink.

    ``send`` blocks until the peer took the notice, and raises
    :class:`DeliveryError` when it did not. It is called from one worker
    thread per channel, never from the monitor's loop.
    """

    #: A short name for logs and metrics, e.g. ``email``, ``webhook:ops``.
    name: str

    def send(self, notice: Notice) -> None:
        """Deliver one notice.

        Raises:
            DeliveryError: the notice was not delivered.
        """
        ...


def iso_us(ts_us: int | None) -> str | None:
    """Epoch µs as RFC 3339 UTC with microseconds, or None."""
    if ts_us is None:
        return None
    return (
        datetime.fromtimestamp(ts_us / 1e6, UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def alert_json(alert: AlertRecord) -> dict[str, Any]:
    """An alert as it leaves the hub: times in RFC 3339, every field named."""
    return {
        "id": alert.id,
        "fingerprint": alert.fingerprint,
        "kind": alert.kind,
        "severity": alert.severity,
        "state": alert.state,
        "summary": alert.summary,
        "device": alert.device,
        "gateway": alert.gateway,
        "metric": alert.metric,
        "past": alert.past,
        "opened": iso_us(alert.opened_us),
        "last_seen": iso_us(alert.last_seen_us or alert.opened_us),
        "updated": iso_us(alert.updated_us or alert.opened_us),
        "resolved": iso_us(alert.resolved_us),
        "occurrences": alert.occurrences,
        "flapping": alert.flapping,
        "group": alert.group,
        "details": alert.details,
    }
