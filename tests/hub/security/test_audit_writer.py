"""The batched audit writer and the query-string rules."""

from __future__ import annotations

import threading

import pytest

from hub.security.audit import AuditWriter, request_id_from, safe_query
from hub.security.store import AuditQuery, AuditRecord


def _rec(i: int) -> AuditRecord:
    return AuditRecord(time_us=i, kind="request", request_id=f"r{i}")


def test_writer_writes_every_record_once(sqlite_store):
    """Records from several threads all arrive, each once."""
    writer = AuditWriter(sqlite_store, queue_max=10_000, batch_max=50, flush_s=0.05)

    def submit(base: int) -> None:
        for i in range(250):
            writer.submit(_rec(base + i))

    threads = [threading.Thread(target=submit, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.flush(10)
    writer.close()

    ids = [r.request_id for r in sqlite_store.list_audit(AuditQuery(), 10_000)]
    assert len(ids) == 1000
    assert len(set(ids)) == 1000
    assert (writer.written, writer.dropped) == (1000, 0)


class _SlowStore:
    """A store whose writes wait until released (to fill the queue)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[int] = []

    def record_audit(self, records):
        self.entered.set()
        self.release.wait(10)
        self.batches.append(len(records))


def test_full_queue_drops_and_counts():
    """With the writer stuck, records beyond the queue are dropped, not waited on."""
    store = _SlowStore()
    writer = AuditWriter(store, queue_max=5, batch_max=100, flush_s=0.01)
    writer.submit(_rec(0))  # taken by the thread, which then blocks in the store
    assert store.entered.wait(10)
    for i in range(1, 11):
        writer.submit(_rec(i))

    store.release.set()
    assert writer.flush(10)
    writer.close()

    assert writer.dropped == 5
    assert writer.written == 6
    assert sum(store.batches) == 6


def test_close_writes_what_is_queued(sqlite_store):
    """close() writes the queued records before the thread ends."""
    writer = AuditWriter(sqlite_store, queue_max=100, batch_max=500, flush_s=30)
    for i in range(7):
        writer.submit(_rec(i))

    writer.close()

    assert len(sqlite_store.list_audit(AuditQuery(), 100)) == 7


@pytest.mark.parametrize(
    ("path", "query", "stored"),
    [
        ("/v1/devices", b"", None),
        ("/v1/devices", b"gateway=gw-1", "gateway=gw-1"),
        ("/v1/auth/token", b"password=hunter2", None),
        ("/v1/audit", b"access_token=abc&who=ada", "access_token=%2A%2A%2A&who=ada"),
        (
            "/v1/x",
            b"client_secret=s&api_key=k",
            "client_secret=%2A%2A%2A&api_key=%2A%2A%2A",
        ),
    ],
)
def test_safe_query(path, query, stored):
    """No query for /v1/auth/*; secret-looking parameters masked elsewhere."""
    assert safe_query(path, query) == stored


@pytest.mark.parametrize(
    ("given", "kept"),
    [(b"abc-123.x", True), (b"", False), (b"a b", False), (b"x" * 129, False)],
)
def test_request_id_kept_only_when_well_formed(given, kept):
    """A client's X-Request-ID is echoed only if it is short and plain."""
    got = request_id_from([(b"x-request-id", given)])

    assert (got == given.decode()) is kept
    assert len(got) >= 1
