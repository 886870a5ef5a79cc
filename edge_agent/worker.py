"""The worker: the one thread that owns the disk buffer and drives delivery.

Everything that touches SQLite happens here; paho's threads and callers of
``submit`` hand work over through a queue. Each turn of the loop:

1. takes what is queued (a group: up to 1,000 readings or 50 ms of arrivals)
   and writes it in ONE transaction: readings, rejects, the inbox of local
   messages, hub acks and send records;
2. after the commit, and only then, PUBACKs the local messages of the group,
   wakes the ``submit`` callers and forgets the acked batches;
3. when the hub broker is connected: sends overdue batches again, then fills
   the window, live readings first, backlog under ``backlog_rate``;
4. publishes the periodic state.

Live first: batches are formed only when they can be sent, so readings that
waited through an outage are older than ``late_after_s`` by the time the link
is back and are formed into ``late=true`` batches, paced by a token bucket and
kept out of at least one window slot, while fresh readings go out as before.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Literal

from edge_agent.batcher import BUCKET_BURST_S, Batch, TokenBucket
from edge_agent.buffer import AddResult, Buffer
from edge_agent.config import EdgeSettings
from edge_agent.const import (
    BUSY_WAKE_S,
    IDLE_WAKE_S,
    LOCAL_GROUP_MIN,
    WARNING_INTERVAL_S,
    WRITE_GROUP_READINGS,
    WRITE_GROUP_S,
    WRITE_LINGER_S,
)
from edge_agent.errors import BufferWriteError, EdgeError
from edge_agent.inflight import InflightWindow
from edge_agent.local import LocalInput, LocalMessage
from edge_agent.state import state_payload
from edge_agent.uplink import Uplink
from protocol.logs import LogRecord
from protocol.models import BatchAck
from protocol.ratelimit import WarningLimiter
from protocol.readings import Reading
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

#: How long the final offline state may take to be PUBACKed on stop.
_OFFLINE_PUBACK_S = 2.0
#: After a failed buffer write (a full disk), the local messages and hub acks
#: of the group are written again this often until a write succeeds.
_RETRY_WRITE_S = 1.0
#: Hub acks kept for that retry at most; the batches of acks beyond it are
#: sent again after their ack time-out and acked again (the hub dedups).
_RETRY_ACKS_MAX = 1000


@dataclass(frozen=True, slots=True)
class Submission:
    """Readings handed in by code or a JSON-lines input, with their rejects."""

    readings: Sequence[Reading]
    rejects: Counter[str]
    received_us: int
    future: Future[AddResult] = field(default_factory=Future)
    #: Device log records, buffered with the readings in one transaction.
    logs: Sequence[LogRecord] = ()


@dataclass(frozen=True, slots=True)
class _HubAck:
    ack: BatchAck


@dataclass(frozen=True, slots=True)
class _Link:
    connected: bool


@dataclass(frozen=True, slots=True)
class _Puback:
    mid: int


@dataclass(frozen=True, slots=True)
class _Flush:
    grace_s: float
    future: Future[None] = field(default_factory=Future)


@dataclass(frozen=True, slots=True)
class _Stop:
    future: Future[None] = field(default_factory=Future)


_Item = Submission | LocalMessage | _HubAck | _Link | _Puback | _Flush | _Stop


@dataclass(frozen=True, slots=True)
class AgentStats:
    """A snapshot of the agent, for tests, tools and the footprint benchmark.

    Attributes:
        pending: readings buffered and not yet in a batch.
        batches: batches formed and not yet acked by the hub.
        readings: all buffered readings (pending and in batches).
        bytes: bytes accounted against ``buffer_max_bytes``.
        inflight: batches sent and awaiting the hub's ack.
        awaiting_puback: of those, the ones the broker has not PUBACKed.
        sent: batch publishes, first sends and resends.
        resent: batch publishes that were resends.
        acked_batches: batches the hub acked, since the buffer was created.
        acked_readings: readings in them.
        duplicates: local messages skipped as redeliveries of one taken.
        write_failures: buffer writes that failed (a full disk), cumulative.
        retrying: local messages and hub acks held to write again.
        dropped: readings dropped by policy, by reason (cumulative).
        rejected: readings rejected at the edge, by reason (cumulative).
        connected: whether the hub broker session is up.
    """

    pending: int = 0
    batches: int = 0
    readings: int = 0
    bytes: int = 0
    inflight: int = 0
    awaiting_puback: int = 0
    sent: int = 0
    resent: int = 0
    acked_batches: int = 0
    acked_readings: int = 0
    duplicates: int = 0
    write_failures: int = 0
    retrying: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    connected: bool = False


class Worker(threading.Thread):
    """The thread owning the buffer; also the uplink's event handler.

    Args:
        settings: the agent's settings.
    """

    def __init__(self, settings: EdgeSettings) -> None:
        super().__init__(name=f"edge-worker-{settings.gateway_id}", daemon=True)
        self.settings = settings
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._warnings = WarningLimiter(_LOGGER, WARNING_INTERVAL_S)

        # Set by the agent before start().
        self.uplink: Uplink | None = None
        self.local: LocalInput | None = None

        # Start-up: the buffer is opened in this thread, which then owns it.
        self.ready = threading.Event()
        self.failure: EdgeError | None = None
        self._buffer: Buffer | None = None

        # Delivery state.
        s = settings
        self._window = InflightWindow(s.inflight_batches, s.ack_timeout_s)
        capacity = max(float(s.batch_max_readings), s.backlog_rate * BUCKET_BURST_S)
        self._bucket = TokenBucket(s.backlog_rate, capacity)
        self._late_slots = max(1, s.inflight_batches - 1)
        self._unsent: deque[Batch] = deque()
        self._sent_log: list[int] = []
        self._connected = False
        self._next_state = 0.0
        self._sent = 0
        self._duplicates = 0

        # Writes refused by the disk (full): kept to write again, see _write_failed.
        self._retry: list[LocalMessage | _HubAck] = []
        self._retry_at = 0.0
        self._write_failures = 0
        self._failing_since: float | None = None

        # Shutdown.
        self._flush: tuple[float, Future[None]] | None = None
        self._done = False
        self._stats = AgentStats()

    # -- handing work over (any thread) -------------------------------------

    def put(self, item: _Item) -> None:
        """Queue work for the worker."""
        self._queue.put(item)

    def put_local(self, message: LocalMessage) -> None:
        """Queue a local message (the local input's sink)."""
        self._queue.put(message)

    def uplink_connected(self, session_present: bool) -> None:
        """Queue the uplink's connect."""
        self._queue.put(_Link(True))

    def uplink_disconnected(self) -> None:
        """Queue the uplink's disconnect."""
        self._queue.put(_Link(False))

    def uplink_ack(self, ack: BatchAck) -> None:
        """Queue a hub ack."""
        self._queue.put(_HubAck(ack))

    def uplink_puback(self, mid: int) -> None:
        """Queue a broker PUBACK."""
        self._queue.put(_Puback(mid))

    def flush(self, grace_s: float) -> Future[None]:
        """Ask for pending readings to be sent; done when acked or after grace."""
        item = _Flush(grace_s)
        self._queue.put(item)
        return item.future

    def request_stop(self) -> Future[None]:
        """Ask the worker to publish the offline state and end."""
        item = _Stop()
        self._queue.put(item)
        return item.future

    @property
    def stats(self) -> AgentStats:
        """The latest snapshot (updated after every turn of the loop)."""
        return self._stats

    @property
    def _buf(self) -> Buffer:
        if self._buffer is None:
            raise RuntimeError("buffer is not open")
        return self._buffer

    @property
    def _up(self) -> Uplink:
        if self.uplink is None:
            raise RuntimeError("worker has no uplink")
        return self.uplink

    # -- the loop -----------------------------------------------------------

    def run(self) -> None:
        """Open the buffer, then turn the loop until stopped."""
        s = self.settings
        try:
            self._buffer = Buffer(
                s.buffer_path,
                gateway_id=s.gateway_id,
                max_bytes=s.buffer_max_bytes,
                full_policy=s.buffer_full_policy,
                synchronous=s.buffer_synchronous,
                compression=s.compression,
            )
        except EdgeError as exc:
            self.failure = exc
            self.ready.set()
            return
        self._unsent.extend(self._buf.unacked())
        self._snapshot()
        self.ready.set()
        try:
            while not self._done:
                self._turn()
        finally:
            self._buf.close()
            _LOGGER.info("worker stopped gateway=%s", s.gateway_id)

    def _turn(self) -> None:
        try:
            items = self._take(self._wait_s())
            if self._retry and time.monotonic() >= self._retry_at:
                items = [*self._retry, *items]
                self._retry = []
            self._handle(items)
            if self._connected and not self._done:
                self._pump()
            self._check_flush()
            self._snapshot()
        except BufferWriteError as exc:  # forming a batch on a full disk
            self._warnings.warn(
                "write_failed",
                "buffer write failed gateway=%s error=%s",
                self.settings.gateway_id,
                exc,
            )
            time.sleep(BUSY_WAKE_S)
        except Exception:  # one failed turn must not end delivery
            _LOGGER.exception("worker turn failed gateway=%s", self.settings.gateway_id)
            time.sleep(BUSY_WAKE_S)

    def _wait_s(self) -> float:
        wait = IDLE_WAKE_S
        if self._buf.pending or self._unsent or self._flush:
            wait = BUSY_WAKE_S
        if self._retry:
            wait = min(wait, max(0.0, self._retry_at - time.monotonic()))
        due = self._window.next_due_in()
        if due is not None:
            wait = min(wait, due)
        if self._connected:
            wait = min(wait, max(0.0, self._next_state - time.monotonic()))
        return wait

    def _take(self, timeout: float) -> list[_Item]:
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        items = [first]
        count = _readings_in(first)
        start = time.monotonic()
        local = 1 if isinstance(first, LocalMessage) else 0
        lingers = not isinstance(first, Submission)
        while count < WRITE_GROUP_READINGS and time.monotonic() < start + WRITE_GROUP_S:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                wait = start + WRITE_LINGER_S - time.monotonic()
                if not (lingers and local and local < LOCAL_GROUP_MIN and wait > 0):
                    break
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    break
            items.append(item)
            count += _readings_in(item)
            local += isinstance(item, LocalMessage)
            # A submit() caller is waiting: commit without lingering.
            lingers = lingers and not isinstance(item, Submission)
        return items

    # -- writing a group ------------------------------------------------------

    def _handle(self, items: list[_Item]) -> None:
        writes = [
            i for i in items if isinstance(i, Submission | LocalMessage | _HubAck)
        ]
        if writes:
            self._write(writes)
        for item in items:
            if isinstance(item, _Link):
                self._link(item.connected)
            elif isinstance(item, _Puback):
                self._window.puback(item.mid)
            elif isinstance(item, _Flush):
                self._flush = (time.monotonic() + item.grace_s, item.future)
            elif isinstance(item, _Stop):
                self._finish(item.future)

    def _write(self, writes: list[Submission | LocalMessage | _HubAck]) -> None:
        buf = self._buf
        results: list[AddResult | None] = []
        acked: list[int] = []
        dropped: list[int] = []
        try:
            with buf.transaction():
                for item in writes:
                    if isinstance(item, _HubAck):
                        acked.extend(buf.ack(item.ack.seqs).seqs)
                        results.append(None)
                        continue
                    result = self._add(buf, item)
                    results.append(result)
                    if result is not None:
                        dropped.extend(result.dropped_seqs)
                if self._sent_log:
                    buf.mark_sent(self._sent_log, now_us())
        except BufferWriteError as exc:
            self._write_failed(writes, exc)
            return
        self._sent_log.clear()
        self._recovered()
        self._committed(writes, results)
        self._forget(acked, dropped)

    def _add(self, buf: Buffer, item: Submission | LocalMessage) -> AddResult | None:
        if isinstance(item, LocalMessage) and item.qos > 0:
            if item.dup and buf.seen_message(item.mid, item.digest):
                # Taken and committed before a crash, PUBACK lost: skip it.
                self._duplicates += 1
                _LOGGER.debug(
                    "redelivery skipped topic=%s mid=%d", item.topic, item.mid
                )
                return None
            buf.remember_message(item.mid, item.digest)
        buf.count_rejects(item.rejects)
        return buf.add(item.readings, item.received_us, item.logs)

    def _committed(
        self,
        writes: list[Submission | LocalMessage | _HubAck],
        results: list[AddResult | None],
    ) -> None:
        for item, result in zip(writes, results, strict=True):
            if isinstance(item, LocalMessage):
                if self.local is not None:
                    self.local.ack(item.mid, item.qos)
            elif isinstance(item, Submission):
                item.future.set_result(result or AddResult(0))
            else:
                self._log_hub_rejects(item.ack)

    def _write_failed(
        self, writes: list[Submission | LocalMessage | _HubAck], exc: BufferWriteError
    ) -> None:
        # Nothing of the group is kept (a full disk: SQLITE_FULL). Callers of
        # submit() get the error. Local messages stay un-PUBACKed and are
        # written again every _RETRY_WRITE_S until the disk takes them: the
        # broker does not redeliver within a session, and it sends no more
        # than its inflight window un-PUBACKed, which bounds what we hold
        # here; the rest waits in the local broker. Should we crash, the
        # broker redelivers them to the next session. Hub acks are kept too
        # (up to _RETRY_ACKS_MAX), so that their batches are not resent.
        self._write_failures += 1
        local = [i for i in writes if isinstance(i, LocalMessage)]
        acks = [i for i in writes if isinstance(i, _HubAck)]
        kept_acks = sum(isinstance(i, _HubAck) for i in self._retry)
        # Held as redeliveries: should the broker redeliver one meanwhile (a
        # new local session), whichever copy comes second is skipped.
        self._retry.extend(replace(m, dup=True) for m in local)
        self._retry.extend(acks[: max(0, _RETRY_ACKS_MAX - kept_acks)])
        self._retry_at = time.monotonic() + _RETRY_WRITE_S
        first = self._failing_since is None
        if first:
            self._failing_since = time.monotonic()
        # ERROR once per outage (the operator must free space), then DEBUG.
        _LOGGER.log(
            logging.ERROR if first else logging.DEBUG,
            "buffer write failed gateway=%s items=%d local_unacked=%d "
            "retry_items=%d error=%s",
            self.settings.gateway_id,
            len(writes),
            len(local),
            len(self._retry),
            exc,
        )
        self._sent_log.clear()
        for item in writes:
            if isinstance(item, Submission):
                item.future.set_exception(exc)

    def _recovered(self) -> None:
        if self._failing_since is None:
            return
        _LOGGER.info(
            "buffer writable again gateway=%s outage_s=%.1f failed_writes=%d",
            self.settings.gateway_id,
            time.monotonic() - self._failing_since,
            self._write_failures,
        )
        self._failing_since = None

    def _forget(self, acked: list[int], dropped: list[int]) -> None:
        gone = set(acked) | set(dropped)
        if not gone:
            return
        self._window.remove(gone)
        if self._unsent:
            self._unsent = deque(b for b in self._unsent if b.seq not in gone)
        if acked:
            _LOGGER.debug("batches acked seqs=%s", sorted(acked)[:20])

    def _log_hub_rejects(self, ack: BatchAck) -> None:
        for r in ack.rejected:
            self._warnings.warn(
                f"hub_reject:{r.reason}",
                "hub rejected reading seq=%d dev=%s metric=%s field=%s reason=%s",
                r.seq,
                r.dev,
                r.metric,
                r.field,
                r.reason,
            )

    # -- delivery -----------------------------------------------------------

    def _link(self, connected: bool) -> None:
        self._connected = connected
        if not connected:
            return
        self._publish_state("online")
        again = self._window.reconnected()
        for batch in again:
            self._send(batch)
        if again:
            _LOGGER.info(
                "batches resent reason=reconnect count=%d seqs=%s",
                len(again),
                [b.seq for b in again][:20],
            )

    def _pump(self) -> None:
        due = self._window.due()
        for batch in due:
            self._send(batch)
        if due:
            _LOGGER.info(
                "batches resent reason=ack_timeout count=%d seqs=%s",
                len(due),
                [b.seq for b in due][:20],
            )
        while self._window.free > 0:
            fresh = self._next_batch()
            if fresh is None:
                break
            self._send(fresh)
        if time.monotonic() >= self._next_state:
            self._publish_state("online")

    def _send(self, batch: Batch) -> None:
        mid = self._up.publish_batch(batch.payload)
        self._window.sent(batch, mid)
        self._sent_log.append(batch.seq)
        self._sent += 1

    def _next_batch(self) -> Batch | None:
        if self._unsent:
            head = self._unsent[0]
            if not head.late or self._late_allowed(head.readings):
                return self._unsent.popleft()
        buf = self._buf
        if not buf.pending:
            return None
        s = self.settings
        now = now_us()
        cutoff = now - int(s.late_after_s * 1_000_000)
        if self._live_ready(now, cutoff):
            return buf.form_batch(
                late=False,
                cutoff_us=cutoff,
                max_readings=s.batch_max_readings,
                max_bytes=s.batch_max_bytes,
            )
        late = buf.count_pending(
            late=True, cutoff_us=cutoff, limit=s.batch_max_readings
        )
        if not late or not self._late_allowed(late):
            return None
        batch = buf.form_batch(
            late=True,
            cutoff_us=cutoff,
            max_readings=late,
            max_bytes=s.batch_max_bytes,
        )
        if batch is not None and batch.readings < late:
            self._bucket.give(late - batch.readings)  # the byte bound took fewer
        return batch

    def _late_allowed(self, readings: int) -> bool:
        return self._window.late < self._late_slots and self._bucket.take(readings)

    def _live_ready(self, now: int, cutoff: int) -> bool:
        buf, s = self._buf, self.settings
        oldest = buf.oldest_pending(since_us=cutoff)
        if oldest is None:
            return False
        if self._flush is not None:
            return True
        # An idle uplink has nothing to gain from waiting (Nagle's rule): the
        # reading goes now, and while its ack is awaited the next ones batch.
        if s.send_when_idle and not self._window and not self._unsent:
            return True
        # ``oldest > now``: the clock was set back (NTP after a boot without a
        # real-time clock); waiting for the age would wait for the jump.
        if now - oldest >= s.batch_max_age_s * 1_000_000 or oldest > now:
            return True
        full = buf.count_pending(
            late=False, cutoff_us=cutoff, limit=s.batch_max_readings
        )
        return full >= s.batch_max_readings

    def _publish_state(self, status: Literal["online", "offline"]) -> None:
        buf = self._buf
        late_cutoff = now_us() - int(self.settings.late_after_s * 1_000_000)
        payload = state_payload(
            self.settings.gateway_id,
            status,
            buf.depth(late_cutoff),
            buf.dropped,
            buf.rejected,
        )
        self._up.publish_state(payload)
        self._next_state = time.monotonic() + self.settings.state_interval_s

    # -- shutdown ------------------------------------------------------------

    def _check_flush(self) -> None:
        if self._flush is None:
            return
        deadline, future = self._flush
        drained = not self._buf.pending and not self._window and not self._unsent
        if drained or time.monotonic() >= deadline:
            self._flush = None
            future.set_result(None)
            _LOGGER.info(
                "buffer flushed drained=%s pending=%d inflight=%d",
                drained,
                self._buf.pending,
                len(self._window),
            )

    def _finish(self, future: Future[None]) -> None:
        if self._connected:
            buf = self._buf
            info = self._up.publish_state(
                state_payload(
                    self.settings.gateway_id,
                    "offline",
                    buf.depth(),
                    buf.dropped,
                    buf.rejected,
                )
            )
            try:
                info.wait_for_publish(_OFFLINE_PUBACK_S)
            except (RuntimeError, ValueError) as exc:
                _LOGGER.warning("offline state not published error=%s", exc)
        if self._sent_log:
            try:
                self._buf.mark_sent(self._sent_log, now_us())
            except BufferWriteError as exc:  # a full disk must not block the stop
                _LOGGER.warning("send records not written error=%s", exc)
            self._sent_log.clear()
        self._done = True
        future.set_result(None)

    def _snapshot(self) -> None:
        buf = self._buf
        acked_batches, acked_readings = buf.acked
        self._stats = AgentStats(
            pending=buf.pending,
            batches=buf.batches,
            readings=buf.readings_held,
            bytes=buf.size,
            inflight=len(self._window),
            awaiting_puback=self._window.awaiting_puback,
            sent=self._sent,
            resent=self._window.resends,
            acked_batches=acked_batches,
            acked_readings=acked_readings,
            duplicates=self._duplicates,
            write_failures=self._write_failures,
            retrying=len(self._retry),
            dropped=buf.dropped,
            rejected=buf.rejected,
            connected=self._connected,
        )


def _readings_in(item: _Item) -> int:
    if isinstance(item, Submission | LocalMessage):
        return len(item.readings) + len(item.logs)
    return 0
