"""The ingest pipeline: received messages to committed readings, then acks.

::

    MQTT network thread            writer thread
    receive() ──> bounded queue ──> decode, group ──> Store.write (one transaction)
                                                        │ committed
                                        BatchAck per gateway, then PUBACKs,
                                        then the on_committed hooks

Delivery (README, "Delivery guarantees"): a message is PUBACKed only after the
transaction holding its readings (or its dead letter) committed, and a
gateway's batch is acked only then. While the store fails, nothing is acked:
the group is retried with back-off, the queue fills, and then messages are
shed; the backlog waits on the gateways' disks. Memory stays bounded: the
queue holds at most ``queue_max_messages`` messages of at most
``max_payload_bytes`` each.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from hub import const
from hub._decode import Decoded, MessageDecoder, PendingAdapted
from hub._routing import BadTopic, ReceivedMessage, Route, TopicRouter, decode_topic
from hub.acks import build_acks
from hub.config import HubSettings
from hub.metrics import IngestMetrics
from hub.storage.base import DeadLetter, IngestItem, Store, WriteResult
from protocol import codec, topics
from protocol.adapters.base import Adapter
from protocol.batch import Limits
from protocol.const import RejectReason
from protocol.models import GatewayState
from protocol.ratelimit import WarningLimiter
from protocol.validate import now_us

__all__ = ["IngestPipeline", "ReceivedMessage", "Route", "Transport"]

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")
CommitHook = Callable[[WriteResult], None]


class Transport(Protocol):
    """What the pipeline needs from the MQTT client."""

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish a message (the batch acks)."""
        ...

    def puback(self, mid: int, qos: int) -> None:
        """Acknowledge a received message to the broker."""
        ...


@dataclass(slots=True)
class _Group:
    """Messages written in one transaction, in the order received."""

    messages: list[ReceivedMessage] = field(default_factory=list)
    items: list[IngestItem] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    pending: list[PendingAdapted] = field(default_factory=list)
    states: list[tuple[GatewayState, int]] = field(default_factory=list)
    readings: int = 0
    ignored: int = 0


class _GiveUp(Exception):
    """The stop grace ran out while the store was still failing."""


