"""C05: ISO 8601 with microseconds and offsets, and a null value (tb-gateway#628).

Protocol level: every ISO form parses to the exact µs, null is no value, an
unreadable time rejects the message. ``last_seen`` in the store and the REST
form of the time (item 5, end to end) are checked at hub level.
"""

from __future__ import annotations

import pytest

from protocol.adapters import get_adapter
from protocol.batch import Limits
from protocol.const import RejectReason as R
from protocol.readings import Reading
from protocol.validate import parse_timestamp, us_to_datetime
from tests.protocol.helpers import us

TOPIC = "sensor/data"
PAYLOAD_1 = (
    b'{"unit":"%","description":"state of charge","status":0,"value":null,'
    b'"device_name":"dev-e05","timestamp":"2026-11-30T06:32:07.507569+00:00",'
    b'"sensor_type":"state_of_charge","scalefactor":1.0,"smart_device":"gw-05"}'
)
PAYLOAD_2 = (
    b'{"unit":"%","status":0,"value":81.5,"device_name":"dev-e05",'
    b'"timestamp":"2026-11-30T06:33:07.5+00:00","sensor_type":"state_of_charge"}'
)
PAYLOAD_3 = (
    b'{"value":"317.3988","timestamp":"2026-11-30T07:55:31+0100",'
    b'"device_name":"dev-e05","sensor_type":"state_of_charge"}'
)
PAYLOAD_4 = PAYLOAD_2.replace(
    b'"timestamp":"2026-11-30T06:33:07.5+00:00"', b'"timestamp":"2026-11-30T06:34:07Z"'
).replace(b'"value":81.5', b'"value":82.0')
RECEIVED = us("2026-11-30T08:00:00Z")


def _adapt(payload):
    return get_adapter("json").adapt(TOPIC, payload, RECEIVED, Limits())


def test_c05_payload_4_built_from_2():
    """Input: payload 4 is payload 2 with the Z time and value 82.0."""
    assert PAYLOAD_4 == (
        b'{"unit":"%","status":0,"value":82.0,"device_name":"dev-e05",'
        b'"timestamp":"2026-11-30T06:34:07Z","sensor_type":"state_of_charge"}'
    )


def test_c05_null_value_no_reading_no_reject():
    """Item 1: payload 1 gives 0 readings and no reject; dev-e05 is alive."""
    msg = _adapt(PAYLOAD_1)
    assert (msg.readings, msg.rejects) == ([], [])
    assert (msg.source, msg.alive) == ("dev-e05", True)


def test_c05_null_payload_timestamp_parses():
    """Item 1: payload 1's timestamp parses to the exact µs."""
    assert parse_timestamp("2026-11-30T06:32:07.507569+00:00") == us(
        "2026-11-30T06:32:07.507569Z"
    )


def test_c05_null_payload_timestamp_is_checked():
    """Item 1: the time is read even with a null value (a bad one is rejected)."""
    bad = PAYLOAD_1.replace(b"2026-11-30T06:32:07.507569+00:00", b"30/11/2026 06:32")
    assert [(r.reason, r.field) for r in _adapt(bad).rejects] == [
        (R.BAD_TIMESTAMP, "timestamp")
    ]


def test_c05_fraction_and_offset():
    """Item 2: payload 2 is 1 reading 81.5 at 06:33:07.500000Z with unit %."""
    assert _adapt(PAYLOAD_2).readings == [
        Reading("dev-e05", "state_of_charge", us("2026-11-30T06:33:07.5Z"), 81.5, "%")
    ]


def test_c05_basic_offset_and_string_value():
    """Item 3: payload 3 is 317.3988 at 06:55:31Z: +0100 honoured, string coerced."""
    msg = _adapt(PAYLOAD_3)
    assert [(r.metric, r.ts_us, r.value) for r in msg.readings] == [
        ("state_of_charge", us("2026-11-30T06:55:31Z"), 317.3988)
    ]


