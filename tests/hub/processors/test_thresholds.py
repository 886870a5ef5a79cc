"""Threshold rules: conditions, duration, hysteresis, selectors, rules in the store."""

from __future__ import annotations

import pydantic
import pytest

from hub.processors.events import EventKind, EventState, Severity
from hub.processors.thresholds import (
    Selector,
    ThresholdProcessor,
    ThresholdRule,
    create_rule,
    list_rules,
)
from hub.storage import open_store
from hub.storage.base import DeviceInfo, RuleRecord
from tests.hub.processors.helpers import SECOND, T0, batch, ctx

STEP = 30 * SECOND


def _ts(n: int) -> list[int]:
    return [T0 + i * STEP for i in range(n)]


def _summary(events):
    return [(e.kind, e.state, e.ts_us, e.value, e.rule, e.past) for e in events]


def test_threshold_duration_and_hysteresis_fire_once_and_clear_once():
    """A breach held 60 s raises once; only 2 below the threshold clears, once."""
    rule = ThresholdRule(
        id="hot", condition="above", threshold=30.0, for_s=60, hysteresis=2.0
    )
    proc = ThresholdProcessor(rules=[rule], load_from_store=False)
    # 29.5 breaks the first run; 31 at t5 has held 60 s since t3; 29 and 30.5
    # are within the hysteresis; 27.9 clears; 31 then 27 never last 60 s.
    values = [25.0, 31.0, 29.5, 31.0, 32.0, 31.0, 29.0, 30.5, 27.9, 31.0, 27.0]
    ts = _ts(len(values))

    out = proc.process(batch(ts, values), ctx())

    assert _summary(out.events) == [
        (EventKind.THRESHOLD, EventState.RAISED, ts[5], 31.0, "hot", False),
        (EventKind.THRESHOLD, EventState.CLEARED, ts[8], 27.9, "hot", False),
    ]
    raised, cleared = out.events
    assert raised.details == {
        "name": "",
        "condition": "above",
        "threshold": 30.0,
        "for_s": 60.0,
        "hysteresis": 2.0,
        "since_us": ts[3],
    }
    assert cleared.details["raised_us"] == ts[5]
    assert (
        raised.fingerprint == cleared.fingerprint == "dev-1/temperature/threshold/hot"
    )


def test_threshold_state_carries_across_batches():
    """The same readings in two batches give the same events as in one."""
    rule = ThresholdRule(
        id="hot", condition="above", threshold=30.0, for_s=60, hysteresis=2.0
    )
    values = [25.0, 31.0, 31.0, 32.0, 29.0, 27.0]
    ts = _ts(len(values))
    whole = ThresholdProcessor(rules=[rule], load_from_store=False)
    split = ThresholdProcessor(rules=[rule], load_from_store=False)

    expected = whole.process(batch(ts, values), ctx()).events
    got = split.process(batch(ts[:3], values[:3]), ctx()).events
    got += split.process(batch(ts[3:], values[3:]), ctx()).events

    assert _summary(got) == _summary(expected)
    assert [e.state for e in got] == [EventState.RAISED, EventState.CLEARED]


def test_threshold_below_without_duration_raises_at_the_first_breach():
    """``below`` with for_s 0 raises on the first low reading, clears above it."""
    rule = ThresholdRule(
        id="cold", condition="below", threshold=5.0, severity=Severity.CRITICAL
    )
    proc = ThresholdProcessor(rules=[rule], load_from_store=False)
    ts = _ts(4)

    out = proc.process(batch(ts, [6.0, 4.0, 3.0, 5.5]), ctx())

    assert _summary(out.events) == [
        (EventKind.THRESHOLD, EventState.RAISED, ts[1], 4.0, "cold", False),
        (EventKind.THRESHOLD, EventState.CLEARED, ts[3], 5.5, "cold", False),
    ]
    assert out.events[0].severity is Severity.CRITICAL


