"""Topic builders, parsers, name checks and filter matching (protocol.topics)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import topics
from protocol.errors import TopicError
from protocol.topics import ParsedTopic, TopicKind

BUILT = [
    (
        topics.batch("gw-01"),
        "sf/v1/gw/gw-01/up/batch",
        ParsedTopic(TopicKind.BATCH, gateway="gw-01"),
    ),
    (
        topics.state("gw-01"),
        "sf/v1/gw/gw-01/up/state",
        ParsedTopic(TopicKind.STATE, gateway="gw-01"),
    ),
    (
        topics.ack("gw_2.a"),
        "sf/v1/gw/gw_2.a/down/ack",
        ParsedTopic(TopicKind.ACK, gateway="gw_2.a"),
    ),
    (
        topics.downlink("gw-01", "dev-1", "alert"),
        "sf/v1/gw/gw-01/down/dev/dev-1/alert",
        ParsedTopic(TopicKind.DOWNLINK, gateway="gw-01", device="dev-1", sub="alert"),
    ),
    (
        topics.telemetry("dev-1"),
        "sf/v1/dev/dev-1/up/telemetry",
        ParsedTopic(TopicKind.TELEMETRY, device="dev-1"),
    ),
    (
        topics.event("threshold", "dev-1"),
        "sf/v1/events/threshold/dev-1",
        ParsedTopic(TopicKind.EVENT, device="dev-1", sub="threshold"),
    ),
    (
        topics.alert("dev-1"),
        "sf/v1/alerts/dev-1",
        ParsedTopic(TopicKind.ALERT, device="dev-1"),
    ),
]

BAD_IDS = [
    "",
    "a" * 65,
    "bulb #1",
    "plug+2",
    "a/b",
    "Küche",
    "dev 1",
    "dev-1\n",
    "dev\x00",
    "dev&1",
]


@pytest.mark.parametrize(("built", "expected", "parsed"), BUILT)
def test_builder_gives_topic(built, expected, parsed):
    """Each builder gives the exact v1 topic of the DESIGN.md table."""
    assert built == expected


@pytest.mark.parametrize(("built", "expected", "parsed"), BUILT)
def test_parse_round_trip(built, expected, parsed):
    """Parsing a built topic gives back its kind and ids."""
    assert topics.parse(built) == parsed


@pytest.mark.parametrize("value", ["a", "a" * 64, "dev-1.x_Y", "0"])
def test_check_id_valid(value):
    """Ids of 1 to 64 characters of [A-Za-z0-9_.-] are returned unchanged."""
    assert topics.check_id(value) == value


@pytest.mark.parametrize("value", BAD_IDS)
def test_check_id_invalid_names_value(value):
    """An invalid id raises TopicError whose message shows the id's repr."""
    with pytest.raises(TopicError) as info:
        topics.check_id(value, "device id")
    assert repr(value) in str(info.value)
    assert "device id" in str(info.value)


@pytest.mark.parametrize("value", BAD_IDS)
def test_is_valid_id_invalid(value):
    """is_valid_id agrees with check_id on invalid ids (trailing newline too)."""
    assert topics.is_valid_id(value) is False


@pytest.mark.parametrize(
    "build",
    [
        topics.batch,
        topics.state,
        topics.ack,
        topics.telemetry,
        topics.alert,
        topics.downlink_filter,
        lambda v: topics.downlink("gw", v, "alert"),
        lambda v: topics.event("kind", v),
    ],
)
@pytest.mark.parametrize("value", ["plug+2", "bulb #1", "dev-1\n"])
def test_builder_invalid_id_raises(build, value):
    """No builder puts a wildcard or a newline into a topic (C10 item 1)."""
    with pytest.raises(TopicError):
        build(value)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("sf/v1", "not a v1 topic: 'sf/v1'"),
        ("sf/v2/gw/gw-01/up/batch", "not a v1 topic"),
        ("sf/v1/gw/gw-01/up", "not a v1 topic"),
        ("sf/v1/gw/gw-01/up/batch/x", "not a v1 topic"),
        ("sf/v1/gw/bad id/up/batch", "invalid gateway id 'bad id'"),
        ("sf/v1/dev/dev-1/up", "not a v1 topic"),
        ("sf/v1/dev/dev+1/up/telemetry", "invalid device id 'dev+1'"),
        ("sf/v1/events/kind", "not a v1 topic"),
        ("sf/v1/alerts/a/b", "not a v1 topic"),
        ("tele/dev/SENSOR", "not a v1 topic: 'tele/dev/SENSOR'"),
    ],
)
def test_parse_not_v1_raises(topic, expected):
    """A topic outside the v1 table, or with a bad id, raises TopicError naming it."""
    with pytest.raises(TopicError) as info:
        topics.parse(topic)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "topic",
    [
        "zigbee2mqtt/Küche Sensor 1",
        "zigbee2mqtt/dev-j10/temp_&_humidity_sampling",
        "a//b",
        "/",
        "$SYS/broker/uptime",
        "ü" * 32_767,
    ],
)
def test_check_topic_name_valid(topic):
    """Spaces, UTF-8, '&', empty levels and 65,534 bytes are legal names."""
    assert topics.check_topic_name(topic) == topic


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("", "empty topic"),
        ("zigbee2mqtt/bulb #1", "wildcard"),
        ("zigbee2mqtt/plug+2", "wildcard"),
        ("a\x00b", "control character"),
        ("a\x1fb", "control character"),
        ("a\x7fb", "control character"),
        ("a\x85b", "control character"),
        ("a\nb", "control character"),
        ("a\ud800b", "lone surrogate"),
        ("ü" * 32_768, "65536 bytes"),
    ],
)
def test_check_topic_name_invalid(topic, expected):
    """Empty, wildcard, control, surrogate and over-long names raise TopicError."""
    with pytest.raises(TopicError) as info:
        topics.check_topic_name(topic)
    assert expected in str(info.value)


