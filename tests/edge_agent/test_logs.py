"""Device log records at the edge: buffered like readings, sealed into batches."""

from __future__ import annotations

import io
import signal
import sqlite3
from collections import Counter

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.batcher import PendingLog, encode_batch
from edge_agent.buffer import DROP_LOG_BUFFER_FULL, Buffer
from edge_agent.stream_input import read_lines
from protocol import decode_batch
from protocol.logs import LogRecord, log_topic
from protocol.models import BatchEnvelope
from protocol.readings import Reading
from protocol.validate import now_us
from tests.edge_agent.conftest import GW, edge_settings, spawn_agent
from tests.services import wait_for

T0 = 1_796_040_000_000_000  # 2026-11-30T12:00:00Z in µs
NOW = T0 + 3_600_000_000


def clock() -> int:
    return NOW


def open_buffer(tmp_path, **kwargs) -> Buffer:
    kwargs.setdefault("gateway_id", "gw-1")
    kwargs.setdefault("max_bytes", 64 * 1024 * 1024)
    return Buffer(tmp_path / "buffer.sqlite", clock=clock, **kwargs)


def logs(n: int, dev: str = "dev-1", level: str = "error", size: int = 10):
    return [
        LogRecord(dev, T0 + i, level, f"{i:0{size}d}", "i2c" if i % 2 else "")
        for i in range(n)
    ]


def form(buf: Buffer, n: int = 1000, max_bytes: int = 128 * 1024, late=False):
    return buf.form_batch(
        late=late, cutoff_us=NOW - 10_000_000, max_readings=n, max_bytes=max_bytes
    )


def batch_logs(payload: bytes) -> list[LogRecord]:
    return decode_batch(payload, now_us()).logs


# -- the buffer ----------------------------------------------------------------


def test_buffer_logs_pending_then_in_batch_with_readings(tmp_path):
    """Logs added with readings go into the same sealed batch, and decode back."""
    buf = open_buffer(tmp_path)
    records = logs(3)
    buf.add([Reading("dev-1", "t", T0, 1.5)], logs=records)
    assert (buf.pending, buf.pending_logs, buf.logs_held) == (4, 3, 3)
    batch = form(buf)
    assert (batch.readings, batch.logs) == (1, 3)
    assert batch_logs(batch.payload) == records
    assert decode_batch(batch.payload, NOW).accepted == 1
    assert (buf.pending, buf.logs_held, list(buf.logs())) == (0, 3, records)
    BatchEnvelope.model_validate_json(batch.payload)


def test_buffer_logs_only_batch(tmp_path):
    """A batch may carry logs and no readings (an empty series list)."""
    buf = open_buffer(tmp_path)
    buf.add([], logs=logs(2))
    batch = form(buf)
    doc = orjson.loads(batch.payload)
    assert (doc["series"], len(doc["logs"]), batch.readings) == ([], 2, 0)


def test_buffer_readings_batch_bytes_unchanged(tmp_path):
    """Without logs a batch is byte for byte what it was before logs existed."""
    buf = open_buffer(tmp_path)
    buf.add([Reading("dev-1", "t", T0, 1.5), Reading("dev-2", "h", T0, 40.0)])
    seq = buf.next_seq
    batch = form(buf)
    expected = (
        b'{"v":1,"gw":"gw-1","seq":%d,"sent":%d,"late":false,"series":['
        b'{"dev":"dev-1","metric":"t","unit":"","ts":[%d],"values":[1.5]},'
        b'{"dev":"dev-2","metric":"h","unit":"","ts":[%d],"values":[40.0]}]}'
    ) % (seq, NOW, T0, T0)
    assert batch.payload == expected


def test_encode_batch_logs_member_only_when_given():
    """encode_batch leaves out ``logs`` when there are none."""
    row = PendingLog(1, "d", T0, "error", "m", "", 0, NOW)
    assert b'"logs"' not in encode_batch("g", 1, NOW, False, [], logs=[])
    assert orjson.loads(encode_batch("g", 1, NOW, False, [], logs=[row]))["logs"] == [
        {"dev": "d", "ts": T0, "level": "error", "msg": "m"}
    ]


def test_buffer_ack_removes_logs(tmp_path):
    """A batch's logs leave the disk only with the hub's ack of that batch."""
    buf = open_buffer(tmp_path)
    buf.add([], logs=logs(5))
    batch = form(buf)
    assert buf.logs_held == 5
    buf.ack([(batch.seq - 1, batch.seq - 1)])
    assert buf.logs_held == 5
    buf.ack([(batch.seq, batch.seq)])
    assert (buf.logs_held, buf.batches, list(buf.logs())) == (0, 0, [])


