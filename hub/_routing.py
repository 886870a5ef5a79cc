"""What a received message is, and which part of the hub reads it, by topic."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from protocol import topics
from protocol.adapters.base import Adapter
from protocol.errors import TopicError

# MQTT 3.1.1 section 4.7.3 forbids U+0000 in topics and advises against the
# other control characters; no device has a reason to send them (case C10).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class RouteKind(StrEnum):
    """Which reader a topic goes to."""

    BATCH = "batch"
    STATE = "state"
    ADAPTER = "adapter"
    #: On none of our filters (overlapping subscriptions): acked, not read.
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Route:
    """Where a message goes: its kind, and the gateway or adapter it names."""

    kind: RouteKind
    gateway: str | None = None
    adapter: Adapter | None = None

    @property
    def label(self) -> str:
        """The name counted in metrics: ``batch``, ``state`` or the adapter's."""
        if self.kind is RouteKind.ADAPTER and self.adapter is not None:
            return self.adapter.name
        return self.kind.value


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message as the broker delivered it, waiting in the hub's queue.

    Attributes:
        topic: the topic, decoded strictly as UTF-8 and free of control
            characters.
        payload: the payload; cut to the payload limit when ``size`` is over
            it, so that the queue's memory stays bounded.
        size: the payload's size as received.
        mid: the MQTT message id to PUBACK once committed.
        qos: the QoS it arrived with (a QoS 0 message is never PUBACKed).
        retain: whether it was a retained message.
        received_us: when the hub received it, epoch µs.
        route: the reader it goes to.
    """

    topic: str
    payload: bytes
    size: int
    mid: int
    qos: int
    retain: bool
    received_us: int
    route: Route


class BadTopic(TopicError):
    """A received topic is not valid UTF-8 or holds a control character."""


def decode_topic(raw: bytes) -> str:
    """Decode a received topic strictly.

    Raises:
        BadTopic: the bytes are not UTF-8, or hold a control character.
    """
    try:
        topic = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadTopic(f"invalid UTF-8 at offset {exc.start}") from None
    match = _CONTROL_RE.search(topic)
    if match:
        raise BadTopic(f"control character U+{ord(match.group()):04X}")
    return topic


class TopicRouter:
    """Maps a topic to its reader: batches, gateway states, then adapters."""

    def __init__(self, adapters: list[tuple[str, Adapter]]) -> None:
        """Build a router.

        Args:
            adapters: (subscription filter, adapter) pairs, first match wins.
        """
        self._adapters = list(adapters)

    @property
    def filters(self) -> list[str]:
        """Every filter the hub subscribes to (without a shared prefix)."""
        out = [topics.BATCH_FILTER, topics.STATE_FILTER]
        out += [f for f, _ in self._adapters if f not in out]
        return out

    def route(self, topic: str) -> Route:
        """The reader of ``topic``.

        Raises:
            BadTopic: a v1 gateway topic names an invalid gateway id.
        """
        for kind, topic_filter in (
            (RouteKind.BATCH, topics.BATCH_FILTER),
            (RouteKind.STATE, topics.STATE_FILTER),
        ):
            if topics.matches(topic_filter, topic):
                try:
                    gateway = topics.parse(topic).gateway
                except TopicError as exc:
                    raise BadTopic(str(exc)) from None
                return Route(kind, gateway=gateway)
        for topic_filter, adapter in self._adapters:
            if topics.matches(topic_filter, topic):
                return Route(RouteKind.ADAPTER, adapter=adapter)
        return Route(RouteKind.OTHER)
