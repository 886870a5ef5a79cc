"""The window of batches awaiting the hub's ack."""

from __future__ import annotations

from edge_agent.batcher import Batch
from edge_agent.inflight import InflightWindow


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def batch(seq: int, late: bool = False) -> Batch:
    return Batch(seq, b"payload-%d" % seq, 10, late, 0, 0)


def test_free_counts_down_as_batches_go_out():
    """The window has size minus sent slots free."""
    window = InflightWindow(3, 10.0)
    window.sent(batch(1), mid=11)
    window.sent(batch(2, late=True), mid=12)
    assert (window.free, len(window), window.late) == (1, 2, 1)


def test_puback_does_not_free_the_slot():
    """A PUBACK marks the batch but keeps it in the window."""
    window = InflightWindow(2, 10.0)
    window.sent(batch(1), mid=11)
    assert window.puback(11) == 1
    assert (len(window), window.awaiting_puback) == (1, 0)


def test_remove_frees_slots_of_acked_batches():
    """Removing acked seqs frees their slots and ignores unknown ones."""
    window = InflightWindow(2, 10.0)
    window.sent(batch(1), mid=11)
    window.sent(batch(2), mid=12)
    gone = window.remove([1, 99])
    assert ([b.seq for b in gone], window.seqs(), window.free) == ([1], [2], 1)


def test_due_after_ack_timeout():
    """A batch is due again once ack_timeout_s passed since its last send."""
    clock = Clock()
    window = InflightWindow(4, 10.0, clock=clock)
    window.sent(batch(1), mid=11)
    clock.now += 5
    window.sent(batch(2), mid=12)
    clock.now += 5
    assert [b.seq for b in window.due()] == [1]
    assert window.next_due_in() == 0.0


def test_resend_restarts_the_timer_and_counts():
    """Sending a batch again restarts its timer and counts a resend."""
    clock = Clock()
    window = InflightWindow(4, 10.0, clock=clock)
    window.sent(batch(1), mid=11)
    clock.now += 10
    window.sent(batch(1), mid=21)
    assert (window.due(), window.resends, window.next_due_in()) == ([], 1, 10.0)
    assert window.puback(11) is None  # the old message id is forgotten
    assert window.puback(21) == 1


def test_reconnected_resends_pubacked_and_leaves_others_to_paho():
    """After a reconnect only PUBACKed batches are published again by us."""
    clock = Clock()
    window = InflightWindow(4, 10.0, clock=clock)
    window.sent(batch(1), mid=11)
    window.sent(batch(2), mid=12)
    window.puback(11)
    clock.now += 8
    again = window.reconnected()
    assert [b.seq for b in again] == [1]
    window.sent(again[0], mid=31)  # the worker publishes it again
    clock.now += 5
    assert window.due() == []  # batch 2's timer restarted at the reconnect
