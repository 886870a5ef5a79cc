"""StreamFlow protocol v1: topics, envelopes, codec and validation; no I/O."""

from protocol.batch import DecodedBatch, Limits, decode_batch
from protocol.const import PROTOCOL_VERSION, Notice, RejectReason
from protocol.errors import DecodeError, ProtocolError, TopicError
from protocol.models import (
    BatchAck,
    BatchEnvelope,
    DownlinkMessage,
    GatewayState,
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
    "Notice",
    "ProtocolError",
    "Reading",
    "Reject",
    "RejectReason",
    "SeriesBlock",
    "SeriesColumns",
    "TopicError",
    "decode_batch",
]
