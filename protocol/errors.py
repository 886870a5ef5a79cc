"""Exceptions of the protocol package.

ProtocolError
 ├── TopicError        a topic or id that breaks the v1 grammar
 └── DecodeError       a payload that cannot be read (carries a RejectReason)
"""

from __future__ import annotations

from protocol.const import RejectReason


class ProtocolError(Exception):
    """Base of every error raised by the protocol package."""


class TopicError(ProtocolError, ValueError):
    """A topic or an id does not follow the v1 topic grammar."""


class DecodeError(ProtocolError):
    """A payload, or one field of it, cannot be decoded.

    Attributes:
        reason: the reject reason, as counted and reported.
        field: the path of the offending field, or "" for the whole payload.
        detail: a short human explanation (an offset, the bad token).
    """

    def __init__(self, reason: RejectReason, field: str = "", detail: str = "") -> None:
        self.reason = reason
        self.field = field
        self.detail = detail
        where = f" at {field}" if field else ""
        super().__init__(
            f"{reason.value}{where}: {detail}" if detail else reason.value + where
        )
