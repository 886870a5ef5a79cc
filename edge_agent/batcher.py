"""Batch envelopes: encoding, fitting under the byte bound, pacing the backlog.

A batch is encoded once, when its seq is given, and its bytes are what is sent
every time (README, "Delivery guarantees"). The envelope follows
:class:`protocol.models.BatchEnvelope`, built as plain dicts and encoded with
orjson, because validating the model for every batch would cost more than the
encoding; tests check the bytes against the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import orjson

from protocol import codec
from protocol.codec import Compression
from protocol.const import PROTOCOL_VERSION

#: A full burst of backlog may be this many seconds of ``backlog_rate``, so
#: that the rate holds even though the worker forms batches in steps.
BUCKET_BURST_S = 1.0

T = TypeVar("T")


class PendingRow(NamedTuple):
    """A buffered reading not yet in a batch, as its table row holds it."""

    id: int
    dev: str
    metric: str
    unit: str
    ts_us: int
    value: float
    flags: int
    received_at: int


class PendingLog(NamedTuple):
    """A buffered device log record not yet in a batch, as its row holds it."""

    id: int
    dev: str
    ts_us: int
    level: str
    msg: str
    src: str
    flags: int
    received_at: int


@dataclass(frozen=True, slots=True)
class Batch:
    """A formed batch: its seq and its bytes, which never change."""

    seq: int
    payload: bytes
    readings: int
    late: bool
    created_us: int
    oldest_us: int
    #: Device log records in the batch.
    logs: int = 0


def encode_batch(
    gw: str,
    seq: int,
    sent_us: int,
    late: bool,
    rows: Sequence[PendingRow],
    compression: Compression = "none",
    logs: Sequence[PendingLog] = (),
) -> bytes:
    """Encode readings as a batch envelope, one series per (dev, metric, unit).

    Args:
        gw: the gateway id.
        seq: the batch's seq.
        sent_us: the send time written into the envelope, epoch µs.
        late: whether the batch is backlog.
        rows: the readings, in the order they were buffered.
        compression: the body compression.
        logs: device log records, in the order they were buffered; the
            ``logs`` member is left out when there are none, so that a batch
            of readings is encoded exactly as before logs existed.

    Returns:
        The payload exactly as it is published.
    """
    series: dict[tuple[str, str, str], tuple[list[int], list[float], list[int]]] = {}
    for row in rows:
        key = (row.dev, row.metric, row.unit)
        cols = series.get(key)
        if cols is None:
            cols = series[key] = ([], [], [])
        cols[0].append(row.ts_us)
        cols[1].append(row.value)
        cols[2].append(row.flags)
    doc: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "gw": gw,
        "seq": seq,
        "sent": sent_us,
        "late": late,
        "series": [
            _series_doc(dev, metric, unit, ts, values, flags)
            for (dev, metric, unit), (ts, values, flags) in series.items()
        ],
    }
    if logs:
        doc["logs"] = [_log_doc(r) for r in logs]
    return codec.compress(orjson.dumps(doc), compression)


def _log_doc(row: PendingLog) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "dev": row.dev,
        "ts": row.ts_us,
        "level": row.level,
        "msg": row.msg,
    }
    if row.src:
        doc["src"] = row.src
    if row.flags:
        doc["flags"] = row.flags
    return doc


def _series_doc(
    dev: str,
    metric: str,
    unit: str,
    ts: list[int],
    values: list[float],
    flags: list[int],
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "dev": dev,
        "metric": metric,
        "unit": unit,
        "ts": ts,
        "values": values,
    }
    # Flags travel only when one is set: the usual batch stays as small as before.
    if any(flags):
        doc["flags"] = flags
    return doc


def fit_batch(
    rows: Sequence[T],
    max_bytes: int,
    encode: Callable[[Sequence[T]], bytes],
) -> tuple[int, bytes]:
    """Find how many of the first ``rows`` fit in one payload of ``max_bytes``.

    The count is cut in proportion to the overshoot and the batch encoded
    again, so that an oversized batch is never formed (case C17: one that the
    broker or hub refuses would be resent in a loop).

    Args:
        rows: the candidate readings, oldest first (at least one).
        max_bytes: the largest payload allowed, inclusive.
        encode: encodes a prefix of ``rows`` into a payload.

    Returns:
        The number of readings taken and their payload; ``(0, b"")`` when even
        one reading does not fit (impossible with the settings' bounds, since
        ids and metric names are short; handled so that it cannot loop).
    """
    n = len(rows)
    while n > 0:
        payload = encode(rows[:n])
        size = len(payload)
        if size <= max_bytes:
            return n, payload
        # Aim a little below the bound: the series overhead is not linear.
        n = min(n - 1, int(n * max_bytes / size * 0.97))
    return 0, b""


class TokenBucket:
    """Readings per second allowed for the backlog, with a bounded burst.

    Args:
        rate: tokens (readings) added per second.
        capacity: the most tokens held, so the largest burst.
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        rate: float,
        capacity: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError(f"expected a positive rate and capacity, got {rate!r}")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._at = clock()

    def available(self) -> float:
        """The tokens that may be taken now."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, n: int) -> bool:
        """Take ``n`` tokens if there are that many; tell whether it did."""
        if self.available() < n:
            return False
        self._tokens -= n
        return True

    def give(self, n: int) -> None:
        """Return ``n`` tokens taken but not used (never past the capacity)."""
        self._tokens = min(self.capacity, self._tokens + n)

    def wait_for(self, n: int) -> float:
        """Seconds until ``n`` tokens are available (0 if they are now)."""
        missing = min(n, self.capacity) - self.available()
        return max(0.0, missing / self.rate)
