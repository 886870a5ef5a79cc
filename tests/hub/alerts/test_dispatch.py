"""The dispatcher: bounded queues, retries, draining and faulty channels."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import pytest

from hub.alerts.dispatch import Dispatcher
from hub.alerts.notice import DeliveryError, Notice
from hub.alerts.webhook import HttpDeliveryError
from tests.hub.alerts._notices import T0_US, alert_notice
from tests.services import wait_for

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}


class Recorder:
    """A channel that records notices, raising the scripted errors first."""

    def __init__(self, name: str = "rec", fail: tuple[BaseException, ...] = ()):
        self.name = name
        self.sent: list[Notice] = []
        self.attempts: list[float] = []
        self.gate = threading.Event()
        self.gate.set()
        self._fail = deque(fail)

    def send(self, notice):
        self.attempts.append(time.monotonic())
        assert self.gate.wait(10), "gate never opened"
        if self._fail:
            raise self._fail.popleft()
        self.sent.append(notice)


class AlwaysFails(Recorder):
    def send(self, notice):
        self.attempts.append(time.monotonic())
        raise DeliveryError("peer down", retryable=True)


@pytest.fixture
def dispatcher():
    """Make dispatchers; stop any still running at the end."""
    made: list[Dispatcher] = []

    def make(*channels, **kwargs) -> Dispatcher:
        d = Dispatcher(channels, **kwargs)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop(1)


def notices(n: int) -> list[Notice]:
    return [alert_notice(at_us=T0_US + i) for i in range(n)]


def test_dispatch_queue_full_drops_oldest(dispatcher):
    """Past queue_max the oldest notices are dropped and counted."""
    rec = Recorder()
    d = dispatcher(rec, queue_max=3, **FAST)
    for notice in notices(5):
        d.submit(notice)
    assert d.stats()["rec"]["dropped"] == 2
    assert d.stats()["rec"]["queued"] == 3

    d.start()
    wait_for(lambda: d.stats()["rec"]["sent"] == 3, what="3 sent")
    assert [n.at_us - T0_US for n in rec.sent] == [2, 3, 4]


def test_dispatch_submit_never_blocks_on_slow_channel(dispatcher):
    """With the worker stuck in send, submit still returns and drops the oldest."""
    rec = Recorder()
    rec.gate.clear()
    d = dispatcher(rec, queue_max=2, **FAST)
    d.start()
    d.submit(alert_notice(at_us=1))
    wait_for(lambda: rec.attempts, what="worker in send")
    for notice in notices(4):
        d.submit(notice)
    assert (d.stats()["rec"]["queued"], d.stats()["rec"]["dropped"]) == (2, 2)
    rec.gate.set()
    wait_for(lambda: d.stats()["rec"]["sent"] == 3, what="3 sent")
    assert [n.at_us for n in rec.sent] == [1, T0_US + 2, T0_US + 3]


def test_dispatch_stop_drains_queue(dispatcher):
    """stop() delivers every queued notice within the grace and says so."""
    rec = Recorder()
    d = dispatcher(rec, **FAST)
    for notice in notices(50):
        d.submit(notice)
    d.start()
    assert d.stop(10) is True
    assert len(rec.sent) == 50
    assert d.stats()["rec"] == {
        "sent": 50,
        "failed": 0,
        "retried": 0,
        "dropped": 0,
        "skipped": 0,
        "queued": 0,
    }


def test_dispatch_stop_grace_over_drops_rest(dispatcher):
    """A channel stuck past the grace: stop() says False, the rest is dropped."""
    rec = Recorder()
    rec.gate.clear()
    d = dispatcher(rec, **FAST)
    d.start()
    for notice in notices(3):
        d.submit(notice)
    wait_for(lambda: rec.attempts, what="worker in send")
    assert d.stop(0.1) is False
    rec.gate.set()
    wait_for(lambda: d.stats()["rec"]["dropped"] == 2, what="rest dropped")
    assert d.stats()["rec"]["sent"] == 1
    assert d.stats()["rec"]["queued"] == 0


def test_dispatch_stop_cuts_long_backoff(dispatcher):
    """A notice waiting a long back-off is given up when the grace ends."""
    failing = AlwaysFails()
    d = dispatcher(failing, backoff_initial_s=30, backoff_max_s=60)
    d.start()
    d.submit(alert_notice())
    wait_for(lambda: failing.attempts, what="first attempt")
    assert d.stop(5) is True
    stats = d.stats()["rec"]
    assert (stats["failed"], stats["sent"]) == (1, 0)
    assert len(failing.attempts) == 1


def test_dispatch_submit_after_stop_dropped(dispatcher):
    """A notice submitted after stop() is dropped and counted."""
    d = dispatcher(Recorder(), **FAST)
    d.start()
    assert d.stop(1)
    d.submit(alert_notice())
    assert d.stats()["rec"]["dropped"] == 1


def test_dispatch_runtime_error_keeps_worker(dispatcher, caplog):
    """A channel raising RuntimeError is logged and counted; the worker goes on."""
    rec = Recorder(fail=(RuntimeError("bug in channel"),))
    d = dispatcher(rec, **FAST)
    d.start()
    first, second = notices(2)
    d.submit(first)
    d.submit(second)
    wait_for(lambda: d.stats()["rec"]["sent"] == 1, what="second sent")

    assert rec.sent == [second]
    stats = d.stats()["rec"]
    assert (stats["failed"], stats["retried"]) == (1, 0)
    [record] = [r for r in caplog.records if r.name == "hub.alerts.dispatch"
                and r.levelno == logging.ERROR]  # fmt: skip
    assert "channel=rec" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_dispatch_permanent_error_not_retried(dispatcher):
    """A permanent DeliveryError is given up after one attempt."""
    rec = Recorder(fail=(DeliveryError("refused", retryable=False),))
    d = dispatcher(rec, **FAST)
    d.start()
    d.submit(alert_notice())
    wait_for(lambda: d.stats()["rec"]["failed"], what="given up")
    assert len(rec.attempts) == 1
    assert d.stats()["rec"]["retried"] == 0


def test_dispatch_retries_then_gives_up(dispatcher):
    """A retryable failure is tried max_attempts times in all, then given up."""
    failing = AlwaysFails()
    d = dispatcher(failing, max_attempts=4, **FAST)
    d.start()
    d.submit(alert_notice())
    wait_for(lambda: d.stats()["rec"]["failed"], what="given up")
    assert len(failing.attempts) == 4
    assert d.stats()["rec"]["retried"] == 3


def test_dispatch_honours_retry_after(dispatcher):
    """The next attempt waits at least the error's Retry-After."""
    rec = Recorder(
        fail=(HttpDeliveryError("busy", status_code=429, retry_after_s=0.3),)
    )
    d = dispatcher(rec, backoff_initial_s=0.01, backoff_max_s=5)
    d.start()
    d.submit(alert_notice())
    wait_for(lambda: d.stats()["rec"]["sent"], what="sent")
    assert rec.attempts[1] - rec.attempts[0] >= 0.3


