"""JSON-lines input from files, pipes and stdin-like streams."""

from __future__ import annotations

import io
import os
import threading
import time
from collections import Counter

from edge_agent.stream_input import MAX_LINE_BYTES, read_lines
from protocol.readings import Reading

NOW_TS = "2026-11-30T12:00:00Z"


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[list[Reading], Counter[str], float]] = []

    def __call__(self, readings, rejects) -> None:
        self.calls.append((list(readings), Counter(rejects), time.monotonic()))

    def readings(self) -> list[Reading]:
        return [r for call in self.calls for r in call[0]]


def line(i: int) -> bytes:
    return b'{"dev":"d","metric":"t","ts":"%s","value":%d}\n' % (NOW_TS.encode(), i)


def test_read_lines_counts_readings_and_rejects():
    """Good lines become readings; bad lines are counted by reason; blanks skip."""
    data = (
        line(1)
        + b"\n"
        + b"not json\n"
        + b'{"dev":"d","metric":"t","value":NaN}\n'
        + b'{"dev":"d","metric":"t","value":null}\n'
        + line(2)
    )
    sink = Sink()
    result = read_lines(io.BytesIO(data), sink, max_future_skew_s=300)
    assert (result.lines, result.readings) == (6, 2)
    assert result.rejects == {"invalid_json": 1, "non_finite_value": 1}
    assert [r.value for r in sink.readings()] == [1.0, 2.0]


def test_read_lines_groups_of_1000():
    """2,500 lines are submitted as groups of 1,000, 1,000 and 500."""
    sink = Sink()
    read_lines(
        io.BytesIO(b"".join(line(i) for i in range(2500))), sink, max_future_skew_s=300
    )
    assert [len(c[0]) for c in sink.calls] == [1000, 1000, 500]


def test_read_lines_last_line_without_newline():
    """A last line without a newline is read too."""
    sink = Sink()
    result = read_lines(
        io.BytesIO(line(1) + line(2).rstrip()), sink, max_future_skew_s=300
    )
    assert result.readings == 2


def test_read_lines_too_long_line_rejected_once():
    """A line over the limit is one payload_too_large reject; the next is read."""
    sink = Sink()
    data = b'{"pad":"' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n' + line(7)
    result = read_lines(io.BytesIO(data), sink, max_future_skew_s=300)
    assert result.rejects == {"payload_too_large": 1}
    assert [r.value for r in sink.readings()] == [7.0]


def test_read_lines_pipe_pause_submits_early():
    """When a pipe goes quiet, the lines so far are submitted without waiting."""
    rfd, wfd = os.pipe()
    sink = Sink()
    with os.fdopen(rfd, "rb", buffering=0) as reader:
        thread = threading.Thread(
            target=read_lines, args=(reader, sink), kwargs={"max_future_skew_s": 300}
        )
        thread.start()
        os.write(wfd, line(1) + line(2))
        started = time.monotonic()
        deadline = started + 5
        while not sink.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        first = sink.calls[0] if sink.calls else None
        os.write(wfd, line(3))
        os.close(wfd)
        thread.join(5)
    assert first is not None
    assert [r.value for r in first[0]] == [1.0, 2.0]
    assert first[2] - started < 0.5
    assert [r.value for r in sink.readings()] == [1.0, 2.0, 3.0]
