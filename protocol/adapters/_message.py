"""Building one adapted message: payload, times, values, strings and rejects.

Every adapter goes through here, so that all conventions treat values the same
way. The rules, which the adapters' module docstrings refer to:

- The payload is decoded by :func:`protocol.codec.read_payload` (size limit
  first, compression, UTF-8, JSON with bare ``nan`` tolerated). A zero-length
  payload is the ``empty_payload`` notice and not device activity (case C11);
  any other failure is one reject of the whole payload.
- A value is read by :func:`protocol.validate.parse_value`: numbers, JSON
  booleans (1.0/0.0), strict decimal strings (``"22.0"``, ``"06"``). ``null``
  is skipped silently. Bare or quoted ``nan``/``inf`` is ``non_finite_value``.
- A string that is not a number is, in this order: a state (one of
  :data:`STATE_WORDS`, any case: counted as the ``state_value`` notice, not a
  reading and not a reject); descriptive text when its key says so (see
  :class:`FieldRules`) or the convention is lenient (ignored); otherwise a
  ``non_numeric_string`` reject of that field (``"22,0"``, ``"abc"``, C03).
- A metric name is the field's flattened path, 1 to 128 characters without
  control characters (as :data:`protocol.models.MetricName`) and no empty key
  on the path; any other is a ``bad_metric`` reject. A unit that is not a
  string of at most 32 such characters is dropped and the reading kept.
- A time is parsed by :func:`protocol.validate.parse_timestamp` and checked by
  :func:`protocol.validate.apply_time_policy`. A bad or future time rejects
  the object it stamps, once, naming the time field; none of that object's
  fields is read. A time before 2000 (clock not set, C07) stamps the readings
  with the receive time, sets ``FLAG_SERVER_TIME`` and counts the
  ``clock_not_set`` notice once per reading, as :func:`protocol.decode_batch`
  does. Readings of an object without a time get the receive time and
  ``FLAG_SERVER_TIME`` (their time is the server's), without a notice.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Final

from protocol import codec
from protocol.adapters._flatten import MAX_DEPTH, flatten, join
from protocol.adapters.base import AdaptedMessage
from protocol.batch import Limits
from protocol.const import FLAG_SERVER_TIME, Notice, RejectReason
from protocol.errors import DecodeError
from protocol.readings import Reading, Reject
from protocol.validate import apply_time_policy, parse_timestamp, parse_value

#: Strings that report a state, compared in lower case: counted, not stored
#: as numbers (C03 item 2: ``"OFF"`` is not a reading ``0``).
STATE_WORDS: Final = frozenset(
    {
        "on",
        "off",
        "true",
        "false",
        "yes",
        "no",
        "open",
        "opened",
        "closed",
        "online",
        "offline",
        "lock",
        "locked",
        "unlock",
        "unlocked",
        "active",
        "inactive",
        "enabled",
        "disabled",
        "detected",
        "clear",
        "ok",
    }
)

# protocol.models.MetricName and Unit, checked without a pydantic round trip;
# used with fullmatch, since "$" would also match before a trailing newline.
_METRIC_RE = re.compile(r"[^\x00-\x1f]{1,128}")
_UNIT_RE = re.compile(r"[^\x00-\x1f]{0,32}")

#: Maps a reading's metric and last key to its unit ("" for none).
UnitRule = Callable[[str, str], str]


def valid_name(value: Any) -> bool:
    """Tell whether ``value`` may be a metric or a device name."""
    return isinstance(value, str) and _valid_name(value)


def clean_unit(value: Any) -> str:
    """Return ``value`` if it is a valid unit, else ``""``."""
    if isinstance(value, str) and _valid_unit(value):
        return value
    return ""


# Metric names and units repeat in every message of a device: a cache lookup
# is several times cheaper than the regular expression.
@functools.lru_cache(maxsize=4096)
def _valid_name(value: str) -> bool:
    return _METRIC_RE.fullmatch(value) is not None


@functools.lru_cache(maxsize=256)
def _valid_unit(value: str) -> bool:
    return _UNIT_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class FieldRules:
    """How a convention's fields become readings.

    Attributes:
        skip: object keys, in lower case, that never hold readings (times,
            device names, units, descriptions), at any depth.
        text_words: a key equal to one of these words, or ending in ``_``
            and one of them (``system_mode``, ``running_state``), holds text:
            its strings are ignored instead of rejected.
        strict_strings: whether other non-numeric strings are rejects; when
            False (Tasmota, whose payloads mix text and numbers freely) they
            are ignored.
    """

    skip: frozenset[str] = frozenset()
    text_words: frozenset[str] = frozenset()
    strict_strings: bool = True

    def is_text(self, key: str) -> bool:
        """Tell whether the strings of field ``key`` are descriptive text."""
        key = key.lower()
        if key in self.text_words:
            return True
        _, sep, tail = key.rpartition("_")
        return bool(sep) and tail in self.text_words


@dataclass(frozen=True, slots=True)
class Stamp:
    """The time given to the readings of one object.

    Attributes:
        ts_us: epoch µs to store.
        flags: ``FLAG_*`` bits for the readings.
        clock_not_set: the device sent a time before the clock floor.
    """

    ts_us: int
    flags: int
    clock_not_set: bool = False


def decode(payload: bytes, limits: Limits) -> Any:
    """Decode a payload within ``limits``.

    Raises:
        DecodeError: the reason of the first decoding step that failed.
    """
    return codec.read_payload(
        payload,
        max_bytes=limits.max_payload_bytes,
        max_inflated=limits.max_inflated_bytes,
    )


def failed(source: str, exc: DecodeError) -> AdaptedMessage:
    """The message for a payload that could not be decoded."""
    msg = AdaptedMessage(source)
    if exc.reason is RejectReason.EMPTY_PAYLOAD:
        # A zero-length payload clears a retained message (MQTT 3.1.1 section
        # 3.3.1.3): nobody measured anything, and the device did not speak.
        msg.notices[Notice.EMPTY_PAYLOAD] += 1
        msg.alive = False
    else:
        msg.rejects.append(Reject(exc.reason, exc.field, exc.detail, source))
    return msg


class MessageBuilder:
    """Collects one message's readings, rejects and notices.

    Args:
        source: the device name the readings are attributed to.
        received_us: the receive time, epoch µs.
        limits: the receiver's limits (the future clock skew is used here).
        rules: the convention's field rules.
        naive_tz: the zone of times without an offset; None rejects them as
            ``naive_timestamp``.
    """

    def __init__(
        self,
        source: str,
        received_us: int,
        limits: Limits,
        rules: FieldRules,
        naive_tz: tzinfo | None = None,
    ) -> None:
        self.msg = AdaptedMessage(source)
        self.receipt = Stamp(received_us, FLAG_SERVER_TIME)
        self._received_us = received_us
        self._skew_s = limits.max_future_skew_s
        self._rules = rules
        self._naive_tz = naive_tz

    def reject(
        self,
        reason: RejectReason,
        field: str,
        detail: str = "",
        metric: str = "",
        index: int | None = None,
    ) -> None:
        """Record a reject concerning ``field`` of this message."""
        self.msg.rejects.append(
            Reject(reason, field, detail, self.msg.source, metric, index)
        )

    def not_object(self, doc: Any) -> None:
        """Reject the whole payload: valid JSON of the wrong shape (C11)."""
        if isinstance(doc, list):
            detail = "empty list" if not doc else "list without objects"
        else:
            detail = type(doc).__name__ if doc is not None else "null"
        self.reject(RejectReason.PAYLOAD_NOT_OBJECT, "", detail)

    def stamp(
        self,
        obj: Mapping[str, Any],
        keys: tuple[str, ...],
        prefix: str,
        default: Stamp,
        index: int | None = None,
    ) -> Stamp | None:
        """Read the time of an object from the first of ``keys`` it has.

        Args:
            obj: the object.
            keys: time keys in lower case, in order of preference; matched
                without regard to case.
            prefix: the object's field path, for the reject.
            default: the stamp when the object has no time (or ``null``).
            index: the object's index in a list, for the reject.

        Returns:
            The stamp, or None when the time was rejected (recorded here).
        """
        present = {k.lower(): k for k in obj if k.lower() in keys}
        key = next((present[k] for k in keys if k in present), None)
        if key is None or obj[key] is None:
            return default
        field = join(prefix, key)
        try:
            ts_us = parse_timestamp(obj[key], field, self._naive_tz)
            ts_us, flags = apply_time_policy(
                ts_us, self._received_us, self._skew_s, field
            )
        except DecodeError as exc:
            self.reject(exc.reason, exc.field, exc.detail, index=index)
            return None
        return Stamp(ts_us, flags, clock_not_set=bool(flags & FLAG_SERVER_TIME))

    def add_fields(
        self,
        value: Any,
        stamp: Stamp,
        *,
        field_prefix: str = "",
        metric_prefix: str = "",
        unit: str = "",
        units: UnitRule | None = None,
        index: int | None = None,
    ) -> None:
        """Read every leaf of ``value`` as a reading at ``stamp``.

        Args:
            value: an object whose fields are readings, or a single value.
            stamp: the time of the readings.
            field_prefix: the path of ``value`` in the payload, for rejects.
            metric_prefix: put before each leaf's path to name its metric
                (the name of a single value).
            unit: the unit of every reading, when ``units`` is None.
            units: the convention's unit of each reading.
            index: the object's index in a list, for rejects.
        """
        for leaf in flatten(value, self._rules.skip):
            raw = leaf.value
            if raw is None:  # no value: skipped silently (C03 item 3)
                continue
            metric = join(metric_prefix, leaf.path) if metric_prefix else leaf.path
            field = join(field_prefix, leaf.path) if field_prefix else leaf.path
            field = field or metric
            number = self._number(raw, leaf.key, field, metric, index)
            if number is None:
                continue
            if leaf.empty_key or not valid_name(metric):
                detail = f"expected a name of 1 to 128 characters, got {metric[:40]!r}"
                self.reject(RejectReason.BAD_METRIC, field, detail, metric, index)
                continue
            the_unit = units(metric, leaf.key) if units is not None else unit
            self.msg.readings.append(
                Reading(
                    self.msg.source,
                    metric,
                    stamp.ts_us,
                    number,
                    clean_unit(the_unit),
                    stamp.flags,
                )
            )
            if stamp.clock_not_set:
                self.msg.notices[Notice.CLOCK_NOT_SET] += 1

    def _number(
        self, raw: Any, key: str, field: str, metric: str, index: int | None
    ) -> float | None:
        """The value of a leaf, or None after recording why it is not a reading."""
        if isinstance(raw, dict | list):
            detail = f"nested deeper than {MAX_DEPTH} levels"
            self.reject(RejectReason.BAD_VALUE_TYPE, field, detail, metric, index)
            return None
        try:
            return parse_value(raw, field)
        except DecodeError as exc:
            if not self._is_state_or_text(exc, raw, key):
                self.reject(exc.reason, exc.field, exc.detail, metric, index)
            return None

    def _is_state_or_text(self, exc: DecodeError, raw: Any, key: str) -> bool:
        if exc.reason is not RejectReason.NON_NUMERIC_STRING:
            return False
        if isinstance(raw, str) and raw.strip().lower() in STATE_WORDS:
            self.msg.notices[Notice.STATE_VALUE] += 1
            return True
        return not self._rules.strict_strings or self._rules.is_text(key)
