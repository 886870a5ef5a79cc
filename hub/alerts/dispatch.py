"""The dispatcher: notices handed to channels off the monitor's loop, retried.

Each channel gets one worker thread and one bounded queue, so that a slow
SMTP server never delays a webhook and neither ever blocks the monitor.
:meth:`Dispatcher.submit` never blocks: when a channel's queue is full the
oldest notice is dropped (the newest state of the alerts matters most) and
counted. A retryable :class:`DeliveryError` is tried again with exponential
back-off and jitter (tenacity), honouring a ``retry_after_s`` the error
carries (a webhook's ``Retry-After``) up to ``backoff_max_s``; a permanent
one is given up at once. Anything else a channel raises is logged with its
traceback and counted as failed, and the worker goes on with the next notice.

Counters per channel (:meth:`Dispatcher.stats`): ``sent``, ``failed`` (given
up), ``retried`` (attempts after the first), ``dropped`` (queue full, or left
when the stop's grace ran out), ``skipped`` (below the channel's own filter,
:class:`SelectiveChannel`) and ``queued`` (waiting now).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import tenacity

from hub.alerts.notice import Channel, DeliveryError, Notice

_LOGGER = logging.getLogger(__name__)

_COUNTERS = ("sent", "failed", "retried", "dropped", "skipped")


@runtime_checkable
class SelectiveChannel(Protocol):
    """A channel that takes only some notices (a webhook's ``min_severity``)."""

    def accepts(self, notice: Notice) -> bool:
        """Whether the channel wants this notice; called by ``submit``."""
        ...


class _Lane:
    """One channel's queue, worker and counters."""

    def __init__(self, channel: Channel, queue_max: int) -> None:
        self.channel = channel
        self.queue: deque[Notice] = deque()
        self.queue_max = queue_max
        self.cond = threading.Condition()
        self.counts = dict.fromkeys(_COUNTERS, 0)
        self.thread: threading.Thread | None = None

    def count(self, key: str, n: int = 1) -> None:
        with self.cond:
            self.counts[key] += n


class Dispatcher:
    """Delivers notices to channels, each from its own worker thread.

    Args:
        channels: the channels; their names must differ.
        queue_max: notices each channel's queue holds before dropping.
        max_attempts: attempts per notice, the first included.
        backoff_initial_s: wait after the first failed attempt; doubles after
            each further one, plus up to as much again in random jitter.
        backoff_max_s: the longest wait between two attempts.

    Raises:
        ValueError: two channels share a name, or a bound is not positive.
    """

    def __init__(
        self,
        channels: Iterable[Channel],
        queue_max: int = 1000,
        max_attempts: int = 6,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
    ) -> None:
        self._check(queue_max, max_attempts, backoff_initial_s, backoff_max_s)
        self._lanes: dict[str, _Lane] = {}
        for channel in channels:
            if channel.name in self._lanes:
                raise ValueError(f"duplicate channel name {channel.name!r}")
            self._lanes[channel.name] = _Lane(channel, queue_max)
        self.max_attempts = max_attempts
        self.backoff_max_s = backoff_max_s
        # initial * 2**n plus up to initial of jitter, so that workers of many
        # hubs retrying one receiver do not all knock at the same moment.
        self._backoff = tenacity.wait_exponential(
            multiplier=backoff_initial_s, max=backoff_max_s
        ) + tenacity.wait_random(0, backoff_initial_s)

        # Stopping: set once by stop(); workers drain until the deadline.
        self._stop_requested = threading.Event()
        self._deadline: float | None = None

    @staticmethod
    def _check(queue_max: int, attempts: int, initial: float, longest: float) -> None:
        if queue_max < 1:
            raise ValueError(f"queue_max {queue_max!r}: expected at least 1")
        if attempts < 1:
            raise ValueError(f"max_attempts {attempts!r}: expected at least 1")
        if initial <= 0 or longest < initial:
            raise ValueError(
                f"backoff {initial!r}..{longest!r} s: expected 0 < initial <= max"
            )

    @property
    def channel_names(self) -> list[str]:
        """The channels' names, in the order given."""
        return list(self._lanes)

    def start(self) -> None:
        """Start one worker thread per channel (again: no effect)."""
        for name, lane in self._lanes.items():
            if lane.thread is None:
                lane.thread = threading.Thread(
                    target=self._run,
                    args=(lane,),
                    name=f"sf-alerts-{name}",
                    daemon=True,
                )
                lane.thread.start()
        _LOGGER.info("alert dispatcher started channels=%s", ",".join(self._lanes))

    def submit(self, notice: Notice) -> None:
        """Queue a notice for every channel that takes it; never blocks."""
        for name, lane in self._lanes.items():
            if not self._accepts(lane, notice):
                lane.count("skipped")
                continue
            with lane.cond:
                if self._stop_requested.is_set():
                    lane.counts["dropped"] += 1
                    _LOGGER.warning("notice dropped, stopped channel=%s", name)
                    continue
                if len(lane.queue) >= lane.queue_max:
                    lane.queue.popleft()
                    lane.counts["dropped"] += 1
                    _LOGGER.warning(
                        "queue full, oldest notice dropped channel=%s queue_max=%d",
                        name,
                        lane.queue_max,
                    )
                lane.queue.append(notice)
                lane.cond.notify()

    @staticmethod
    def _accepts(lane: _Lane, notice: Notice) -> bool:
        channel = lane.channel
        if not isinstance(channel, SelectiveChannel):
            return True
        try:
            return channel.accepts(notice)
        except Exception:
            # submit runs on the monitor's loop: a bug here must not stop it,
            # and delivering too much beats delivering nothing.
            _LOGGER.exception("channel filter raised channel=%s", channel.name)
            return True

    def stop(self, grace_s: float = 10.0) -> bool:
        """Stop taking notices and deliver what is queued, within ``grace_s``.

        Back-off waits are cut short to fit the grace; what is still queued
        when it runs out is dropped (and counted).

        Returns:
            True if every queue was delivered (or given up) in time.
        """
        self._deadline = time.monotonic() + grace_s
        self._stop_requested.set()
        for lane in self._lanes.values():
            with lane.cond:
                lane.cond.notify_all()
        for lane in self._lanes.values():
            if lane.thread is not None:
                lane.thread.join(max(0.0, self._deadline - time.monotonic()))
        drained = True
        for name, lane in self._lanes.items():
            alive = lane.thread is not None and lane.thread.is_alive()
            if lane.thread is None:
                self._drop_rest(name, lane)
            with lane.cond:
                drained = drained and not alive and not lane.queue
        _LOGGER.info("alert dispatcher stopped drained=%s", drained)
        return drained

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters per channel name (see the module docstring), and ``queued``."""
        out: dict[str, dict[str, int]] = {}
        for name, lane in self._lanes.items():
            with lane.cond:
                out[name] = {**lane.counts, "queued": len(lane.queue)}
        return out

    # The worker.

    def _run(self, lane: _Lane) -> None:
        while (notice := self._take(lane)) is not None:
            self._deliver(lane, notice)

    def _take(self, lane: _Lane) -> Notice | None:
        with lane.cond:
            while not lane.queue and not self._stop_requested.is_set():
                lane.cond.wait()
            if not lane.queue:
                return None
            if not self._past_deadline():
                return lane.queue.popleft()
        self._drop_rest(lane.channel.name, lane)
        return None

    def _drop_rest(self, name: str, lane: _Lane) -> None:
        with lane.cond:
            left = len(lane.queue)
            lane.queue.clear()
            lane.counts["dropped"] += left
        if left:
            _LOGGER.warning(
                "stop grace over, notices dropped channel=%s count=%d", name, left
            )

    def _deliver(self, lane: _Lane, notice: Notice) -> None:
        name = lane.channel.name
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts) | _StopAtDeadline(self),
            wait=self._wait,
            retry=tenacity.retry_if_exception(_retryable),
            sleep=self._sleep,
            before_sleep=lambda state: self._retrying(lane, state),
            reraise=True,
        )
        try:
            retrying(lane.channel.send, notice)
        except _GraceOver:
            lane.count("failed")
            _LOGGER.warning(
                "notice given up, stop grace over channel=%s kind=%s", name, notice.kind
            )
        except DeliveryError as exc:
            lane.count("failed")
            # A refusal, not a bug: the reason without a traceback.
            _LOGGER.error(
                "notice not delivered channel=%s kind=%s change=%s retryable=%s: %s",
                name,
                notice.kind,
                notice.change,
                exc.retryable,
                exc,
            )
        except Exception:
            # A bug in a channel must not end its worker: log it, go on.
            lane.count("failed")
            _LOGGER.exception("channel raised channel=%s kind=%s", name, notice.kind)
        else:
            lane.count("sent")

    def _retrying(self, lane: _Lane, state: tenacity.RetryCallState) -> None:
        lane.count("retried")
        exc = state.outcome.exception() if state.outcome else None
        _LOGGER.warning(
            "delivery failed, retrying channel=%s attempt=%d wait_s=%.1f: %s",
            lane.channel.name,
            state.attempt_number,
            state.upcoming_sleep,
            exc,
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        wait = min(float(self._backoff(state)), self.backoff_max_s)
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after_s", None)
        if isinstance(after, int | float) and after > 0:
            # Capped: the worker waits in place, and every notice behind this
            # one waits too; an hour's Retry-After would stall the channel.
            wait = max(wait, min(float(after), self.backoff_max_s))
        return wait

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        if not self._stop_requested.wait(seconds):
            return
        # stop() came during the wait: finish it if it ends within the grace.
        deadline = self._deadline if self._deadline is not None else end
        if end >= deadline:
            raise _GraceOver
        time.sleep(max(0.0, end - time.monotonic()))

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline


class _GraceOver(Exception):
    """stop() came during a back-off that would end after its grace."""


class _StopAtDeadline(tenacity.stop.stop_base):
    """Give up retrying when the next attempt would come after the grace."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        # tenacity (8.3 on) computes the wait before asking stop.
        deadline = self._dispatcher._deadline
        upcoming = retry_state.upcoming_sleep
        return deadline is not None and time.monotonic() + upcoming >= deadline


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.retryable