def test_buffer_logs_survive_reopen(tmp_path):
    """Pending and batched logs are on disk: a new Buffer on the file has them."""
    buf = open_buffer(tmp_path)
    buf.add([], logs=logs(4))
    form(buf, n=2)
    buf.add([], logs=logs(1, dev="dev-2"))
    before = list(buf.logs())
    size = buf.size
    buf.close()
    again = open_buffer(tmp_path)
    assert (list(again.logs()), again.logs_held, again.pending_logs) == (before, 5, 3)
    assert again.size == size
    again.close()


def test_buffer_logs_and_readings_share_a_batch(tmp_path):
    """Logs get the room readings leave, and at least a quarter of a batch."""
    buf = open_buffer(tmp_path)
    buf.add([Reading("d", "t", T0 + i, 1.0) for i in range(100)], logs=logs(100))
    batch = form(buf, n=40)
    assert (batch.logs, batch.readings) == (10, 30)
    for _ in range(2):
        form(buf, n=40)  # 30 readings each time: 10 are left
    batch = form(buf, n=40)
    assert (batch.logs, batch.readings) == (30, 10)
    batch = form(buf, n=40)
    assert (batch.logs, batch.readings) == (40, 0)


def test_buffer_logs_fit_byte_bound(tmp_path):
    """Long logs are split over batches under max_bytes; none is lost."""
    buf = open_buffer(tmp_path)
    buf.add([], logs=logs(200, size=1000))
    taken = []
    while buf.pending_logs:
        batch = form(buf, n=4000, max_bytes=16 * 1024)
        assert len(batch.payload) <= 16 * 1024
        taken += batch_logs(batch.payload)
    assert taken == logs(200, size=1000)


def test_buffer_drop_newest_refuses_logs_counted(tmp_path):
    """drop_newest refuses logs past the bound, counted under log_buffer_full."""
    buf = open_buffer(tmp_path, max_bytes=300_000, full_policy="drop_newest")
    buf.add([], logs=logs(1000, size=1000))
    kept = buf.pending_logs
    assert 0 < kept < 1000
    assert buf.dropped == {DROP_LOG_BUFFER_FULL: 1000 - kept}
    assert buf.size <= buf.max_bytes


def test_buffer_drop_oldest_drops_old_logs_counted(tmp_path):
    """drop_oldest deletes the oldest logs to make room, and counts them."""
    buf = open_buffer(tmp_path, max_bytes=300_000)
    buf.add([], logs=logs(1000, size=1000))
    kept = list(buf.logs())
    assert kept == logs(1000, size=1000)[-len(kept) :]
    assert buf.dropped == {DROP_LOG_BUFFER_FULL: 1000 - len(kept)}
    assert buf.size <= buf.max_bytes


def test_buffer_from_before_logs_is_upgraded(tmp_path):
    """A buffer file made before logs existed gets their table and column."""
    buf = open_buffer(tmp_path)
    buf.add([Reading("d", "t", T0, 1.0)])
    form(buf)
    buf.close()
    db = sqlite3.connect(tmp_path / "buffer.sqlite")
    db.execute("DROP TABLE pending_logs")
    db.execute("ALTER TABLE batches DROP COLUMN logs")
    db.commit()
    db.close()
    again = open_buffer(tmp_path)
    assert (again.batches, again.readings_held, again.logs_held) == (1, 1, 0)
    again.add([], logs=logs(1))
    assert again.pending_logs == 1
    again.close()


def test_buffer_late_logs_in_late_batch(tmp_path):
    """Logs received before the cutoff go out in a late batch, flagged late."""
    buf = open_buffer(tmp_path)
    buf.add([], received_us=NOW - 60_000_000, logs=logs(2))
    assert form(buf) is None
    batch = form(buf, late=True)
    assert batch.late
    assert all(r.flags & 2 for r in batch_logs(batch.payload))


# -- JSON lines ------------------------------------------------------------------


def test_read_lines_takes_log_lines():
    """Log lines go to the log sink, readings to the sink, bad ones counted."""
    ts = "2026-11-30T12:00:00Z"
    data = b"\n".join(
        [
            b'{"dev":"d","metric":"t","ts":"%s","value":1}' % ts.encode(),
            b'{"dev":"d","ts":"%s","level":"warn","msg":"low battery"}' % ts.encode(),
            b'{"log":{"dev":"d","level":"error","msg":"no ts"}}',
            b'{"dev":"d","ts":"%s","level":"loud","msg":"x"}' % ts.encode(),
            b'{"dev":"d","ts":"%s","level":"info","msg":7}' % ts.encode(),
        ]
    )
    readings: list[Reading] = []
    got: list[LogRecord] = []
    result = read_lines(
        io.BytesIO(data),
        lambda good, rejects: readings.extend(good),
        max_future_skew_s=1e9,
        log_sink=got.extend,
    )
    assert (result.lines, result.readings, result.logs) == (5, 1, 2)
    assert result.rejects == {"bad_log_level": 1, "bad_log_message": 1}
    assert [(r.level, r.message) for r in got] == [
        ("warning", "low battery"),
        ("error", "no ts"),
    ]
    assert got[1].flags == 1  # stamped on receipt


