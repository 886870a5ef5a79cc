"""C03: numbers as strings, ON/OFF states and nulls (Koenkk/zigbee2mqtt#20624).

Protocol level: strict decimal strings are coerced, states are notices, nulls
are skipped, malformed numbers are per-field rejects. Item 5 (a threshold
processor sees 22.0 as a number) is checked at hub level.
"""

from __future__ import annotations

import pytest

from protocol.adapters import get_adapter
from protocol.batch import Limits
from protocol.const import Notice
from protocol.const import RejectReason as R
from tests.protocol.helpers import us

TOPIC = "zigbee2mqtt/dev-c03"
MAIN = (
    b'{"away_mode":"OFF","away_setting":null,"battery":87,'
    b'"comfort_temperature":"22.0","current_heating_setpoint":"10.5",'
    b'"eco_temperature":"16.0","friday_hour_1":"06","linkquality":120,'
    b'"local_temperature":19.5}'
)
VARIANT = (
    b'{"comfort_temperature":"22,0","eco_temperature":"abc","local_temperature":19.6}'
)
RECEIVED = us("2026-11-30T12:00:05Z")


def _adapt(payload):
    return get_adapter("zigbee2mqtt").adapt(TOPIC, payload, RECEIVED, Limits())


def test_c03_main_payload_seven_readings():
    """Item 1: exactly 7 numeric readings with the exact values, all floats."""
    msg = _adapt(MAIN)
    assert {r.metric: r.value for r in msg.readings} == {
        "battery": 87.0,
        "comfort_temperature": 22.0,
        "current_heating_setpoint": 10.5,
        "eco_temperature": 16.0,
        "friday_hour_1": 6.0,
        "linkquality": 120.0,
        "local_temperature": 19.5,
    }
    assert len(msg.readings) == 7
    assert all(type(r.value) is float for r in msg.readings)


def test_c03_main_payload_no_reject():
    """Items 2 and 3: neither "OFF" nor null is a reject."""
    assert _adapt(MAIN).rejects == []


def test_c03_off_is_state_not_reading():
    """Item 2: away_mode "OFF" is one state_value notice, not a reading 0."""
    msg = _adapt(MAIN)
    assert msg.notices == {Notice.STATE_VALUE: 1}
    assert "away_mode" not in {r.metric for r in msg.readings}


def test_c03_null_skipped_silently():
    """Item 3: away_setting null gives no reading, no reject, no 0."""
    msg = _adapt(b'{"away_setting":null}')
    assert (msg.readings, msg.rejects, msg.notices) == ([], [], {})


def test_c03_variant_keeps_good_field():
    """Item 4: local_temperature 19.6 is stored from the variant payload."""
    msg = _adapt(VARIANT)
    assert [(r.metric, r.value) for r in msg.readings] == [("local_temperature", 19.6)]


def test_c03_variant_rejects_per_field():
    """Item 4: "22,0" and "abc" are non_numeric_string rejects naming their field."""
    msg = _adapt(VARIANT)
    assert [(r.reason, r.field, r.detail) for r in msg.rejects] == [
        (R.NON_NUMERIC_STRING, "comfort_temperature", "'22,0'"),
        (R.NON_NUMERIC_STRING, "eco_temperature", "'abc'"),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("22.0", 22.0),
        ("06", 6.0),
        ("-1.5", -1.5),
        ("+2", 2.0),
        ("1e3", 1000.0),
        ("1.5E-1", 0.15),
        (".5", 0.5),
        ("5.", 5.0),
        (" 22 ", 22.0),
    ],
)
def test_c03_strict_decimal_coerced(text, value):
    """Item 1, whole kind: every strict decimal shape is coerced to its float."""
    msg = _adapt(b'{"setpoint":"' + text.encode() + b'"}')
    assert [r.value for r in msg.readings] == [value]


@pytest.mark.parametrize(
    "text",
    [
        *("22,0", "1_0", "0x1A", "22.0°C", "22 0", "\u0662\u0662", "1e", "e3"),
        *("--1", "abc", "1.2.3", "", "∞"),
    ],
)
def test_c03_malformed_number_rejected(text):
    """Item 4, whole kind: any other string shape is non_numeric_string."""
    msg = _adapt(b'{"setpoint":"' + text.encode() + b'"}')
    assert [(r.reason, r.field) for r in msg.rejects] == [
        (R.NON_NUMERIC_STRING, "setpoint")
    ]
    assert msg.readings == []


@pytest.mark.parametrize(
    "word",
    [
        *("ON", "OFF", "on", "off", "true", "FALSE", "open", "closed", "online"),
        *("offline", "LOCK", "UNLOCK", "yes", "no"),
    ],
)
def test_c03_state_words_are_notices(word):
    """Item 2, whole kind: every state word is a notice, never a reading or reject."""
    msg = _adapt(b'{"setpoint":"' + word.encode() + b'"}')
    assert (msg.readings, msg.rejects) == ([], [])
    assert msg.notices == {Notice.STATE_VALUE: 1}


@pytest.mark.parametrize(
    ("name", "topic"),
    [("json", "sf/v1/dev/dev-c03/up/telemetry"), ("tasmota", "tele/dev-c03/SENSOR")],
)
def test_c03_other_adapters_coerce_the_same(name, topic):
    """Item 1, whole kind: the json and tasmota adapters read the payload alike."""
    msg = get_adapter(name).adapt(topic, MAIN, RECEIVED, Limits())
    assert {r.metric: r.value for r in msg.readings}["friday_hour_1"] == 6.0
    assert len(msg.readings) == 7
