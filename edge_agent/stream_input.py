"""JSON-lines input: readings from a file or stdin, one object per line.

Each line is ``{"dev": .., "metric": .., "ts": .., "value": .., "unit": ..}``
(see :func:`edge_agent.validation.reading_from_line`); used to replay data
sets and to pipe readings from scripts. Lines are submitted in groups of up
to 1,000 readings, or sooner when the stream pauses, and each group is on
disk before the next line is read, which paces a fast file to the buffer.
A bad line is a counted reject, logged at WARNING at most once per reason and
interval, and the lines after it are read as usual.

With a ``log_sink``, a line may also be a device log record,
``{"dev": .., "ts": .., "level": "error", "msg": .., "src": ..}`` (a line
with ``level`` and no ``metric``) or ``{"log": {...}}``, checked by
:mod:`protocol.logs`; a record without ``ts`` is stamped on receipt.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from edge_agent.const import WARNING_INTERVAL_S
from edge_agent.validation import reading_from_line
from protocol import codec
from protocol.const import RejectReason
from protocol.errors import DecodeError
from protocol.logs import LogRecord, parse_log
from protocol.ratelimit import WarningLimiter
from protocol.readings import Reading
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

#: Readings submitted together at most.
LINES_GROUP = 1000
#: A group is submitted once the stream has been quiet this long (seconds).
LINES_LINGER_S = 0.05
#: A longer line is rejected unread (the hub's payload limit, case C17).
MAX_LINE_BYTES = 256 * 1024

_READ_BYTES = 64 * 1024
#: What the line reader gives for a line over MAX_LINE_BYTES (compared by
#: identity; its content is never parsed).
TOO_LONG = b"\x00too long"

#: Buffers checked readings with their rejects (``EdgeAgent.submit_checked``).
Sink = Callable[[list[Reading], Counter[str]], object]
#: Buffers checked log records (``EdgeAgent.submit_logs``).
LogSink = Callable[[list[LogRecord]], object]


@dataclass(frozen=True, slots=True)
class LinesRead:
    """What a stream held: lines, readings and logs taken, rejects by reason."""

    lines: int
    readings: int
    rejects: dict[str, int]
    logs: int = 0


def read_lines(
    stream: BinaryIO,
    sink: Sink,
    *,
    max_future_skew_s: float,
    name: str = "stdin",
    stop: Callable[[], bool] = lambda: False,
    log_sink: LogSink | None = None,
) -> LinesRead:
    """Read JSON lines until the end of ``stream`` and buffer their readings.

    Args:
        stream: a binary stream (a file, ``sys.stdin.buffer``, a pipe).
        sink: buffers each group; returns once it is committed.
        max_future_skew_s: timestamps further ahead are rejected.
        name: the stream's name in logs.
        stop: checked between reads; reading ends early when it is true.
        log_sink: buffers each group's log records; None: no line is read
            as a log record.

    Returns:
        The counts of lines, readings and rejects.

    Raises:
        AgentStoppedError: the agent stopped while lines were left.
        BufferWriteError: a group could not be committed.
    """
    reader = _LineReader(stream)
    group = _Group(sink, name, log_sink)
    logs = log_sink is not None
    while not stop():
        line = reader.next_line()
        if line is None:  # no whole line buffered: submit if quiet, then read
            if group.waiting and not reader.wait(group.since + LINES_LINGER_S):
                group.submit()
            if not reader.fill():
                break
            continue
        group.lines += 1
        if line.strip():
            group.take(_parse(line, max_future_skew_s, logs))
    tail = reader.rest()
    if tail.strip():
        group.lines += 1
        group.take(_parse(tail, max_future_skew_s, logs))
    group.submit()
    _LOGGER.info(
        "stream read stream=%s lines=%d readings=%d rejects=%d logs=%d",
        name,
        group.lines,
        group.readings,
        sum(group.total.values()),
        group.logs_taken,
    )
    return LinesRead(group.lines, group.readings, dict(group.total), group.logs_taken)


class _Group:
    """Readings and rejects waiting to be submitted together."""

    def __init__(self, sink: Sink, name: str, log_sink: LogSink | None) -> None:
        self.sink = sink
        self.log_sink = log_sink
        self.name = name
        self.good: list[Reading] = []
        self.logs: list[LogRecord] = []
        self.logs_taken = 0
        self.rejects: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.lines = self.readings = 0
        self.since = time.monotonic()
        self.warnings = WarningLimiter(_LOGGER, WARNING_INTERVAL_S)

    @property
    def waiting(self) -> bool:
        return bool(self.good or self.rejects or self.logs)

    def take(self, parsed: Reading | LogRecord | DecodeError | None) -> None:
        if not self.waiting:
            self.since = time.monotonic()
        if isinstance(parsed, DecodeError):
            reason = parsed.reason.value
            self.rejects[reason] += 1
            self.warnings.warn(
                f"line:{reason}",
                "line rejected stream=%s line=%d reason=%s field=%s detail=%.80s",
                self.name,
                self.lines,
                reason,
                parsed.field,
                parsed.detail,
            )
        elif isinstance(parsed, LogRecord):
            self.logs.append(parsed)
        elif parsed is not None:
            self.good.append(parsed)
        if len(self.good) + len(self.logs) >= LINES_GROUP:
            self.submit()

    def submit(self) -> None:
        if not self.waiting:
            return
        if self.logs and self.log_sink is not None:
            self.log_sink(self.logs)
            self.logs_taken += len(self.logs)
        if self.good or self.rejects:
            self.sink(self.good, self.rejects)
        self.readings += len(self.good)
        self.total.update(self.rejects)
        self.good, self.rejects, self.logs = [], Counter(), []


class _LineReader:
    """Splits a byte stream into lines without blocking on a partial group.

    Reads go to the file descriptor when there is one, so that ``select``
    tells the truth about what is waiting (a buffered reader may hold lines
    that ``select`` cannot see).
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buf = bytearray()
        self._skipping = False
        try:
            self._fd: int | None = stream.fileno()
        except (OSError, ValueError, AttributeError):
            self._fd = None

    def next_line(self) -> bytes | None:
        """The next whole line (without its newline), or None if none is held."""
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > MAX_LINE_BYTES and not self._skipping:
                # Too long to be a reading: report it once, drop it to its end.
                self._buf.clear()
                self._skipping = True
                return TOO_LONG
            if self._skipping:
                self._buf.clear()
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        if self._skipping:  # the end of a line already reported as too long
            self._skipping = False
            return b""
        return line

    def wait(self, until: float) -> bool:
        """Wait until more bytes can be read or ``until`` passes; tell which."""
        if self._fd is None:
            return True
        timeout = max(0.0, until - time.monotonic())
        try:
            readable, _, _ = select.select([self._fd], [], [], timeout)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def fill(self) -> bool:
        """Read what is there (blocking until something is); False at the end."""
        if self._fd is not None:
            chunk = os.read(self._fd, _READ_BYTES)
        else:
            chunk = self._stream.read(_READ_BYTES)
        if not chunk:
            return False
        self._buf += chunk
        return True

    def rest(self) -> bytes:
        """What is left after the end of the stream (a last line without newline)."""
        rest = b"" if self._skipping else bytes(self._buf)
        self._buf.clear()
        return rest


def _parse(
    raw: bytes, max_future_skew_s: float, logs: bool = False
) -> Reading | LogRecord | DecodeError | None:
    if raw is TOO_LONG:
        return DecodeError(
            RejectReason.PAYLOAD_TOO_LARGE, "", f"line over {MAX_LINE_BYTES} bytes"
        )
    try:
        doc = codec.read_payload(raw.strip())
    except DecodeError as exc:
        return exc
    if logs and isinstance(doc, dict) and _is_log(doc):
        record = doc["log"] if isinstance(doc.get("log"), dict) else doc
        try:
            return parse_log(
                record, now_us(), max_future_skew_s, "log", stamp_missing=True
            )[0]
        except DecodeError as exc:
            return exc
    return reading_from_line(doc, now_us(), max_future_skew_s)


def _is_log(doc: dict[str, object]) -> bool:
    return isinstance(doc.get("log"), dict) or ("level" in doc and "metric" not in doc)