def test_dispatch_caps_retry_after_at_backoff_max(dispatcher):
    """A Retry-After longer than backoff_max_s waits backoff_max_s only."""
    busy = HttpDeliveryError("busy", status_code=503, retry_after_s=3600)
    rec = Recorder(fail=(busy,))
    d = dispatcher(rec, backoff_initial_s=0.01, backoff_max_s=0.1)
    d.start()
    d.submit(alert_notice())
    wait_for(lambda: d.stats()["rec"]["sent"], timeout=10, what="sent")
    assert d.stats()["rec"]["retried"] == 1


def test_dispatch_channels_independent(dispatcher):
    """A stuck channel does not hold back another."""
    stuck, fine = Recorder("stuck"), Recorder("fine")
    stuck.gate.clear()
    d = dispatcher(stuck, fine, **FAST)
    d.start()
    d.submit(alert_notice())
    wait_for(lambda: d.stats()["fine"]["sent"] == 1, what="fine sent")
    assert d.stats()["stuck"]["sent"] == 0
    stuck.gate.set()
    wait_for(lambda: d.stats()["stuck"]["sent"] == 1, what="stuck sent")


def test_dispatch_duplicate_names_refused():
    """Two channels with one name are refused."""
    with pytest.raises(ValueError, match="duplicate channel name 'rec'"):
        Dispatcher([Recorder(), Recorder()])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"queue_max": 0}, "queue_max"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff_initial_s": 0}, "backoff"),
        ({"backoff_initial_s": 5, "backoff_max_s": 1}, "backoff"),
    ],
)
def test_dispatch_bad_bounds(kwargs, match):
    """Bounds that cannot work fail at construction, naming the value."""
    with pytest.raises(ValueError, match=match):
        Dispatcher([Recorder()], **kwargs)


def test_dispatch_stop_keeps_backoff_within_grace(dispatcher):
    """A back-off that ends within the grace is waited and the retry delivers."""
    rec = Recorder(fail=(DeliveryError("busy", retryable=True),))
    d = dispatcher(rec, backoff_initial_s=0.2, backoff_max_s=0.4)
    d.start()
    d.submit(alert_notice())
    wait_for(lambda: rec.attempts, what="first attempt")
    assert d.stop(5) is True
    assert len(rec.sent) == 1
    assert d.stats()["rec"]["retried"] == 1


def test_dispatch_filter_that_raises_delivers(dispatcher, caplog):
    """A channel filter that raises is logged; the notice is queued anyway."""

    class BadFilter(Recorder):
        def accepts(self, notice):
            raise KeyError("severity")

    rec = BadFilter()
    d = dispatcher(rec, **FAST)
    d.submit(alert_notice())
    assert d.stats()["rec"]["queued"] == 1
    assert "channel filter raised channel=rec" in caplog.text