def test_read_lines_without_log_sink_reads_readings_only():
    """Without a log sink a log line is read as a reading line: no log taken."""
    data = b'{"dev":"d","ts":1796040000,"level":"warn","msg":"x"}\n'
    result = read_lines(io.BytesIO(data), lambda g, r: None, max_future_skew_s=1e9)
    assert (result.lines, result.readings, result.logs) == (1, 0, 0)


# -- through a real broker ------------------------------------------------------


@pytest.mark.broker
def test_local_log_topic_reaches_hub(tmp_path, broker, responder, start_agent):
    """Logs on sf/v1/dev/{dev}/up/log are buffered and delivered in a batch."""
    settings = edge_settings(tmp_path, broker.url, local_url=broker.url)
    agent = start_agent(settings)
    sensor = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sf-test-logger")
    sensor.connect(broker.host, broker.port, keepalive=10)
    sensor.loop_start()
    ts = now_us() - 1000
    payloads = [
        {"ts": ts, "level": "ERR", "msg": "sensor lost", "src": "sht31"},
        [{"ts": ts + 1, "level": "info", "msg": "back"}, {"level": 3, "msg": "x"}],
        {"log": {"ts": ts + 2, "level": "warning", "msg": "hot"}},
    ]
    for body in payloads:
        sensor.publish(log_topic("dev-7"), orjson.dumps(body), qos=1).wait_for_publish(
            5
        )
    sensor.disconnect()
    sensor.loop_stop()

    def delivered() -> list[LogRecord]:
        return [r for got in responder.distinct() for r in batch_logs(got.payload)]

    wait_for(lambda: len(delivered()) == 3, timeout=10, what="logs at the hub")
    assert [(r.device, r.ts_us, r.level, r.message) for r in delivered()] == [
        ("dev-7", ts, "error", "sensor lost"),
        ("dev-7", ts + 1, "info", "back"),
        ("dev-7", ts + 2, "warning", "hot"),
    ]
    assert agent.stats.rejected == {"bad_log_level": 1}


def _on_disk(path) -> int:
    """Log records in a buffer file (pending or batched), by a second reader."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute(
            "SELECT (SELECT COUNT(*) FROM pending_logs)"
            " + (SELECT COALESCE(SUM(logs), 0) FROM batches)"
        ).fetchone()
        return int(row[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        db.close()


@pytest.mark.broker
@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
def test_logs_survive_kill_9_and_are_delivered(
    tmp_path, broker, responder, start_agent
):
    """Logs on disk when the agent is SIGKILLed are all delivered by the next run."""
    responder.pause()  # nothing is acked: everything stays on the disk
    n = 500
    ts0 = now_us() - 60_000_000
    lines = [
        orjson.dumps(
            {"dev": f"dev-{i % 5}", "ts": ts0 + i, "level": "error", "msg": f"m{i}"}
        )
        for i in range(n)
    ]
    source = tmp_path / "logs.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    data_dir = tmp_path / "edge"
    proc = spawn_agent(
        tmp_path,
        "--gateway-id",
        GW,
        "--hub-url",
        broker.url,
        "--data-dir",
        str(data_dir),
        "--input",
        str(source),
        STREAMFLOW_EDGE_BATCH_MAX_AGE_S="0.05",
    )
    try:
        path = data_dir / "buffer.sqlite"
        wait_for(lambda: _on_disk(path) == n, timeout=30, what="logs on disk")
        wait_for(lambda: responder.copies(), timeout=10, what="a batch sent")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert _on_disk(data_dir / "buffer.sqlite") == n

    responder.resume()
    settings = edge_settings(tmp_path, broker.url)
    agent = start_agent(settings)

    def delivered() -> Counter[tuple[str, int, str]]:
        return Counter(
            (r.device, r.ts_us, r.message)
            for got in responder.distinct()
            for r in batch_logs(got.payload)
        )

    wait_for(
        lambda: agent.stats.batches == 0 and agent.stats.pending == 0,
        timeout=30,
        what="buffer empty",
    )
    assert delivered() == Counter((f"dev-{i % 5}", ts0 + i, f"m{i}") for i in range(n))
