"""The writer-to-processors queue: bounded in items and in readings."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.processors.backlog import Backlog, Empty, Full


def test_backlog_refuses_what_exceeds_the_weight_after_the_wait():
    """3 + 3 readings exceed a bound of 5: the second put times out."""
    q: Backlog[str] = Backlog(max_items=10, max_weight=5)
    q.put("a", 3)

    with pytest.raises(Full):
        q.put("b", 3, timeout=0.01)
    assert (q.qsize(), q.weight()) == (1, 3)


def test_backlog_takes_an_oversized_item_when_empty():
    """An item heavier than the bound goes in alone, so nothing waits for ever."""
    q: Backlog[str] = Backlog(max_items=10, max_weight=5)
    q.put("huge", 50, timeout=0)

    assert (q.get(timeout=0), q.weight()) == ("huge", 0)


def test_backlog_bounds_items_too():
    """Two items of weight 0 fill a queue of two."""
    q: Backlog[int] = Backlog(max_items=2, max_weight=100)
    q.put(1, 0)
    q.put(2, 0)

    with pytest.raises(Full):
        q.put(3, 0, timeout=0.01)
    assert q.get(0) == 1
    q.put(3, 0, timeout=0)
    assert [q.get(0), q.get(0)] == [2, 3]


def test_backlog_get_times_out_when_empty():
    """Nothing queued: get raises Empty after its wait."""
    q: Backlog[int] = Backlog(1, 1)

    with pytest.raises(Empty):
        q.get(timeout=0.01)


def test_backlog_waiting_put_goes_in_once_room_is_made():
    """A put blocked on the weight completes when the consumer takes an item."""
    q: Backlog[str] = Backlog(max_items=10, max_weight=4)
    q.put("a", 4)
    done = threading.Event()

    def produce() -> None:
        q.put("b", 4, timeout=5)
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    assert not done.wait(0.1)
    assert q.get(timeout=1) == "a"
    t.join(5)

    assert done.is_set()
    assert (q.get(timeout=1), q.weight()) == ("b", 0)


@pytest.mark.parametrize(("items", "weight"), [(0, 1), (1, 0), (-1, 5)])
def test_backlog_rejects_bounds_under_one(items, weight):
    """A bound under 1 is refused with both bounds named."""
    with pytest.raises(ValueError, match=r"max_items=.*max_weight="):
        Backlog(items, weight)


@given(
    st.integers(1, 8),
    st.integers(1, 50),
    st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=60),
)
def test_backlog_keeps_order_and_its_bounds(max_items, max_weight, ops):
    """Any run of puts and gets: FIFO order, and the bounds hold but for one item."""
    q: Backlog[int] = Backlog(max_items, max_weight)
    model: list[tuple[int, int]] = []
    for n, (is_put, w) in enumerate(ops):
        if is_put:
            fits = not model or (
                len(model) < max_items and sum(x for _, x in model) + w <= max_weight
            )
            try:
                q.put(n, w, timeout=0)
            except Full:
                assert not fits
            else:
                assert fits
                model.append((n, w))
        elif model:
            assert q.get(timeout=0) == model.pop(0)[0]
        assert (q.qsize(), q.weight()) == (len(model), sum(x for _, x in model))
        assert q.qsize() <= max_items
        assert q.qsize() <= 1 or q.weight() <= max_weight