def test_decode_topic_utf8():
    """A UTF-8 topic decodes to the exact string, with no folding (C10 item 3)."""
    raw = bytes.fromhex("7a6967626565326d7174742f4bc3bc6368652053656e736f722031")
    assert topics.decode_topic(raw) == "zigbee2mqtt/Küche Sensor 1"


def test_decode_topic_invalid_utf8():
    """A topic that is not UTF-8 raises TopicError naming byte and offset (C09)."""
    with pytest.raises(TopicError) as info:
        topics.decode_topic(b"tele/dev-\xf4x/SENSOR")
    assert "0xf4 at offset 9" in str(info.value)


def test_decode_topic_control_character():
    """A decoded topic with U+0000 is refused like check_topic_name (C10 item 5)."""
    with pytest.raises(TopicError) as info:
        topics.decode_topic(b"tele/dev\x00/SENSOR")
    assert "control character" in str(info.value)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        # MQTT 3.1.1 section 4.7.1.2, multi-level wildcard
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "sport/tennis", True),
        ("#", "/", True),
        # section 4.7.1.3, single-level wildcard
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("+/tennis/#", "sport/tennis", True),
        # section 4.7.2, topics beginning with $
        ("#", "$SYS/broker", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/monitor/Clients", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        # section 4.7.3, case-sensitive and exact on UTF-8
        ("sport/tennis", "sport/Tennis", False),
        ("zigbee2mqtt/+", "zigbee2mqtt/Küche Sensor 1", True),
        ("zigbee2mqtt/Kuche Sensor 1", "zigbee2mqtt/Küche Sensor 1", False),
        ("a/b", "a/b/", False),
        ("a/b/", "a/b", False),
        (topics.TELEMETRY_FILTER, "sf/v1/dev/dev-1/up/telemetry", True),
        (topics.BATCH_FILTER, "sf/v1/gw/gw-01/up/state", False),
    ],
)
def test_matches_spec_cases(topic_filter, topic, expected):
    """matches() follows the examples of MQTT 3.1.1 section 4.7."""
    assert topics.matches(topic_filter, topic) is expected


def _reference(topic_filter: str, topic: str) -> bool:
    """MQTT matching by translating the filter into a regular expression."""
    if topic.startswith("$") and topic_filter[0] in "+#":
        return False
    levels = topic_filter.split("/")
    multi = levels[-1] == "#"
    if multi:
        levels = levels[:-1]
    body = "/".join("[^/]*" if lv == "+" else re.escape(lv) for lv in levels)
    pattern = body
    if multi:
        pattern = body + "(/.*)?" if levels else ".*"
    return re.fullmatch(pattern, topic, re.DOTALL) is not None


_LEVELS = st.sampled_from(["a", "b", "", "$x", "ü", " ", "a b"])
_TOPICS = st.lists(_LEVELS, min_size=1, max_size=5).map("/".join)
_FILTERS = st.builds(
    lambda levels, multi: "/".join([*levels, "#"] if multi else levels),
    st.lists(st.one_of(_LEVELS, st.just("+")), min_size=0, max_size=5),
    st.booleans(),
).filter(bool)


@settings(max_examples=500, deadline=None)
@given(topic_filter=_FILTERS, topic=_TOPICS)
def test_matches_agrees_with_regex_reference(topic_filter, topic):
    """For any valid filter and topic, matches() equals the regex translation."""
    assert topics.matches(topic_filter, topic) is _reference(topic_filter, topic)


@given(topic_filter=_FILTERS)
def test_check_filter_accepts_every_valid_filter(topic_filter):
    """Any filter of whole-level wildcards (# only last) passes unchanged."""
    assert topics.check_filter(topic_filter) == topic_filter


@pytest.mark.parametrize(
    "value", ["sf/v1/dev/+/up/telemetry", "tele/+/SENSOR", "zigbee2mqtt/#", "#", "+"]
)
def test_check_filter_accepts_whole_level_wildcards(value):
    """Filters with + and # as whole levels (# only last) pass unchanged."""
    assert topics.check_filter(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty filter"),
        ("tele/x+/SENSOR", "wildcard inside a level of filter 'tele/x+/SENSOR'"),
        ("a/#/b", "'#' must be the last level of filter 'a/#/b'"),
        ("a/\x01", "control character in filter 'a/\\x01'"),
        ("a/\ud800", "lone surrogate in topic"),
    ],
)
def test_check_filter_refuses_with_the_reason(value, message):
    """A bad filter is a TopicError that says what is wrong with it."""
    with pytest.raises(TopicError, match=re.escape(message)):
        topics.check_filter(value)
