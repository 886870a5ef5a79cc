"""The ``tasmota`` adapter: Tasmota firmware's periodic telemetry.

Topics. ``tele/{dev}/SENSOR`` (sensor values) and ``tele/{dev}/STATE``
(numeric health fields such as ``Heap``, ``LoadAvg``, ``UptimeSec``,
``Wifi.RSSI``); ``{dev}`` is the device's Tasmota topic and becomes the
source. Every other ``tele/{dev}/...`` topic (``LWT``, ``INFO1``,
``HASS_STATE``, ...) returns None: not data, not counted. The prefix is
configurable; a FullTopic that puts ``%topic%`` before the prefix is not.

Payload. An object such as ``{"Time": "2026-11-30T12:00:00", "DHT11":
{"Temperature": 21.4, "Humidity": 48.0}, "TempUnit": "C"}``. Nested objects
are flattened with dots (``DHT11.Temperature``), lists get their index
(multi-phase ``ENERGY.Voltage[1]``). Numbers and numeric strings are
readings; state strings (``"ON"``) count as the ``state_value`` notice; any
other string (``"TempUnit"``, ``Uptime``, ``Wifi.SSId``) is text and ignored,
so Tasmota never yields ``non_numeric_string``. A bare ``nan`` (C01) is a
``non_finite_value`` reject of its field; the other fields are kept.

Time. ``Time`` is the device's local wall-clock time without an offset; it
is read in the zone given as ``naive_tz`` (default UTC: set the devices'
``Timezone 0``, or give their zone). A ``Time`` with an offset (Tasmota's
``TimeStamp`` option) is honoured as it is. In a zone with daylight saving
the repeated autumn hour is read as its first occurrence (``fold=0``). A
``Time`` before 2000 means the clock is not set yet (no NTP after a boot,
C07): the readings get the receive time, ``FLAG_SERVER_TIME`` and the
``clock_not_set`` notice. No ``Time`` means the receive time.

Units. ``TempUnit`` (``C`` becomes ``°C``, ``F`` becomes ``°F``) is attached to
every ``Temperature`` and ``DewPoint`` field, ``PressureUnit`` to ``Pressure``
and ``SeaPressure``; ``Humidity`` is ``%``; the ``ENERGY`` fields carry
Tasmota's fixed units (kWh, W, VA, VAr, V, A, Hz); ``Wifi.RSSI`` is ``%``
(Tasmota reports a quality percentage) and ``Wifi.Signal`` is ``dBm``.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Any, Final

from protocol.adapters._message import (
    FieldRules,
    MessageBuilder,
    UnitRule,
    clean_unit,
    decode,
    failed,
)
from protocol.adapters.base import AdaptedMessage
from protocol.batch import Limits
from protocol.errors import DecodeError

DATA_TOPICS: Final = ("SENSOR", "STATE")

_RULES: Final = FieldRules(
    skip=frozenset({"time", "tempunit", "pressureunit", "speedunit"}),
    strict_strings=False,
)

_ENERGY_UNITS: Final = {
    "Total": "kWh",
    "Yesterday": "kWh",
    "Today": "kWh",
    "Power": "W",
    "ApparentPower": "VA",
    "ReactivePower": "VAr",
    "Voltage": "V",
    "Current": "A",
    "Frequency": "Hz",
}
_TEMP_UNITS: Final = {"C": "°C", "F": "°F"}


class TasmotaAdapter:
    """Tasmota ``tele/{dev}/SENSOR`` and ``STATE`` messages (module docstring).

    Args:
        naive_tz: the zone of the devices' ``Time``; UTC by default.
        prefix: the telemetry prefix of the devices' FullTopic.

    Raises:
        ValueError: ``prefix`` is empty or has a ``/`` or a wildcard.
    """

    name = "tasmota"

    def __init__(self, naive_tz: tzinfo = UTC, prefix: str = "tele") -> None:
        if not prefix or any(c in prefix for c in "/+#"):
            raise ValueError(f"invalid tasmota prefix {prefix!r}: expected one level")
        self._naive_tz = naive_tz
        self._prefix = prefix

    def default_filters(self) -> list[str]:
        """``tele/+/SENSOR`` and ``tele/+/STATE``."""
        return [f"{self._prefix}/+/{kind}" for kind in DATA_TOPICS]

    def adapt(
        self, topic: str, payload: bytes, received_us: int, limits: Limits
    ) -> AdaptedMessage | None:
        """Map one Tasmota message to readings; never raises for bad payloads.

        Returns:
            The readings, rejects and notices, or None for a topic that is
            not ``{prefix}/{dev}/SENSOR`` or ``STATE``.
        """
        parts = topic.split("/")
        if (
            len(parts) != 3
            or parts[0] != self._prefix
            or not parts[1]
            or parts[2] not in DATA_TOPICS
        ):
            return None
        source = parts[1]
        try:
            doc = decode(payload, limits)
        except DecodeError as exc:
            return failed(source, exc)

        b = MessageBuilder(source, received_us, limits, _RULES, self._naive_tz)
        if not isinstance(doc, dict):
            b.not_object(doc)
            return b.msg
        stamp = b.stamp(doc, ("time",), "", b.receipt)
        if stamp is not None:
            b.add_fields(doc, stamp, units=_units(doc))
        return b.msg


def _units(doc: dict[str, Any]) -> UnitRule:
    """The unit rule of one message, from its ``TempUnit`` and ``PressureUnit``."""
    raw_temp = clean_unit(doc.get("TempUnit"))
    temp = _TEMP_UNITS.get(raw_temp, raw_temp)
    pressure = clean_unit(doc.get("PressureUnit"))

    def unit(metric: str, key: str) -> str:
        if metric.startswith("ENERGY."):
            return _ENERGY_UNITS.get(key, "")
        if key in ("Temperature", "DewPoint"):
            return temp
        if key in ("Pressure", "SeaPressure"):
            return pressure
        if key == "Humidity":
            return "%"
        if metric == "Wifi.RSSI":
            return "%"
        if metric == "Wifi.Signal":
            return "dBm"
        return ""

    return unit
