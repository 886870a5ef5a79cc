"""The disk buffer: seqs, batch bytes, the size bound and its policies."""

from __future__ import annotations

import sqlite3

import pytest

from edge_agent.buffer import Buffer
from edge_agent.const import ROW_OVERHEAD_BYTES
from edge_agent.errors import BufferOpenError
from protocol import decode_batch
from protocol.models import BatchEnvelope
from protocol.readings import Reading

T0 = 1_796_040_000_000_000  # 2026-11-30T12:00:00Z in µs
NOW = T0 + 3_600_000_000


def clock() -> int:
    return NOW


def open_buffer(tmp_path, **kwargs) -> Buffer:
    kwargs.setdefault("gateway_id", "gw-1")
    kwargs.setdefault("max_bytes", 64 * 1024 * 1024)
    return Buffer(tmp_path / "buffer.sqlite", clock=clock, **kwargs)


def readings(n: int, dev: str = "dev-1", metric: str = "temp", start: int = 0):
    return [Reading(dev, metric, T0 + start + i, float(start + i)) for i in range(n)]


def form(buf: Buffer, late: bool = False, n: int = 1000, max_bytes: int = 128 * 1024):
    """Form a batch; readings received in the last 10 s are live."""
    return buf.form_batch(
        late=late,
        cutoff_us=NOW - 10_000_000,
        max_readings=n,
        max_bytes=max_bytes,
    )


def test_add_counts_pending(tmp_path):
    """Readings added are pending, with their bytes accounted."""
    buf = open_buffer(tmp_path)
    result = buf.add(readings(10))
    assert (result.kept, result.refused, result.dropped_old) == (10, 0, 0)
    assert buf.pending == 10
    assert buf.size == 10 * (len("dev-1") + len("temp") + ROW_OVERHEAD_BYTES)


def test_form_batch_payload_is_a_valid_envelope(tmp_path):
    """A formed batch is a BatchEnvelope with ts in integer µs and its seq."""
    buf = open_buffer(tmp_path)
    buf.add(readings(3))
    seq = buf.next_seq
    batch = form(buf)
    env = BatchEnvelope.model_validate_json(batch.payload)
    assert (env.gw, env.seq, env.late, env.sent) == ("gw-1", seq, False, NOW)
    assert [(s.dev, s.metric, s.ts, s.values) for s in env.series] == [
        ("dev-1", "temp", [T0, T0 + 1, T0 + 2], [0.0, 1.0, 2.0])
    ]
    assert (buf.pending, buf.batches, buf.next_seq) == (0, 1, seq + 1)


def test_form_batch_groups_series_in_arrival_order(tmp_path):
    """Readings of two series become two series, each in arrival order."""
    buf = open_buffer(tmp_path)
    buf.add([Reading("a", "t", T0 + 2, 1.0), Reading("b", "t", T0, 2.0)])
    buf.add([Reading("a", "t", T0 + 1, 3.0)])
    env = BatchEnvelope.model_validate_json(form(buf).payload)
    assert [(s.dev, s.ts, s.values) for s in env.series] == [
        ("a", [T0 + 2, T0 + 1], [1.0, 3.0]),
        ("b", [T0], [2.0]),
    ]


def test_form_batch_empty_returns_none(tmp_path):
    """With nothing pending no batch is formed and no seq is used."""
    buf = open_buffer(tmp_path)
    seq = buf.next_seq
    assert form(buf) is None
    assert buf.next_seq == seq


def test_seq_persists_across_reopen(tmp_path):
    """After reopening, the next seq follows the last one given."""
    buf = open_buffer(tmp_path)
    buf.add(readings(5))
    first = form(buf, n=2).seq
    buf.close()
    again = open_buffer(tmp_path)
    again.add(readings(1, start=10))
    assert form(again, n=10).seq == first + 1


def test_seq_not_reused_after_buffer_emptied(tmp_path):
    """Acking every batch and reopening still gives a fresh seq."""
    buf = open_buffer(tmp_path)
    buf.add(readings(1))
    seq = form(buf).seq
    buf.ack([(seq, seq)])
    buf.close()
    again = open_buffer(tmp_path)
    assert (again.batches, again.pending) == (0, 0)
    again.add(readings(1))
    assert form(again).seq == seq + 1


def test_new_buffer_seq_starts_at_clock(tmp_path):
    """A new buffer's first seq is the clock in µs (a lost file cannot reuse seqs)."""
    buf = open_buffer(tmp_path)
    assert buf.next_seq == NOW


