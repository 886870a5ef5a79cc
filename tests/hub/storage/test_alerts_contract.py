"""The alert contract: SQLite and TimescaleDB keep alerts the same way.

Every test here runs on both stores (the ``store`` fixture in conftest.py),
except the race, which needs two processes' worth of connections to one
TimescaleDB.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hub.storage.base import (
    ALERT_ACKNOWLEDGED,
    ALERT_ACTIVE_STATES,
    ALERT_OPEN,
    ALERT_RESOLVED,
    AlertRecord,
    AlertTransition,
)
from tests.hub.storage.helpers import MINUTE_US, us

T0 = us("2026-12-01T08:00:00+00:00")
WALL = us("2026-12-01T08:00:03+00:00")
_IDS = itertools.count()
_HYPO = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _alert(alert_id="a-1", fingerprint="device/dev-1/threshold/temp:high", **kw):
    fields = {
        "kind": "threshold",
        "severity": "warning",
        "summary": "temp above 30",
        "opened_us": T0,
        "device": "dev-1",
        "gateway": "gw-1",
        "metric": "temp",
    }
    fields.update(kw)
    return AlertRecord(id=alert_id, fingerprint=fingerprint, **fields)


def _ack(store, alert_id="a-1", at=WALL + 10, actor="op:ann"):
    return store.transition_alert(
        alert_id, ALERT_ACKNOWLEDGED, actor, at, (ALERT_OPEN,), note="looking"
    )


def _resolve(store, alert_id="a-1", at=WALL + 20, actor="monitor"):
    return store.transition_alert(
        alert_id, ALERT_RESOLVED, actor, at, ALERT_ACTIVE_STATES
    )


# -- open ----------------------------------------------------------------------


def test_open_alert_stores_open_alert_with_defaulted_times(store):
    """A new alert is open; last seen and updated default to its opening time."""
    assert store.open_alert(_alert(), "monitor") is True

    got = store.get_alert("a-1")

    assert got == _alert(last_seen_us=T0, updated_us=T0)
    assert got.state == ALERT_OPEN
    assert got.active
    assert got.resolved_us is None


def test_open_alert_keeps_given_times(store):
    """Times that are given are stored as they are, to the microsecond."""
    alert = _alert(last_seen_us=T0 + 7, updated_us=WALL + 1, occurrences=3)

    store.open_alert(alert, "monitor")

    assert store.get_alert("a-1") == alert


def test_open_alert_same_fingerprint_while_active_is_refused(store):
    """A second alert of an active fingerprint returns False and stores nothing."""
    store.open_alert(_alert("a-1"), "monitor")

    assert store.open_alert(_alert("a-2", summary="again"), "monitor") is False

    assert store.get_alert("a-2") is None
    assert store.alert_history("a-2") == []
    assert [a.id for a in store.active_alerts()] == ["a-1"]


def test_open_alert_same_fingerprint_while_acknowledged_is_refused(store):
    """An acknowledged alert is still active: its fingerprint stays taken."""
    store.open_alert(_alert("a-1"), "monitor")
    _ack(store)

    assert store.open_alert(_alert("a-2"), "monitor") is False


def test_open_alert_after_resolve_is_allowed(store):
    """Once resolved, the same fingerprint may open a new alert."""
    store.open_alert(_alert("a-1"), "monitor")
    _resolve(store)

    assert store.open_alert(_alert("a-2", opened_us=T0 + MINUTE_US), "monitor")

    assert [a.id for a in store.active_alerts()] == ["a-2"]
    assert store.get_alert("a-1").state == ALERT_RESOLVED


def test_open_alert_other_fingerprint_is_independent(store):
    """Different fingerprints are different alerts, active side by side."""
    assert store.open_alert(_alert("a-1"), "monitor")
    assert store.open_alert(_alert("a-2", "gateway/gw-1/offline/"), "monitor")

    assert [a.id for a in store.active_alerts()] == ["a-1", "a-2"]


def test_open_alert_reused_id_raises(store):
    """An id already taken (another fingerprint) is a caller's mistake."""
    store.open_alert(_alert("a-1"), "monitor")

    with pytest.raises(ValueError, match="a-1"):
        store.open_alert(_alert("a-1", "gateway/gw-1/offline/"), "monitor")

    assert store.alert_history("a-1")[-1].to_state == ALERT_OPEN
    assert len(store.alert_history("a-1")) == 1


