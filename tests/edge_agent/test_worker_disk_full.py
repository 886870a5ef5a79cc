"""The worker on a full disk: local messages refused, held, written once it frees.

The full disk is SQLite's own: ``PRAGMA max_page_count`` pinned to the file's
current size makes every write that needs a new page fail with SQLITE_FULL,
exactly as a full filesystem does (tests/faults/test_edge_disk_full.py does
it with a real filesystem).
"""

from __future__ import annotations

import threading

import pytest

from edge_agent import worker as worker_module
from edge_agent.buffer import Buffer
from edge_agent.local import LocalMessage, message_digest
from edge_agent.worker import Worker
from protocol.readings import Reading
from protocol.validate import now_us
from tests.edge_agent.conftest import buffered_count, edge_settings
from tests.services import wait_for

TOPIC = "sf/v1/dev/d/up/telemetry"
#: Readings per message: enough that each write needs new pages.
PER_MESSAGE = 400


class FillableBuffer(Buffer):
    """A buffer whose file cannot grow while ``full`` is set."""

    full = threading.Event()

    def add(self, *args, **kwargs):
        # In the worker's thread, which owns the connection.
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        cap = pages if self.full.is_set() else 1_073_741_823
        self._db.execute(f"PRAGMA max_page_count={cap}")
        return super().add(*args, **kwargs)


class FakeLocal:
    """Records the PUBACKed packet ids."""

    def __init__(self) -> None:
        self.acks: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append(mid)


@pytest.fixture
def full_worker(tmp_path, monkeypatch):
    """A started worker on a buffer that a test can make full."""
    FillableBuffer.full.clear()
    monkeypatch.setattr(worker_module, "Buffer", FillableBuffer)
    settings = edge_settings(tmp_path, "mqtt://127.0.0.1:1")
    w = Worker(settings)
    w.local = FakeLocal()
    w.start()
    assert w.ready.wait(10)
    yield w
    FillableBuffer.full.clear()
    w.request_stop().result(10)
    w.join(10)


def message(mid: int) -> LocalMessage:
    payload = b'{"mid": %d}' % mid
    ts = now_us()
    return LocalMessage(
        TOPIC,
        mid,
        1,
        False,
        message_digest(TOPIC, payload),
        now_us(),
        tuple(Reading("d", "t", ts + i, float(mid)) for i in range(PER_MESSAGE)),
    )


def test_worker_full_disk_holds_local_messages_until_space_returns(full_worker):
    """No PUBACK while the disk is full; every message written once it frees."""
    full_worker.put_local(message(1))
    wait_for(lambda: full_worker.local.acks == [1], timeout=5, what="first PUBACK")
    FillableBuffer.full.set()
    for mid in (2, 3, 4):
        full_worker.put_local(message(mid))
    wait_for(lambda: full_worker.stats.retrying == 3, timeout=5, what="3 messages held")
    assert full_worker.local.acks == [1]
    assert full_worker.stats.write_failures >= 1

    FillableBuffer.full.clear()
    wait_for(lambda: len(full_worker.local.acks) == 4, timeout=5, what="PUBACKs")
    assert sorted(full_worker.local.acks) == [1, 2, 3, 4]
    wait_for(lambda: full_worker.stats.retrying == 0, timeout=5, what="snapshot")
    assert full_worker.stats.readings == 4 * PER_MESSAGE
    assert buffered_count(full_worker.settings.buffer_path) == 4 * PER_MESSAGE
