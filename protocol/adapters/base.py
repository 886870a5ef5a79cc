"""What an adapter is: a sensor convention's topics and payloads to readings.

Adapters let existing sensors work without firmware changes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from protocol.batch import Limits
from protocol.readings import Reading, Reject


@dataclass(slots=True)
class AdaptedMessage:
    """The readings one sensor message yields, with what was rejected.

    Attributes:
        source: the device's name as the topic or payload gives it. It may
            not be a valid id (``Küche Sensor 1``, case C10): the receiver
            resolves it to a registered device, or uses it as the id when it
            is a valid one.
        readings: validated readings; their ``device`` is ``source``.
        rejects: fields or the whole payload that failed, each with a reason.
        notices: counts that are not rejects (``empty_payload``,
            ``clock_not_set``, ``state_value``).
        alive: whether the message counts as activity of the device (a
            zero-length retained clear does not, case C11).
    """

    source: str
    readings: list[Reading] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    notices: Counter[str] = field(default_factory=Counter)
    alive: bool = True


class Adapter(Protocol):
    """A sensor convention (plain JSON, Tasmota, Zigbee2MQTT, ...)."""

    #: The name used in configuration: ``json``, ``tasmota``, ``zigbee2mqtt``.
    name: str

    def default_filters(self) -> list[str]:
        """The subscription filters this convention publishes on by default."""
        ...

    def adapt(
        self, topic: str, payload: bytes, received_us: int, limits: Limits
    ) -> AdaptedMessage | None:
        """Map one message to readings.

        Returns:
            The readings, rejects and notices; or None when the topic is not
            a data topic of this convention (e.g. Tasmota ``tele/x/LWT``) and
            the message is ignored without being counted.

        Never raises for bad payloads: every failure is a reject with a reason.
        """
        ...
