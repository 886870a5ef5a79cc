"""Device log records: the optional ``logs`` member of a batch envelope.

A gateway may carry its devices' log lines beside their readings::

    {"v": 1, "gw": "gw-7", "seq": 4712, "sent": ..., "series": [],
     "logs": [{"dev": "mote-1", "ts": 1796040000000000, "level": "error",
               "msg": "i2c timeout", "src": "sht31"}]}

The member is additive: a receiver that ignores it loses nothing else, and a
batch without logs is encoded exactly as before. Each record is checked on
its own, like a reading (README, "Readings and what is rejected"): a bad one
becomes a reject naming its field (``logs[3].level``), and the other records
and every reading of the batch are kept.

Rules:

- ``dev``: a device id (``bad_device_id``).
- ``ts``: any timestamp a reading takes (epoch s/ms/µs/ns, ISO 8601 with a
  zone), with the same clock rules: before 2000 it is stamped with the
  receive time and flagged, too far ahead it is ``future_timestamp``.
- ``level``: ``debug``, ``info``, ``warning``, ``error`` or ``critical``, any
  case; common aliases map to them (``warn``, ``err``, ``fatal``, ``crit``,
  ``trace``, ``notice``, syslog's ``emerg`` and ``alert``); anything else is
  ``bad_log_level``.
- ``msg``: a string (``bad_log_message``), cut at :data:`MAX_MESSAGE_CHARS`
  with the notice ``log_truncated``; NUL characters and lone surrogates,
  which neither PostgreSQL text nor UTF-8 can hold, are replaced.
- ``src``: optional, a string of at most :data:`MAX_SOURCE_CHARS`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from protocol.const import FLAG_SERVER_TIME, Notice, RejectReason
from protocol.errors import DecodeError
from protocol.readings import Reject
from protocol.topics import is_valid_id
from protocol.validate import apply_time_policy, parse_timestamp

#: The levels, in rising order of severity.
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
#: Each level's number, as Python's logging module numbers them; the log
#: processor reads levels as these values.
LEVEL_NUMBERS: Final = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "error": 40,
    "critical": 50,
}
#: Spellings devices use for the levels (syslog, log4j, Go, Rust, Zephyr).
LEVEL_ALIASES: Final = {
    "trace": "debug",
    "verbose": "debug",
    "dbg": "debug",
    "notice": "info",
    "information": "info",
    "inf": "info",
    "warn": "warning",
    "wrn": "warning",
    "err": "error",
    "fatal": "critical",
    "crit": "critical",
    "alert": "critical",
    "emerg": "critical",
    "emergency": "critical",
    "panic": "critical",
}
#: Longer messages are cut here (notice ``log_truncated``).
MAX_MESSAGE_CHARS: Final = 1024
#: A source name longer than this is refused.
MAX_SOURCE_CHARS: Final = 128
#: The local topic filter on which devices publish log records to a gateway
#: (the device is the topic's ``{dev}``), beside ``sf/v1/dev/+/up/telemetry``.
LOCAL_LOG_FILTER: Final = "sf/v1/dev/+/up/log"

_LOG_TOPIC_RE = re.compile(r"^sf/v1/dev/([A-Za-z0-9_.-]{1,64})/up/log$")
_SOURCE_RE = re.compile(r"^[^\x00-\x1f]*$")


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One validated log record of a device.

    Attributes:
        device: the device id.
        ts_us: when the device logged it, epoch µs (UTC).
        level: one of :data:`LEVELS`.
        message: the text, at most :data:`MAX_MESSAGE_CHARS` characters.
        source: the device's component that logged it, or "".
        flags: ``FLAG_*`` bits, as for readings (``FLAG_SERVER_TIME``).
    """

    device: str
    ts_us: int
    level: str
    message: str
    source: str = ""
    flags: int = 0

    def to_doc(self) -> dict[str, Any]:
        """The record as the batch envelope carries it (``src``, ``flags`` if set)."""
        doc: dict[str, Any] = {
            "dev": self.device,
            "ts": self.ts_us,
            "level": self.level,
            "msg": self.message,
        }
        if self.source:
            doc["src"] = self.source
        if self.flags:
            doc["flags"] = self.flags
        return doc


@dataclass(slots=True)
class DecodedLogs:
    """The records of a ``logs`` member after validation."""

    records: list[LogRecord]
    rejects: list[Reject]
    notices: Counter[str]


def parse_level(raw: Any, field: str = "level") -> str:
    """Map a raw level (any case, or an alias) to one of :data:`LEVELS`.

    Raises:
        DecodeError: ``bad_log_level`` naming ``field``.
    """
    if not isinstance(raw, str):
        raise DecodeError(RejectReason.BAD_LOG_LEVEL, field, type(raw).__name__)
    name = raw.strip().lower()
    if name in LEVEL_NUMBERS:
        return name
    alias = LEVEL_ALIASES.get(name)
    if alias is None:
        raise DecodeError(RejectReason.BAD_LOG_LEVEL, field, repr(raw[:40]))
    return alias


def clean_message(raw: Any, field: str = "msg") -> tuple[str, bool]:
    """A message fit to store, and whether it was cut.

    Raises:
        DecodeError: ``bad_log_message`` when ``raw`` is not a string.
    """
    if not isinstance(raw, str):
        raise DecodeError(RejectReason.BAD_LOG_MESSAGE, field, type(raw).__name__)
    cut = len(raw) > MAX_MESSAGE_CHARS
    text = raw[:MAX_MESSAGE_CHARS] if cut else raw
    if not text.isascii():
        # A lone surrogate (JSON "\ud800") has no UTF-8 form: the store would
        # refuse the whole write over one character.
        text = text.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in text:  # PostgreSQL text cannot hold NUL
        text = text.replace("\x00", "\ufffd")
    return text, cut


