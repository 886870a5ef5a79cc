"""Reconnect back-off with jitter, and the filter on paho's log lines."""

from __future__ import annotations

import logging

import pytest

from edge_agent.client import Backoff, Session
from edge_agent.config import BrokerUrl


@pytest.mark.parametrize(
    ("rng", "expected"), [(0.0, [0.5, 1, 2, 4, 4]), (0.999999, [1, 2, 4, 8, 8])]
)
def test_backoff_doubles_with_jitter_to_the_cap(rng, expected):
    """Delays double up to max_s, each between half and all of its step."""
    backoff = Backoff(1.0, 8.0, rng=lambda: rng)
    got = [backoff.next_delay() for _ in range(5)]
    assert got == pytest.approx([max(1.0, e) for e in expected], rel=1e-5)


def test_backoff_reset_starts_again():
    """After a reset the next delay is the first again."""
    backoff = Backoff(0.5, 30.0, rng=lambda: 0.5)
    first = backoff.next_delay()
    backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == first


def test_backoff_bad_bounds():
    """min_s above max_s is refused with both values."""
    with pytest.raises(ValueError, match="5"):
        Backoff(5.0, 1.0)


def _session(name: str) -> Session:
    return Session(
        name,
        BrokerUrl("127.0.0.1", 1, False),
        f"sf-test-{name}",
        version="3.1.1",
        keepalive_s=30,
        backoff=Backoff(0.5, 1.0),
    )


def test_paho_not_connected_lines_are_dropped_once_per_logger():
    """Sessions of one name share one filter; it drops only paho's not-connected."""
    name = "filter-test"
    paho = logging.getLogger(f"edge_agent.client.paho.{name}")
    for _ in range(2):
        _session(name)

    def record(message: str) -> logging.LogRecord:
        return paho.makeRecord(paho.name, logging.ERROR, __file__, 1, message, (), None)

    assert len(paho.filters) == 1
    assert paho.filter(record("Client is not connected")) is False
    assert paho.filter(record("Connection refused")) is True
