"""The processors' host in the hub: committed readings in, events out.

::

    writer thread                    processor thread
    commit ─> on_committed(result) ─> bounded queue ─> route each series
                                                   ─> processors (caught, counted)
                                                   ─> Store.record_events (new ids)
                                                   ─> publish sf/v1/events/{kind}/{dev}
                                     rollups thread ─> Store.refresh_rollups
                                                      (every rollups_every_s)

The processors run on their own thread, so that ingest never waits for them
unless they fall behind by ``queue_max_readings`` readings or
``queue_max_batches`` writes (then the writer waits, up to ``queue_wait_s``:
back-pressure rather than unbounded memory, and alerts that stay seconds, not
minutes, behind the data; see :mod:`hub.processors.backlog`).
Only ``WriteResult.new`` is queued: a batch sent twice is processed once.
The minutes whose rollups changed are collected and recomputed together every
``rollups_every_s`` (and when the host stops), on a thread of their own: a
recompute reads the whole minute back from the store, and a series written ten
times a second would otherwise have each of its minutes read six hundred times;
and a refresh, which takes a while, never holds up the next write's events.
An event is published only if the store did not hold its id before, so that a
replay after a restart publishes nothing twice.

Nothing a processor does can raise into ingest: each call is caught at this
boundary, logged with its traceback and counted (``errors`` by processor).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, TypedDict

from hub.processors import backlog
from hub.processors.base import Context, Output, Processor, SeriesBatch
from hub.processors.config import ProcessorsConfig
from hub.processors.events import Event
from hub.processors.logs import log_blocks
from hub.processors.router import Router
from protocol.ratelimit import WarningLimiter
from protocol.readings import SeriesBlock
from protocol.validate import now_us

if TYPE_CHECKING:
    from hub.storage.base import DeviceInfo, Store, WriteResult

_LOGGER = logging.getLogger(__name__)

#: What the host publishes with: (topic, payload, qos).
Publish = Callable[[str, bytes, int], None]
#: Events are QoS 1, like everything the hub publishes (DESIGN.md).
EVENT_QOS = 1
#: Store calls of the host are tried this often before the work is dropped.
_STORE_ATTEMPTS = 3
_STORE_RETRY_S = 0.5
_STOP = object()
#: A commit as queued: its new blocks, and the series it created.
_Write = tuple[list[SeriesBlock], set[tuple[str, str]]]


class ProcessorFigures(TypedDict):
    """The host's counters, as the hub's status file shows them."""

    batches: int
    readings: int
    events: dict[str, int]
    events_published: int
    events_known: int
    rollup_rows: int
    errors: dict[str, int]
    dropped_writes: int
    store_errors: int
    queue_depth: int
    queue_readings: int
    seconds: float


class ProcessorHost:
    """Runs the routed processors over each commit's new readings.

    Args:
        config: routes and limits.
        store: where rollups and events go, and rules and devices come from.
        publish: publishes an event (the hub's MQTT client); None: store only.
        router: the routed processors; built from ``config.routes`` when None.
        clock: the present, epoch µs (tests give their own).

    Raises:
        UnknownProcessor: a route names no registered processor.
        ProcessorConfigError: a processor refused its route's options.
    """

    def __init__(
        self,
        config: ProcessorsConfig,
        store: Store,
        publish: Publish | None = None,
        router: Router | None = None,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.config = config
        self.store = store
        self._publish = publish
        self.router = (
            router if router is not None else Router.from_routes(config.routes)
        )
        self._clock = clock
        self._horizon_us = int(config.late_horizon_s * 1e6) or None

        # The queue from the writer and the thread that empties it.
        self._queue: backlog.Backlog[_Write | object] = backlog.Backlog(
            config.queue_max_batches, config.queue_max_readings
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one process() at a time
        self._next_refresh = 0.0
        # Minutes to refresh, and the thread that refreshes them.
        self._dirty: set[tuple[str, str, int]] = set()
        self._dirty_lock = threading.Lock()
        self._rollups_lock = threading.Lock()  # one refresh at a time
        self._rollups_thread: threading.Thread | None = None
        self._rollups_stop = threading.Event()
        self._devices: dict[str, tuple[float, DeviceInfo | None]] = {}
        self._limiter = WarningLimiter()

        # Counters (read by other threads through figures()).
        self._figures_lock = threading.Lock()
        self._batches = 0
        self._readings = 0
        self._events: Counter[str] = Counter()
        self._published = 0
        self._known = 0
        self._rollup_rows = 0
        self._errors: Counter[str] = Counter()
        self._dropped = 0
        self._store_errors = 0
        self._seconds = 0.0

    # ------------------------------------------------------------ writer side

    def on_committed(self, result: WriteResult) -> None:
        """The ingest hook: queue the readings a commit stored for the first time.

        Waits for room up to ``queue_wait_s``; then the write is left
        unprocessed, counted and logged, and ingest goes on.
        """
        if not result.new and not result.logs:
            return
        # Device log records go on as one ``log`` series per device.
        blocks = [*result.new, *log_blocks(result.logs)]
        if self._thread is None:
            self.process(blocks, result.created_series)
            return
        weight = sum(len(b) for b in blocks)
        try:
            self._queue.put(
                (blocks, result.created_series),
                weight,
                timeout=self.config.queue_wait_s,
            )
        except backlog.Full:
            with self._figures_lock:
                self._dropped += 1
            _LOGGER.error(
                "processors behind, write left unprocessed series=%d readings=%d "
                "queue_max=%d queue_max_readings=%d",
                len(result.new),
                result.inserted,
                self.config.queue_max_batches,
                self.config.queue_max_readings,
            )

    # --------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Load the rules, then start the processor thread."""
        if self._thread is not None:
            return
        self._refresh(force=True)
        self._thread = threading.Thread(
            target=self._run, name="streamflow-processors", daemon=True
        )
        self._thread.start()
        if self.config.rollups_every_s > 0:  # 0: process() refreshes each write
            self._rollups_stop.clear()
            self._rollups_thread = threading.Thread(
                target=self._run_rollups, name="streamflow-rollups", daemon=True
            )
            self._rollups_thread.start()
        _LOGGER.info(
            "processors started routes=%s",
            ",".join(r.processor for r in self.config.routes),
        )

    def stop(self, grace_s: float = 10.0) -> bool:
        """Process what is queued (for up to ``grace_s``), then stop the thread.

        Returns:
            Whether everything queued was processed.
        """
        thread = self._thread
        if thread is None:
            return True
        with contextlib.suppress(backlog.Full):  # then the join times out
            self._queue.put(_STOP, 0, timeout=grace_s)
        thread.join(grace_s)
        self._thread = None
        # After the processors: their last minutes are refreshed too.
        self._rollups_stop.set()
        if self._rollups_thread is not None:
            self._rollups_thread.join(grace_s)
            self._rollups_thread = None
        self._flush_rollups()
        done = not thread.is_alive() and self._queue.empty()
        _LOGGER.info("processors stopped drained=%s", done)
        return done

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.config.refresh_s)
            except backlog.Empty:
                self._refresh()
                continue
            if item is _STOP:
                return
            assert isinstance(item, tuple)  # the queue holds writes and _STOP
            blocks, created = item
            try:
                self.process(blocks, created)
            except Exception:  # a bug here must not end processing for good
                _LOGGER.exception("processing failed series=%d", len(blocks))

    # -------------------------------------------------------------- processing

    def process(
        self,
        blocks: Sequence[SeriesBlock],
        created: Collection[tuple[str, str]] = (),
    ) -> list[Event]:
        """Run the processors over committed blocks; store and publish the events.

        Also what the processor thread runs; tests call it directly.

        Args:
            blocks: the readings the commit stored for the first time.
            created: the (device, metric) of the series the commit created
                (``WriteResult.created_series``): no history to warm up from.

        Returns:
            The events stored for the first time (and published).
        """
        with self._lock:
            started = time.perf_counter()
            self._refresh()
            now = self._clock()
            ctx = Context(now_us=now, store=self.store, device=self._device)
            output = Output()
            readings = 0
            for block in blocks:
                if not len(block):
                    continue
                batch = SeriesBatch.from_block(
                    block,
                    now,
                    self._horizon_us,
                    new_series=(block.device, block.metric) in created,
                )
                readings += len(batch)
                for processor in self.router.processors_for(batch.key, batch.kind):
                    output.extend(self._run_one(processor.name, processor, batch, ctx))
            # Events first: they are what an alert waits for.
            new = self._store_events(output.events)
            for event in new:
                self._send(event)
            with self._dirty_lock:
                self._dirty.update(output.rollups)
            if self._thread is None or self._rollups_thread is None:
                # Without the threads (tests, evaluate) the caller expects
                # the rollups to be current when process() returns; and
                # rollups_every_s 0 asks for a refresh after every write.
                self._flush_rollups()
            with self._figures_lock:
                self._batches += 1
                self._readings += readings
                self._events.update(e.kind for e in output.events)
                self._published += len(new)
                self._known += len(output.events) - len(new)
                self._seconds += time.perf_counter() - started
            return new

    def _run_one(
        self, name: str, processor: Processor, batch: SeriesBatch, ctx: Context
    ) -> Output:
        try:
            return processor.process(batch, ctx)
        except Exception:  # one broken processor must not stop the others
            with self._figures_lock:
                self._errors[name] += 1
            _LOGGER.exception(
                "processor failed processor=%s device=%s metric=%s readings=%d",
                name,
                batch.device,
                batch.metric,
                len(batch),
            )
            return Output()

    def _run_rollups(self) -> None:
        while not self._rollups_stop.wait(self.config.rollups_every_s):
            try:
                self._flush_rollups()
            except Exception:  # a bug here must not end the refreshes for good
                _LOGGER.exception("rollup refresh failed")

    def _flush_rollups(self) -> int:
        """Recompute the minutes touched since the last flush."""
        with self._rollups_lock:
            with self._dirty_lock:
                buckets, self._dirty = sorted(self._dirty), set()
            if not buckets:
                return 0
            rows = self._store_rollups(buckets)
        with self._figures_lock:
            self._rollup_rows += rows
        return rows

    def _store_rollups(self, buckets: list[tuple[str, str, int]]) -> int:
        if not buckets:
            return 0
        rows = self._with_retries(
            "refresh_rollups", lambda: self.store.refresh_rollups(buckets)
        )
        return rows if isinstance(rows, int) else 0

    def _store_events(self, events: list[Event]) -> list[Event]:
        if not events:
            return []
        ids = self._with_retries(
            "record_events",
            lambda: self.store.record_events([e.to_record() for e in events]),
        )
        if not isinstance(ids, list):
            return []
        fresh = set(ids)
        # One finding twice in one batch (two routes alike) is sent once.
        out, seen = [], set()
        for e in events:
            if e.id in fresh and e.id not in seen:
                seen.add(e.id)
                out.append(e)
        return out

    def _with_retries(self, what: str, call: Callable[[], object]) -> object | None:
        for attempt in range(1, _STORE_ATTEMPTS + 1):
            try:
                return call()
            except Exception as exc:  # any store failure; the loop goes on
                with self._figures_lock:
                    self._store_errors += 1
                if attempt == _STORE_ATTEMPTS:
                    _LOGGER.error(
                        "processor output lost, store failing call=%s attempts=%d "
                        "error=%s: %s",
                        what,
                        attempt,
                        type(exc).__name__,
                        str(exc)[:200],
                    )
                    return None
                time.sleep(_STORE_RETRY_S * attempt)
        return None  # pragma: no cover - the loop always returns

    def _send(self, event: Event) -> None:
        if self._publish is None:
            return
        try:
            self._publish(event.topic, event.payload(), EVENT_QOS)
        except Exception as exc:  # the event is stored; the monitor can read it
            _LOGGER.warning(
                "event not published topic=%s id=%s error=%s: %s",
                event.topic,
                event.id,
                type(exc).__name__,
                str(exc)[:200],
            )
            return
        _LOGGER.debug(
            "event published topic=%s id=%s state=%s past=%s",
            event.topic,
            event.id,
            event.state,
            event.past,
        )

    # ------------------------------------------------------ rules and devices

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_refresh:
            return
        self._next_refresh = now + self.config.refresh_s
        for processor in self.router.processors:
            try:
                processor.refresh(self.store, self._clock())
            except Exception as exc:  # the old rules stay in force
                with self._figures_lock:
                    self._store_errors += 1
                # Every refresh_s while the store is down: once a minute.
                suppressed = self._limiter.allow(("refresh", processor.name))
                if suppressed is not None:
                    _LOGGER.warning(
                        "processor refresh failed, rules kept processor=%s "
                        "error=%s suppressed=%d: %s",
                        processor.name,
                        type(exc).__name__,
                        suppressed,
                        str(exc)[:200],
                    )

    def _device(self, device: str) -> DeviceInfo | None:
        cached = self._devices.get(device)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.config.device_cache_s:
            return cached[1]
        try:
            info = self.store.get_device(device)
        except Exception as exc:  # tags unknown this time; rules without tags work
            suppressed = self._limiter.allow("device_lookup")
            if suppressed is not None:
                _LOGGER.warning(
                    "device lookup failed device=%s error=%s suppressed=%d",
                    device,
                    type(exc).__name__,
                    suppressed,
                )
            info = None
        self._devices[device] = (now, info)
        return info

    # ------------------------------------------------------------------ figures

    def figures(self) -> ProcessorFigures:
        """The counters since start."""
        with self._figures_lock:
            return ProcessorFigures(
                batches=self._batches,
                readings=self._readings,
                events=dict(self._events),
                events_published=self._published,
                events_known=self._known,
                rollup_rows=self._rollup_rows,
                errors=dict(self._errors),
                dropped_writes=self._dropped,
                store_errors=self._store_errors,
                queue_depth=self._queue.qsize(),
                queue_readings=self._queue.weight(),
                seconds=round(self._seconds, 3),
            )
