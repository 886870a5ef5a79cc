"""The ``json`` adapter: plain JSON sensors in the widespread shapes.

Which device. On ``sf/v1/dev/{dev}/up/telemetry`` (the default filter) the
device is the topic's ``{dev}``, and a device name in the payload is ignored:
a device may publish only under its own topic (broker ACLs enforce that once
the secured API adds them), so the payload must not speak for another one. On
any other topic the device is the payload's top-level ``device``,
``device_name`` or ``dev`` field (a string of 1 to 128 characters without
control characters, or an integer), else the topic's last non-empty level. A
device field of any other kind rejects the message as ``bad_device_id``.

Which shapes. The payload is one of:

1. a flat object, ``{"temperature": 21.5, "ts": ...}``: every field is a
   reading; nested objects are flattened with dots (``ENERGY.Power``) and
   list elements get their index (``Voltage[0]``);
2. a ThingsBoard object, ``{"ts": ..., "values": {...}}`` (``values`` an
   object): the fields of ``values`` are the readings (metric ``key1``, field
   path ``values.key1``), the object's other fields are ignored;
3. a single value, ``{"value": x, "sensor_type": name, "unit": u, ...}``
   (``metric`` instead of ``sensor_type`` also works): one reading named by
   ``sensor_type``, with ``unit`` as its unit; every other field
   (``description``, ``status``, ``scalefactor``, ...) is description, not a
   reading. ``{"value": 300}`` alone is shape 1, a reading named ``value``;
4. a readings envelope, ``{"device": ..., "ts": ..., "readings": [...]}``
   (``readings`` a list): each element is an object of shape 1, 2 or 3 with
   its own time, or the envelope's; other envelope fields are ignored;
5. a list of objects of shape 1, 2 or 3, each with its own time.

Any other JSON (a string such as ``""``, a number, ``null``, ``[]``, a list
without objects) is one ``payload_not_object`` reject. In shapes 4 and 5 an
element that is not an object is a ``bad_value_type`` reject of that element.

Which fields are not readings. In every shape these keys (any case, at any
depth) are skipped: the time keys ``ts``, ``time``, ``timestamp``; the device
keys; ``unit``, ``units``, ``description``, ``name``, ``label``, ``id``,
``type``, ``sensor_type``, ``metric``, ``model``, ``manufacturer``,
``firmware``, ``version``, ``mac``, ``ip``. Strings of keys that describe a
state or a kind (``status``, ``state``, ``mode``, ``event``, ``action``,
``source``, ``message``, ``error``, or ending in ``_status``, ``_mode`` ...)
are ignored; their numbers are read.

Which time. The first of ``ts``, ``time``, ``timestamp`` an object has (any
case): epoch seconds, ms, µs or ns told apart by magnitude (below 1e11, 1e14,
1e17), or an ISO 8601 string with ``Z`` or an offset (``+00:00``, ``+0100``).
A time without an offset is rejected as ``naive_timestamp`` unless the
adapter is given a zone for such times. Without a time the readings get the
receive time. Values, strings and times then follow the shared rules of
:mod:`protocol.adapters._message`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import Any, Final

from protocol.adapters._flatten import join
from protocol.adapters._message import (
    FieldRules,
    MessageBuilder,
    Stamp,
    decode,
    failed,
    valid_name,
)
from protocol.adapters.base import AdaptedMessage
from protocol.batch import Limits
from protocol.const import TOPIC_ROOT, RejectReason
from protocol.errors import DecodeError
from protocol.topics import TELEMETRY_FILTER

TIME_KEYS: Final = ("ts", "time", "timestamp")
DEVICE_KEYS: Final = ("device", "device_name", "dev")
NAME_KEYS: Final = ("sensor_type", "metric")

_RULES: Final = FieldRules(
    skip=frozenset(
        {
            *TIME_KEYS,
            *DEVICE_KEYS,
            *NAME_KEYS,
            "unit",
            "units",
            "description",
            "name",
            "label",
            "id",
            "type",
            "model",
            "manufacturer",
            "firmware",
            "version",
            "mac",
            "ip",
        }
    ),
    text_words=frozenset(
        {
            "status",
            "state",
            "mode",
            "event",
            "action",
            "source",
            "message",
            "error",
        }
    ),
)


class PlainJsonAdapter:
    """Plain JSON sensors (module docstring: shapes, devices, times).

    Args:
        filters: the subscription filters; by default the v1 telemetry topic.
        naive_tz: the zone of ISO times without an offset; by default they
            are rejected as ``naive_timestamp``.
    """

    name = "json"

    def __init__(
        self, filters: Sequence[str] | None = None, naive_tz: tzinfo | None = None
    ) -> None:
        self._filters = list(filters) if filters is not None else [TELEMETRY_FILTER]
        self._naive_tz = naive_tz

    def default_filters(self) -> list[str]:
        """The filters given, or the v1 telemetry topic ``sf/v1/dev/+/up/telemetry``."""
        return list(self._filters)

    def adapt(
        self, topic: str, payload: bytes, received_us: int, limits: Limits
    ) -> AdaptedMessage:
        """Map one plain JSON message to readings; never raises for bad payloads.

        Returns:
            The readings, rejects and notices (never None: every topic this
            adapter is subscribed to carries data).
        """
        topic_device = _telemetry_device(topic)
        fallback = topic_device or _last_level(topic)
        try:
            doc = decode(payload, limits)
        except DecodeError as exc:
            return failed(fallback, exc)

        source, bad_device = _source(doc, topic_device, fallback)
        b = MessageBuilder(source, received_us, limits, _RULES, self._naive_tz)
        if bad_device is not None:
            b.reject(RejectReason.BAD_DEVICE_ID, bad_device[0], bad_device[1])
        elif isinstance(doc, dict):
            _top_object(b, doc)
        elif isinstance(doc, list) and any(isinstance(x, dict) for x in doc):
            _elements(b, doc, "", b.receipt)
        else:
            b.not_object(doc)
        return b.msg


def _telemetry_device(topic: str) -> str | None:
    parts = topic.split("/")
    if (
        len(parts) == 6
        and "/".join(parts[:3]) == f"{TOPIC_ROOT}/dev"
        and parts[3]
        and parts[4:] == ["up", "telemetry"]
    ):
        return parts[3]
    return None


def _last_level(topic: str) -> str:
    return next((level for level in reversed(topic.split("/")) if level), topic)


def _source(
    doc: Any, topic_device: str | None, fallback: str
) -> tuple[str, tuple[str, str] | None]:
    """The device name, and the (field, detail) of a bad device field."""
    if topic_device is not None or not isinstance(doc, dict):
        return fallback, None
    for key in DEVICE_KEYS:
        if key not in doc:
            continue
        raw = doc[key]
        if isinstance(raw, int) and not isinstance(raw, bool):
            return str(raw), None
        if valid_name(raw):
            return raw, None
        return fallback, (key, f"expected a device name, got {str(raw)[:40]!r}")
    return fallback, None


def _top_object(b: MessageBuilder, doc: dict[str, Any]) -> None:
    stamp = b.stamp(doc, TIME_KEYS, "", b.receipt)
    if stamp is None:
        return
    readings = doc.get("readings")
    if isinstance(readings, list):
        _elements(b, readings, "readings", stamp)
        return
    _object_body(b, doc, "", stamp, None)


def _elements(b: MessageBuilder, items: list[Any], prefix: str, default: Stamp) -> None:
    for i, item in enumerate(items):
        path = f"{prefix}[{i}]"
        if not isinstance(item, dict):
            detail = f"expected an object, got {type(item).__name__}"
            b.reject(RejectReason.BAD_VALUE_TYPE, path, detail, index=i)
            continue
        stamp = b.stamp(item, TIME_KEYS, path, default, index=i)
        if stamp is not None:
            _object_body(b, item, path, stamp, i)


def _object_body(
    b: MessageBuilder, obj: dict[str, Any], prefix: str, stamp: Stamp, index: int | None
) -> None:
    values = obj.get("values")
    if isinstance(values, dict):  # ThingsBoard: {"ts": ..., "values": {...}}
        b.add_fields(values, stamp, field_prefix=join(prefix, "values"), index=index)
        return
    name_key = next((k for k in NAME_KEYS if k in obj), None)
    if name_key is not None and "value" in obj:
        _single_value(b, obj, prefix, stamp, index, name_key)
        return
    b.add_fields(obj, stamp, field_prefix=prefix, index=index)


def _single_value(
    b: MessageBuilder,
    obj: dict[str, Any],
    prefix: str,
    stamp: Stamp,
    index: int | None,
    name_key: str,
) -> None:
    name = obj[name_key]
    if not valid_name(name):
        detail = f"expected a metric name, got {str(name)[:40]!r}"
        b.reject(RejectReason.BAD_METRIC, join(prefix, name_key), detail, index=index)
        return
    b.add_fields(
        obj["value"],
        stamp,
        field_prefix=join(prefix, "value"),
        metric_prefix=name,
        unit=obj.get("unit", ""),
        index=index,
    )
