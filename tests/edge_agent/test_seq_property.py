"""Properties of seqs and ack coverage, over random batches and ack ranges."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.buffer import Buffer
from protocol.models import in_ranges, seq_ranges
from protocol.readings import Reading

T0 = 1_796_040_000_000_000


def _buffer(tmp: str) -> Buffer:
    return Buffer(
        Path(tmp) / "buffer.sqlite",
        gateway_id="gw-p",
        max_bytes=64 * 1024 * 1024,
        clock=lambda: T0,
    )


ranges = st.lists(
    st.tuples(st.integers(-5, 40), st.integers(0, 12)).map(
        lambda t: (T0 + t[0], T0 + t[0] + t[1])
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=1, max_size=25), acks=ranges)
def test_ack_deletes_exactly_the_covered_seqs(sizes, acks):
    """After any acks, exactly the formed seqs outside every range remain."""
    with tempfile.TemporaryDirectory() as tmp:
        buf = _buffer(tmp)
        formed = []
        for i, n in enumerate(sizes):
            buf.add([Reading("d", "m", T0 + i * 10 + j, 1.0) for j in range(n)])
            batch = buf.form_batch(
                late=False, cutoff_us=0, max_readings=n, max_bytes=65536
            )
            formed.append((batch.seq, n))
        result = buf.ack(acks)
        covered = [(s, n) for s, n in formed if in_ranges(s, acks)]
        assert sorted(result.seqs) == [s for s, _ in covered]
        assert result.readings == sum(n for _, n in covered)
        assert [b.seq for b in buf.unacked()] == [
            s for s, _ in formed if not in_ranges(s, acks)
        ]
        buf.close()


@settings(max_examples=40, deadline=None)
@given(rounds=st.lists(st.integers(0, 4), min_size=1, max_size=8))
def test_seqs_strictly_increase_across_reopens(rounds):
    """Seqs only grow, with no gap or repeat, however often the file is reopened."""
    with tempfile.TemporaryDirectory() as tmp:
        seqs = []
        for r, batches in enumerate(rounds):
            buf = _buffer(tmp)
            for b in range(batches):
                buf.add([Reading("d", "m", T0 + r * 100 + b, 0.5)])
                seqs.append(
                    buf.form_batch(
                        late=False, cutoff_us=0, max_readings=10, max_bytes=65536
                    ).seq
                )
            buf.ack(seq_ranges(seqs))  # acking everything must not reset the seq
            buf.close()
        assert seqs == list(range(T0, T0 + len(seqs)))
