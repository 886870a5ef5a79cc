"""The pipeline while the store fails: no ack, a bounded queue, exact recovery.

Unit level: the pipeline is fed directly (as paho's network thread would) and
acks go to a recording transport; the store is a real SQLite store behind a
wrapper that raises while a switch is on.
"""

from __future__ import annotations

import logging
import threading

import orjson
import pytest

from hub.config import HubSettings
from hub.ingest import IngestPipeline
from hub.storage import open_store
from protocol import topics
from protocol.models import BatchAck
from tests.hub.test_ingest import SECOND, T0, batch, series
from tests.services import wait_for


class RecordingTransport:
    """Keeps what the pipeline publishes and PUBACKs, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.published: list[tuple[str, BatchAck]] = []
        self.pubacks: list[int] = []

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        with self._lock:
            self.published.append((topic, BatchAck.model_validate_json(payload)))

    def puback(self, mid: int, qos: int) -> None:
        with self._lock:
            self.pubacks.append(mid)

    def acked_seqs(self) -> list[int]:
        with self._lock:
            return sorted(
                s
                for _, ack in self.published
                for lo, hi in ack.seqs
                for s in range(lo, hi + 1)
            )


class FlakyStore:
    """A store whose writes raise while ``failing`` is set."""

    def __init__(self, store) -> None:
        self._store = store
        self.failing = threading.Event()
        self.failed_writes = 0

    def write(self, items, dead_letters=()):
        if self.failing.is_set():
            self.failed_writes += 1
            raise ConnectionError("database down (injected)")
        return self._store.write(items, dead_letters)

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.fixture
def sqlite_store(tmp_path):
    """A migrated SQLite store."""
    store = open_store(f"sqlite:///{tmp_path}/hub.db")
    store.migrate()
    yield store
    store.close()


def make_pipeline(store, tmp_path, queue_max: int = 4):
    """A pipeline with a small queue and a short shed delay."""
    settings = HubSettings(
        data_dir=tmp_path, queue_max_messages=queue_max, write_max_delay_s=0.0
    )
    transport = RecordingTransport()
    pipeline = IngestPipeline(settings, store, transport, [], shed_after_s=0.2)
    return pipeline, transport


def offer(pipeline, seq: int, mid: int) -> None:
    """Feed one batch of gateway gw-f with two readings, as paho would."""
    payload = batch(
        "gw-f",
        seq,
        series("dev-f", "t", [T0 + seq * SECOND, T0 + seq * SECOND + 1], [1.0, 2.0]),
    )
    pipeline.receive(topics.batch("gw-f").encode(), payload, mid, 1, False)


def test_store_down_no_ack_queue_bounded_then_exact_recovery(sqlite_store, tmp_path):
    """Store down: nothing acked, queue full then shed; recovery stores all once."""
    flaky = FlakyStore(sqlite_store)
    flaky.failing.set()
    pipeline, transport = make_pipeline(flaky, tmp_path)
    pipeline.start()
    try:
        # Outage: the writer holds seq 1 and retries; 4 wait in the queue;
        # 5 more wait the shed delay each, then are PUBACKed and dropped.
        offer(pipeline, 1, mid=101)
        wait_for(lambda: flaky.failed_writes >= 1, timeout=5)
        for seq in range(2, 11):
            offer(pipeline, seq, mid=100 + seq)

        assert transport.published == []
        assert transport.pubacks == [106, 107, 108, 109, 110]
        assert pipeline.metrics.snapshot()["queue_depth"] == 4
        assert pipeline.metrics.snapshot()["shed"] == {"batch": 5}
        assert sqlite_store.count_readings() == 0

        # Recovery; the edge agent resends the shed batches (never hub-acked)
        # and, after a timeout, seq 1 too.
        flaky.failing.clear()
        wait_for(lambda: transport.acked_seqs() == [1, 2, 3, 4, 5], timeout=10)
        for seq in (6, 7, 8, 9, 10, 1):
            offer(pipeline, seq, mid=200 + seq)
        wait_for(lambda: len(transport.pubacks) == 16, timeout=10)
    finally:
        pipeline.stop(5)

    assert transport.acked_seqs() == [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert sorted(transport.pubacks) == [*range(101, 111), 201, *range(206, 211)]
    assert sqlite_store.count_readings("dev-f") == 20
    snap = pipeline.metrics.snapshot()
    assert (snap["readings_new"], snap["duplicates"], snap["duplicate_batches"]) == (
        20,
        2,
        1,
    )


def test_store_outage_logged_once_as_error(sqlite_store, tmp_path, caplog):
    """An outage is one ERROR line however many retries fail, then one INFO."""
    flaky = FlakyStore(sqlite_store)
    flaky.failing.set()
    pipeline, transport = make_pipeline(flaky, tmp_path)
    with caplog.at_level(logging.INFO, logger="hub.ingest"):
        pipeline.start()
        offer(pipeline, 1, mid=1)
        wait_for(lambda: flaky.failed_writes >= 3, timeout=5)
        flaky.failing.clear()
        wait_for(lambda: transport.pubacks == [1], timeout=5)
        pipeline.stop(5)

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("store write failed, retrying without acking")
    assert "ConnectionError: database down (injected)" in errors[0]
    assert pipeline.metrics.snapshot()["store_errors"] == flaky.failed_writes
    recovered = [r for r in caplog.records if "store recovered" in r.getMessage()]
    assert [r.levelno for r in recovered] == [logging.INFO]


def test_stop_drains_queue_into_store_and_acks(sqlite_store, tmp_path):
    """stop() commits and acks every queued message before returning."""
    pipeline, transport = make_pipeline(sqlite_store, tmp_path, queue_max=16)
    for seq in range(1, 9):  # queued before the writer runs
        offer(pipeline, seq, mid=seq)
    pipeline.start()

    drained = pipeline.stop(5)

    assert drained is True
    assert transport.acked_seqs() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert transport.pubacks == [1, 2, 3, 4, 5, 6, 7, 8]
    assert sqlite_store.count_readings() == 16


def test_stop_with_store_down_leaves_messages_unacked(sqlite_store, tmp_path):
    """When the store stays down past the grace, stop() returns False, acks nothing."""
    flaky = FlakyStore(sqlite_store)
    flaky.failing.set()
    pipeline, transport = make_pipeline(flaky, tmp_path)
    pipeline.start()
    offer(pipeline, 1, mid=1)
    offer(pipeline, 2, mid=2)
    wait_for(lambda: flaky.failed_writes >= 1, timeout=5)

    drained = pipeline.stop(0.5)

    assert drained is False
    assert transport.published == []
    assert transport.pubacks == []


def test_messages_after_stop_neither_queued_nor_acked(sqlite_store, tmp_path):
    """Once stopping, a message is left unacked for the broker to redeliver."""
    pipeline, transport = make_pipeline(sqlite_store, tmp_path)
    pipeline.start()
    pipeline.stop(5)

    offer(pipeline, 1, mid=1)

    assert transport.pubacks == []
    assert pipeline.metrics.snapshot()["queue_depth"] == 0
    assert sqlite_store.count_readings() == 0


def test_on_committed_hook_sees_only_new_readings(sqlite_store, tmp_path):
    """Hooks get each commit's result; a resent batch adds nothing new."""
    pipeline, transport = make_pipeline(sqlite_store, tmp_path)
    seen: list[int] = []
    pipeline.on_committed.append(lambda result: seen.append(result.inserted))
    pipeline.start()
    offer(pipeline, 1, mid=1)
    wait_for(lambda: transport.pubacks == [1], timeout=5)
    offer(pipeline, 1, mid=2)
    wait_for(lambda: transport.pubacks == [1, 2], timeout=5)
    pipeline.stop(5)

    assert seen == [2, 0]


def test_ack_payload_is_protocol_json(sqlite_store, tmp_path):
    """The ack on the wire is BatchAck JSON with seqs as [first, last] pairs."""
    raw: list[bytes] = []
    pipeline, transport = make_pipeline(sqlite_store, tmp_path)
    transport.publish = lambda topic, payload, qos: raw.append(payload)
    pipeline.start()
    offer(pipeline, 9, mid=1)
    wait_for(lambda: len(raw) == 1, timeout=5)
    pipeline.stop(5)

    assert orjson.loads(raw[0]) == {"v": 1, "seqs": [[9, 9]], "rejected": []}