def test_threshold_outside_band_clears_inside_the_hysteresis():
    """Outside [10, 20] raises; back inside clears only past the hysteresis of 1."""
    rule = ThresholdRule(id="band", condition="outside", low=10, high=20, hysteresis=1)
    proc = ThresholdProcessor(rules=[rule], load_from_store=False)
    ts = _ts(5)

    out = proc.process(batch(ts, [15.0, 21.0, 19.5, 18.5, 9.0]), ctx())

    assert _summary(out.events) == [
        (EventKind.THRESHOLD, EventState.RAISED, ts[1], 21.0, "band", False),
        (EventKind.THRESHOLD, EventState.CLEARED, ts[3], 18.5, "band", False),
        (EventKind.THRESHOLD, EventState.RAISED, ts[4], 9.0, "band", False),
    ]


def test_threshold_selector_by_tags_watches_tagged_devices_only():
    """A rule for room=lab raises for the lab's device and not for another."""
    rule = ThresholdRule(
        id="lab-hot",
        condition="above",
        threshold=30.0,
        selector=Selector(devices=["mote-*"], metrics=["temp*"], tags={"room": "lab"}),
    )
    proc = ThresholdProcessor(rules=[rule], load_from_store=False)
    devices = {
        "mote-1": DeviceInfo("mote-1", tags={"room": "lab"}),
        "mote-2": DeviceInfo("mote-2", tags={"room": "office"}),
    }
    ts = _ts(2)

    events = []
    for device in ("mote-1", "mote-2", "dev-9"):
        out = proc.process(batch(ts, [20.0, 35.0], device=device), ctx(devices=devices))
        events += out.events

    assert [(e.device, e.state) for e in events] == [("mote-1", EventState.RAISED)]


def test_threshold_late_reading_raises_a_past_event():
    """A breach by a late (backlog) reading raises with past=True."""
    rule = ThresholdRule(id="hot", condition="above", threshold=30.0)
    proc = ThresholdProcessor(rules=[rule], load_from_store=False)
    ts = _ts(3)

    out = proc.process(batch(ts, [20.0, 35.0, 36.0], past=[True, True, False]), ctx())

    assert _summary(out.events) == [
        (EventKind.THRESHOLD, EventState.RAISED, ts[1], 35.0, "hot", True),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"condition": "above"}, "needs threshold"),
        ({"condition": "outside", "low": 5, "high": 5}, "needs low < high"),
        ({"condition": "above", "threshold": 1, "for_s": -1}, "greater than or equal"),
        ({"condition": "rising", "threshold": 1}, "'above', 'below' or 'outside'"),
        ({"condition": "above", "threshold": float("nan")}, "finite number"),
        ({"condition": "above", "threshold": 1, "colour": "red"}, "Extra inputs"),
    ],
)
def test_threshold_rule_bad(spec, message):
    """A rule that cannot be evaluated is refused with the reason."""
    with pytest.raises(pydantic.ValidationError, match=message):
        ThresholdRule(id="r", **spec)


def test_threshold_rules_reload_from_the_store(tmp_path):
    """refresh() loads the store's rules, skips invalid ones, and sees deletions."""
    store = open_store(f"sqlite:///{tmp_path}/hub.db")
    store.migrate()
    create_rule(store, ThresholdRule(id="hot", condition="above", threshold=30.0))
    store.create_rule(RuleRecord("broken", "threshold", {"condition": "above"}))
    proc = ThresholdProcessor()
    ts = _ts(2)

    proc.refresh(store, T0)
    loaded = [r.id for r in proc.rules]
    first = proc.process(batch(ts, [20.0, 35.0]), ctx()).events
    store.delete_rule("hot")
    proc.refresh(store, T0)
    later = proc.process(batch(_ts(4)[2:], [20.0, 40.0]), ctx()).events
    store.close()

    assert loaded == ["hot"]
    assert [(e.rule, e.state) for e in first] == [("hot", EventState.RAISED)]
    assert (proc.rules, later) == ([], [])


def test_threshold_rule_round_trips_through_the_store(tmp_path):
    """A rule stored and listed again is equal to the one created."""
    store = open_store(f"sqlite:///{tmp_path}/hub.db")
    store.migrate()
    rule = ThresholdRule(
        id="band",
        name="server room",
        condition="outside",
        low=18.0,
        high=27.0,
        for_s=300,
        hysteresis=0.5,
        severity=Severity.CRITICAL,
        selector=Selector(tags={"room": "server"}),
    )

    create_rule(store, rule)
    listed = list_rules(store)
    store.close()

    assert listed == [rule]
