"""The ``zigbee2mqtt`` adapter: device state messages of Zigbee2MQTT.

Topics. ``zigbee2mqtt/{friendly_name}``; the friendly name is the source,
exactly as in the topic: it may hold spaces, UTF-8 letters, ``&`` and ``/``
(Zigbee2MQTT allows slashes to group devices), C10. These return None, not
data and not counted: ``zigbee2mqtt/bridge/...``, and the sub-topics
``.../availability`` (online/offline, or a zero-length clear: C11),
``.../set``, ``.../get`` (and their ``/set/{attribute}`` forms) and the legacy
``.../action``. The base topic is configurable.

Payload. A flat object: ``{"battery": 87, "comfort_temperature": "22.0",
"away_mode": "OFF", "away_setting": null, ...}``. Numbers and strict decimal
strings are readings (C03: ``"06"`` is 6.0); ``null`` is skipped; state
strings (``"OFF"``, ``"ON"``, ``"LOCK"``) count as the ``state_value`` notice;
strings of text attributes are ignored: keys ``state``, ``status``, ``mode``,
``action``, ``event``, ``effect``, ``preset``, ``sensitivity``, ``week``,
``click``, ``direction``, ``type``, ``version``, ``name``, ``source``,
``error``, ``behavior``, or ending in ``_`` and one of them
(``system_mode``, ``running_state``, ``power_on_behavior``). Any other
non-numeric string is a ``non_numeric_string`` reject of its field (``"22,0"``,
``"abc"``). Nested objects are flattened with dots (``color.x``,
``update.installed_version``); the legacy ``device`` information object is
skipped. Any JSON that is not an object (``""``, ``[]``, ``42``, ``null``) is
a ``payload_not_object`` reject.

Time. Zigbee2MQTT's optional ``last_seen`` field (ISO 8601 or epoch ms,
after its ``advanced.last_seen`` setting) stamps the readings: it is when the
coordinator heard the device, and a retained state replayed later keeps its
own time, so it is deduplicated rather than stored again. Without it the
readings get the receive time.

Units. Zigbee2MQTT reports in fixed units; these are attached: ``°C`` to
``temperature``, ``local_temperature``, ``*_temperature`` and
``*_heating_setpoint``, ``%`` to ``humidity`` and ``battery``, ``lx`` to
``illuminance_lux``, ``hPa`` to ``pressure``, ``W`` to ``power``, ``kWh`` to
``energy``, ``A`` to ``current``, ``ppm`` to ``co2``. ``voltage`` has none,
since it is mV on battery devices and V on mains plugs.
"""

from __future__ import annotations

from typing import Final

from protocol.adapters._message import FieldRules, MessageBuilder, decode, failed
from protocol.adapters.base import AdaptedMessage
from protocol.batch import Limits
from protocol.errors import DecodeError

#: Sub-topics of a device that carry no readings.
IGNORED_LEVELS: Final = frozenset({"availability", "set", "get", "action"})

_RULES: Final = FieldRules(
    skip=frozenset({"last_seen", "device"}),
    text_words=frozenset(
        {
            "state",
            "status",
            "mode",
            "action",
            "event",
            "effect",
            "preset",
            "sensitivity",
            "week",
            "click",
            "direction",
            "type",
            "version",
            "name",
            "source",
            "error",
            "behavior",
            "behaviour",
        }
    ),
)

_UNITS: Final = {
    "temperature": "°C",
    "local_temperature": "°C",
    "humidity": "%",
    "battery": "%",
    "illuminance_lux": "lx",
    "pressure": "hPa",
    "power": "W",
    "energy": "kWh",
    "current": "A",
    "co2": "ppm",
}


class Zigbee2MqttAdapter:
    """Zigbee2MQTT device state messages (module docstring).

    Args:
        base_topic: Zigbee2MQTT's ``mqtt.base_topic``.

    Raises:
        ValueError: ``base_topic`` is empty, ends with ``/`` or has a
            wildcard.
    """

    name = "zigbee2mqtt"

    def __init__(self, base_topic: str = "zigbee2mqtt") -> None:
        if (
            not base_topic
            or base_topic.endswith("/")
            or any(c in base_topic for c in "+#")
        ):
            raise ValueError(
                f"invalid zigbee2mqtt base topic {base_topic!r}: expected a topic name"
            )
        self._base = base_topic

    def default_filters(self) -> list[str]:
        """``zigbee2mqtt/#``: bridge and sub-topics are then ignored by adapt."""
        return [f"{self._base}/#"]

    def adapt(
        self, topic: str, payload: bytes, received_us: int, limits: Limits
    ) -> AdaptedMessage | None:
        """Map one Zigbee2MQTT message to readings; never raises for bad payloads.

        Returns:
            The readings, rejects and notices, or None for a bridge topic, a
            device's sub-topic or a topic outside the base topic.
        """
        source = self.friendly_name(topic)
        if source is None:
            return None
        try:
            doc = decode(payload, limits)
        except DecodeError as exc:
            return failed(source, exc)

        b = MessageBuilder(source, received_us, limits, _RULES)
        if not isinstance(doc, dict):
            b.not_object(doc)
            return b.msg
        stamp = b.stamp(doc, ("last_seen",), "", b.receipt)
        if stamp is not None:
            b.add_fields(doc, stamp, units=_unit)
        return b.msg

    def friendly_name(self, topic: str) -> str | None:
        """The device a state topic names, or None for any other topic."""
        if not topic.startswith(self._base + "/"):
            return None
        name = topic[len(self._base) + 1 :]
        if not name or name == "bridge" or name.startswith("bridge/"):
            return None
        levels = name.split("/")
        if levels[-1] in IGNORED_LEVELS or (
            len(levels) > 2 and levels[-2] in ("set", "get")
        ):
            return None
        return name


def _unit(metric: str, key: str) -> str:
    key = key.lower()
    if key.endswith(("_temperature", "_heating_setpoint")):
        return "°C"
    return _UNITS.get(key, "")
