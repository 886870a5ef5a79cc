"""C10: '#', '+', spaces, '&' and non-ASCII in topics (Koenkk/zigbee2mqtt#3175).

Protocol level: topic names and ids are checked, friendly names are kept
exactly, ``&`` is legal. The REST device registration (items 1 and 2: 422 on
``mqtt_topic`` with ``#``/``+``, 201 with NFC storage) and the counting of
``bad_topic`` in the running hub are checked at hub/API level.
"""

from __future__ import annotations

import pytest

from protocol import topics
from protocol.adapters import get_adapter
from protocol.batch import Limits
from protocol.errors import TopicError
from tests.protocol.helpers import us

TOPIC_4 = bytes.fromhex("7a6967626565326d7174742f4bc3bc6368652053656e736f722031")
TOPIC_5 = "zigbee2mqtt/dev-j10/temp_&_humidity_sampling"
RECEIVED = us("2026-11-30T12:00:05Z")


def _z2m(topic, payload):
    return get_adapter("zigbee2mqtt").adapt(topic, payload, RECEIVED, Limits())


@pytest.mark.parametrize(
    ("topic", "char"), [("zigbee2mqtt/bulb #1", "#"), ("zigbee2mqtt/plug+2", "+")]
)
def test_c10_wildcard_topic_refused(topic, char):
    """Item 1: a topic name with # or + raises TopicError showing the topic."""
    with pytest.raises(TopicError, match="wildcard in topic name") as info:
        topics.check_topic_name(topic)
    assert char in str(info.value)


@pytest.mark.parametrize("name", ["bulb #1", "plug+2"])
def test_c10_wildcard_name_never_in_filter(name):
    """Item 1: no v1 topic or filter can be built from a name with # or +."""
    with pytest.raises(TopicError) as info:
        topics.telemetry(name)
    assert repr(name) in str(info.value)


def test_c10_utf8_topic_decodes_exactly():
    """Item 3: the topic bytes decode to the exact name, ü as U+00FC."""
    assert topics.decode_topic(TOPIC_4) == "zigbee2mqtt/K\u00fcche Sensor 1"


def test_c10_utf8_friendly_name_is_source():
    """Item 3: message 4 is 1 reading temperature=21.5 from "Küche Sensor 1"."""
    msg = _z2m(TOPIC_4.decode(), b'{"temperature":21.5}')
    assert msg.source.encode() == b"K\xc3\xbcche Sensor 1"
    assert [(r.device, r.metric, r.value) for r in msg.readings] == [
        ("Küche Sensor 1", "temperature", 21.5)
    ]


def test_c10_no_unicode_folding():
    """Item 3: the decomposed spelling (u + U+0308) is another source, not folded."""
    msg = _z2m("zigbee2mqtt/Ku\u0308che Sensor 1", b'{"temperature":21.5}')
    assert msg.source == "Ku\u0308che Sensor 1"
    assert msg.source != "K\u00fcche Sensor 1"


def test_c10_utf8_filter_matching_exact():
    """Item 3: matching is exact on UTF-8, with no ASCII folding, spaces kept."""
    name = TOPIC_4.decode()
    assert topics.matches(name, name) is True
    assert topics.matches("zigbee2mqtt/Kuche Sensor 1", name) is False
    assert topics.matches("zigbee2mqtt/KücheSensor1", name) is False


def test_c10_ampersand_legal():
    """Item 4: a topic with & passes the topic-name check unchanged."""
    assert topics.check_topic_name(TOPIC_5) == TOPIC_5


def test_c10_ampersand_message_one_reading():
    """Item 4: message 5 is accepted: 1 reading value=300."""
    msg = _z2m(TOPIC_5, b'{"value":300}')
    assert msg.source == "dev-j10/temp_&_humidity_sampling"
    assert [(r.metric, r.value) for r in msg.readings] == [("value", 300.0)]
    assert msg.rejects == []


@pytest.mark.parametrize(
    "char", ["\x00", "\x01", "\x09", "\x0a", "\x1b", "\x1f", "\x7f", "\x80", "\x9f"]
)
def test_c10_control_characters_refused(char):
    """Item 5: U+0000 and the other C0/C1 control characters raise TopicError."""
    with pytest.raises(TopicError, match="control character"):
        topics.check_topic_name(f"zigbee2mqtt/dev{char}1")


def test_c10_control_character_bytes_refused():
    """Item 5: a received topic with a NUL byte is refused when decoded."""
    with pytest.raises(TopicError, match="control character"):
        topics.decode_topic(b"zigbee2mqtt/dev\x001")