def test_batch_bytes_unchanged_after_reopen(tmp_path):
    """The stored payload is byte for byte what was formed."""
    buf = open_buffer(tmp_path)
    buf.add(readings(50))
    batch = form(buf)
    buf.close()
    again = open_buffer(tmp_path)
    assert [(b.seq, b.payload) for b in again.unacked()] == [(batch.seq, batch.payload)]


def test_ack_deletes_only_covered_batches(tmp_path):
    """An ack range deletes the batches it covers and keeps the others."""
    buf = open_buffer(tmp_path)
    buf.add(readings(30))
    seqs = [form(buf, n=10).seq for _ in range(3)]
    result = buf.ack([(seqs[0], seqs[1])])
    assert (result.seqs, result.readings) == ((seqs[0], seqs[1]), 20)
    assert [b.seq for b in buf.unacked()] == [seqs[2]]
    assert buf.acked == (2, 20)


def test_ack_of_unknown_seq_changes_nothing(tmp_path):
    """An ack for seqs never formed deletes nothing."""
    buf = open_buffer(tmp_path)
    buf.add(readings(1))
    seq = form(buf).seq
    result = buf.ack([(seq + 5, seq + 9)])
    assert (result.seqs, buf.batches) == ((), 1)


def test_unacked_lists_live_before_late(tmp_path):
    """Unacked batches come live first, then late, each by seq."""
    buf = open_buffer(tmp_path)
    buf.add(readings(4), received_us=NOW - 60_000_000)
    late = form(buf, late=True, n=2).seq
    buf.add(readings(2, start=10))
    live = form(buf).seq
    late2 = form(buf, late=True, n=2).seq
    assert [(b.seq, b.late) for b in buf.unacked()] == [
        (live, False),
        (late, True),
        (late2, True),
    ]


def test_form_live_takes_only_recent_readings(tmp_path):
    """A live batch takes readings received since the cutoff, not older ones."""
    buf = open_buffer(tmp_path)
    buf.add(readings(3), received_us=NOW - 60_000_000)
    buf.add(readings(2, start=100), received_us=NOW)
    batch = buf.form_batch(
        late=False, cutoff_us=NOW - 10_000_000, max_readings=10, max_bytes=65536
    )
    env = BatchEnvelope.model_validate_json(batch.payload)
    assert env.series[0].ts == [T0 + 100, T0 + 101]
    assert buf.pending == 3


def test_drop_oldest_keeps_newest_and_counts(tmp_path):
    """drop_oldest keeps exactly the newest readings that fit and counts the rest."""
    cost = len("dev-1") + len("temp") + ROW_OVERHEAD_BYTES  # 69 bytes a reading
    buf = open_buffer(tmp_path, max_bytes=100 * cost, full_policy="drop_oldest")
    for start in range(0, 250, 50):
        buf.add(readings(50, start=start))
    assert buf.pending == 100
    assert buf.dropped == {"buffer_full": 150}
    assert [r.value for r in buf.readings()] == [float(i) for i in range(150, 250)]


def test_drop_newest_keeps_oldest_and_counts(tmp_path):
    """drop_newest refuses exactly the readings past the bound and counts them."""
    cost = len("dev-1") + len("temp") + ROW_OVERHEAD_BYTES
    buf = open_buffer(tmp_path, max_bytes=100 * cost, full_policy="drop_newest")
    results = [buf.add(readings(30, start=s)) for s in range(0, 120, 30)]
    assert [r.refused for r in results] == [0, 0, 0, 20]
    assert buf.pending == 100
    assert buf.dropped == {"buffer_full": 20}
    assert [r.value for r in buf.readings()] == [float(i) for i in range(100)]


def test_drop_oldest_drops_batches_when_no_pending_left(tmp_path):
    """When dropping every pending reading is not enough, the oldest batch goes."""
    buf = open_buffer(tmp_path)
    buf.add(readings(100))
    first, second = form(buf, n=50), form(buf, n=50)
    buf.close()
    bound = len(second.payload) + ROW_OVERHEAD_BYTES + 10
    small = open_buffer(tmp_path, max_bytes=bound, full_policy="drop_oldest")
    result = small.add(readings(1, start=500))
    assert (result.kept, result.dropped_old) == (1, 51)
    assert result.dropped_seqs == (first.seq,)
    assert [b.seq for b in small.unacked()] == [second.seq]
    assert small.dropped == {"buffer_full": 51}