def parse_log(
    raw: Any,
    received_us: int,
    max_future_skew_s: float,
    path: str = "log",
    device: str | None = None,
    stamp_missing: bool = False,
) -> tuple[LogRecord, bool]:
    """Validate one raw log record.

    Args:
        raw: the JSON object.
        received_us: the receive time, epoch µs (for the clock rules).
        max_future_skew_s: a time further ahead than this is refused.
        path: the record's path, prefixed to the field named in a reject.
        device: the device when the topic names it (a device's own log
            topic); the record's ``dev``, if any, must then agree. None: the
            record must name it.
        stamp_missing: a record without ``ts`` gets the receive time and
            ``FLAG_SERVER_TIME`` (a device's local message); otherwise it is
            ``missing_timestamp`` (a batch, whose records the edge stamped).

    Returns:
        The record and whether its message was cut.

    Raises:
        DecodeError: the first bad field, named by its path.
    """
    if not isinstance(raw, dict):
        raise DecodeError(RejectReason.BAD_ENVELOPE, path, type(raw).__name__)
    dev = raw.get("dev", device)
    if not isinstance(dev, str) or not is_valid_id(dev):
        raise DecodeError(RejectReason.BAD_DEVICE_ID, f"{path}.dev", repr(dev)[:80])
    if device is not None and dev != device:
        detail = f"{dev!r} on {device!r}'s topic"
        raise DecodeError(RejectReason.BAD_DEVICE_ID, f"{path}.dev", detail)
    level = parse_level(raw.get("level"), f"{path}.level")
    message, cut = clean_message(raw.get("msg"), f"{path}.msg")
    source = raw.get("src", "")
    if source is None:
        source = ""
    if (
        not isinstance(source, str)
        or len(source) > MAX_SOURCE_CHARS
        or not _SOURCE_RE.match(source)
    ):
        raise DecodeError(RejectReason.BAD_ENVELOPE, f"{path}.src", repr(source)[:80])
    if raw.get("ts") is None:
        if not stamp_missing:
            raise DecodeError(RejectReason.MISSING_TIMESTAMP, f"{path}.ts", "no ts")
        # A device without a clock: stamped on receipt, like its readings.
        ts_us, flags = received_us, FLAG_SERVER_TIME
    else:
        ts_us = parse_timestamp(raw["ts"], f"{path}.ts")
        ts_us, flags = apply_time_policy(
            ts_us, received_us, max_future_skew_s, f"{path}.ts"
        )
    edge = raw.get("flags", 0)
    if type(edge) is int:
        flags |= edge & FLAG_SERVER_TIME
    return LogRecord(dev, ts_us, level, message, source, flags), cut


def decode_logs(
    raw: Any,
    received_us: int,
    max_future_skew_s: float,
    base_flags: int = 0,
    path: str = "logs",
    device: str | None = None,
    stamp_missing: bool = False,
) -> DecodedLogs:
    """Validate a ``logs`` member record by record.

    Args:
        raw: the member: a list of record objects.
        received_us: the receive time, epoch µs.
        max_future_skew_s: see :func:`parse_log`.
        base_flags: flags set on every record (``FLAG_LATE`` of a late batch).
        path: the member's path in rejects.
        device: see :func:`parse_log`.
        stamp_missing: see :func:`parse_log`.

    Returns:
        The good records, a reject per bad one (its ``index`` the record's),
        and the notices (``clock_not_set``, ``log_truncated``).
    """
    out = DecodedLogs([], [], Counter())
    if not isinstance(raw, list):
        out.rejects.append(Reject(RejectReason.BAD_ENVELOPE, path, type(raw).__name__))
        return out
    for i, item in enumerate(raw):
        try:
            record, cut = parse_log(
                item,
                received_us,
                max_future_skew_s,
                f"{path}[{i}]",
                device,
                stamp_missing,
            )
        except DecodeError as exc:
            dev = item.get("dev") if isinstance(item, dict) else None
            known = dev if isinstance(dev, str) and is_valid_id(dev) else ""
            out.rejects.append(
                Reject(exc.reason, exc.field, exc.detail, known or device or "", "", i)
            )
            continue
        if cut:
            out.notices[Notice.LOG_TRUNCATED] += 1
        if _clock_not_set(item, record):
            out.notices[Notice.CLOCK_NOT_SET] += 1
        if base_flags:
            record = LogRecord(
                record.device,
                record.ts_us,
                record.level,
                record.message,
                record.source,
                record.flags | base_flags,
            )
        out.records.append(record)
    return out


def _clock_not_set(item: dict[str, Any], record: LogRecord) -> bool:
    # Stamped here because its time was before 2000, not by the edge, nor
    # because it had none.
    edge = item.get("flags", 0)
    by_edge = type(edge) is int and edge & FLAG_SERVER_TIME
    return bool(
        record.flags & FLAG_SERVER_TIME and item.get("ts") is not None and not by_edge
    )


def device_of_log_topic(topic: str) -> str | None:
    """The ``{dev}`` of ``sf/v1/dev/{dev}/up/log``, or None for another topic."""
    found = _LOG_TOPIC_RE.match(topic)
    return found.group(1) if found else None


def log_topic(device: str) -> str:
    """The local topic a device publishes its log records on."""
    if not is_valid_id(device):
        raise ValueError(f"invalid device id {device!r}")
    return f"sf/v1/dev/{device}/up/log"
