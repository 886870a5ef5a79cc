"""Topic builders and parsers for protocol v1 (the topic table in the README).

Every builder validates the ids it is given, so that no stored name with a
wildcard can ever become part of a topic or a subscription filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from protocol.const import ID_PATTERN, TOPIC_ROOT
from protocol.errors import TopicError

# Used with fullmatch: "$" would also match before a trailing newline.
_ID_RE = re.compile(ID_PATTERN)
# MQTT 3.1.1 section 4.7.3: a topic name is UTF-8 with no U+0000; we also refuse
# the other C0/C1 control characters, which no sane device puts in a topic.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_TOPIC_BYTES = 65_535


class TopicKind(StrEnum):
    """What a v1 topic carries."""

    BATCH = "batch"
    STATE = "state"
    ACK = "ack"
    DOWNLINK = "downlink"
    TELEMETRY = "telemetry"
    EVENT = "event"
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A v1 topic taken apart: its kind and the ids it names."""

    kind: TopicKind
    gateway: str | None = None
    device: str | None = None
    sub: str | None = None  # the downlink or event kind


def is_valid_id(value: str) -> bool:
    """Tell whether ``value`` is a valid gateway or device id."""
    return isinstance(value, str) and bool(_ID_RE.fullmatch(value))


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid id.

    Raises:
        TopicError: the id has characters outside ``[A-Za-z0-9_.-]`` or the
            wrong length.
    """
    if not is_valid_id(value):
        raise TopicError(f"invalid {what} {value!r}: expected {ID_PATTERN}")
    return value


def check_topic_name(topic: str) -> str:
    """Return ``topic`` if it may be published to.

    Raises:
        TopicError: the topic is empty, longer than 65,535 UTF-8 bytes, has a
            wildcard, a control character or a lone surrogate (which has no
            UTF-8 form).
    """
    if not topic:
        raise TopicError("empty topic")
    if "+" in topic or "#" in topic:
        raise TopicError(f"wildcard in topic name {topic!r}")
    if _CONTROL_RE.search(topic):
        raise TopicError(f"control character in topic {topic!r}")
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        raise TopicError(f"lone surrogate in topic {topic!r}") from None
    # MQTT 3.1.1 section 1.5.3: a string is prefixed by a two-byte length.
    if size > _MAX_TOPIC_BYTES:
        raise TopicError(f"topic of {size} bytes, expected at most 65535")
    return topic


def check_filter(value: str) -> str:
    """Return ``value`` if it is a valid MQTT subscription filter.

    Raises:
        TopicError: the filter is empty, has a control character, a wildcard
            that is not a whole level (``#`` only as the last), or breaks a
            rule of topic names (its UTF-8 form, its length).
    """
    if not value:
        raise TopicError("empty filter")
    if _CONTROL_RE.search(value):
        raise TopicError(f"control character in filter {value!r}")
    levels = value.split("/")
    for i, level in enumerate(levels):
        if ("+" in level or "#" in level) and level not in ("+", "#"):
            raise TopicError(f"wildcard inside a level of filter {value!r}")
        if level == "#" and i != len(levels) - 1:
            raise TopicError(f"'#' must be the last level of filter {value!r}")
    # Every other rule of topic names holds for filters too.
    check_topic_name(value.replace("+", "x").replace("#", "x"))
    return value


def decode_topic(raw: bytes) -> str:
    """Decode a topic name as received and check it like :func:`check_topic_name`.

    A broker should refuse a topic that is not UTF-8 (MQTT 3.1.1 section
    1.5.3), but not every broker does (case C09); decoding it apart from the
    payload lets a receiver drop that one message and keep its session.

    Raises:
        TopicError: the bytes are not UTF-8, or the topic is not a valid name.
    """
    try:
        topic = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TopicError(
            f"topic is not UTF-8: invalid byte 0x{raw[exc.start]:02x} "
            f"at offset {exc.start}"
        ) from None
    return check_topic_name(topic)


def batch(gw: str) -> str:
    """Topic a gateway publishes its batches on."""
    return f"{TOPIC_ROOT}/gw/{check_id(gw, 'gateway id')}/up/batch"


def state(gw: str) -> str:
    """Topic of a gateway's retained birth and death (LWT) message."""
    return f"{TOPIC_ROOT}/gw/{check_id(gw, 'gateway id')}/up/state"


def ack(gw: str) -> str:
    """Topic the hub acknowledges a gateway's committed batches on."""
    return f"{TOPIC_ROOT}/gw/{check_id(gw, 'gateway id')}/down/ack"


def downlink(gw: str, dev: str, kind: str) -> str:
    """Topic of an alert or command for one device behind a gateway."""
    check_id(gw, "gateway id")
    check_id(dev, "device id")
    check_id(kind, "downlink kind")
    return f"{TOPIC_ROOT}/gw/{gw}/down/dev/{dev}/{kind}"


def downlink_filter(gw: str) -> str:
    """Subscription filter for every downlink message of one gateway."""
    return f"{TOPIC_ROOT}/gw/{check_id(gw, 'gateway id')}/down/dev/+/+"


def telemetry(dev: str) -> str:
    """Topic a gateway-less device publishes plain JSON readings on."""
    return f"{TOPIC_ROOT}/dev/{check_id(dev, 'device id')}/up/telemetry"


def event(kind: str, dev: str) -> str:
    """Topic of a processor's output about one device."""
    check_id(kind, "event kind")
    check_id(dev, "device id")
    return f"{TOPIC_ROOT}/events/{kind}/{dev}"


def alert(dev: str) -> str:
    """Topic of alert state changes for one device."""
    return f"{TOPIC_ROOT}/alerts/{check_id(dev, 'device id')}"


# Filters the hub subscribes to.
BATCH_FILTER = f"{TOPIC_ROOT}/gw/+/up/batch"
STATE_FILTER = f"{TOPIC_ROOT}/gw/+/up/state"
TELEMETRY_FILTER = f"{TOPIC_ROOT}/dev/+/up/telemetry"


def parse(topic: str) -> ParsedTopic:
    """Take a v1 topic apart.

    Raises:
        TopicError: the topic is not one of the v1 topics, or an id in it is
            invalid.
    """
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "sf" or parts[1] != "v1":
        raise TopicError(f"not a v1 topic: {topic!r}")
    section, rest = parts[2], parts[3:]
    if section == "gw":
        return _parse_gateway(topic, rest)
    if section == "dev" and len(rest) == 3 and rest[1:] == ["up", "telemetry"]:
        return ParsedTopic(TopicKind.TELEMETRY, device=check_id(rest[0], "device id"))
    if section == "events" and len(rest) == 2:
        return ParsedTopic(
            TopicKind.EVENT, device=check_id(rest[1], "device id"), sub=rest[0]
        )
    if section == "alerts" and len(rest) == 1:
        return ParsedTopic(TopicKind.ALERT, device=check_id(rest[0], "device id"))
    raise TopicError(f"not a v1 topic: {topic!r}")


def _parse_gateway(topic: str, rest: list[str]) -> ParsedTopic:
    gw = check_id(rest[0], "gateway id")
    tail = rest[1:]
    if tail == ["up", "batch"]:
        return ParsedTopic(TopicKind.BATCH, gateway=gw)
    if tail == ["up", "state"]:
        return ParsedTopic(TopicKind.STATE, gateway=gw)
    if tail == ["down", "ack"]:
        return ParsedTopic(TopicKind.ACK, gateway=gw)
    if len(tail) == 4 and tail[:2] == ["down", "dev"]:
        dev = check_id(tail[2], "device id")
        return ParsedTopic(TopicKind.DOWNLINK, gateway=gw, device=dev, sub=tail[3])
    raise TopicError(f"not a v1 topic: {topic!r}")


def matches(topic_filter: str, topic: str) -> bool:
    """Tell whether ``topic`` matches an MQTT subscription filter.

    Follows MQTT 3.1.1 section 4.7: ``+`` matches one level, ``#`` the rest
    (including the parent level), and filters starting with a wildcard do not
    match topics starting with ``$``.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_parts = topic_filter.split("/")
    t_parts = topic.split("/")
    for i, f in enumerate(f_parts):
        if f == "#":
            return True
        if i >= len(t_parts):
            return False
        if f != "+" and f != t_parts[i]:
            return False
    return len(f_parts) == len(t_parts)
