"""The alert lifecycle: signals in, alerts in the store, notices out.

The monitor turns processor events, silences and service figures into
:class:`Signal` values and hands them to one :class:`AlertEngine`:

- one alert per fingerprint at a time: ``raised`` or ``instant`` opens it (or
  counts one more occurrence of the active one), ``cleared`` resolves it;
  an ``instant`` condition (a spike, a gap) has no clear and resolves itself
  after ``instant_resolve_s`` without a recurrence;
- a condition raised again soon (within ``flap_window_s``) after its alert was
  resolved reopens that alert rather than opening a new one, so that a
  flapping condition is one alert with a long history;
- signals from late readings (``past``) open alerts of their own, marked
  past, with the fingerprint ``<fingerprint>@past``: they never touch, resolve
  or reopen a live alert of the same condition, and a live condition that
  starts while a backlog is replayed never collides with them;
- ``on_change`` sees every state change the engine makes, ``notify`` only
  what people should be told, after these rules, in this order: severity
  below ``min_severity_notify`` is not notified; a flapping condition is held
  back until it is stable, then notified once; a group (a gateway) in a storm
  is notified in one digest every ``storm_digest_s``; past the global rate
  limit, notices wait for the next digest. Nothing is dropped silently:
  :attr:`AlertEngine.stats` counts each rule.

The store is the truth: the API process acknowledges and resolves alerts in
it directly. The engine keeps an index of the active alerts by fingerprint
for speed, makes every state change with the store's compare-and-set, and
reloads what the store says when a change is refused.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

from hub.alerts.config import AlertsConfig
from hub.alerts.notice import Change, Notice, iso_us
from hub.storage.base import (
    ALERT_ACKNOWLEDGED,
    ALERT_ACTIVE_STATES,
    ALERT_OPEN,
    ALERT_RESOLVED,
    AlertRecord,
    Store,
)

if TYPE_CHECKING:
    from hub.processors.events import Event

_LOGGER = logging.getLogger(__name__)

SignalState = Literal["raised", "cleared", "instant"]
_SIGNAL_STATES: tuple[str, ...] = get_args(SignalState)

#: The actor of the changes the engine makes on its own.
MONITOR = "monitor"
#: Appended to a past signal's fingerprint for the alert it opens.
PAST_SUFFIX = "@past"
#: Kinds whose conditions have no clear; used to rebuild their auto-resolve
#: deadline on :meth:`AlertEngine.load`, when the signal's state is not known.
INSTANT_KINDS = frozenset({"spike", "gap"})
#: The group of signals about a device with no gateway.
SITE_GROUP = "site"

_US = 1_000_000
_STAT_NAMES = (
    "signals",
    "opened",
    "reopened",
    "touched",
    "resolved",
    "auto_resolved",
    "acknowledged",
    "past",
    "ignored",
    "conflicts",
    "notified",
    "digests",
    "suppressed_flapping",
    "grouped",
    "rate_limited",
    "below_severity",
    "callback_errors",
)


def _wall_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Signal:
    """One finding the monitor hands to the engine.

    Attributes:
        fingerprint: the condition, ``scope/subject/kind/rule``
            (``device/mote-8/threshold/temperature:hot``).
        kind: ``offline``, ``threshold``, ``anomaly``, ``stuck``, ``spike``,
            ``gap``, ``impossible``, ``service``, ... .
        state: ``raised`` (began), ``cleared`` (ended) or ``instant`` (one
            occurrence with no duration).
        at_us: event time (the reading's time), epoch µs.
        severity: ``info``, ``warning`` or ``critical``.
        summary: one line for people.
        device: the device it is about, if any.
        gateway: the gateway it is about or reaches its device through.
        metric: the metric, if any.
        past: from late readings: it happened at ``at_us``, not now.
        details: facts for people (values, thresholds).
        group_key: the storm group (a gateway id, or ``site``); None never
            storms.

    Raises:
        ValueError: ``state`` is none of the three, or ``fingerprint`` is empty.
    """

    fingerprint: str
    kind: str
    state: SignalState
    at_us: int
    severity: str = "warning"
    summary: str = ""
    device: str | None = None
    gateway: str | None = None
    metric: str | None = None
    past: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    group_key: str | None = None

    def __post_init__(self) -> None:
        if self.state not in _SIGNAL_STATES:
            raise ValueError(
                f"bad signal state {self.state!r}: expected one of {_SIGNAL_STATES}"
            )
        if not self.fingerprint:
            raise ValueError("empty signal fingerprint")


def signal_from_event(event: Event, gateway: str | None) -> Signal:
    """The signal of a processor event about a device behind ``gateway``.

    The fingerprint is ``device/{device}/{kind}/{metric}:{rule}`` (just the
    metric when the rule is empty), and the storm group is the gateway, or
    ``site`` for a device with no gateway.
    """
    rule = f"{event.metric}:{event.rule}" if event.rule else event.metric
    summary = f"{event.kind} on {event.device} {event.metric}"
    if event.rule:
        summary += f" ({event.rule})"
    details = dict(event.details)
    if event.value is not None:
        summary += f": {event.value:g}"
        details.setdefault("value", event.value)
    return Signal(
        fingerprint=f"device/{event.device}/{event.kind}/{rule}",
        kind=str(event.kind),
        state=event.state.value,
        at_us=event.ts_us,
        severity=event.severity.value,
        summary=summary,
        device=event.device,
        gateway=gateway,
        metric=event.metric,
        past=event.past,
        details=details,
        group_key=gateway or SITE_GROUP,
    )


@dataclass(slots=True)
class _Entry:
    """An active alert as the engine indexes it."""

    alert: AlertRecord
    group_key: str | None
    #: Wall time an instant alert resolves itself, or None.
    deadline_us: int | None = None


@dataclass(slots=True)
class _Flap:
    """A flapping condition: its latest change, held back from people."""

    since_us: int
    alert: AlertRecord
    change: Change
    group_key: str | None
    held: bool = False


@dataclass(slots=True)
class _Group:
    """A storm group: its recent changes, and what waits for its digest."""

    changes: deque[int] = field(default_factory=deque)
    storming: bool = False
    due_us: int = 0
    pending: dict[str, tuple[AlertRecord, Change]] = field(default_factory=dict)


class AlertEngine:
    """Opens, touches and resolves alerts, and decides what people are told.

    Its public methods take one lock, so that a command thread may acknowledge
    while the monitor's loop hands it signals and ticks.

    Args:
        store: where alerts live; the truth, shared with the API process.
        config: the lifecycle's settings.
        on_change: called with every state change the engine makes (opened,
            acknowledged, resolved, reopened): the monitor publishes them.
        notify: called with what people should be told.
        clock: wall time, epoch µs (tests inject one).
    """

    def __init__(
        self,
        store: Store,
        config: AlertsConfig,
        *,
        on_change: Callable[[AlertRecord, Change], None],
        notify: Callable[[Notice], None],
        clock: Callable[[], int] = _wall_us,
    ) -> None:
        self._store = store
        self._config = config
        self._on_change = on_change
        self._notify = notify
        self._clock = clock
        self._lock = threading.RLock()
        self.stats: dict[str, int] = dict.fromkeys(_STAT_NAMES, 0)

        # Active alerts by store fingerprint (past ones carry PAST_SUFFIX).
        self._active: dict[str, _Entry] = {}
        self._fp_of: dict[str, str] = {}
        # Each alert's storm group as its signals gave it, kept until its
        # resolution is notified (a resolved alert is out of the index).
        self._group_of: dict[str, str | None] = {}
        # Recently resolved live alerts that a recurrence reopens:
        # fingerprint -> (alert id, wall time resolved).
        self._recent: dict[str, tuple[str, int]] = {}

        # Flapping: each fingerprint's recent open/resolve/reopen wall times.
        self._flips: dict[str, deque[int]] = {}
        self._flapping: dict[str, _Flap] = {}

        # Storms per group, and the global rate limit's token bucket and what
        # it held back for the next digest.
        self._groups: dict[str, _Group] = {}
        self._tokens = float(config.notify_rate_per_min)
        self._tokens_us = clock()
        self._held: dict[str, tuple[AlertRecord, Change]] = {}
        self._held_due_us = 0

    # -- public API ---------------------------------------------------------

    def load(self) -> int:
        """Rebuild the index from the store's active alerts (at start-up).

        Instant alerts get a full ``instant_resolve_s`` from now, and alerts
        stored as flapping are held back until stable, as the engine before
        the restart would have done.

        Returns:
            How many active alerts were loaded.
        """
        with self._lock:
            now = self._clock()
            self._active.clear()
            self._fp_of.clear()
            alerts = self._store.active_alerts()
            for alert in alerts:
                entry = self._index(alert, alert.group or alert.gateway)
                if alert.kind in INSTANT_KINDS:
                    entry.deadline_us = now + self._s(self._config.instant_resolve_s)
                if alert.flapping:
                    change: Change = (
                        "acknowledged"
                        if alert.state == ALERT_ACKNOWLEDGED
                        else "opened"
                    )
                    self._flapping[alert.fingerprint] = _Flap(
                        now, alert, change, entry.group_key, held=True
                    )
            _LOGGER.info("alerts loaded active=%d", len(alerts))
            return len(alerts)

    def handle(self, signal: Signal) -> AlertRecord | None:
        """Apply one signal.

        Returns:
            The alert it opened, touched or resolved, as stored after the
            change; None when it changed nothing (a clear with no active
            alert).
        """
        with self._lock:
            self.stats["signals"] += 1
            now = self._clock()
            fingerprint = signal.fingerprint
            if signal.past:
                fingerprint += PAST_SUFFIX
            if signal.state == "cleared":
                return self._clear(fingerprint, signal, now)
            return self._raise(fingerprint, signal, now)

    def tick(self) -> None:
        """Do what is due: auto-resolve instants, settle flapping, send digests."""
        with self._lock:
            now = self._clock()
            self._resolve_instants(now)
            self._settle_flapping(now)
            self._send_storm_digests(now)
            self._send_held_digest(now)
            self._prune(now)

    def acknowledge(
        self, alert_id: str, actor: str, note: str = ""
    ) -> AlertRecord | None:
        """Acknowledge an open alert.

        Returns:
            The acknowledged alert, or None when there is no such alert or it
            is not open (acknowledged or resolved already).
        """
        with self._lock:
            now = self._clock()
            alert = self._transition(
                alert_id, ALERT_ACKNOWLEDGED, actor, now, (ALERT_OPEN,), note
            )
            if alert is not None:
                self.stats["acknowledged"] += 1
                self._changed(alert, "acknowledged", now, actor)
            return alert

    def resolve(self, alert_id: str, actor: str, note: str = "") -> AlertRecord | None:
        """Resolve an active alert by hand.

        Returns:
            The resolved alert, or None when there is no such alert or it is
            resolved already.
        """
        with self._lock:
            return self._resolve(alert_id, actor, self._clock(), note)

    # -- signals ------------------------------------------------------------

    def _raise(self, fingerprint: str, signal: Signal, now: int) -> AlertRecord | None:
        entry = self._active.get(fingerprint)
        if entry is not None:
            touched = self._touch(entry, signal, now)
            if touched is not None:
                return touched
        if not signal.past:
            reopened = self._reopen(fingerprint, signal, now)
            if reopened is not None:
                return reopened
        return self._open(fingerprint, signal, now)

    def _clear(self, fingerprint: str, signal: Signal, now: int) -> AlertRecord | None:
        entry = self._active.get(fingerprint)
        if entry is None:
            # A clear of an alert resolved already (by a person, or before a
            # restart that lost nothing since the store is the truth).
            self.stats["ignored"] += 1
            return None
        note = f"cleared at {iso_us(signal.at_us)}"
        return self._resolve(entry.alert.id, MONITOR, now, note)

    def _touch(self, entry: _Entry, signal: Signal, now: int) -> AlertRecord | None:
        # TODO: a recurrence of higher severity keeps the alert's first one;
        # touch_alert cannot change the severity.
        alert = self._store.touch_alert(
            entry.alert.id, signal.at_us, details=signal.details or None
        )
        if alert is None or not alert.active:
            # Resolved (or gone) behind the engine's back: the API process.
            self._forget(entry.alert, now)
            return None
        entry.alert = alert
        if signal.state == "instant":
            entry.deadline_us = now + self._s(self._config.instant_resolve_s)
        else:
            entry.deadline_us = None
        self.stats["touched"] += 1
        return alert

    def _open(self, fingerprint: str, signal: Signal, now: int) -> AlertRecord | None:
        # Two tries: a refusal means another alert of the fingerprint is
        # active, which the engine then touches; if that one is resolved
        # before the touch, the second open succeeds.
        for _attempt in range(2):
            alert = self._new_alert(fingerprint, signal, now)
            if self._store.open_alert(alert, MONITOR, self._open_note(signal)):
                return self._opened(alert, signal, now)
            self.stats["conflicts"] += 1
            found = self._find_active(fingerprint)
            if found is not None:
                entry = self._index(found, signal.group_key)
                touched = self._touch(entry, signal, now)
                if touched is not None:
                    return touched
        _LOGGER.warning(
            "alert not opened fingerprint=%s: refused twice by the store", fingerprint
        )
        return None

    def _new_alert(self, fingerprint: str, signal: Signal, now: int) -> AlertRecord:
        # Flags known before the open are stored with it, so that a storm's
        # alert needs no second write (a touch would count an occurrence).
        storm = self._notifies(signal.severity) and self._storms_with(
            signal.group_key, now
        )
        return AlertRecord(
            id=uuid.uuid4().hex,
            fingerprint=fingerprint,
            kind=signal.kind,
            severity=signal.severity,
            summary=signal.summary,
            opened_us=signal.at_us,
            device=signal.device,
            gateway=signal.gateway,
            metric=signal.metric,
            past=signal.past,
            last_seen_us=signal.at_us,
            updated_us=now,
            flapping=self._flaps_with(fingerprint, now),
            group=signal.group_key if storm else None,
            details=dict(signal.details),
        )

    @staticmethod
    def _open_note(signal: Signal) -> str:
        if signal.past:
            return f"past: happened at {iso_us(signal.at_us)}"
        return f"{signal.state} at {iso_us(signal.at_us)}"

    def _opened(self, alert: AlertRecord, signal: Signal, now: int) -> AlertRecord:
        entry = self._index(alert, signal.group_key)
        if signal.state == "instant":
            entry.deadline_us = now + self._s(self._config.instant_resolve_s)
        self.stats["opened"] += 1
        if not signal.past:
            self._changed(alert, "opened", now, MONITOR)
            return alert

        # A past alert: notified as past; resolved at once if so configured,
        # and then people get the one notice of its opening, not two.
        self.stats["past"] += 1
        if not self._config.resolve_past_immediately:
            self._changed(alert, "opened", now, MONITOR)
            return alert
        self._changed(alert, "opened", now, MONITOR, notify=False)
        resolved = self._resolve(alert.id, MONITOR, now, "past", notify=False)
        self._offer(alert, "opened", now, MONITOR, signal.group_key)
        return resolved or alert

    def _reopen(self, fingerprint: str, signal: Signal, now: int) -> AlertRecord | None:
        recent = self._recent.get(fingerprint)
        if recent is None:
            return None
        alert_id, resolved_us = recent
        if now - resolved_us > self._s(self._config.flap_window_s):
            return None
        note = f"raised again at {iso_us(signal.at_us)}"
        alert = self._transition(
            alert_id, ALERT_OPEN, MONITOR, now, (ALERT_RESOLVED,), note
        )
        del self._recent[fingerprint]
        if alert is None:
            return None

        # The reopening counts as an occurrence, with this signal's facts.
        flapping = True if self._flaps_with(fingerprint, now) else None
        touched = self._store.touch_alert(
            alert.id, signal.at_us, details=signal.details or None, flapping=flapping
        )
        alert = touched or alert
        entry = self._index(alert, signal.group_key)
        if signal.state == "instant":
            entry.deadline_us = now + self._s(self._config.instant_resolve_s)
        self.stats["reopened"] += 1
        self._changed(alert, "reopened", now, MONITOR)
        return alert

    def _resolve(
        self, alert_id: str, actor: str, now: int, note: str, *, notify: bool = True
    ) -> AlertRecord | None:
        alert = self._transition(
            alert_id, ALERT_RESOLVED, actor, now, ALERT_ACTIVE_STATES, note
        )
        if alert is None:
            return None
        self.stats["resolved"] += 1
        self._changed(alert, "resolved", now, actor, notify=notify)
        return alert

    # -- store access -------------------------------------------------------

    def _transition(
        self,
        alert_id: str,
        to_state: str,
        actor: str,
        now: int,
        from_states: tuple[str, ...],
        note: str,
    ) -> AlertRecord | None:
        """A compare-and-set state change; on refusal, the store's view wins."""
        try:
            alert = self._store.transition_alert(
                alert_id, to_state, actor, now, from_states, note
            )
        except LookupError:
            self._drop(alert_id)
            return None
        if alert is not None:
            if alert.active:
                self._index(alert, self._group_key(alert))
            else:
                self._forget(alert, now)
            return alert

        # Refused: someone else changed it (or a reopening would collide).
        self.stats["conflicts"] += 1
        current = self._store.get_alert(alert_id)
        if current is None:
            self._drop(alert_id)
        elif current.active:
            self._index(current, self._group_key(current))
        else:
            self._forget(current, now)
        if current is None or not current.active:
            self._group_of.pop(alert_id, None)
        return None

    def _find_active(self, fingerprint: str) -> AlertRecord | None:
        # TODO: a store lookup of the active alert by fingerprint; the whole
        # active list is read on conflicts only, which are rare.
        for alert in self._store.active_alerts():
            if alert.fingerprint == fingerprint:
                return alert
        return None

    def _index(self, alert: AlertRecord, group_key: str | None) -> _Entry:
        self._group_of[alert.id] = group_key
        entry = self._active.get(alert.fingerprint)
        if entry is not None and entry.alert.id == alert.id:
            entry.alert, entry.group_key = alert, group_key
            return entry
        if entry is not None:
            self._fp_of.pop(entry.alert.id, None)
        entry = _Entry(alert, group_key)
        self._active[alert.fingerprint] = entry
        self._fp_of[alert.id] = alert.fingerprint
        return entry

    def _forget(self, alert: AlertRecord, now: int) -> None:
        """Drop a no-longer-active alert from the index; remember it to reopen."""
        self._drop(alert.id)
        if not alert.past:
            self._recent[alert.fingerprint] = (alert.id, now)

    def _drop(self, alert_id: str) -> None:
        fingerprint = self._fp_of.pop(alert_id, None)
        if fingerprint is not None:
            self._active.pop(fingerprint, None)

    def _group_key(self, alert: AlertRecord) -> str | None:
        if alert.id in self._group_of:
            return self._group_of[alert.id]
        return alert.group or alert.gateway

    # -- what people are told -------------------------------------------------

    def _changed(
        self,
        alert: AlertRecord,
        change: Change,
        now: int,
        actor: str,
        *,
        notify: bool = True,
    ) -> None:
        """After a state change: flapping check, ``on_change``, then notices."""
        group_key = self._group_key(alert)
        if not alert.active:
            self._group_of.pop(alert.id, None)
        if change != "acknowledged":
            alert = self._note_flip(alert, now)
        self._call(self._on_change, alert, change)
        if notify:
            self._offer(alert, change, now, actor, group_key)

    def _offer(
        self,
        alert: AlertRecord,
        change: Change,
        now: int,
        actor: str,
        group_key: str | None,
    ) -> None:
        """Notify a change to people, unless a rule holds it back."""
        if not self._notifies(alert.severity):
            self.stats["below_severity"] += 1
            return
        flap = self._flapping.get(alert.fingerprint)
        if flap is not None:
            flap.alert, flap.change, flap.group_key = alert, change, group_key
            flap.held = True
            self.stats["suppressed_flapping"] += 1
            return
        if self._group_storms(group_key, alert, change, now):
            return
        if not self._take_token(now):
            if not self._held:
                self._held_due_us = now + self._s(self._config.storm_digest_s)
            self._held[alert.id] = (alert, change)
            self.stats["rate_limited"] += 1
            return
        notice = Notice(
            kind="alert",
            change=change,
            alerts=(alert,),
            at_us=now,
            actor=actor,
            title=_title(alert, change),
        )
        self._send(notice)

    def _send(self, notice: Notice) -> None:
        self.stats["digests" if notice.kind == "digest" else "notified"] += 1
        self._call(self._notify, notice)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        # A failing publisher or channel must not leave the engine half way
        # through a change that the store has committed already.
        try:
            callback(*args)
        except Exception:
            self.stats["callback_errors"] += 1
            _LOGGER.warning("alert callback %r failed", callback, exc_info=True)

    def _notifies(self, severity: str) -> bool:
        return self._config.notifies(severity)

    # -- flapping -------------------------------------------------------------

    def _flaps_with(self, fingerprint: str, now: int) -> bool:
        """Whether one more change now makes (or keeps) the condition flapping."""
        if fingerprint in self._flapping:
            return True
        flips = self._pruned_flips(fingerprint, now)
        return len(flips) + 1 > self._config.flap_threshold

    def _note_flip(self, alert: AlertRecord, now: int) -> AlertRecord:
        fingerprint = alert.fingerprint
        flips = self._pruned_flips(fingerprint, now)
        flips.append(now)
        flap = self._flapping.get(fingerprint)
        if flap is not None:
            flap.since_us = now
        elif len(flips) > self._config.flap_threshold:
            _LOGGER.warning(
                "alert flapping fingerprint=%s changes=%d: notices held back",
                fingerprint,
                len(flips),
            )
            self._flapping[fingerprint] = _Flap(now, alert, "opened", None)
        if fingerprint in self._flapping and not alert.flapping:
            touched = self._store.touch_alert(
                alert.id, alert.last_seen_us, flapping=True
            )
            alert = touched or replace(alert, flapping=True)
            if alert.active:
                self._index(alert, self._group_key(alert))
        return alert

    def _pruned_flips(self, fingerprint: str, now: int) -> deque[int]:
        flips = self._flips.setdefault(fingerprint, deque())
        horizon = now - self._s(self._config.flap_window_s)
        while flips and flips[0] <= horizon:
            flips.popleft()
        return flips

    def _settle_flapping(self, now: int) -> None:
        """Notify once each flapping condition that kept its state long enough."""
        window = self._s(self._config.flap_window_s)
        for fingerprint, flap in list(self._flapping.items()):
            if now - flap.since_us < window:
                continue
            del self._flapping[fingerprint]
            current = self._store.get_alert(flap.alert.id)
            if current is None:
                self._drop(flap.alert.id)
                continue
            touched = self._store.touch_alert(
                current.id, current.last_seen_us, flapping=False
            )
            current = touched or replace(current, flapping=False)
            if current.active:
                self._index(current, flap.group_key)
            _LOGGER.info(
                "alert stable fingerprint=%s state=%s", fingerprint, current.state
            )
            if flap.held:
                self._offer(
                    current,
                    _change_of(current, flap.change),
                    now,
                    MONITOR,
                    flap.group_key,
                )

    # -- storms -----------------------------------------------------------------

    def _storms_with(self, group_key: str | None, now: int) -> bool:
        """Whether one more change now puts (or keeps) the group in a storm."""
        if group_key is None:
            return False
        group = self._groups.get(group_key)
        if group is None:
            # A group's first change never storms: storm_threshold >= 1.
            return False
        if group.storming:
            return True
        changes = self._pruned_changes(group, now)
        return len(changes) + 1 > self._config.storm_threshold

    def _group_storms(
        self, group_key: str | None, alert: AlertRecord, change: Change, now: int
    ) -> bool:
        """Count a change in its group; True when it waits for a digest."""
        if group_key is None:
            return False
        group = self._groups.setdefault(group_key, _Group())
        changes = self._pruned_changes(group, now)
        changes.append(now)
        if not group.storming and len(changes) > self._config.storm_threshold:
            _LOGGER.warning(
                "alert storm group=%s changes=%d window_s=%s: notified in digests",
                group_key,
                len(changes),
                self._config.storm_window_s,
            )
            group.storming = True
            group.due_us = now + self._s(self._config.storm_digest_s)
        if not group.storming:
            return False
        self._held.pop(alert.id, None)
        group.pending[alert.id] = (alert, change)
        self.stats["grouped"] += 1
        return True

    def _pruned_changes(self, group: _Group, now: int) -> deque[int]:
        horizon = now - self._s(self._config.storm_window_s)
        while group.changes and group.changes[0] <= horizon:
            group.changes.popleft()
        return group.changes

    def _send_storm_digests(self, now: int) -> None:
        for key, group in list(self._groups.items()):
            if not group.storming or now < group.due_us:
                continue
            if group.pending:
                items = list(group.pending.values())
                group.pending.clear()
                self._take_token(now)
                self._send(_digest(items, now, f"storm: {{n}} alerts on {key}"))
            if len(self._pruned_changes(group, now)) > self._config.storm_threshold:
                group.due_us = now + self._s(self._config.storm_digest_s)
            else:
                _LOGGER.info("alert storm over group=%s", key)
                group.storming = False

    def _send_held_digest(self, now: int) -> None:
        # Digests are sent whatever the bucket holds: they are the bounded
        # way out (one per storm_digest_s) for what the limit held back.
        if not self._held or now < self._held_due_us:
            return
        items = list(self._held.values())
        self._held.clear()
        self._take_token(now)
        self._send(_digest(items, now, "rate limit: {n} alerts held back"))

    def _take_token(self, now: int) -> bool:
        rate = self._config.notify_rate_per_min
        elapsed_s = max(0, now - self._tokens_us) / _US
        self._tokens = min(rate, self._tokens + elapsed_s * rate / 60.0)
        self._tokens_us = max(now, self._tokens_us)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    # -- housekeeping -----------------------------------------------------------

    def _resolve_instants(self, now: int) -> None:
        due = [
            e.alert.id
            for e in self._active.values()
            if e.deadline_us is not None and e.deadline_us <= now
        ]
        note = f"no recurrence for {self._config.instant_resolve_s:g} s"
        for alert_id in due:
            if self._resolve(alert_id, MONITOR, now, note) is not None:
                self.stats["auto_resolved"] += 1

    def _prune(self, now: int) -> None:
        window = self._s(self._config.flap_window_s)
        for fingerprint, (_id, resolved_us) in list(self._recent.items()):
            if now - resolved_us > window:
                del self._recent[fingerprint]
        for fingerprint in [f for f, d in self._flips.items() if not d]:
            del self._flips[fingerprint]
        for fingerprint in list(self._flips):
            self._pruned_flips(fingerprint, now)
        for key, group in list(self._groups.items()):
            if not group.storming and not self._pruned_changes(group, now):
                del self._groups[key]

    @staticmethod
    def _s(seconds: float) -> int:
        return int(seconds * _US)


def _change_of(alert: AlertRecord, last: Change) -> Change:
    """The change to notify for an alert's current state after flapping."""
    if alert.state == ALERT_RESOLVED:
        return "resolved"
    if alert.state == ALERT_ACKNOWLEDGED:
        return "acknowledged"
    return last if last in ("opened", "reopened") else "opened"


def _title(alert: AlertRecord, change: Change) -> str:
    """One line for people: severity, kind, change, and the summary."""
    title = (
        f"{alert.severity} {alert.kind} {change}: {alert.summary or alert.fingerprint}"
    )
    if alert.past:
        return f"past, at {iso_us(alert.opened_us)}: {title}"
    return title


def _digest(items: list[tuple[AlertRecord, Change]], now: int, head: str) -> Notice:
    """One notice of several alerts: head (with ``{n}``) and counts by kind."""
    kinds = Counter(a.kind for a, _ in items)
    changes = Counter(c for _, c in items)
    title = head.format(n=len(items)) + " (" + _counts(kinds) + ")"
    if len(changes) > 1:
        title += ": " + _counts(changes)
    change: Change = changes.most_common(1)[0][0]
    return Notice(
        kind="digest",
        change=change,
        alerts=tuple(a for a, _ in items),
        at_us=now,
        actor=MONITOR,
        title=title,
    )


def _counts(counter: Counter[Any]) -> str:
    ordered = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return ", ".join(f"{name} {count}" for name, count in ordered)
