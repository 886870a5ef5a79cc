"""The alert lifecycle: one alert per condition, flapping, storms, rate limits."""

from __future__ import annotations

import pydantic
import pytest

from hub.alerts.config import AlertsConfig
from hub.alerts.lifecycle import PAST_SUFFIX, Signal, signal_from_event
from hub.processors.events import Event, EventKind, EventState, Severity
from hub.storage.base import AlertRecord, Store
from hub.storage.sqlite import SQLiteStore
from tests.hub.alerts._lifecycle import T0, Clock, Recorder, S

FP = "device/d1/threshold/temperature:hot"


def _signal(fingerprint: str = FP, state: str = "raised", at_us: int = T0, **kw):
    kw.setdefault("group_key", "gw-1")
    return Signal(
        fingerprint=fingerprint,
        kind=fingerprint.split("/")[2],
        state=state,  # type: ignore[arg-type]
        at_us=at_us,
        summary=kw.pop("summary", f"{fingerprint} {state}"),
        **kw,
    )


def _history(store: Store, alert_id: str) -> list[tuple[str | None, str, str]]:
    return [(h.from_state, h.to_state, h.actor) for h in store.alert_history(alert_id)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sqlite_store(tmp_path):
    """A migrated SQLite store in a temporary file, closed afterwards."""
    opened = SQLiteStore(tmp_path / "alerts.db")
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store(request, tmp_path):
    """A migrated, empty store of each kind, closed afterwards."""
    opened: Store
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "alerts.db")
    else:
        from hub.storage.timescale import TimescaleStore

        opened = TimescaleStore(request.getfixturevalue("pg_dsn"))
    opened.migrate()
    yield opened
    opened.close()


# -- one alert per condition -------------------------------------------------


def test_raised_opens_alert(store, clock, recorder):
    """A raised signal opens an alert in the store, published and notified."""
    engine = recorder.engine(store, clock)

    alert = engine.handle(_signal(at_us=T0 - 5 * S, severity="critical", device="d1"))

    assert alert is not None
    stored = store.get_alert(alert.id)
    assert stored == alert
    assert (stored.state, stored.occurrences, stored.past) == ("open", 1, False)
    assert (stored.opened_us, stored.updated_us) == (T0 - 5 * S, T0)
    assert (stored.fingerprint, stored.device, stored.severity) == (
        FP,
        "d1",
        "critical",
    )
    assert len(alert.id) == 32
    assert recorder.changes == [(alert, "opened")]
    [notice] = recorder.notices
    assert (notice.kind, notice.change, notice.alerts, notice.actor) == (
        "alert",
        "opened",
        (alert,),
        "monitor",
    )
    assert notice.title == f"critical threshold opened: {FP} raised"


def test_raised_again_touches_active_alert(store, clock, recorder):
    """A second raised signal counts an occurrence; no new alert, no notice."""
    engine = recorder.engine(store, clock)
    first = engine.handle(_signal(at_us=T0))
    clock.advance(10)

    second = engine.handle(_signal(at_us=T0 + 9 * S, details={"value": 31.0}))

    assert second is not None
    assert second.id == first.id
    assert (second.occurrences, second.last_seen_us) == (2, T0 + 9 * S)
    assert second.details == {"value": 31.0}
    assert len(store.active_alerts()) == 1
    assert len(recorder.changes) == len(recorder.notices) == 1
    assert engine.stats["touched"] == 1


def test_cleared_resolves_alert(store, clock, recorder):
    """A cleared signal resolves the alert as the monitor, at wall time."""
    engine = recorder.engine(store, clock)
    opened = engine.handle(_signal())
    clock.advance(30)

    resolved = engine.handle(_signal(state="cleared", at_us=T0 + 29 * S))

    assert resolved is not None
    assert resolved.id == opened.id
    assert (resolved.state, resolved.resolved_us) == ("resolved", T0 + 30 * S)
    assert store.active_alerts() == []
    assert _history(store, opened.id) == [
        (None, "open", "monitor"),
        ("open", "resolved", "monitor"),
    ]
    assert store.alert_history(opened.id)[1].note.startswith("cleared at 2026-")
    assert [c for _, c in recorder.changes] == ["opened", "resolved"]
    assert [n.change for n in recorder.notices] == ["opened", "resolved"]


