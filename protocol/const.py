"""Constants of protocol v1: versions, limits, reject reasons and reading flags."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

PROTOCOL_VERSION: Final = 1
TOPIC_ROOT: Final = "sf/v1"

#: Device and gateway ids (README, "Protocol v1").
ID_PATTERN: Final = r"[A-Za-z0-9_.-]{1,64}"

#: Payloads larger than this are refused before any parsing (case C17).
DEFAULT_MAX_PAYLOAD_BYTES: Final = 256 * 1024
#: A compressed body may not inflate past this many bytes.
DEFAULT_MAX_INFLATED_BYTES: Final = 4 * 1024 * 1024
#: Readings stamped further ahead of the receiver's clock are rejected.
DEFAULT_MAX_FUTURE_SKEW_S: Final = 300.0
#: Readings stamped before this instant come from a clock that was never set.
#: 2000-01-01T00:00:00Z in epoch microseconds.
CLOCK_FLOOR_US: Final = 946_684_800_000_000
#: The largest batch seq: the stores keep (gateway, seq) keys as 64-bit integers.
MAX_SEQ: Final = 2**63 - 1

GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"

# Reading flags, stored with every row as a small bit set.
FLAG_SERVER_TIME: Final = 1  # the device clock was unset; stamped on receipt
FLAG_LATE: Final = 2  # sent from an edge backlog, not live


class RejectReason(StrEnum):
    """Why a payload, a field or a reading was not stored.

    The value is the reason's name in logs, acks, metrics and the dead letters.
    """

    PAYLOAD_TOO_LARGE = "payload_too_large"
    EMPTY_PAYLOAD = "empty_payload"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    BAD_COMPRESSION = "bad_compression"
    UNSUPPORTED_COMPRESSION = "unsupported_compression"
    PAYLOAD_NOT_OBJECT = "payload_not_object"
    BAD_ENVELOPE = "bad_envelope"
    UNSUPPORTED_VERSION = "unsupported_version"
    GATEWAY_MISMATCH = "gateway_mismatch"
    BAD_TOPIC = "bad_topic"
    BAD_DEVICE_ID = "bad_device_id"
    BAD_METRIC = "bad_metric"
    LENGTH_MISMATCH = "length_mismatch"
    NON_FINITE_VALUE = "non_finite_value"
    NON_NUMERIC_STRING = "non_numeric_string"
    BAD_VALUE_TYPE = "bad_value_type"
    BAD_TIMESTAMP = "bad_timestamp"
    NAIVE_TIMESTAMP = "naive_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    MISSING_TIMESTAMP = "missing_timestamp"
    # Device log records (protocol/logs.py).
    BAD_LOG_LEVEL = "bad_log_level"
    BAD_LOG_MESSAGE = "bad_log_message"


class Notice(StrEnum):
    """Things counted that are not rejects: the reading was kept or never existed."""

    EMPTY_PAYLOAD = "empty_payload"
    CLOCK_NOT_SET = "clock_not_set"
    DUPLICATE_READING = "duplicate_reading"
    DUPLICATE_BATCH = "duplicate_batch"
    STATE_VALUE = "state_value"
    LOG_TRUNCATED = "log_truncated"
