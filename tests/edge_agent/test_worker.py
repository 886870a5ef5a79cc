"""The worker alone: group writes, PUBACK after commit, redeliveries skipped."""

from __future__ import annotations

from collections import Counter

import pytest

from edge_agent.local import LocalMessage, message_digest
from edge_agent.worker import Submission, Worker
from protocol.readings import Reading
from protocol.validate import now_us
from tests.edge_agent.conftest import buffered_count, edge_settings
from tests.services import wait_for


class FakeLocal:
    """Records PUBACKs and how many readings were committed at each."""

    def __init__(self, db) -> None:
        self.db = db
        self.acks: list[tuple[int, int, int]] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append((mid, qos, buffered_count(self.db)))


@pytest.fixture
def worker(tmp_path):
    """A started worker with no uplink connection and a fake local input."""
    settings = edge_settings(tmp_path, "mqtt://127.0.0.1:1")
    w = Worker(settings)
    w.local = FakeLocal(settings.buffer_path)
    w.start()
    assert w.ready.wait(10)
    yield w
    w.request_stop().result(10)
    w.join(10)


def message(mid: int, value: float, dup: bool = False) -> LocalMessage:
    payload = b'{"t": %f}' % value
    return LocalMessage(
        "sf/v1/dev/d/up/telemetry",
        mid,
        1,
        dup,
        message_digest("sf/v1/dev/d/up/telemetry", payload),
        now_us(),
        (Reading("d", "t", now_us(), value),),
    )


def test_worker_pubacks_after_commit(worker):
    """A local message is PUBACKed only once its reading is committed."""
    worker.put_local(message(5, 1.0))
    wait_for(lambda: worker.local.acks, timeout=5, what="PUBACK")
    assert worker.local.acks == [(5, 1, 1)]


def test_worker_skips_redelivery_of_taken_message(worker):
    """A redelivered copy (DUP, same packet id and bytes) is acked, not stored."""
    worker.put_local(message(9, 2.0))
    wait_for(lambda: worker.local.acks, timeout=5, what="first PUBACK")
    worker.put_local(message(9, 2.0, dup=True))
    wait_for(lambda: len(worker.local.acks) == 2, timeout=5, what="second PUBACK")
    assert (worker.stats.readings, worker.stats.duplicates) == (1, 1)


def test_worker_keeps_redelivery_never_taken(worker):
    """A DUP message the buffer has not seen is stored like any other."""
    worker.put_local(message(3, 4.0, dup=True))
    wait_for(lambda: worker.local.acks, timeout=5, what="PUBACK")
    assert (worker.stats.readings, worker.stats.duplicates) == (1, 0)


def test_worker_same_packet_id_new_payload_is_kept(worker):
    """A packet id reused for a different payload is a new message."""
    worker.put_local(message(3, 4.0))
    worker.put_local(message(3, 5.0, dup=True))
    wait_for(lambda: len(worker.local.acks) == 2, timeout=5, what="PUBACKs")
    assert worker.stats.readings == 2


def test_worker_counts_submission_rejects(worker):
    """Rejects handed with a submission land in the cumulative counters."""
    item = Submission([Reading("d", "t", now_us(), 1.0)], Counter(bad_metric=2), 0)
    worker.put(item)
    assert item.future.result(5).kept == 1
    wait_for(lambda: worker.stats.rejected, timeout=5, what="snapshot")
    assert worker.stats.rejected == {"bad_metric": 2}
