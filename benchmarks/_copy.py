"""Readings straight into the schema with binary COPY: the limit, and bulk loads.

The COPY streams are built by the store's own :func:`copy_buffer`, so that the
limit measured here writes byte for byte what the hub's store writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import psycopg

from hub.storage.timescale import copy_buffer

# PostgreSQL's binary timestamps count microseconds from 2000-01-01T00:00Z.
_PG_EPOCH_US = 946_684_800_000_000
# A row of (ts, series_id, value, flags) in the binary COPY format.
_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("sid_len", ">i4"),
        ("sid", ">i4"),
        ("value_len", ">i4"),
        ("value", ">f8"),
        ("flags_len", ">i4"),
        ("flags", ">i2"),
    ]
)
_HEADER_BYTES = 19
_TRAILER_BYTES = 2
_COPY_IN = "COPY readings (ts, series_id, value, flags) FROM STDIN (FORMAT BINARY)"
_COPY_OUT = (
    "COPY (SELECT ts, series_id, value, flags FROM readings) TO STDOUT (FORMAT BINARY)"
)


@dataclass(frozen=True, slots=True)
class Rows:
    """Readings as columns: epoch µs, series ids, values, flags."""

    ts_us: np.ndarray
    series_ids: np.ndarray
    values: np.ndarray
    flags: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_us)


def export_rows(url: str) -> Rows:
    """Every stored reading, in storage order (one binary COPY out).

    Storage order is about the order of arrival, so the COPY that writes them
    back meets the index in the same order as the hub's writes did.
    """
    chunks: list[bytes] = []
    with (
        psycopg.connect(url) as conn,
        conn.cursor() as cur,
        cur.copy(_COPY_OUT) as copy,
    ):
        chunks.extend(bytes(data) for data in copy)
    body = b"".join(chunks)[_HEADER_BYTES:-_TRAILER_BYTES]
    rows = np.frombuffer(body, dtype=_ROW)
    return Rows(
        rows["ts"].astype(np.int64) + _PG_EPOCH_US,
        rows["sid"].astype(np.int32),
        rows["value"].astype(np.float64),
        rows["flags"].astype(np.int16),
    )


def copy_rows(url: str, rows: Rows, batch: int = 10_000) -> float:
    """COPY the rows into ``readings``, one transaction per ``batch`` rows.

    The streams are built before the clock starts: the figure is the
    database's, not numpy's.

    Returns:
        The seconds the COPYs took, commits included.
    """
    streams = [
        copy_buffer(
            rows.ts_us[i : i + batch],
            rows.series_ids[i : i + batch],
            rows.values[i : i + batch],
            rows.flags[i : i + batch],
        )
        for i in range(0, len(rows), batch)
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        for data in streams:
            with conn.cursor() as cur, cur.copy(_COPY_IN) as copy:
                copy.write(data)
        return time.perf_counter() - started


def truncate_readings(url: str) -> None:
    """Empty ``readings`` (its chunks are dropped) and ``latest``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE readings, latest")
