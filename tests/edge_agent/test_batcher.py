"""Batch encoding, fitting under the byte bound, and backlog pacing."""

from __future__ import annotations

import pytest

from edge_agent.batcher import PendingRow, TokenBucket, encode_batch, fit_batch
from protocol.models import BatchEnvelope

T0 = 1_796_040_000_000_000


def rows(n: int, dev: str = "dev-1") -> list[PendingRow]:
    return [PendingRow(i, dev, "temp", "C", T0 + i, i / 4, 0, T0) for i in range(n)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_encode_batch_matches_envelope_model():
    """The bytes validate as a BatchEnvelope with the given header."""
    env = BatchEnvelope.model_validate_json(encode_batch("gw-1", 42, T0, True, rows(3)))
    assert (env.v, env.gw, env.seq, env.sent, env.late) == (1, "gw-1", 42, T0, True)
    assert [(s.dev, s.metric, s.unit, s.ts, s.values) for s in env.series] == [
        ("dev-1", "temp", "C", [T0, T0 + 1, T0 + 2], [0.0, 0.25, 0.5])
    ]


def test_fit_batch_takes_all_when_they_fit():
    """Readings that fit are taken whole."""
    n, payload = fit_batch(rows(10), 4096, lambda p: encode_batch("g", 1, T0, False, p))
    assert (n, len(payload) <= 4096) == (10, True)


@pytest.mark.parametrize("bound", [4096, 10_000, 65_536])
def test_fit_batch_cuts_to_the_bound(bound):
    """Too many readings are cut so that the payload is at most the bound."""
    many = [r._replace(dev=f"device-{r.id:05d}") for r in rows(1000)]
    n, payload = fit_batch(many, bound, lambda p: encode_batch("g", 1, T0, False, p))
    assert len(payload) <= bound
    assert 0 < n < 1000
    bigger = encode_batch("g", 1, T0, False, many[: n + 2])
    assert len(bigger) > bound * 0.9  # the cut is close to the bound


def test_fit_batch_gives_up_on_a_reading_too_large():
    """A single reading over the bound yields (0, b'') instead of looping."""
    assert fit_batch(rows(1), 10, lambda p: encode_batch("g", 1, T0, False, p)) == (
        0,
        b"",
    )


def test_token_bucket_refills_at_rate():
    """Tokens come back at the rate, up to the capacity."""
    clock = Clock()
    bucket = TokenBucket(100.0, 50.0, clock=clock)
    assert bucket.take(50)
    assert not bucket.take(1)
    clock.now += 0.2
    assert bucket.available() == pytest.approx(20.0)
    clock.now += 10
    assert bucket.available() == 50.0


def test_token_bucket_wait_for():
    """wait_for tells how long until n tokens are there."""
    clock = Clock()
    bucket = TokenBucket(100.0, 50.0, clock=clock)
    bucket.take(50)
    assert bucket.wait_for(25) == pytest.approx(0.25)


def test_token_bucket_bad_rate():
    """A zero rate is refused with its value."""
    with pytest.raises(ValueError, match="0"):
        TokenBucket(0, 10)
