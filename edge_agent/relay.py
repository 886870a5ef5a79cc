"""The downlink relay: alerts and commands from the hub, on to the devices.

A message on ``sf/v1/gw/{gw}/down/dev/{dev}/{kind}`` is republished on the
local broker at ``downlink_topic`` with ``{dev}`` and ``{kind}`` filled in,
QoS 1, payload unchanged. Both ids are checked with
:func:`protocol.topics.check_id` first, so that no wildcard or extra level
from the hub side can ever reach a local topic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edge_agent.const import WARNING_INTERVAL_S
from protocol import topics
from protocol.errors import TopicError
from protocol.ratelimit import WarningLimiter
from protocol.topics import TopicKind

_LOGGER = logging.getLogger(__name__)

#: Publishes on the local broker at QoS 1; tells whether it was queued.
LocalPublish = Callable[[str, bytes], bool]


class Relay:
    """Maps a gateway's downlink topics to local device topics.

    Args:
        gateway_id: this gateway; downlinks for others are ignored.
        template: the local topic, with ``{dev}`` and ``{kind}`` fields.
        publish: the local broker's publish, or None without a local broker.
    """

    def __init__(
        self, gateway_id: str, template: str, publish: LocalPublish | None
    ) -> None:
        self.gateway_id = gateway_id
        self.template = template
        self._publish = publish
        self._warnings = WarningLimiter(_LOGGER, WARNING_INTERVAL_S)
        self.relayed = 0
        self.dropped = 0

    def local_topic(self, topic: str) -> str | None:
        """The local topic a downlink topic maps to, or None if it is not one.

        Raises:
            TopicError: an id in the topic fails the v1 grammar.
        """
        parsed = topics.parse(topic)
        if parsed.kind != TopicKind.DOWNLINK or parsed.gateway != self.gateway_id:
            return None
        dev = topics.check_id(parsed.device or "", "device id")
        kind = topics.check_id(parsed.sub or "", "downlink kind")
        return topics.check_topic_name(self.template.format(dev=dev, kind=kind))

    def handle(self, topic: str, payload: bytes) -> str | None:
        """Relay one downlink message; never raises for bad input.

        Returns:
            The local topic it was published on, or None if it was dropped.
        """
        try:
            local = self.local_topic(topic)
        except TopicError as exc:
            self.dropped += 1
            self._warnings.warn(
                "bad_topic", "downlink dropped topic=%r reason=%s", topic, exc
            )
            return None
        if local is None:
            self.dropped += 1
            _LOGGER.debug("not a downlink of this gateway topic=%r", topic)
            return None
        if self._publish is None:
            self.dropped += 1
            _LOGGER.info(
                "downlink dropped, no local broker topic=%s bytes=%d",
                topic,
                len(payload),
            )
            return None
        if not self._publish(local, payload):
            self.dropped += 1
            self._warnings.warn(
                "publish", "downlink not queued locally topic=%s", local
            )
            return None
        self.relayed += 1
        _LOGGER.debug(
            "downlink relayed topic=%s local=%s bytes=%d", topic, local, len(payload)
        )
        return local