def test_cleared_without_alert_is_ignored(sqlite_store, clock, recorder):
    """A clear with no active alert changes nothing."""
    engine = recorder.engine(sqlite_store, clock)

    assert engine.handle(_signal(state="cleared")) is None
    assert sqlite_store.list_alerts() == []
    assert engine.stats["ignored"] == 1
    assert recorder.changes == recorder.notices == []


def test_raised_soon_after_resolve_reopens(store, clock, recorder):
    """Within flap_window_s of its resolution, a recurrence reopens the alert."""
    engine = recorder.engine(store, clock)
    first = engine.handle(_signal())
    engine.handle(_signal(state="cleared"))
    clock.advance(600)

    again = engine.handle(_signal(at_us=T0 + 600 * S))

    assert again is not None
    assert again.id == first.id
    assert (again.state, again.resolved_us, again.occurrences) == ("open", None, 2)
    assert _history(store, first.id) == [
        (None, "open", "monitor"),
        ("open", "resolved", "monitor"),
        ("resolved", "open", "monitor"),
    ]
    assert [c for _, c in recorder.changes] == ["opened", "resolved", "reopened"]


def test_raised_after_flap_window_opens_new_alert(sqlite_store, clock, recorder):
    """Past flap_window_s a recurrence is a new alert."""
    engine = recorder.engine(sqlite_store, clock)
    first = engine.handle(_signal())
    engine.handle(_signal(state="cleared"))
    clock.advance(901)
    engine.tick()

    again = engine.handle(_signal(at_us=clock.now))

    assert again is not None
    assert again.id != first.id
    assert sqlite_store.get_alert(first.id).state == "resolved"
    assert [c for _, c in recorder.changes] == ["opened", "resolved", "opened"]


def test_instant_resolves_after_quiet_period(sqlite_store, clock, recorder):
    """An instant alert resolves itself instant_resolve_s after its last occurrence."""
    engine = recorder.engine(sqlite_store, clock)
    fp = "device/d1/spike/temperature"
    alert = engine.handle(_signal(fp, state="instant"))
    clock.advance(500)
    engine.handle(_signal(fp, state="instant", at_us=clock.now))
    clock.advance(500)
    engine.tick()

    assert sqlite_store.get_alert(alert.id).state == "open"

    clock.advance(100)
    engine.tick()

    stored = sqlite_store.get_alert(alert.id)
    assert (stored.state, stored.occurrences) == ("resolved", 2)
    assert stored.resolved_us == T0 + 1100 * S
    assert sqlite_store.alert_history(alert.id)[-1].note == "no recurrence for 600 s"
    assert engine.stats["auto_resolved"] == 1


def test_open_refused_touches_active_alert(sqlite_store, clock, recorder):
    """When the store already holds an active alert of the condition, it is touched."""
    other = AlertRecord(
        id="a" * 32, fingerprint=FP, kind="threshold", severity="warning",
        summary="opened elsewhere", opened_us=T0 - S,
    )  # fmt: skip
    assert sqlite_store.open_alert(other, "monitor-2")
    engine = recorder.engine(sqlite_store, clock)

    alert = engine.handle(_signal())

    assert alert is not None
    assert (alert.id, alert.occurrences) == (other.id, 2)
    assert len(sqlite_store.list_alerts()) == 1
    assert engine.stats["conflicts"] == 1
    assert recorder.changes == []


# -- the store is the truth --------------------------------------------------


def test_restart_load_continues_alerts(store, clock, recorder):
    """A new engine loads the active alerts: a clear resolves the old alert."""
    engine = recorder.engine(store, clock)
    opened = engine.handle(_signal())
    spike = engine.handle(_signal("device/d2/spike/humidity", state="instant"))
    clock.advance(60)

    restarted = recorder.engine(store, clock)
    assert restarted.load() == 2
    touched = restarted.handle(_signal(at_us=clock.now))
    resolved = restarted.handle(_signal(state="cleared", at_us=clock.now))

    assert touched.id == resolved.id == opened.id
    assert (resolved.state, resolved.occurrences) == ("resolved", 2)
    assert _history(store, opened.id) == [
        (None, "open", "monitor"),
        ("open", "resolved", "monitor"),
    ]
    # The instant alert gets its full quiet period from the restart.
    clock.advance(599)
    restarted.tick()
    assert store.get_alert(spike.id).state == "open"
    clock.advance(1)
    restarted.tick()
    assert store.get_alert(spike.id).state == "resolved"


