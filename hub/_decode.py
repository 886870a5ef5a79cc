"""From a received message to what the store writes: items, dead letters, states.

Bad input from devices never raises out of here: a message that fails whole
becomes a dead letter with its reason, a bad reading becomes a reject, and
both are logged at WARNING, rate-limited per (topic, reason), with the topic,
the size and the detail but never the payload itself (case C09).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field

from pydantic import ValidationError

from hub import const
from hub._routing import ReceivedMessage, RouteKind
from hub.storage.base import DeadLetter, IngestItem, Store
from protocol import codec, topics
from protocol.adapters.base import AdaptedMessage
from protocol.batch import Limits, decode_batch
from protocol.const import RejectReason
from protocol.errors import DecodeError
from protocol.models import GatewayState
from protocol.ratelimit import WarningLimiter
from protocol.readings import Reject, group_readings

_LOGGER = logging.getLogger(__name__)

#: Fields named in one warning line about rejected readings, at most.
_FIELDS_LOGGED = 5


@dataclass(slots=True)
class PendingAdapted:
    """An adapter's readings whose device is resolved at commit time.

    Resolution asks the store (``device_for_topic``), so it happens inside the
    retried store step rather than while decoding.
    """

    message: ReceivedMessage
    adapted: AdaptedMessage


@dataclass(slots=True)
class Decoded:
    """What one message contributes; at most one of the fields is set."""

    item: IngestItem | None = None
    dead_letter: DeadLetter | None = None
    state: GatewayState | None = None
    pending: PendingAdapted | None = None

    @property
    def empty(self) -> bool:
        """Whether the message contributes nothing (it is acked and skipped)."""
        return (
            self.item is None
            and self.dead_letter is None
            and self.state is None
            and self.pending is None
        )


@dataclass(slots=True)
class Resolved:
    """An adapter message after device resolution."""

    item: IngestItem | None = None
    dead_letters: list[DeadLetter] = field(default_factory=list)


class MessageDecoder:
    """Decodes and validates received messages (the writer thread's first step)."""

    def __init__(self, limits: Limits, limiter: WarningLimiter | None = None) -> None:
        self._limits = limits
        self._limiter = limiter or WarningLimiter(interval_s=const.WARNING_INTERVAL_S)

    def decode(self, msg: ReceivedMessage) -> Decoded:
        """Decode one message; never raises for bad input."""
        if msg.size > self._limits.max_payload_bytes:
            # Refused before any parsing (case C17); the queue holds only the
            # first max_payload_bytes of it, kept as the dead letter.
            detail = f"{msg.size} bytes > {self._limits.max_payload_bytes}"
            exc = DecodeError(RejectReason.PAYLOAD_TOO_LARGE, "", detail)
            return Decoded(dead_letter=self.dead_letter(msg, exc))
        kind = msg.route.kind
        if kind is RouteKind.BATCH:
            return self._decode_batch(msg)
        if kind is RouteKind.STATE:
            return self._decode_state(msg)
        if kind is RouteKind.ADAPTER:
            return self._decode_adapted(msg)
        return Decoded()

    def _decode_batch(self, msg: ReceivedMessage) -> Decoded:
        gateway = msg.route.gateway
        try:
            batch = decode_batch(msg.payload, msg.received_us, self._limits, gateway)
        except DecodeError as exc:
            # Without a readable header the batch cannot be acked: the edge
            # agent keeps it and the dead letter shows why.
            return Decoded(dead_letter=self.dead_letter(msg, exc))
        devices = {b.device for b in batch.blocks}
        devices |= {r.device for r in batch.rejects if topics.is_valid_id(r.device)}
        devices |= {r.device for r in batch.logs}
        item = IngestItem(
            gateway=batch.gw,
            seq=batch.seq,
            blocks=batch.blocks,
            received_us=msg.received_us,
            rejects=batch.rejects,
            notices=batch.notices,
            devices=devices,
            logs=batch.logs,
        )
        self.warn_rejects(msg, item.rejects)
        return Decoded(item=item)

    def _decode_state(self, msg: ReceivedMessage) -> Decoded:
        if not msg.payload:
            # A zero-length retained message clears the retained state; it
            # says nothing about the gateway (case C11).
            return Decoded()
        try:
            doc = codec.read_payload(
                msg.payload,
                max_bytes=self._limits.max_payload_bytes,
                max_inflated=self._limits.max_inflated_bytes,
            )
            state = GatewayState.model_validate(doc)
        except DecodeError as exc:
            return Decoded(dead_letter=self.dead_letter(msg, exc))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            bad = DecodeError(RejectReason.BAD_ENVELOPE, loc, err["msg"])
            return Decoded(dead_letter=self.dead_letter(msg, bad))
        if state.gw != msg.route.gateway:
            detail = f"{state.gw!r} on {msg.route.gateway!r}'s topic"
            bad = DecodeError(RejectReason.GATEWAY_MISMATCH, "gw", detail)
            return Decoded(dead_letter=self.dead_letter(msg, bad))
        return Decoded(state=state)

    def _decode_adapted(self, msg: ReceivedMessage) -> Decoded:
        adapter = msg.route.adapter
        if adapter is None:  # RouteKind.ADAPTER always carries one
            return Decoded()
        try:
            adapted = adapter.adapt(
                msg.topic, msg.payload, msg.received_us, self._limits
            )
        except Exception:  # an adapter bug must not stop ingest
            _LOGGER.exception(
                "adapter failed adapter=%s topic=%s size=%d",
                adapter.name,
                msg.topic,
                msg.size,
            )
            bad = DecodeError(
                RejectReason.BAD_ENVELOPE, "", f"adapter {adapter.name} failed"
            )
            return Decoded(dead_letter=self.dead_letter(msg, bad))
        if adapted is None:
            return Decoded()
        return Decoded(pending=PendingAdapted(msg, adapted))

    def resolve(self, pending: PendingAdapted, store: Store) -> Resolved:
        """Attribute an adapter message to its device.

        The device registered with the exact topic wins (case C10: topics are
        compared as exact UTF-8, spaces and all); otherwise the source name
        the adapter found, when it is a valid id.

        Raises:
            Exception: whatever the store raises; the caller retries.
        """
        msg, adapted = pending.message, pending.adapted
        device = store.device_for_topic(msg.topic)
        if device is None and topics.is_valid_id(adapted.source):
            device = adapted.source
        if device is None:
            detail = (
                f"source {adapted.source[:64]!r} is not a valid id and no device "
                "is registered with this topic"
            )
            bad = DecodeError(RejectReason.BAD_DEVICE_ID, "", detail)
            return Resolved(dead_letters=[self.dead_letter(msg, bad)])

        rejects = [dataclasses.replace(r, device=device) for r in adapted.rejects]
        out = Resolved()
        if not adapted.readings:
            # A reject of the whole payload (no field named) also becomes a
            # dead letter attributed to the device, so that its bytes are
            # kept; the reject stays in the item for the device's accounting
            # (case C09: operators see the failing firmware).
            for r in rejects:
                if not r.field:
                    exc = DecodeError(r.reason, "", r.detail)
                    out.dead_letters.append(self.dead_letter(msg, exc, device))
        blocks = group_readings(adapted.readings)
        for block in blocks:
            block.device = device
        out.item = IngestItem(
            gateway=None,
            seq=None,
            blocks=blocks,
            received_us=msg.received_us,
            rejects=rejects,
            notices=Counter(adapted.notices),
            devices={device} if adapted.alive else set(),
        )
        self.warn_rejects(msg, [r for r in rejects if r.field])
        return out

    def dead_letter(
        self, msg: ReceivedMessage, exc: DecodeError, device: str | None = None
    ) -> DeadLetter:
        """Turn a failed message into a dead letter, logging it (rate-limited)."""
        detail = f"{exc.field}: {exc.detail}" if exc.field else exc.detail
        suppressed = self._limiter.allow((msg.topic, exc.reason))
        if suppressed is not None:
            _LOGGER.warning(
                "message rejected topic=%s size=%d reason=%s detail=%s suppressed=%d",
                msg.topic,
                msg.size,
                exc.reason.value,
                detail,
                suppressed,
            )
        return DeadLetter(
            topic=msg.topic,
            payload=msg.payload,
            reason=exc.reason.value,
            detail=detail,
            received_us=msg.received_us,
            gateway=msg.route.gateway,
            device=device,
        )

    def warn_rejects(self, msg: ReceivedMessage, rejects: list[Reject]) -> None:
        """Log the rejected readings of one message, one line per reason."""
        by_reason: dict[RejectReason, list[str]] = {}
        for r in rejects:
            by_reason.setdefault(r.reason, []).append(r.field)
        for reason, fields in by_reason.items():
            suppressed = self._limiter.allow((msg.topic, reason))
            if suppressed is None:
                continue
            _LOGGER.warning(
                "readings rejected topic=%s reason=%s count=%d fields=%s suppressed=%d",
                msg.topic,
                reason.value,
                len(fields),
                ",".join(fields[:_FIELDS_LOGGED]),
                suppressed,
            )