class IngestPipeline:
    """Bounded queue, writer thread, commit, acks.

    ``receive`` runs on the MQTT network thread; everything else on the
    writer thread, which is the only one that touches the store.
    """

    def __init__(
        self,
        settings: HubSettings,
        store: Store,
        transport: Transport,
        adapters: list[tuple[str, Adapter]],
        metrics: IngestMetrics | None = None,
        shed_after_s: float = const.SHED_AFTER_S,
    ) -> None:
        """Build a pipeline; call :meth:`start` to run its writer.

        Args:
            settings: limits, queue size and write grouping.
            store: where readings are written.
            transport: publishes acks and sends PUBACKs.
            adapters: (subscription filter, adapter) of each sensor convention.
            metrics: counters to update; a new set when None.
            shed_after_s: how long a message waits for room in the full queue.
        """
        self._settings = settings
        self._store = store
        self._transport = transport
        self._router = TopicRouter(adapters)
        self._limits = Limits(
            max_payload_bytes=settings.max_payload_bytes,
            max_inflated_bytes=settings.max_inflated_bytes,
            max_future_skew_s=settings.max_future_skew_s,
        )
        self._limiter = WarningLimiter(interval_s=const.WARNING_INTERVAL_S)
        self._decoder = MessageDecoder(self._limits, self._limiter)
        self.metrics = metrics or IngestMetrics()
        self._shed_after_s = shed_after_s

        # Queue and writer thread.
        self._queue: queue.Queue[ReceivedMessage] = queue.Queue(
            settings.queue_max_messages
        )
        self.metrics.queue_depth = self._queue.qsize
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._stopping = threading.Event()
        self._stop_deadline = 0.0
        self._gave_up = False
        self._outage_since: float | None = None

        #: Called after each commit with what it stored; processors hook in
        #: here and see only ``result.new``, so nothing is processed twice.
        self.on_committed: list[CommitHook] = []

    @property
    def filters(self) -> list[str]:
        """The subscription filters the pipeline reads."""
        return self._router.filters

    # ------------------------------------------------------------ network thread

    def receive(
        self, topic: bytes, payload: bytes, mid: int, qos: int, retain: bool
    ) -> None:
        """Take one message from the broker; never raises.

        Blocks for at most the shed delay when the queue is full.
        """
        try:
            self._receive(topic, payload, mid, qos, retain)
        except Exception:  # never let a bug kill paho's network thread
            _LOGGER.exception("receive failed mid=%d size=%d", mid, len(payload))

    def _receive(
        self, raw_topic: bytes, payload: bytes, mid: int, qos: int, retain: bool
    ) -> None:
        received_us = now_us()
        self.metrics.count_message()
        if self._closing.is_set():
            # Not acked: the broker keeps it in the hub's persistent session
            # and delivers it again when the hub is back.
            return
        try:
            topic = decode_topic(raw_topic)
            route = self._router.route(topic)
        except BadTopic as exc:
            self._drop_bad_topic(raw_topic, len(payload), str(exc), mid, qos)
            return
        size = len(payload)
        if size > self._limits.max_payload_bytes:
            payload = payload[: self._limits.max_payload_bytes]
        msg = ReceivedMessage(
            topic, payload, size, mid, qos, retain, received_us, route
        )
        _LOGGER.debug("received topic=%s qos=%d mid=%d size=%d", topic, qos, mid, size)
        try:
            self._queue.put(msg, timeout=self._shed_after_s)
        except queue.Full:
            self._shed(msg)

    def _drop_bad_topic(
        self, raw_topic: bytes, size: int, detail: str, mid: int, qos: int
    ) -> None:
        # Acked and dropped: redelivering a topic we can never read would only
        # loop. Counted, so that operators see the broken client (case C09).
        self.metrics.count_rejects(Counter({RejectReason.BAD_TOPIC.value: 1}))
        suppressed = self._limiter.allow(("bad_topic", raw_topic[:64]))
        if suppressed is not None:
            _LOGGER.warning(
                "message dropped reason=bad_topic topic=%r size=%d detail=%s "
                "suppressed=%d",
                raw_topic[: const.LOG_PAYLOAD_PREVIEW],
                size,
                detail,
                suppressed,
            )
        self._transport.puback(mid, qos)

    def _shed(self, msg: ReceivedMessage) -> None:
        # The writer has not kept up for the whole shed delay (the store is
        # down or slow). Holding on would stall the network thread (no
        # keepalive, no acks going out), so the message is PUBACKed and
        # dropped. That loses nothing from a gateway: its batch was never
        # hub-acked, so its edge agent keeps it on disk and sends it again.
        # Plain sensors (adapter topics) have no such buffer: counted in
        # `shed` by kind so that the loss is visible.
        label = msg.route.label
        self.metrics.count_shed(label)
        suppressed = self._limiter.allow(("shed", label))
        if suppressed is not None:
            _LOGGER.warning(
                "message shed, queue full kind=%s topic=%s size=%d queue_max=%d "
                "suppressed=%d",
                label,
                msg.topic,
                msg.size,
                self._settings.queue_max_messages,
                suppressed,
            )
        self._transport.puback(msg.mid, msg.qos)

    # ------------------------------------------------------------- writer thread

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name="streamflow-writer", daemon=True
        )
        self._thread.start()

    def stop(self, grace_s: float = const.STOP_GRACE_S) -> bool:
        """Stop taking messages, drain the queue into the store and ack.

        Args:
            grace_s: the longest the drain may take; when the store still
                fails at the end, what is left stays unacked (the broker
                delivers it again to the next session).

        Returns:
            Whether every queued message was committed and acked.
        """
        self._closing.set()
        self._stop_deadline = time.monotonic() + grace_s
        self._stopping.set()
        if self._thread is None:
            return self._queue.empty()
        self._thread.join(grace_s + 1.0)
        drained = (
            not self._thread.is_alive() and not self._gave_up and self._queue.empty()
        )
        _LOGGER.info(
            "writer stopped drained=%s queue_depth=%d", drained, self._queue.qsize()
        )
        return drained

    def _run(self) -> None:
        next_log = time.monotonic() + const.METRICS_LOG_INTERVAL_S
        while True:
            group = self._collect()
            if group is None:
                return
            try:
                self._commit(group)
            except _GiveUp:
                self._gave_up = True
                return
            except Exception:  # a bug here must not stop ingest for good
                _LOGGER.exception("commit failed messages=%d", len(group.messages))
            if time.monotonic() >= next_log:
                next_log = time.monotonic() + const.METRICS_LOG_INTERVAL_S
                self.log_counters()

    def _collect(self) -> _Group | None:
        """Take the next group: up to write_max_readings or write_max_delay_s."""
        stopping = self._stopping.is_set()
        try:
            first = self._queue.get(timeout=0.0 if stopping else 0.2)
        except queue.Empty:
            return None if stopping else _Group()
        group = _Group()
        self._add(group, first)
        deadline = time.monotonic() + self._settings.write_max_delay_s
        while group.readings < self._settings.write_max_readings:
            remaining = deadline - time.monotonic()
            try:
                # After the delay, still take what is already queued: under
                # load the groups grow, and each transaction carries more.
                msg = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            self._add(group, msg)
        return group

    def _add(self, group: _Group, msg: ReceivedMessage) -> None:
        group.messages.append(msg)
        decoded: Decoded = self._decoder.decode(msg)
        if decoded.item is not None:
            group.items.append(decoded.item)
            # Log records weigh on a transaction like readings.
            group.readings += sum(len(b) for b in decoded.item.blocks)
            group.readings += len(decoded.item.logs)
        if decoded.dead_letter is not None:
            group.dead_letters.append(decoded.dead_letter)
        if decoded.state is not None:
            group.states.append((decoded.state, msg.received_us))
        if decoded.pending is not None:
            group.pending.append(decoded.pending)
            group.readings += len(decoded.pending.adapted.readings)
        if decoded.empty:
            group.ignored += 1

    def _commit(self, group: _Group) -> None:
        if not group.messages:
            return
        started = time.monotonic()

        def write() -> tuple[list[IngestItem], list[DeadLetter], WriteResult]:
            items, letters = list(group.items), list(group.dead_letters)
            for pending in group.pending:
                resolved = self._decoder.resolve(pending, self._store)
                if resolved.item is not None:
                    items.append(resolved.item)
                letters.extend(resolved.dead_letters)
            if not items and not letters:
                return items, letters, WriteResult()
            return items, letters, self._store.write(items, letters)

        items, letters, result = self._retry(write)
        for state, received_us in group.states:
            self._retry(functools.partial(self._record_state, state, received_us))
        self._count(time.monotonic() - started, items, letters, result, group)

        # Committed: now, and only now, tell the gateways and the broker.
        self._publish_acks(result, items)
        for msg in group.messages:
            self._transport.puback(msg.mid, msg.qos)
        for hook in self.on_committed:
            try:
                hook(result)
            except Exception:  # one broken processor must not stop ingest
                _LOGGER.exception("on_committed hook failed hook=%r", hook)

    def _record_state(self, state: GatewayState, received_us: int) -> None:
        self._store.record_gateway_state(state, received_us)
        _LOGGER.info(
            "gateway state gateway=%s status=%s agent=%s buffer_readings=%d",
            state.gw,
            state.status,
            state.agent,
            state.buffer.readings,
        )

    def _retry(self, step: Callable[[], T]) -> T:
        """Run a store step until it succeeds.

        Raises:
            _GiveUp: the pipeline is stopping and its grace ran out.
        """
        delay = const.RETRY_MIN_DELAY_S
        # TODO: an error that retrying cannot cure (a row the store refuses
        # although it passed validation) would hold the queue until stopped;
        # split such a group and dead-letter the message that fails, once a
        # test can produce one (validation catches every case known today).
        while True:
            try:
                out = step()
            except Exception as exc:  # any store failure: retry, never drop
                self._on_store_error(exc)
                if self._stopping.is_set():
                    remaining = self._stop_deadline - time.monotonic()
                    if remaining <= 0:
                        _LOGGER.error(
                            "store still failing at stop, leaving messages unacked "
                            "queue_depth=%d",
                            self._queue.qsize(),
                        )
                        raise _GiveUp from exc
                    delay = min(delay, remaining)
                time.sleep(delay)
                delay = min(delay * 2, const.RETRY_MAX_DELAY_S)
                continue
            if self._outage_since is not None:
                _LOGGER.info(
                    "store recovered outage_s=%.1f queue_depth=%d",
                    time.monotonic() - self._outage_since,
                    self._queue.qsize(),
                )
                self._outage_since = None
            return out

    def _on_store_error(self, exc: Exception) -> None:
        self.metrics.count_store_error()
        if self._outage_since is None:
            # Once per outage: the operator must act, the log must not flood.
            self._outage_since = time.monotonic()
            _LOGGER.error(
                "store write failed, retrying without acking store=%s error=%s: %s",
                self._store.kind,
                type(exc).__name__,
                str(exc)[:200],
            )

    def _count(
        self,
        seconds: float,
        items: list[IngestItem],
        letters: list[DeadLetter],
        result: WriteResult,
        group: _Group,
    ) -> None:
        received = sum(len(b) for item in items for b in item.blocks)
        notices: Counter[str] = Counter()
        for item in items:
            notices.update(item.notices)
        self.metrics.record_write(seconds, result, received, notices)
        reasons = Counter(r.reason.value for item in items for r in item.rejects)
        # A dead letter attributed to a device has its reject in that
        # device's item already (see MessageDecoder.resolve): count it once.
        reasons.update(d.reason for d in letters if d.device is None)
        self.metrics.count_rejects(reasons)
        self.metrics.count_dead_letters(len(letters))
        for _ in range(group.ignored):
            self.metrics.count_ignored()

    def _publish_acks(self, result: WriteResult, items: list[IngestItem]) -> None:
        acks = build_acks(result, items)
        for gateway, ack in acks.items():
            payload = codec.dumps(ack.model_dump(mode="json"))
            self._transport.publish(topics.ack(gateway), payload, const.QOS)
            _LOGGER.debug(
                "ack published gateway=%s seqs=%s rejected=%d",
                gateway,
                ack.seqs,
                len(ack.rejected),
            )
        self.metrics.count_acks(len(acks))

    def log_counters(self) -> None:
        """Log the counters in one INFO line."""
        snap = self.metrics.snapshot()
        _LOGGER.info(
            "ingest counters messages=%d readings_new=%d duplicates=%d rejects=%d "
            "dead_letters=%d shed=%d queue_depth=%d acks=%d write_avg_s=%.4f "
            "lag_s=%s",
            snap["messages"],
            snap["readings_new"],
            snap["duplicates"],
            sum(snap["rejects"].values()),
            snap["dead_letters"],
            sum(snap["shed"].values()),
            snap["queue_depth"],
            snap["acks_published"],
            snap["store_write_seconds"]["avg"],
            snap["lag_s"],
        )