def test_ack_by_other_process_then_cleared(store, clock, recorder):
    """An acknowledgement made through the store is resolved from acknowledged."""
    engine = recorder.engine(store, clock)
    opened = engine.handle(_signal())
    clock.advance(5)
    acked = store.transition_alert(
        opened.id, "acknowledged", "alice", clock.now, ("open",), "on it"
    )
    assert acked.state == "acknowledged"
    clock.advance(5)

    resolved = engine.handle(_signal(state="cleared", at_us=clock.now))

    assert resolved.state == "resolved"
    assert _history(store, opened.id) == [
        (None, "open", "monitor"),
        ("open", "acknowledged", "alice"),
        ("acknowledged", "resolved", "monitor"),
    ]
    assert [c for _, c in recorder.changes] == ["opened", "resolved"]


def test_resolve_by_other_process_then_raised_reopens(store, clock, recorder):
    """A person resolved it while the condition lasts: the next occurrence reopens."""
    engine = recorder.engine(store, clock)
    opened = engine.handle(_signal())
    store.transition_alert(
        opened.id, "resolved", "bob", clock.now, ("open", "acknowledged")
    )
    clock.advance(5)

    again = engine.handle(_signal(at_us=clock.now))

    assert (again.id, again.state) == (opened.id, "open")
    assert [h[2] for h in _history(store, opened.id)] == ["monitor", "bob", "monitor"]
    assert [c for _, c in recorder.changes] == ["opened", "reopened"]
    assert len(store.active_alerts()) == 1


def test_acknowledge_and_resolve_by_hand(sqlite_store, clock, recorder):
    """acknowledge and resolve change an alert once; again, or unknown, is None."""
    engine = recorder.engine(sqlite_store, clock)
    opened = engine.handle(_signal())

    acked = engine.acknowledge(opened.id, "alice", "looking")
    assert acked.state == "acknowledged"
    assert engine.acknowledge(opened.id, "alice") is None
    resolved = engine.resolve(opened.id, "bob", "fixed the fan")
    assert resolved.state == "resolved"
    assert engine.resolve(opened.id, "bob") is None
    assert engine.acknowledge("f" * 32, "alice") is None
    assert engine.resolve("f" * 32, "alice") is None

    assert _history(sqlite_store, opened.id) == [
        (None, "open", "monitor"),
        ("open", "acknowledged", "alice"),
        ("acknowledged", "resolved", "bob"),
    ]
    assert [(n.change, n.actor) for n in recorder.notices] == [
        ("opened", "monitor"),
        ("acknowledged", "alice"),
        ("resolved", "bob"),
    ]
    # The clear that follows finds nothing to resolve.
    assert engine.handle(_signal(state="cleared")) is None


def test_failing_callbacks_are_counted(sqlite_store, clock):
    """A raising on_change or notify neither stops nor undoes the change."""

    def boom(*_args):
        raise RuntimeError("subscriber down")

    from hub.alerts.lifecycle import AlertEngine

    engine = AlertEngine(
        sqlite_store, AlertsConfig(), on_change=boom, notify=boom, clock=clock
    )

    opened = engine.handle(_signal())
    resolved = engine.handle(_signal(state="cleared"))

    assert opened is not None
    assert resolved is not None
    assert (opened.state, resolved.state) == ("open", "resolved")
    assert engine.stats["callback_errors"] == 4


