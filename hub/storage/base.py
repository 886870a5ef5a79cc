"""The storage interface every store implements (TimescaleDB, SQLite).

Both implementations pass the same contract tests (tests/hub/storage). Times
are epoch microseconds (UTC) at this interface; stores keep them exactly.

One call to :meth:`Store.write` is one transaction: the idempotency keys of
its batches, the new readings, the latest values, the devices' last-seen
times, the loss accounting and the dead letters commit together or not at all.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from protocol.logs import LogRecord
from protocol.models import GatewayState
from protocol.readings import Reading, Reject, SeriesBlock


@dataclass(slots=True)
class IngestItem:
    """What one received message contributes to a write.

    Attributes:
        gateway: the gateway it came through, or None for a plain sensor.
        seq: the batch seq; with ``gateway`` the idempotency key. None for
            readings without a seq, which rely on the (series, ts) key alone.
        blocks: the validated readings.
        rejects: the readings and fields that failed validation (counted).
        notices: counts that are not rejects (``clock_not_set``, ...).
        devices: every device the message showed alive, even with no reading
            left (a broken sensor on a live device, case C01).
        received_us: when the hub received the message.
        logs: the validated device log records (a batch's ``logs`` member);
            counted in the same transaction as the batch key.
    """

    gateway: str | None
    seq: int | None
    blocks: list[SeriesBlock]
    received_us: int
    rejects: list[Reject] = field(default_factory=list)
    notices: Counter[str] = field(default_factory=Counter)
    devices: set[str] = field(default_factory=set)
    logs: list[LogRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload (or part of one) that was rejected, kept for inspection."""

    topic: str
    payload: bytes
    reason: str
    detail: str
    received_us: int
    gateway: str | None = None
    device: str | None = None


@dataclass(slots=True)
class WriteResult:
    """What a write stored.

    Attributes:
        new: the readings stored for the first time, per series (only these go
            on to the processors, so that nothing is processed twice).
        duplicates: readings skipped because their (series, ts) or their
            batch's (gateway, seq) was already stored.
        batches: every (gateway, seq) of the write that is now committed,
            whether new or seen before; the hub acks all of them.
        duplicate_batches: those among ``batches`` that had been stored before.
        logs: the device log records counted for the first time (a resent
            batch's are not), for the log processor.
        created_series: the (device, metric) of the series this write created:
            they had no reading stored before, so a processor has no history
            of theirs to warm up from.
    """

    new: list[SeriesBlock] = field(default_factory=list)
    duplicates: int = 0
    batches: list[tuple[str, int]] = field(default_factory=list)
    duplicate_batches: list[tuple[str, int]] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    created_series: set[tuple[str, str]] = field(default_factory=set)

    @property
    def inserted(self) -> int:
        """How many readings were stored for the first time."""
        return sum(len(b) for b in self.new)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device as the registry knows it."""

    id: str
    gateway: str | None = None
    name: str | None = None
    #: An exact MQTT topic this device publishes on (adapters, case C10).
    mqtt_topic: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    expected_interval_s: float | None = None
    first_seen_us: int | None = None
    last_seen_us: int | None = None
    online: bool = False


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """A gateway as the registry knows it, with its last reported state."""

    id: str
    status: str = "unknown"
    agent: str = ""
    first_seen_us: int | None = None
    last_seen_us: int | None = None
    buffer_readings: int = 0
    buffer_bytes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time bucket of an aggregate: its start and the figures in it."""

    start_us: int
    count: int
    min: float
    max: float
    avg: float
    sum: float
    last: float


@dataclass(frozen=True, slots=True)
class Accounting:
    """What happened to one device's or gateway's data over a window.

    ``received`` counts readings stored, ``duplicates`` readings received again,
    ``rejected`` and ``dropped`` (at the edge) are by reason.
    """

    received: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    notices: dict[str, int] = field(default_factory=dict)

    @property
    def completeness(self) -> float | None:
        """Share of readings produced that were stored (None with no data)."""
        lost = sum(self.rejected.values()) + sum(self.dropped.values())
        total = self.received + lost
        return self.received / total if total else None


Scope = Literal["device", "gateway"]


class Store(Protocol):
    """What the hub and the API need from a store."""

    #: "timescaledb" or "sqlite", for logs and /healthz.
    kind: str
    #: Optional server features found at start-up, e.g. {"compression": False}.
    features: dict[str, bool]

    def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied."""
        ...

    def write(
        self,
        items: list[IngestItem],
        dead_letters: list[DeadLetter] = (),  # type: ignore[assignment]
    ) -> WriteResult:
        """Store messages in one transaction (see the module docstring)."""
        ...

    def record_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Store rejected payloads on their own (no readings with them)."""
        ...

    def record_gateway_state(self, state: GatewayState, received_us: int) -> None:
        """Keep a gateway's reported state; ``offline`` marks its devices too.

        Edge drop counters in the state are cumulative: the store keeps the
        increase since the last state as drops in the accounting.
        """
        ...

    def upsert_device(self, device: DeviceInfo) -> None:
        """Create a device ahead of time, or update its registry fields."""
        ...

    def get_device(self, device_id: str) -> DeviceInfo | None:
        """One device, or None."""
        ...

    def list_devices(self, gateway: str | None = None) -> list[DeviceInfo]:
        """Every device, ordered by id, optionally of one gateway."""
        ...

    def device_for_topic(self, topic: str) -> str | None:
        """The id of the device registered with this exact MQTT topic."""
        ...

    def get_gateway(self, gateway_id: str) -> GatewayInfo | None:
        """One gateway, or None."""
        ...

    def list_gateways(self) -> list[GatewayInfo]:
        """Every gateway, ordered by id."""
        ...

    def readings(
        self,
        device: str,
        metric: str | None = None,
        from_us: int | None = None,
        to_us: int | None = None,
        limit: int = 10_000,
    ) -> list[Reading]:
        """Readings of a device in ``[from_us, to_us)``, oldest first."""
        ...

    def latest(self, device: str) -> list[Reading]:
        """Each metric's reading with the newest reading time (not arrival)."""
        ...

    def aggregate(
        self,
        device: str,
        metric: str,
        bucket_s: int,
        from_us: int,
        to_us: int,
        tz: str = "UTC",
    ) -> list[Bucket]:
        """Readings in ``[from_us, to_us)`` in buckets of ``bucket_s`` seconds.

        Buckets of a day or longer follow local days in ``tz`` (a DST day has
        23 or 25 hours); shorter buckets are fixed lengths of absolute time, so
        the repeated hour of a fall-back day is two buckets (case C15).
        """
        ...

    def accounting(
        self,
        scope: Scope,
        ident: str,
        from_us: int | None = None,
        to_us: int | None = None,
    ) -> Accounting:
        """Loss accounting of a device or gateway over a window of receive time."""
        ...

    def count_readings(self, device: str | None = None) -> int:
        """How many readings are stored (for one device, or all)."""
        ...

    def drop_before(self, before_us: int) -> int:
        """Retention: remove readings older than ``before_us``.

        Returns:
            Chunks dropped (TimescaleDB drops whole chunks) or rows deleted.
        """
        ...

    def stats(self) -> dict[str, Any]:
        """Cheap figures for /healthz: kind, readings, devices, dead letters."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    # -- the API's registry writes and data figures (hub/storage/_*_data.py) --

    def schema_versions(self) -> list[int]:
        """The migration versions recorded as applied, in order (``/readyz``)."""
        ...

    def delete_device(self, device_id: str) -> bool:
        """Remove a device from the registry (its readings stay); True if it was."""
        ...

    def create_gateway(self, gateway_id: str) -> bool:
        """Register a gateway ahead of its data; False when it exists already.

        Raises:
            ValueError: an invalid gateway id.
        """
        ...

    def delete_gateway(self, gateway_id: str) -> bool:
        """Remove a gateway from the registry; return whether it was there."""
        ...

    def count_series(self, device: str, metric: str, from_us: int, to_us: int) -> int:
        """How many readings one series has in ``[from_us, to_us)``."""
        ...

    def percentiles(
        self,
        device: str,
        metric: str,
        bucket_s: int,
        from_us: int,
        to_us: int,
        quantiles: Sequence[float],
        tz: str = "UTC",
    ) -> list[tuple[int, list[float]]]:
        """Continuous percentiles of each bucket's values, buckets as ``aggregate``.

        Returns:
            ``(bucket start µs, [one value per quantile])`` for every bucket
            with readings, oldest first.
        """
        ...

    # -- processors (hub/processors): rollups, rules, events -------------------
    # Added for the processors; their records are defined below.

    def refresh_rollups(self, buckets: list[tuple[str, str, int]]) -> int:
        """Recompute the 1-minute rollups of (device, metric, minute start µs).

        Each minute is computed again from the stored readings and upserted,
        so that running it twice changes nothing and late readings merge.

        Returns:
            The rollup rows written.
        """
        ...

    def rollups(
        self, device: str, metric: str, from_us: int, to_us: int
    ) -> list[Rollup]:
        """The 1-minute rollups of one series starting in ``[from_us, to_us)``."""
        ...

    def create_rule(self, rule: RuleRecord, replace: bool = False) -> RuleRecord:
        """Store a rule; return it with its stored times.

        Raises:
            ValueError: a rule with this id exists and ``replace`` is false.
        """
        ...

    def get_rule(self, rule_id: str) -> RuleRecord | None:
        """One rule, or None."""
        ...

    def list_rules(self, kind: str | None = None) -> list[RuleRecord]:
        """Every rule (of one kind), ordered by id."""
        ...

    def delete_rule(self, rule_id: str) -> bool:
        """Delete a rule; return whether it existed."""
        ...

    def record_events(self, events: list[EventRecord]) -> list[str]:
        """Store events in one transaction; return the ids that were new."""
        ...

    def list_events(
        self,
        device: str | None = None,
        kind: str | None = None,
        from_us: int | None = None,
        to_us: int | None = None,
        limit: int = 1000,
    ) -> list[EventRecord]:
        """Events with reading times in ``[from_us, to_us)``, oldest first."""
        ...

    # Device logs (hub/storage/_*_logs.py): per-minute counts by level, kept
    # in Store.write's transaction, and the last records of each device.

    def log_counts(
        self, device: str, from_us: int, to_us: int, bucket_s: int = 60
    ) -> list[LogCount]:
        """A device's log records by level in buckets of ``bucket_s`` seconds.

        Buckets are fixed lengths of absolute time (a multiple of a minute)
        starting in ``[from_us, to_us)``, oldest first; empty ones are left out.
        """
        ...

    def recent_logs(
        self, device: str, limit: int = 100, level: str | None = None
    ) -> list[LogRecord]:
        """A device's last stored log records (of one level), newest first."""
        ...

    # Alerts (hub/alerts): the monitor opens, touches and resolves them; the
    # API acknowledges and resolves them. State changes are compare-and-set,
    # so that the two processes never overwrite each other's change.

    def open_alert(self, alert: AlertRecord, actor: str, note: str = "") -> bool:
        """Store a new alert in state ``open`` and its first history entry.

        Returns:
            False, storing nothing, when an alert with the same fingerprint is
            still active (open or acknowledged): one alert per fingerprint.
        """
        ...

    def touch_alert(
        self,
        alert_id: str,
        seen_us: int,
        details: dict[str, Any] | None = None,
        flapping: bool | None = None,
        group: str | None = None,
    ) -> AlertRecord | None:
        """Count one more occurrence of an alert's condition; never its state.

        Sets ``last_seen_us``, adds one to ``occurrences``, and replaces
        ``details``, ``flapping`` and ``group`` when they are given. Returns the
        updated alert, or None when there is no such alert.
        """
        ...

    def transition_alert(
        self,
        alert_id: str,
        to_state: str,
        actor: str,
        at_us: int,
        from_states: tuple[str, ...],
        note: str = "",
    ) -> AlertRecord | None:
        """Move an alert to ``to_state`` if its state is one of ``from_states``.

        The change and its history entry commit together; ``resolved_us`` is
        set on resolving. Returns the updated alert, or None (changing
        nothing) when the alert is in another state.

        Raises:
            LookupError: there is no alert with this id.
        """
        ...

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        """One alert, or None."""
        ...

    def active_alerts(self) -> list[AlertRecord]:
        """Every alert that is open or acknowledged, oldest first."""
        ...

    def list_alerts(
        self,
        state: str | None = None,
        severity: str | None = None,
        device: str | None = None,
        kind: str | None = None,
        from_us: int | None = None,
        to_us: int | None = None,
        limit: int = 100,
        before: tuple[int, str] | None = None,
    ) -> list[AlertRecord]:
        """Alerts newest first, filtered; ``from_us``/``to_us`` bound ``opened_us``.

        ``before`` is a cursor, the ``(opened_us, id)`` of the last alert of
        the previous page: the page holds the alerts that sort after it.
        """
        ...

    def alert_history(self, alert_id: str) -> list[AlertTransition]:
        """Every state change of one alert, oldest first."""
        ...

    def alert_changes(
        self, after_seq: int = 0, limit: int = 1000
    ) -> list[tuple[AlertTransition, AlertRecord]]:
        """State changes with ``seq`` above ``after_seq``, oldest first.

        Each comes with its alert as it is now: the live stream resumes from
        a seq.
        """
        ...

    def listen_alert_changes(
        self, wake: Callable[[], None], stop: threading.Event
    ) -> bool:
        """Call ``wake`` when alert history commits (any process), until ``stop``.

        Blocks, on a thread of the caller's. A store that cannot tell
        returns False at once, and the caller polls instead.
        """
        ...


# ---------------------------------------------------------------------------
# Processors (hub/processors): rollups, rules and events.
#
# The processors' own models (pydantic, in hub/processors) are converted to
# these plain records at this interface, so that the storage package never
# imports the processors package.


@dataclass(frozen=True, slots=True)
class Rollup:
    """One series' readings in one minute, as the ``rollups_1m`` table holds them.

    ``last`` is the value with the newest reading time in the minute.
    """

    start_us: int
    count: int
    min: float
    max: float
    mean: float
    last: float


@dataclass(frozen=True, slots=True)
class RuleRecord:
    """A processor rule as stored: its id, kind and JSON spec.

    The spec is validated by the processor that reads it (for ``threshold``
    rules, :class:`hub.processors.thresholds.ThresholdRule`).
    """

    id: str
    kind: str
    spec: dict[str, Any]
    created_us: int = 0
    updated_us: int = 0


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A processor event as stored (see :class:`hub.processors.events.Event`).

    ``id`` is derived from what the event is about, so storing the same event
    twice keeps one row.
    """

    id: str
    kind: str
    state: str
    device: str
    metric: str
    ts_us: int
    value: float | None
    severity: str
    rule: str = ""
    past: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    detected_us: int = 0


@dataclass(frozen=True, slots=True)
class LogCount:
    """A device's log records of one level in one time bucket."""

    start_us: int
    level: str
    count: int


# ---------------------------------------------------------------------------
# Alerts (hub/alerts), as the store keeps them.

#: An alert's states; ``open`` and ``acknowledged`` are active.
ALERT_OPEN = "open"
ALERT_ACKNOWLEDGED = "acknowledged"
ALERT_RESOLVED = "resolved"
ALERT_ACTIVE_STATES = (ALERT_OPEN, ALERT_ACKNOWLEDGED)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert: a condition (its fingerprint) from when it opened to its end.

    Attributes:
        id: unique; made by the monitor when it opens the alert.
        fingerprint: what the alert is about, ``scope/subject/kind/rule``
            (``device/mote-8/impossible/temperature:below_range``,
            ``gateway/gw-1/offline/``); at most one active alert per value.
        kind: ``offline``, ``threshold``, ``anomaly``, ``service``, ... .
        severity: ``info``, ``warning`` or ``critical``.
        state: ``open``, ``acknowledged`` or ``resolved``.
        summary: one line for people.
        device: the device it is about, if any.
        gateway: the gateway it is about or reaches its device through.
        metric: the metric, if any.
        past: raised from late readings: it happened at ``opened_us``, not now.
        opened_us: event time the condition began, epoch µs.
        last_seen_us: event time of its latest occurrence.
        updated_us: wall time of the latest state change.
        resolved_us: wall time it was resolved, or None.
        occurrences: how many times the condition was seen while active.
        flapping: it changed state too often lately; notices are held back.
        group: the storm group it was notified in, if any.
        details: facts for people (values, thresholds, intervals).
    """

    id: str
    fingerprint: str
    kind: str
    severity: str
    summary: str
    opened_us: int
    state: str = ALERT_OPEN
    device: str | None = None
    gateway: str | None = None
    metric: str | None = None
    past: bool = False
    last_seen_us: int = 0
    updated_us: int = 0
    resolved_us: int | None = None
    occurrences: int = 1
    flapping: bool = False
    group: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether the alert is open or acknowledged."""
        return self.state in ALERT_ACTIVE_STATES


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One entry of an alert's history: a state change, who made it and when.

    ``seq`` is given by the store, increasing across all alerts (the live
    stream's event id); ``from_state`` is None for the opening entry.
    """

    seq: int
    alert_id: str
    at_us: int
    from_state: str | None
    to_state: str
    actor: str
    note: str = ""
