"""C09: non-UTF-8 payload, a second MQTT packet spliced in (home-assistant#84591).

Protocol level: the exact 117 bytes are one ``invalid_utf8`` reject with the
offset 39, nothing is salvaged, the next message is read normally, and a
topic that is not UTF-8 is refused on its own. The network loop surviving,
the rate-limited log line and the per-device rejects metric are checked at
hub level.
"""

from __future__ import annotations

import pytest

from protocol import codec, topics
from protocol.adapters import get_adapter
from protocol.batch import Limits, decode_batch
from protocol.const import RejectReason as R
from protocol.errors import DecodeError, TopicError
from tests.protocol.helpers import us

TOPIC = "tele/dev-i09/SENSOR"
PAYLOAD = bytes.fromhex(
    "7b2254696d65223a22323032322d31322d32375431353a30363a3038222c2253776974636831"
    "30f402001774656c652f6465762d6630392f484153535f53544154457b2256657273696f6e22"
    "3a22382e322e30287461736d6f746129222c22557074696d65223a223133365431373a35363a"
    "323322"
)
NEXT = b'{"Time":"2026-11-30T12:00:00","ENERGY":{"Power":118,"Voltage":230}}'
RECEIVED = us("2026-11-30T12:00:05Z")
DETAIL = "invalid byte 0xf4 at offset 39"


def _tasmota(payload):
    return get_adapter("tasmota").adapt(TOPIC, payload, RECEIVED, Limits())


def test_c09_payload_exact_bytes():
    """Input: 117 bytes; "Switch1", then 30 f4 02 00 17 with 0xf4 at offset 39."""
    assert len(PAYLOAD) == 117
    assert PAYLOAD[:38] == b'{"Time":"2022-12-27T15:06:08","Switch1'
    assert PAYLOAD[38:43] == bytes.fromhex("30f4020017")
    assert PAYLOAD[43:66] == b"tele/dev-f09/HASS_STATE"


def test_c09_rejected_once_invalid_utf8():
    """Item 1: exactly one invalid_utf8 reject for the whole payload, offset 39."""
    msg = _tasmota(PAYLOAD)
    assert [(r.reason, r.field, r.detail) for r in msg.rejects] == [
        (R.INVALID_UTF8, "", DETAIL)
    ]


def test_c09_nothing_salvaged():
    """Item 2: no reading, and nothing attributed to the spliced dev-f09 topic."""
    msg = _tasmota(PAYLOAD)
    assert (msg.readings, msg.source) == ([], "dev-i09")
    assert {r.device for r in msg.rejects} == {"dev-i09"}


def test_c09_next_message_stored():
    """Item 3: the next message gives ENERGY.Power=118 and ENERGY.Voltage=230."""
    msg = _tasmota(NEXT)
    assert [(r.metric, r.value) for r in msg.readings] == [
        ("ENERGY.Power", 118.0),
        ("ENERGY.Voltage", 230.0),
    ]
    assert msg.rejects == []


def test_c09_device_alive():
    """Item 4: bytes did arrive from dev-i09, so the message is device activity."""
    assert _tasmota(PAYLOAD).alive is True


@pytest.mark.parametrize(
    ("name", "topic"),
    [("json", "sf/v1/dev/dev-i09/up/telemetry"), ("zigbee2mqtt", "zigbee2mqtt/x")],
)
def test_c09_every_adapter(name, topic):
    """Item 1, whole kind: every adapter refuses the bytes the same way."""
    msg = get_adapter(name).adapt(topic, PAYLOAD, RECEIVED, Limits())
    assert [(r.reason, r.detail) for r in msg.rejects] == [(R.INVALID_UTF8, DETAIL)]


def test_c09_batch_envelope():
    """Item 1, whole kind: decode_batch raises DecodeError invalid_utf8, offset 39."""
    with pytest.raises(DecodeError) as info:
        decode_batch(PAYLOAD, RECEIVED)
    assert (info.value.reason, info.value.detail) == (R.INVALID_UTF8, DETAIL)


def test_c09_compressed_invalid_utf8():
    """Item 1, whole kind: invalid UTF-8 inside a gzip body is found after inflating."""
    with pytest.raises(DecodeError) as info:
        codec.read_payload(codec.compress(PAYLOAD, "gzip"))
    assert (info.value.reason, info.value.detail) == (R.INVALID_UTF8, DETAIL)


def test_c09_topic_not_utf8():
    """Item 5: a topic that is not UTF-8 raises TopicError, apart from any payload."""
    with pytest.raises(TopicError, match="not UTF-8: invalid byte 0xf4 at offset 9"):
        topics.decode_topic(b"tele/dev-\xf4\x02/SENSOR")