@pytest.mark.parametrize(
    ("minimum", "severity", "notified"),
    [
        ("warning", "info", False),
        ("warning", "warning", True),
        ("critical", "warning", False),
        ("critical", "critical", True),
        ("info", "info", True),
        ("critical", "site-special", True),
    ],
)
def test_min_severity_notify(
    sqlite_store, clock, recorder, minimum, severity, notified
):
    """Below min_severity_notify: published, not notified."""
    engine = recorder.engine(sqlite_store, clock, min_severity_notify=minimum)

    engine.handle(_signal(severity=severity))

    assert len(recorder.changes) == 1
    assert len(recorder.notices) == int(notified)
    assert engine.stats["below_severity"] == int(not notified)


# -- past signals ------------------------------------------------------------


def test_past_signal_opens_past_alert_beside_live_one(store, clock, recorder):
    """A past alert is its own: it never touches nor resolves the live one."""
    engine = recorder.engine(store, clock)
    live = engine.handle(_signal(at_us=T0 - 10 * S))
    an_hour_ago = T0 - 3600 * S

    past = engine.handle(_signal(at_us=an_hour_ago, past=True))

    assert past.id != live.id
    assert (past.past, past.opened_us, past.state) == (True, an_hour_ago, "open")
    assert past.fingerprint == FP + PAST_SUFFIX
    assert store.get_alert(live.id).occurrences == 1
    assert recorder.notices[-1].title.startswith(
        "past, at 2026-02-28T23:00:00.000000Z: warning threshold opened"
    )

    engine.handle(_signal(state="cleared", at_us=an_hour_ago + 60 * S, past=True))
    assert store.get_alert(past.id).state == "resolved"
    assert store.get_alert(live.id).state == "open"

    # Another past clear finds no past alert and leaves the live one alone.
    assert engine.handle(_signal(state="cleared", past=True)) is None
    assert store.get_alert(live.id).state == "open"
    engine.handle(_signal(state="cleared"))
    assert store.get_alert(live.id).state == "resolved"
    assert engine.stats["past"] == 1


def test_past_signal_never_reopens(sqlite_store, clock, recorder):
    """A past condition raised again after its clear is a new past alert."""
    engine = recorder.engine(sqlite_store, clock)
    first = engine.handle(_signal(at_us=T0 - 600 * S, past=True))
    engine.handle(_signal(state="cleared", at_us=T0 - 500 * S, past=True))

    second = engine.handle(_signal(at_us=T0 - 400 * S, past=True))

    assert second.id != first.id
    assert sqlite_store.get_alert(first.id).state == "resolved"
    assert engine.stats["reopened"] == 0


def test_past_resolved_immediately(sqlite_store, clock, recorder):
    """With resolve_past_immediately a past alert is resolved and notified once."""
    engine = recorder.engine(sqlite_store, clock, resolve_past_immediately=True)

    alert = engine.handle(_signal(at_us=T0 - 3600 * S, past=True))

    assert (alert.state, alert.past) == ("resolved", True)
    assert [c for _, c in recorder.changes] == ["opened", "resolved"]
    [notice] = recorder.notices
    assert notice.change == "opened"
    assert notice.title.startswith("past, at ")
    assert sqlite_store.active_alerts() == []


# -- flapping, storms, rate limits -------------------------------------------


@pytest.mark.parametrize(("threshold", "expected"), [(1, 2), (4, 5)])
def test_flapping_holds_back_notices(
    sqlite_store, clock, recorder, threshold, expected
):
    """Seven flips in the window: notices up to the threshold, then one when stable."""
    engine = recorder.engine(sqlite_store, clock, flap_threshold=threshold)
    for flip in range(7):
        engine.handle(_signal(state="cleared" if flip % 2 else "raised"))
        clock.advance(10)

    [alert] = sqlite_store.list_alerts()
    assert (alert.state, alert.flapping) == ("open", True)
    assert len(recorder.changes) == 7
    assert len(recorder.notices) == threshold
    assert engine.stats["suppressed_flapping"] == 7 - threshold

    # Stable for flap_window_s after the last flip (10 s ago): one notice.
    clock.advance(900 - 10 - 1)
    engine.tick()
    assert len(recorder.notices) == threshold
    clock.advance(1)
    engine.tick()

    assert len(recorder.notices) == expected
    last = recorder.notices[-1]
    assert (last.change, last.alerts[0].state, last.alerts[0].flapping) == (
        "reopened",
        "open",
        False,
    )
    assert sqlite_store.get_alert(alert.id).flapping is False
    assert len(sqlite_store.alert_history(alert.id)) == 7


