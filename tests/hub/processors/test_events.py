"""Events: stable ids, the topic, the JSON payload and the stored record."""

from __future__ import annotations

import orjson
import pydantic
import pytest

from hub.processors.events import Event, EventKind, EventState, Severity
from tests.hub.processors.helpers import T0


def _event(**changes) -> Event:
    fields = {
        "kind": EventKind.THRESHOLD,
        "state": EventState.RAISED,
        "device": "dev-1",
        "metric": "temperature",
        "ts_us": T0,
        "value": 31.5,
        "rule": "hot",
        "details": {"threshold": 30.0},
        "detected_us": T0 + 5,
    }
    return Event(**{**fields, **changes})


def test_event_id_depends_on_what_not_when_found():
    """The same finding has the same id; another state or reading, another id."""
    event = _event()

    assert event.id == _event(detected_us=T0 + 999, details={}).id
    assert event.id != _event(state=EventState.CLEARED).id
    assert event.id != _event(ts_us=T0 + 1).id
    assert event.id != _event(past=True).id
    assert len(event.id) == 24


def test_event_topic_and_payload_round_trip():
    """Published on sf/v1/events/{kind}/{dev}; the JSON reads back equal."""
    event = _event()

    doc = orjson.loads(event.payload())

    assert event.topic == "sf/v1/events/threshold/dev-1"
    assert Event.model_validate_json(event.payload()) == event
    assert doc["fingerprint"] == "dev-1/temperature/threshold/hot"
    assert (doc["v"], doc["state"], doc["severity"], doc["past"]) == (
        1,
        "raised",
        "warning",
        False,
    )


def test_event_record_round_trip():
    """An event stored as a record and read back is the same event."""
    event = _event(value=None, severity=Severity.CRITICAL, past=True)

    record = event.to_record()

    assert (record.id, record.state, record.severity) == (
        event.id,
        "raised",
        "critical",
    )
    assert Event.from_record(record) == event


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "bad kind"}, "kind"),
        ({"device": "dev/1"}, "device"),
        ({"state": "open"}, "state"),
        ({"metric": ""}, "metric"),
    ],
)
def test_event_bad_field_refused(changes, field):
    """A kind or device that cannot be a topic level, or a bad state, fails."""
    with pytest.raises(pydantic.ValidationError) as info:
        _event(**changes)

    assert info.value.errors()[0]["loc"] == (field,)
