"""C11: empty retained payloads vs a ``""`` tombstone (home-assistant#16860).

Protocol level: zero bytes are an ``empty_payload`` notice and not device
activity, non-object JSON is ``payload_not_object``, availability topics are
not data. The device's ``last_seen`` and availability state in the store are
checked at hub level.
"""

from __future__ import annotations

import pytest

from protocol.adapters import get_adapter
from protocol.batch import Limits, decode_batch
from protocol.const import Notice
from protocol.const import RejectReason as R
from protocol.errors import DecodeError
from tests.protocol.helpers import us

TOPIC = "zigbee2mqtt/dev-k11"
RECEIVED = us("2026-11-30T12:00:05Z")


def _z2m(payload, topic=TOPIC):
    return get_adapter("zigbee2mqtt").adapt(topic, payload, RECEIVED, Limits())


def test_c11_zero_bytes_is_notice():
    """Item 1: zero bytes give no reading and no reject, one empty_payload notice."""
    msg = _z2m(b"")
    assert (msg.readings, msg.rejects) == ([], [])
    assert msg.notices == {Notice.EMPTY_PAYLOAD: 1}


def test_c11_zero_bytes_not_activity():
    """Item 1: clearing retained state does not count as device activity."""
    assert _z2m(b"").alive is False


def test_c11_empty_string_tombstone():
    """Item 2: the two bytes "" are payload_not_object, not an AttributeError."""
    msg = _z2m(bytes.fromhex("2222"))
    assert [(r.reason, r.field, r.detail) for r in msg.rejects] == [
        (R.PAYLOAD_NOT_OBJECT, "", "str")
    ]


@pytest.mark.parametrize("payload", [b"", b"online", b"offline", b'{"state":"online"}'])
def test_c11_availability_not_data(payload):
    """Item 3: availability messages are not data: ignored, not counted."""
    assert _z2m(payload, topic=TOPIC + "/availability") is None


def test_c11_non_objects_three_rejects():
    """Item 4: [], 42 and null are each one payload_not_object reject (3 in all)."""
    rejects = [r for p in (b"[]", b"42", b"null") for r in _z2m(p).rejects]
    assert [(r.reason, r.detail) for r in rejects] == [
        (R.PAYLOAD_NOT_OBJECT, "empty list"),
        (R.PAYLOAD_NOT_OBJECT, "int"),
        (R.PAYLOAD_NOT_OBJECT, "null"),
    ]


def test_c11_object_stored():
    """Item 5: message 5 gives 1 reading temperature=20.5."""
    msg = _z2m(b'{"temperature":20.5}')
    assert [(r.metric, r.value) for r in msg.readings] == [("temperature", 20.5)]


@pytest.mark.parametrize(
    ("name", "topic"),
    [("json", "sf/v1/dev/dev-k11/up/telemetry"), ("tasmota", "tele/dev-k11/SENSOR")],
)
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", ([], {Notice.EMPTY_PAYLOAD: 1}, False)),
        (b'""', ([R.PAYLOAD_NOT_OBJECT], {}, True)),
        (b"42", ([R.PAYLOAD_NOT_OBJECT], {}, True)),
        (b"null", ([R.PAYLOAD_NOT_OBJECT], {}, True)),
        (b"[]", ([R.PAYLOAD_NOT_OBJECT], {}, True)),
    ],
)
def test_c11_every_adapter(name, topic, payload, expected):
    """Items 1, 2 and 4, whole kind: the other adapters treat each shape alike."""
    msg = get_adapter(name).adapt(topic, payload, RECEIVED, Limits())
    assert ([r.reason for r in msg.rejects], msg.notices, msg.alive) == expected


def test_c11_empty_batch_refused():
    """Item 1, whole kind: an empty batch payload is DecodeError empty_payload."""
    with pytest.raises(DecodeError) as info:
        decode_batch(b"", RECEIVED)
    assert info.value.reason is R.EMPTY_PAYLOAD