def _offline(device: str, state: str = "raised", kind: str = "offline"):
    return Signal(
        fingerprint=f"device/{device}/{kind}/",
        kind=kind,
        state=state,  # type: ignore[arg-type]
        at_us=T0,
        severity="critical",
        summary=f"{device} {kind}",
        device=device,
        gateway="gw-3",
        group_key="gw-3",
    )


def test_storm_of_500_offline_is_one_digest(sqlite_store, clock, recorder):
    """500 alerts on one gateway: 10 single notices, then one digest of 490."""
    engine = recorder.engine(sqlite_store, clock)
    kinds = ["offline"] * 498 + ["threshold"] * 2
    for n, kind in enumerate(kinds):
        engine.handle(_offline(f"dev-{n:03d}", kind=kind))
        clock.advance(0.01)

    assert len(sqlite_store.active_alerts()) == 500
    assert len(recorder.changes) == 500
    assert len(recorder.notices) == 10
    assert engine.stats["grouped"] == 490

    clock.advance(60)
    engine.tick()

    assert len(recorder.notices) == 11
    digest = recorder.notices[-1]
    assert (digest.kind, digest.change) == ("digest", "opened")
    assert digest.title == "storm: 490 alerts on gw-3 (offline 488, threshold 2)"
    assert {a.device for a in digest.alerts} == {f"dev-{n:03d}" for n in range(10, 500)}
    grouped = [a for a in sqlite_store.active_alerts() if a.group == "gw-3"]
    assert len(grouped) == 490
    engine.tick()
    assert len(recorder.notices) == 11

    # The gateway comes back: the 500 resolutions are a storm of their own.
    for n, kind in enumerate(kinds):
        engine.handle(_offline(f"dev-{n:03d}", state="cleared", kind=kind))
        clock.advance(0.01)
    clock.advance(60)
    engine.tick()

    assert sqlite_store.active_alerts() == []
    assert len(recorder.changes) == 1000
    assert len(recorder.notices) == 22
    digest = recorder.notices[-1]
    assert (digest.kind, digest.change, len(digest.alerts)) == (
        "digest",
        "resolved",
        490,
    )
    assert {a.state for a in digest.alerts} == {"resolved"}


def test_storm_digest_every_storm_digest_s_until_calm(sqlite_store, clock, recorder):
    """A lasting storm is one digest a period; once calm, notices are single again."""
    engine = recorder.engine(sqlite_store, clock)
    for n in range(60):  # one a second for a minute: a storm from the 11th
        engine.handle(_offline(f"dev-{n:03d}"))
        clock.advance(1)
    clock.advance(10)  # t = 70 s: the first digest is due
    engine.tick()
    for n in range(60, 70):  # t = 70..79 s: still in the storm
        engine.handle(_offline(f"dev-{n:03d}"))
        clock.advance(1)
    engine.tick()

    assert [len(n.alerts) for n in recorder.notices] == [1] * 10 + [50]

    clock.advance(50)  # t = 130 s: the second digest; 10 changes a window is calm
    engine.tick()
    clock.advance(1)
    engine.handle(_offline("dev-999"))

    assert [n.kind for n in recorder.notices[10:]] == ["digest", "digest", "alert"]
    assert [len(n.alerts) for n in recorder.notices[10:]] == [50, 10, 1]
    assert recorder.notices[-1].alerts[0].group is None


def test_rate_limit_carries_over_into_digest(sqlite_store, clock, recorder):
    """Past notify_rate_per_min, notices wait for the next digest, counted."""
    engine = recorder.engine(sqlite_store, clock, notify_rate_per_min=3)
    alerts = [
        engine.handle(_signal(f"device/d{n}/threshold/t", group_key=None))
        for n in range(5)
    ]

    assert len(recorder.notices) == 3
    assert engine.stats["rate_limited"] == 2
    clock.advance(59)
    engine.tick()
    assert len(recorder.notices) == 3

    clock.advance(1)
    engine.tick()

    assert len(recorder.notices) == 4
    digest = recorder.notices[-1]
    assert digest.kind == "digest"
    assert digest.title == "rate limit: 2 alerts held back (threshold 2)"
    assert [a.id for a in digest.alerts] == [a.id for a in alerts[3:]]
    engine.tick()
    assert len(recorder.notices) == 4


