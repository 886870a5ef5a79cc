"""Unit tests of the TimescaleDB store's COPY helpers (no database)."""

from __future__ import annotations

import struct

import numpy as np

from hub.storage.timescale import copy_buffer, first_unique

_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)


def test_first_unique_keeps_first_of_equal_keys_sorted():
    """The first position of each (series, ts) is kept, ordered by the key."""
    sid = np.array([2, 1, 2, 1, 1], dtype=np.int32)
    ts = np.array([5, 7, 5, 3, 7], dtype=np.int64)

    assert first_unique(sid, ts).tolist() == [3, 1, 0]


def test_copy_buffer_is_postgresql_binary_format():
    """A stream is the signature, rows of four length-prefixed fields, a trailer."""
    data = copy_buffer([946_684_800_000_001], [7], [-0.0], [3])

    row = struct.pack(">hiqiiidih", 4, 8, 1, 4, 7, 8, -0.0, 2, 3)
    assert data == _HEADER + row + b"\xff\xff"


def test_copy_buffer_with_ord_adds_positions():
    """With ord, each row carries its position as a fifth int4 field."""
    data = copy_buffer(
        [946_684_800_000_000] * 2, [1, 1], [1.0, 2.0], [0, 0], with_ord=True
    )

    rows = data[len(_HEADER) : -2]
    assert len(rows) == 2 * (2 + 4 + 8 + 4 + 4 + 4 + 8 + 4 + 2 + 4 + 4)
    assert struct.unpack(">hiqiiidihii", rows[: len(rows) // 2])[-2:] == (4, 0)
    assert struct.unpack(">hiqiiidihii", rows[len(rows) // 2 :])[-2:] == (4, 1)