def test_dropped_counters_persist(tmp_path):
    """Dropped and rejected counters survive a reopen."""
    cost = len("dev-1") + len("temp") + ROW_OVERHEAD_BYTES
    buf = open_buffer(tmp_path, max_bytes=10 * cost, full_policy="drop_newest")
    buf.add(readings(15))
    buf.count_rejects({"bad_device_id": 3})
    buf.close()
    again = open_buffer(tmp_path, max_bytes=10 * cost)
    assert (again.dropped, again.rejected) == (
        {"buffer_full": 5},
        {"bad_device_id": 3},
    )


def test_accounted_size_covers_pages_used(tmp_path):
    """The running size is at least the SQLite pages the readings use."""
    buf = open_buffer(tmp_path)
    for start in range(0, 20_000, 1000):
        buf.add(
            [
                Reading(f"dev-{i % 50}", "temperature", T0 + i, i / 3)
                for i in range(start, start + 1000)
            ]
        )
    assert buf.size >= buf.used_bytes() * 0.95
    assert buf.size <= buf.used_bytes() * 1.25


def test_backlog_of_60000_fits_byte_bound(tmp_path):
    """A 60,000-reading backlog forms batches that each fit, every reading once."""
    buf = open_buffer(tmp_path)
    rows = [
        Reading(f"device-{i % 600:04d}", "temperature.outdoor.north", T0 + i, i * 0.1)
        for i in range(60_000)
    ]
    for start in range(0, 60_000, 1000):
        buf.add(rows[start : start + 1000], received_us=NOW - 60_000_000)
    sizes, seen = [], []
    while (batch := form(buf, late=True, n=1000, max_bytes=32 * 1024)) is not None:
        sizes.append(len(batch.payload))
        decoded = decode_batch(batch.payload, NOW)
        assert decoded.late
        seen.extend((b.device, t) for b in decoded.blocks for t in b.ts_us)
    assert max(sizes) <= 32 * 1024
    assert len(seen) == 60_000
    assert sorted(seen, key=lambda k: k[1]) == [(r.device, r.ts_us) for r in rows]


def test_batch_bound_holds_with_gzip(tmp_path):
    """With gzip the bound applies to the compressed bytes on the wire."""
    buf = open_buffer(tmp_path, compression="gzip")
    buf.add(readings(1000))
    batch = form(buf, max_bytes=4096)
    assert batch.payload[:2] == b"\x1f\x8b"
    assert len(batch.payload) <= 4096
    assert decode_batch(batch.payload, NOW).accepted == batch.readings


def test_rollback_restores_totals(tmp_path):
    """A failed transaction keeps neither rows nor changes of the totals."""
    buf = open_buffer(tmp_path)
    buf.add(readings(5))

    def write_then_fail():
        with buf.transaction():
            buf.add(readings(5, start=5))
            form(buf)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert (buf.pending, buf.batches) == (5, 0)
    assert len(list(buf.readings())) == 5


def test_inbox_recognises_taken_message(tmp_path):
    """A message remembered by packet id and digest is seen again; others not."""
    buf = open_buffer(tmp_path)
    buf.remember_message(7, b"d" * 16)
    assert buf.seen_message(7, b"d" * 16)
    assert not buf.seen_message(8, b"d" * 16)
    assert not buf.seen_message(7, b"e" * 16)


def test_open_refuses_other_gateway(tmp_path):
    """A buffer made for one gateway is not opened for another."""
    open_buffer(tmp_path).close()
    with pytest.raises(BufferOpenError, match="belongs to gateway 'gw-1'"):
        open_buffer(tmp_path, gateway_id="gw-2")


def test_open_refuses_damaged_file(tmp_path):
    """A file that is not SQLite is refused with BufferOpenError."""
    (tmp_path / "buffer.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(BufferOpenError, match="cannot open buffer"):
        open_buffer(tmp_path)


def test_wal_mode_and_synchronous_full(tmp_path):
    """The file is in WAL mode with synchronous FULL by default."""
    buf = open_buffer(tmp_path)
    db = sqlite3.connect(tmp_path / "buffer.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert buf._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    db.close()


def test_open_refuses_uncreatable_directory(tmp_path):
    """A buffer directory that cannot be created is a BufferOpenError."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(BufferOpenError, match="cannot open buffer"):
        Buffer(
            tmp_path / "file" / "sub" / "b.sqlite", gateway_id="g", max_bytes=1 << 20
        )