def test_rate_limit_refills(sqlite_store, clock, recorder):
    """The bucket refills at notify_rate_per_min: one more notice after 20 s at 3."""
    engine = recorder.engine(sqlite_store, clock, notify_rate_per_min=3)
    for n in range(3):
        engine.handle(_signal(f"device/d{n}/threshold/t"))
    clock.advance(20)

    engine.handle(_signal("device/d9/threshold/t"))
    engine.handle(_signal("device/d8/threshold/t"))

    assert len(recorder.notices) == 4
    assert engine.stats["rate_limited"] == 1


# -- signals from events, settings -------------------------------------------


def _event(**changes) -> Event:
    fields = {
        "kind": EventKind.THRESHOLD,
        "state": EventState.RAISED,
        "device": "mote-8",
        "metric": "temperature",
        "ts_us": T0,
        "value": 31.5,
        "severity": Severity.CRITICAL,
        "rule": "hot",
        "details": {"threshold": 30.0},
    }
    return Event(**{**fields, **changes})


def test_signal_from_event():
    """An event's signal: scope/subject/kind/rule, and its gateway as group."""
    signal = signal_from_event(_event(), "gw-1")

    assert signal == Signal(
        fingerprint="device/mote-8/threshold/temperature:hot",
        kind="threshold",
        state="raised",
        at_us=T0,
        severity="critical",
        summary="threshold on mote-8 temperature (hot): 31.5",
        device="mote-8",
        gateway="gw-1",
        metric="temperature",
        details={"threshold": 30.0, "value": 31.5},
        group_key="gw-1",
    )


def test_signal_from_event_without_rule_or_gateway():
    """No rule: the metric alone; no gateway: the site group."""
    signal = signal_from_event(
        _event(kind="spike", state=EventState.INSTANT, rule="", value=None, past=True),
        None,
    )

    assert signal.fingerprint == "device/mote-8/spike/temperature"
    assert (signal.state, signal.past, signal.group_key) == ("instant", True, "site")
    assert signal.summary == "spike on mote-8 temperature"
    assert signal.details == {"threshold": 30.0}


def test_signal_bad():
    """A signal with an unknown state or no fingerprint is refused."""
    with pytest.raises(ValueError, match="bad signal state 'begun'"):
        Signal("device/d/k/r", "k", "begun", T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty signal fingerprint"):
        Signal("", "k", "raised", T0)


def test_config_defaults():
    """The documented defaults."""
    config = AlertsConfig()

    assert config.model_dump() == {
        "instant_resolve_s": 600.0,
        "flap_window_s": 900.0,
        "flap_threshold": 4,
        "storm_window_s": 60.0,
        "storm_threshold": 10,
        "storm_digest_s": 60.0,
        "notify_rate_per_min": 30.0,
        "resolve_past_immediately": False,
        "min_severity_notify": "warning",
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"instant_resolve_s": 0}, "instant_resolve_s"),
        ({"flap_window_s": -1}, "flap_window_s"),
        ({"flap_threshold": 0}, "flap_threshold"),
        ({"storm_threshold": 0}, "storm_threshold"),
        ({"storm_digest_s": 0}, "storm_digest_s"),
        ({"notify_rate_per_min": 0}, "notify_rate_per_min"),
        ({"min_severity_notify": "loud"}, "min_severity_notify"),
        ({"storm_digest_s": 601, "storm_window_s": 60}, "storm_digest_s=601"),
        ({"flap_windows": 3}, "flap_windows"),
    ],
)
def test_config_bad(changes, field):
    """Bad settings fail at load, naming the setting."""
    with pytest.raises(pydantic.ValidationError, match=field):
        AlertsConfig(**changes)