def test_open_alert_not_open_raises(store):
    """A new alert must be open: the store does not invent its history."""
    with pytest.raises(ValueError, match="resolved"):
        store.open_alert(_alert(state=ALERT_RESOLVED), "monitor")

    assert store.get_alert("a-1") is None


def test_open_alert_writes_first_history_entry(store):
    """The opening entry has no from_state, the actor, the note, updated time."""
    store.open_alert(_alert(updated_us=WALL), "monitor", note="temp 31.5")

    (entry,) = store.alert_history("a-1")

    assert (entry.alert_id, entry.at_us, entry.from_state, entry.to_state) == (
        "a-1",
        WALL,
        None,
        ALERT_OPEN,
    )
    assert (entry.actor, entry.note) == ("monitor", "temp 31.5")
    assert entry.seq > 0


# -- touch ---------------------------------------------------------------------


def test_touch_alert_counts_occurrences_and_keeps_state(store):
    """Each touch adds one occurrence and moves last seen; the state stays."""
    store.open_alert(_alert(), "monitor")
    _ack(store)

    store.touch_alert("a-1", T0 + MINUTE_US)
    got = store.touch_alert("a-1", T0 + 2 * MINUTE_US)

    assert got is not None
    assert (got.occurrences, got.last_seen_us) == (3, T0 + 2 * MINUTE_US)
    assert got.state == ALERT_ACKNOWLEDGED
    assert got == store.get_alert("a-1")
    assert [e.to_state for e in store.alert_history("a-1")] == [
        ALERT_OPEN,
        ALERT_ACKNOWLEDGED,
    ]


def test_touch_alert_replaces_given_fields_only(store):
    """details, flapping and group change when given and stay when not."""
    store.open_alert(_alert(details={"value": 31.5}), "monitor")

    first = store.touch_alert(
        "a-1", T0 + 1, details={"value": 33.0}, flapping=True, group="storm-1"
    )
    second = store.touch_alert("a-1", T0 + 2)

    assert first is not None
    assert second is not None
    assert (first.details, first.flapping, first.group) == (
        {"value": 33.0},
        True,
        "storm-1",
    )
    assert (second.details, second.flapping, second.group) == (
        {"value": 33.0},
        True,
        "storm-1",
    )
    third = store.touch_alert("a-1", T0 + 3, flapping=False)
    assert third is not None
    assert third.flapping is False


def test_touch_alert_late_occurrence_keeps_newest_last_seen(store):
    """A late occurrence counts but does not move last seen back."""
    store.open_alert(_alert(last_seen_us=T0 + MINUTE_US), "monitor")

    got = store.touch_alert("a-1", T0 + 5)

    assert got is not None
    assert (got.occurrences, got.last_seen_us) == (2, T0 + MINUTE_US)


def test_touch_alert_unknown_returns_none(store):
    """Touching an alert that does not exist returns None."""
    assert store.touch_alert("nope", T0) is None


# -- transitions ---------------------------------------------------------------


def test_transition_ack_from_open(store):
    """Acknowledging an open alert sets its state and updated time."""
    store.open_alert(_alert(), "monitor")

    got = _ack(store, at=WALL + 10)

    assert got is not None
    assert (got.state, got.updated_us, got.resolved_us) == (
        ALERT_ACKNOWLEDGED,
        WALL + 10,
        None,
    )
    assert got == store.get_alert("a-1")


def test_transition_ack_twice_refused(store):
    """Acknowledging again (from open only) returns None and changes nothing."""
    store.open_alert(_alert(), "monitor")
    _ack(store, at=WALL + 10, actor="op:ann")

    assert _ack(store, at=WALL + 11, actor="op:bob") is None

    got = store.get_alert("a-1")
    assert (got.state, got.updated_us) == (ALERT_ACKNOWLEDGED, WALL + 10)
    assert [e.actor for e in store.alert_history("a-1")] == ["monitor", "op:ann"]


