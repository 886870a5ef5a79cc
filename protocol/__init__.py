"""StreamFlow protocol v1: topics, envelopes, codec and validation; no I/O."""

from protocol.batch import DecodedBatch, Limits, decode_batch
from protocol.const import PROTOCOL_VERSION, Notice, RejectReason
from protocol.errors import DecodeError, ProtocolError, TopicError
from protocol.logs import LogRecord, decode_logs
from protocol.models import (
    BatchAck,
    BatchEnvelope,
    DownlinkMessage,
    GatewayState,
    LogEntry,
    SeriesColumns,
)
from protocol.readings import Reading, Reject, SeriesBlock

__all__ = [
    "PROTOCOL_VERSION",
    "BatchAck",
    "BatchEnvelope",
    "DecodeError",
    "DecodedBatch",
    "DownlinkMessage",
    "GatewayState",
    "Limits",
    "LogEntry",
    "LogRecord",
    "Notice",
    "ProtocolError",
    "Reading",
    "Reject",
    "RejectReason",
    "SeriesBlock",
    "SeriesColumns",
    "TopicError",
    "decode_batch",
    "decode_logs",
]
