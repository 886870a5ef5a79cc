"""The edge agent: local inputs, the disk buffer, the uplink and the relay.

``EdgeAgent(settings).start()`` opens the buffer in the worker thread, then
connects to the hub broker and, if configured, the local broker. Readings
enter through the local broker, :meth:`EdgeAgent.submit` (simulators), or
:mod:`edge_agent.stream_input` (JSON lines); each is on disk before anything
else happens to it. ``stop()`` stops the local input, flushes what is pending
(forms batches and waits up to ``stop_grace_s`` for acks), publishes the
offline state and disconnects cleanly. Nothing is lost on stop or on a kill:
what was not acked stays in the buffer and goes out after the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from types import FrameType, TracebackType

from edge_agent.buffer import AddResult
from edge_agent.config import EdgeSettings
from edge_agent.errors import AgentStoppedError
from edge_agent.local import AdapterLookup, LocalInput
from edge_agent.lock import DirLock
from edge_agent.relay import Relay
from edge_agent.state import will_payload
from edge_agent.uplink import Uplink
from edge_agent.validation import screen
from edge_agent.worker import AgentStats, Submission, Worker
from protocol.adapters import Adapter, get_adapter
from protocol.logs import LogRecord
from protocol.readings import Reading
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

#: How long start() waits for the buffer to open.
_OPEN_TIMEOUT_S = 30.0
#: How long stop() waits for the worker's last steps besides the grace.
_STOP_TIMEOUT_S = 10.0


class EdgeAgent:
    """The gateway program, runnable in-process or from ``streamflow-edge``.

    Args:
        settings: the agent's settings.
        adapters: finds a sensor adapter by name; default
            :func:`protocol.adapters.get_adapter`.
    """

    def __init__(
        self, settings: EdgeSettings, *, adapters: AdapterLookup | None = None
    ) -> None:
        self.settings = settings
        self._adapters = adapters or _default_adapter
        self._worker: Worker | None = None
        self._uplink: Uplink | None = None
        self._local: LocalInput | None = None
        self.relay: Relay | None = None
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        # One process at a time on a buffer: two would reuse seqs.
        self._dir_lock = DirLock(settings.data_dir)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Lock the data dir, open the buffer, then connect in the background.

        Raises:
            RuntimeError: the agent is already started.
            DataDirInUse: another process (or agent) holds the data dir.
            BufferOpenError: the buffer cannot be opened.
            ValueError: an input names an adapter that does not exist.
            OSError: a TLS file cannot be read.
            ssl.SSLError: a TLS file is not valid PEM.
        """
        with self._lock:
            if self._worker is not None:
                raise RuntimeError("agent already started")
            s = self.settings
            self._dir_lock.acquire()
            try:
                worker, uplink, local = self._open()
            except BaseException:
                self._dir_lock.release()
                raise
            self._worker, self._uplink, self._local = worker, uplink, local
            self._stop_event.clear()
        uplink.start()
        if local is not None:
            local.start()
        _LOGGER.info(
            "agent started gateway=%s hub=%s local=%s data_dir=%s",
            s.gateway_id,
            s.hub,
            s.local or "none",
            s.data_dir,
        )

    def _open(self) -> tuple[Worker, Uplink, LocalInput | None]:
        s = self.settings
        worker = Worker(s)
        local = None
        if s.local_url is not None:
            local = LocalInput(s, worker.put_local, self._adapters)
        self.relay = Relay(
            s.gateway_id, s.downlink_topic, local.publish if local else None
        )
        uplink = Uplink(s, worker, self.relay, will_payload(s.gateway_id))
        worker.uplink, worker.local = uplink, local
        worker.start()
        worker.ready.wait(_OPEN_TIMEOUT_S)
        if worker.failure is not None:
            raise worker.failure
        return worker, uplink, local

    def stop(self) -> None:
        """Stop input, flush, publish the offline state, disconnect, unlock."""
        with self._lock:
            worker, uplink, local = self._worker, self._uplink, self._local
            self._worker = None
        if worker is None or uplink is None:
            return
        grace = self.settings.stop_grace_s
        if local is not None:
            local.stop()
        try:
            worker.flush(grace).result(grace + _STOP_TIMEOUT_S)
            worker.request_stop().result(_STOP_TIMEOUT_S)
        except FutureTimeout:
            _LOGGER.warning("worker did not stop in time gateway=%s", worker.name)
        uplink.stop()
        worker.join(_STOP_TIMEOUT_S)
        if worker.is_alive():
            # Its buffer may still be written: keep the data dir locked.
            _LOGGER.warning("data dir stays locked gateway=%s", worker.name)
        else:
            self._dir_lock.release()
        self._stop_event.set()
        _LOGGER.info("agent stopped gateway=%s", self.settings.gateway_id)

    def __enter__(self) -> EdgeAgent:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def run_forever(self, until: Callable[[], bool] | None = None) -> None:
        """Start (unless started), run until SIGINT or SIGTERM, then stop.

        Must be called from the main thread (signal handlers).

        Args:
            until: also stop once this returns true (checked every 0.2 s).

        Raises:
            BufferOpenError: the buffer cannot be opened.
        """
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            if not self.running:
                self.start()
            while not self._stop_event.wait(0.2):
                if until is not None and until():
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def request_stop(self) -> None:
        """Make :meth:`run_forever` return (safe from any thread)."""
        self._stop_event.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        _LOGGER.info("signal received signal=%s", signal.Signals(signum).name)
        self._stop_event.set()

    # -- input -----------------------------------------------------------------

    def submit(self, readings: Iterable[Reading]) -> None:
        """Buffer readings; returns once they are committed to disk.

        Readings that fail the checks of :mod:`edge_agent.validation` are
        counted as rejects (reported in the state) and left out.

        Raises:
            AgentStoppedError: the agent is not running.
            BufferWriteError: the buffer could not commit them.
        """
        good, rejects = screen(readings, now_us(), self.settings.max_future_skew_s)
        self.submit_checked(good, rejects)

    def submit_checked(
        self,
        readings: list[Reading],
        rejects: Counter[str] | None = None,
        logs: Sequence[LogRecord] = (),
    ) -> AddResult:
        """Buffer readings already checked, with rejects to count; wait for it.

        Args:
            readings: checked readings.
            rejects: rejects to count, by reason.
            logs: device log records checked by :mod:`protocol.logs`,
                buffered in the same transaction.

        Returns:
            How many were kept, refused or dropped by the buffer's policy.

        Raises:
            AgentStoppedError: the agent is not running.
            BufferWriteError: the buffer could not commit them.
        """
        worker = self._worker
        if worker is None or not worker.is_alive():
            raise AgentStoppedError("agent is not running")
        item = Submission(readings, rejects or Counter(), now_us(), logs=logs)
        worker.put(item)
        while True:
            try:
                return item.future.result(timeout=1.0)
            except FutureTimeout:
                if not worker.is_alive():
                    raise AgentStoppedError("agent stopped before the write") from None

    def submit_logs(
        self, logs: Sequence[LogRecord], rejects: Counter[str] | None = None
    ) -> AddResult:
        """Buffer device log records already checked; returns once on disk.

        Raises:
            AgentStoppedError: the agent is not running.
            BufferWriteError: the buffer could not commit them.
        """
        return self.submit_checked([], rejects, logs)

    # -- what tests and tools look at ---------------------------------------

    @property
    def stats(self) -> AgentStats:
        """The latest snapshot of buffer, window and counters."""
        worker = self._worker
        return worker.stats if worker is not None else AgentStats()

    @property
    def running(self) -> bool:
        """Whether the agent is started and not stopped."""
        return self._worker is not None

    @property
    def uplink(self) -> Uplink | None:
        """The hub broker session (None before start)."""
        return self._uplink

    @property
    def local(self) -> LocalInput | None:
        """The local broker session, if configured (None before start)."""
        return self._local


def _default_adapter(name: str) -> Adapter:
    return get_adapter(name)