@pytest.mark.parametrize("via_ack", [False, True])
def test_transition_resolve_from_open_or_acknowledged(store, via_ack):
    """Resolving works from open and from acknowledged, and sets resolved time."""
    store.open_alert(_alert(), "monitor")
    if via_ack:
        _ack(store)

    got = _resolve(store, at=WALL + 20)

    assert got is not None
    assert (got.state, got.updated_us, got.resolved_us) == (
        ALERT_RESOLVED,
        WALL + 20,
        WALL + 20,
    )
    assert not got.active
    assert store.active_alerts() == []


def test_transition_refused_changes_nothing(store):
    """From a state not allowed, the result is None and no history is written."""
    store.open_alert(_alert(), "monitor")
    _resolve(store)
    before = store.get_alert("a-1")

    assert _ack(store) is None
    assert _resolve(store, at=WALL + 99) is None

    assert store.get_alert("a-1") == before
    assert [e.to_state for e in store.alert_history("a-1")] == [
        ALERT_OPEN,
        ALERT_RESOLVED,
    ]


def test_transition_unknown_alert_raises_lookup_error(store):
    """An unknown id is a LookupError, not a refused change."""
    with pytest.raises(LookupError, match="nope"):
        store.transition_alert("nope", ALERT_RESOLVED, "op", WALL, (ALERT_OPEN,))


def test_transition_bad_state_raises(store):
    """A state that is not an alert state is refused before the database."""
    store.open_alert(_alert(), "monitor")

    with pytest.raises(ValueError, match="closed"):
        store.transition_alert("a-1", "closed", "op", WALL, (ALERT_OPEN,))

    assert store.get_alert("a-1").state == ALERT_OPEN


def test_transition_reopen_clears_resolved_time(store):
    """A resolved alert reopened is open again, with no resolved time."""
    store.open_alert(_alert(), "monitor")
    _resolve(store, at=WALL + 20)

    got = store.transition_alert(
        "a-1", ALERT_OPEN, "monitor", WALL + 30, (ALERT_RESOLVED,)
    )

    assert got is not None
    assert (got.state, got.updated_us, got.resolved_us) == (
        ALERT_OPEN,
        WALL + 30,
        None,
    )
    assert [a.id for a in store.active_alerts()] == ["a-1"]


def test_transition_reopen_with_other_active_alert_returns_none(store):
    """Reopening is refused while another alert of its fingerprint is active."""
    store.open_alert(_alert("a-1"), "monitor")
    _resolve(store, "a-1")
    store.open_alert(_alert("a-2", opened_us=T0 + MINUTE_US), "monitor")

    got = store.transition_alert(
        "a-1", ALERT_OPEN, "monitor", WALL + 30, (ALERT_RESOLVED,)
    )

    assert got is None
    assert store.get_alert("a-1").state == ALERT_RESOLVED
    assert store.get_alert("a-1").resolved_us == WALL + 20
    assert len(store.alert_history("a-1")) == 2
    assert [a.id for a in store.active_alerts()] == ["a-2"]


def test_alert_history_orders_changes_with_actors(store):
    """History lists every change oldest first, with from/to states and actors."""
    store.open_alert(_alert(updated_us=WALL), "monitor")
    _ack(store, at=WALL + 10, actor="op:ann")
    _resolve(store, at=WALL + 20, actor="op:bob")

    history = store.alert_history("a-1")

    assert [(e.from_state, e.to_state, e.actor, e.at_us) for e in history] == [
        (None, ALERT_OPEN, "monitor", WALL),
        (ALERT_OPEN, ALERT_ACKNOWLEDGED, "op:ann", WALL + 10),
        (ALERT_ACKNOWLEDGED, ALERT_RESOLVED, "op:bob", WALL + 20),
    ]
    assert [e.note for e in history] == ["", "looking", ""]
    seqs = [e.seq for e in history]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3


def test_alert_history_unknown_is_empty(store):
    """An unknown alert has no history."""
    assert store.alert_history("nope") == []


# -- listing -------------------------------------------------------------------


