"""The live stream's one reader: alert changes read from the store, fanned out.

One :class:`AlertFeed` per app reads :meth:`Store.alert_changes` in a worker
thread and hands each change to every connected client's bounded queue. The
monitor runs in another process and talks to the API only through the store
(DESIGN.md), so the store's history is where changes are learnt of. On
TimescaleDB, a listener thread (:meth:`Store.listen_alert_changes`, LISTEN)
wakes the reader as each change commits; ``api_stream_poll_s`` is then only
the fallback, and the whole interval on a store that cannot notify (SQLite).
One reader keeps it to one query per change or interval however many people
watch.

A client whose queue is full is disconnected instead of buffered without
bound: its browser reconnects with ``Last-Event-ID`` and catches up from the
store's history, which holds every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import orjson
from fastapi import FastAPI

from hub.alerts.notice import Change, alert_json, iso_us
from hub.storage.base import ALERT_OPEN, AlertRecord, AlertTransition, Store

_LOGGER = logging.getLogger(__name__)

#: Changes read from the store in one query.
PAGE = 1000
#: Changes one client may have waiting before it is disconnected.
CLIENT_QUEUE_SIZE = 1000
#: Seconds to wait before reading again after the store failed.
_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One alert change ready to send: its history seq and its JSON data."""

    seq: int
    data: str


def change_name(transition: AlertTransition) -> Change:
    """What happened in a history entry, in the words of a notice."""
    if transition.from_state is None:
        return "opened"
    if transition.to_state == ALERT_OPEN:
        return "reopened"
    if transition.to_state == "acknowledged":
        return "acknowledged"
    return "resolved"


def encode_change(transition: AlertTransition, alert: AlertRecord) -> AlertChange:
    """A change as the stream sends it: ``alert_json`` plus change, actor, at."""
    body = {
        **alert_json(alert),
        "change": change_name(transition),
        "actor": transition.actor,
        "at": iso_us(transition.at_us),
    }
    return AlertChange(transition.seq, orjson.dumps(body).decode())


@dataclass(eq=False)
class Subscription:
    """One connected client: its queue, and whether it was cut off.

    A ``None`` in the queue tells the client's stream to end.
    """

    queue: asyncio.Queue[AlertChange | None] = field(
        default_factory=lambda: asyncio.Queue(CLIENT_QUEUE_SIZE)
    )
    overflowed: bool = False


class AlertFeed:
    """The poller of one app and the clients it fans out to.

    Args:
        store: the store the monitor writes alerts to.
        poll_s: seconds between two reads of the store.
    """

    def __init__(self, store: Store, poll_s: float) -> None:
        self._store = store
        self._poll_s = poll_s

        # The seq of the newest change read; None until the first read found
        # the end of the history (old changes are not sent as live ones).
        self._cursor: int | None = None
        self._subscribers: set[Subscription] = set()

        # Made in start(): asyncio objects belong to the loop that serves.
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        # The store's change listener, where it has one.
        self._listener: threading.Thread | None = None
        self._listener_stop = threading.Event()

    @property
    def subscribers(self) -> int:
        """How many clients are connected."""
        return len(self._subscribers)

    def start(self) -> None:
        """Start the poller on the running loop."""
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(self._stopping), name="alert-feed")
        loop, wake = asyncio.get_running_loop(), self._wake

        def woken() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(wake.set)

        self._listener_stop.clear()
        self._listener = threading.Thread(
            target=self._listen,
            args=(woken,),
            name="alert-feed-listener",
            daemon=True,
        )
        self._listener.start()

    async def stop(self) -> None:
        """Stop the poller and end every client's stream.

        The store call in flight is let finish (it is one query) rather than
        abandoned in its thread, so that the caller may close the store next.
        """
        if self._stopping is not None:
            self._stopping.set()
        if self._wake is not None:
            self._wake.set()
        self._listener_stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join, 5)
            self._listener = None
        for sub in list(self._subscribers):
            self._end(sub)

    def subscribe(self) -> Subscription:
        """Register a client; every change read from now on reaches its queue."""
        sub = Subscription()
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a client (its stream ended)."""
        self._subscribers.discard(sub)

    async def replay(self, after_seq: int) -> AsyncIterator[AlertChange]:
        """The stored changes after ``after_seq``, oldest first, page by page."""
        while True:
            rows = await asyncio.to_thread(self._store.alert_changes, after_seq, PAGE)
            for transition, alert in rows:
                yield encode_change(transition, alert)
                after_seq = transition.seq
            if len(rows) < PAGE:
                return

    def _listen(self, woken: Callable[[], None]) -> None:
        try:
            listening = self._store.listen_alert_changes(woken, self._listener_stop)
        except Exception:  # the poll still reads every change, only later
            _LOGGER.exception("alert change listener failed, polling only")
            return
        if not listening:
            _LOGGER.info("store cannot notify alert changes, polling only")

    async def _run(self, stopping: asyncio.Event) -> None:
        wake = self._wake
        if wake is None:  # pragma: no cover - start() makes it
            return
        while not stopping.is_set():
            # Cleared before the read: a change committed during it wakes
            # the next one at once.
            wake.clear()
            try:
                await self._poll(stopping)
                delay = self._poll_s
            except Exception:  # the store is down: say so, keep polling
                _LOGGER.exception("alert feed cannot read the store")
                delay = max(self._poll_s, _RETRY_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)

    async def _poll(self, stopping: asyncio.Event) -> None:
        if self._cursor is None:
            self._cursor = await asyncio.to_thread(self._history_end)
            _LOGGER.info("alert feed started after_seq=%d", self._cursor)
            return
        # Resuming after the last seq read misses nothing: both stores commit
        # history in seq order (TimescaleDB under one advisory lock).
        while not stopping.is_set():
            rows = await asyncio.to_thread(
                self._store.alert_changes, self._cursor, PAGE
            )
            for transition, alert in rows:
                self._publish(encode_change(transition, alert))
                self._cursor = transition.seq
            if len(rows) < PAGE:
                return

    def _history_end(self) -> int:
        # TODO: one store call for the newest seq would save this walk over
        # the whole history at start-up (once per API process).
        end = 0
        for seq in _pages(self._store, end):
            end = seq
        return end

    def _publish(self, change: AlertChange) -> None:
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(change)
            except asyncio.QueueFull:
                _LOGGER.warning(
                    "alert stream client too slow, disconnected queued=%d seq=%d",
                    sub.queue.qsize(),
                    change.seq,
                )
                sub.overflowed = True
                self._end(sub)

    def _end(self, sub: Subscription) -> None:
        # Drop what is queued: the client resumes from the store's history.
        self._subscribers.discard(sub)
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)


def _pages(store: Store, after_seq: int) -> Iterator[int]:
    while True:
        rows = store.alert_changes(after_seq, PAGE)
        for transition, _alert in rows:
            after_seq = transition.seq
            yield after_seq
        if len(rows) < PAGE:
            return


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the app's alert feed (``app.state.alert_feed``) while it serves."""
    feed: AlertFeed = app.state.alert_feed
    feed.start()
    try:
        yield
    finally:
        await feed.stop()
