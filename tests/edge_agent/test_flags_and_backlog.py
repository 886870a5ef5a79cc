"""Reading flags leave the edge in the envelope; the state reports the backlog."""

from __future__ import annotations

import orjson

from edge_agent.buffer import Buffer
from protocol.const import FLAG_SERVER_TIME
from protocol.readings import Reading

T0 = 1_796_040_000_000_000
SECOND = 1_000_000


def open_buffer(tmp_path) -> Buffer:
    return Buffer(tmp_path / "buffer.db", gateway_id="gw-1", max_bytes=10_000_000)


def test_server_time_flag_is_encoded_per_reading(tmp_path):
    """A reading stamped by the gateway carries FLAG_SERVER_TIME in the batch."""
    buf = open_buffer(tmp_path)
    buf.add(
        [
            Reading("d", "m", T0, 1.0, flags=FLAG_SERVER_TIME),
            Reading("d", "m", T0 + 1, 2.0),
        ],
        received_us=T0,
    )
    batch = buf.form_batch(late=False, cutoff_us=0, max_readings=10, max_bytes=100_000)
    (series,) = orjson.loads(batch.payload)["series"]
    assert series["flags"] == [FLAG_SERVER_TIME, 0]


def test_batch_without_flags_has_no_flags_array(tmp_path):
    """The usual batch, with no flag set, stays as small as before."""
    buf = open_buffer(tmp_path)
    buf.add([Reading("d", "m", T0, 1.0)], received_us=T0)
    batch = buf.form_batch(late=False, cutoff_us=0, max_readings=10, max_bytes=100_000)
    (series,) = orjson.loads(batch.payload)["series"]
    assert "flags" not in series


def test_depth_reports_readings_older_than_the_cutoff_as_backlog(tmp_path):
    """Readings received before the cutoff, pending or in late batches, are backlog."""
    buf = open_buffer(tmp_path)
    buf.add([Reading("d", "m", T0 + i, float(i)) for i in range(3)], received_us=T0)
    buf.add(
        [Reading("d", "m", T0 + 10 + i, 1.0) for i in range(2)],
        received_us=T0 + 30 * SECOND,
    )
    buf.form_batch(late=True, cutoff_us=T0 + SECOND, max_readings=2, max_bytes=100_000)

    depth = buf.depth(late_cutoff_us=T0 + SECOND)

    assert (depth.readings, depth.backlog_readings, depth.backlog_oldest_us) == (
        5,
        3,
        T0,
    )
    assert buf.depth().backlog_readings == 0