def _fleet(store):
    """Five alerts of assorted kinds, one per minute from T0, a-0 oldest."""
    specs = [
        ("a-0", "threshold", "warning", "dev-1"),
        ("a-1", "offline", "critical", "dev-2"),
        ("a-2", "threshold", "critical", "dev-1"),
        ("a-3", "anomaly", "info", None),
        ("a-4", "threshold", "warning", "dev-2"),
    ]
    for i, (alert_id, kind, severity, device) in enumerate(specs):
        store.open_alert(
            _alert(
                alert_id,
                f"fp/{alert_id}",
                kind=kind,
                severity=severity,
                device=device,
                opened_us=T0 + i * MINUTE_US,
            ),
            "monitor",
        )
    _resolve(store, "a-2")
    _ack(store, "a-4")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["a-4", "a-3", "a-2", "a-1", "a-0"]),
        ({"state": ALERT_OPEN}, ["a-3", "a-1", "a-0"]),
        ({"state": ALERT_RESOLVED}, ["a-2"]),
        ({"state": ALERT_ACKNOWLEDGED}, ["a-4"]),
        ({"severity": "critical"}, ["a-2", "a-1"]),
        ({"device": "dev-1"}, ["a-2", "a-0"]),
        ({"kind": "threshold"}, ["a-4", "a-2", "a-0"]),
        ({"kind": "threshold", "device": "dev-2"}, ["a-4"]),
        ({"from_us": T0 + MINUTE_US}, ["a-4", "a-3", "a-2", "a-1"]),
        ({"to_us": T0 + 2 * MINUTE_US}, ["a-1", "a-0"]),
        ({"from_us": T0 + MINUTE_US, "to_us": T0 + 3 * MINUTE_US}, ["a-2", "a-1"]),
        ({"limit": 2}, ["a-4", "a-3"]),
        ({"before": (T0 + 3 * MINUTE_US, "a-3")}, ["a-2", "a-1", "a-0"]),
        ({"device": "dev-3"}, []),
    ],
)
def test_list_alerts_filters(store, filters, expected):
    """Each filter narrows the newest-first list; time bounds are [from, to)."""
    _fleet(store)

    assert [a.id for a in store.list_alerts(**filters)] == expected


def test_active_alerts_oldest_first(store):
    """Active alerts are the open and acknowledged ones, oldest first."""
    _fleet(store)

    assert [a.id for a in store.active_alerts()] == ["a-0", "a-1", "a-3", "a-4"]


def test_list_alerts_equal_opened_times_sort_by_id(store):
    """Alerts opened at the same µs sort by id, and the cursor splits them."""
    for alert_id in ("b", "c", "a"):
        store.open_alert(_alert(alert_id, f"fp/{alert_id}"), "monitor")

    assert [a.id for a in store.list_alerts()] == ["c", "b", "a"]
    assert [a.id for a in store.list_alerts(before=(T0, "c"))] == ["b", "a"]
    assert [a.id for a in store.list_alerts(before=(T0, "b"))] == ["a"]


_ID_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=8,
)


@_HYPO
@given(
    alerts=st.dictionaries(
        _ID_TEXT, st.integers(min_value=0, max_value=5), min_size=0, max_size=15
    ),
    page=st.integers(min_value=1, max_value=6),
)
def test_list_alerts_paging_yields_each_alert_once_in_order(store, alerts, page):
    """Paging with the cursor, at any page size, gives every alert once, in order."""
    # A device of its own per example, so that earlier examples do not count.
    device = f"dev-p{next(_IDS)}"
    for alert_id, minute in alerts.items():
        ok = store.open_alert(
            _alert(
                f"{device}/{alert_id}",
                f"{device}/{alert_id}",
                device=device,
                opened_us=T0 + minute * MINUTE_US,
            ),
            "monitor",
        )
        assert ok

    seen: list[AlertRecord] = []
    before = None
    while True:
        got = store.list_alerts(device=device, limit=page, before=before)
        assert len(got) <= page
        seen.extend(got)
        if len(got) < page:
            break
        before = (got[-1].opened_us, got[-1].id)

    expected = sorted(
        ((T0 + m * MINUTE_US, f"{device}/{i}") for i, m in alerts.items()),
        reverse=True,
    )
    assert [(a.opened_us, a.id) for a in seen] == expected