def test_c05_z_suffix():
    """Item 4: payload 4 is 1 reading 82.0 at 06:34:07Z."""
    msg = _adapt(PAYLOAD_4)
    assert [(r.ts_us, r.value) for r in msg.readings] == [
        (us("2026-11-30T06:34:07Z"), 82.0)
    ]


def test_c05_microseconds_preserved():
    """Item 5: the µs survive as an exact instant, rendered with six digits."""
    (reading,) = _adapt(PAYLOAD_2).readings
    assert (
        us_to_datetime(reading.ts_us).isoformat() == "2026-11-30T06:33:07.500000+00:00"
    )


def test_c05_unparseable_timestamp_rejected():
    """Item 6: "30/11/2026 06:32" rejects the message as bad_timestamp, naming it."""
    bad = PAYLOAD_2.replace(b"2026-11-30T06:33:07.5+00:00", b"30/11/2026 06:32")
    msg = _adapt(bad)
    assert [(r.reason, r.field, r.device) for r in msg.rejects] == [
        (R.BAD_TIMESTAMP, "timestamp", "dev-e05")
    ]
    assert msg.readings == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T06:33:07Z", "2026-11-30T06:33:07Z"),
        ("2026-11-30T06:33:07z", "2026-11-30T06:33:07Z"),
        ("2026-11-30 06:33:07Z", "2026-11-30T06:33:07Z"),
        ("2026-11-30T06:33:07+00:00", "2026-11-30T06:33:07Z"),
        ("2026-11-30T07:33:07+0100", "2026-11-30T06:33:07Z"),
        ("2026-11-30T07:33:07+01", "2026-11-30T06:33:07Z"),
        ("2026-11-30T01:33:07-05:00", "2026-11-30T06:33:07Z"),
        ("2026-11-30T01:33:07-0500", "2026-11-30T06:33:07Z"),
        ("20261130T063307Z", "2026-11-30T06:33:07Z"),
        ("2026-11-30T06:33Z", "2026-11-30T06:33:00Z"),
        ("2026-11-30T06:33:07.5Z", "2026-11-30T06:33:07.500000Z"),
        ("2026-11-30T06:33:07,5Z", "2026-11-30T06:33:07.500000Z"),
        ("2026-11-30T06:33:07.12Z", "2026-11-30T06:33:07.120000Z"),
        ("2026-11-30T06:33:07.123Z", "2026-11-30T06:33:07.123000Z"),
        ("2026-11-30T06:33:07.1234Z", "2026-11-30T06:33:07.123400Z"),
        ("2026-11-30T06:33:07.12345Z", "2026-11-30T06:33:07.123450Z"),
        ("2026-11-30T06:33:07.123456Z", "2026-11-30T06:33:07.123456Z"),
        ("2026-11-30T06:33:07.1234567Z", "2026-11-30T06:33:07.123456Z"),
        ("2026-11-30T06:33:07.12345678Z", "2026-11-30T06:33:07.123456Z"),
        ("2026-11-30T06:33:07.123456789Z", "2026-11-30T06:33:07.123456Z"),
    ],
)
def test_c05_every_iso_form(text, expected):
    """Items 2 to 4, whole kind: every ISO form gives its instant; ns truncated."""
    payload = b'{"value":1,"sensor_type":"s","timestamp":"' + text.encode() + b'"}'
    assert [r.ts_us for r in _adapt(payload).readings] == [us(expected)]


@pytest.mark.parametrize("text", ["2026-11-30T06:33:07", "2026-11-30 06:33"])
def test_c05_naive_iso_rejected(text):
    """Whole kind: an ISO time without an offset is naive_timestamp by default."""
    payload = b'{"value":1,"sensor_type":"s","timestamp":"' + text.encode() + b'"}'
    assert [r.reason for r in _adapt(payload).rejects] == [R.NAIVE_TIMESTAMP]