# -- changes (the live stream) -------------------------------------------------


def test_alert_changes_resume_after_seq(store):
    """Changes come in seq order with the alert as it is now; resuming skips."""
    store.open_alert(_alert("a-1"), "monitor")
    store.open_alert(_alert("a-2", "fp/2"), "monitor")
    _ack(store, "a-1")
    _resolve(store, "a-2")

    changes = store.alert_changes()

    assert [(t.alert_id, t.to_state) for t, _ in changes] == [
        ("a-1", ALERT_OPEN),
        ("a-2", ALERT_OPEN),
        ("a-1", ALERT_ACKNOWLEDGED),
        ("a-2", ALERT_RESOLVED),
    ]
    # Each alert as it is now, not as it was at that change.
    assert [a.state for _, a in changes] == [
        ALERT_ACKNOWLEDGED,
        ALERT_RESOLVED,
        ALERT_ACKNOWLEDGED,
        ALERT_RESOLVED,
    ]
    assert all(isinstance(t, AlertTransition) for t, _ in changes)
    seqs = [t.seq for t, _ in changes]
    assert seqs == sorted(set(seqs))

    resumed = store.alert_changes(after_seq=seqs[1])
    assert [t.seq for t, _ in resumed] == seqs[2:]
    assert [t.seq for t, _ in store.alert_changes(after_seq=seqs[0], limit=2)] == (
        seqs[1:3]
    )
    assert store.alert_changes(after_seq=seqs[-1]) == []


def test_alert_changes_refused_change_adds_nothing(store):
    """A refused transition leaves no entry in the stream."""
    store.open_alert(_alert(), "monitor")
    _resolve(store)
    last = store.alert_changes()[-1][0].seq

    _ack(store)

    assert store.alert_changes(after_seq=last) == []


# -- details -------------------------------------------------------------------


def test_details_nested_unicode_round_trip(store):
    """Nested JSON with unicode comes back equal."""
    details = {
        "value": 31.5,
        "threshold": {"above": 30, "unit": "°C"},
        "values": [1, 2.25, None, True, "ß"],
        "note": "Größe 温度 🌡",
        "empty": {},
    }

    store.open_alert(_alert(details=details), "monitor")

    assert store.get_alert("a-1").details == details


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@_HYPO
@given(details=st.dictionaries(st.text(max_size=8), _JSON, max_size=5))
@example(details={"big": 2.644865181472073e16, "nul": "a\x00b", "\x00": -0.0})
def test_details_round_trip_any_json(store, details):
    """Any JSON object comes back equal: big floats stay floats, NUL stays."""
    alert_id = f"h-{next(_IDS)}"
    store.open_alert(_alert(alert_id, alert_id, details=details), "monitor")
    touched = store.touch_alert(alert_id, T0 + 1, details=details)

    assert store.get_alert(alert_id).details == details
    assert touched is not None
    assert touched.details == details


# -- the race (TimescaleDB: two processes) ----------------------------------------


@pytest.mark.db
def test_open_alert_race_two_stores_exactly_one_wins(pg_dsn):
    """Two stores opening the same fingerprint at once: exactly one True."""
    from hub.storage.timescale import TimescaleStore

    stores = [TimescaleStore(pg_dsn) for _ in range(2)]
    try:
        stores[0].migrate()
        rounds = 10
        results: list[list[bool]] = [[] for _ in range(rounds)]
        barrier = threading.Barrier(2, timeout=30)

        def opener(k: int) -> None:
            for r in range(rounds):
                barrier.wait()
                alert = _alert(f"r{r}-{k}", f"race/{r}", opened_us=T0 + r)
                results[r].append(stores[k].open_alert(alert, f"monitor-{k}"))

        threads = [threading.Thread(target=opener, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

        assert [sorted(r) for r in results] == [[False, True]] * rounds
        active = stores[1].active_alerts()
        assert sorted(a.fingerprint for a in active) == sorted(
            f"race/{r}" for r in range(rounds)
        )
        # The loser stored nothing, not even history.
        assert len(stores[1].alert_changes()) == rounds
    finally:
        for s in stores:
            s.close()
