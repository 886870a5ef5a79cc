"""What only the SQLite store has: the file, WAL mode, one connection for threads."""

from __future__ import annotations

import threading

import pytest

from hub.storage import open_store
from hub.storage.sqlite import SQLiteStore
from tests.hub.storage.helpers import ALL_VERSIONS, HOUR_US, block, item, us

RECEIVED = us("2026-11-30T12:00:05+00:00")


@pytest.fixture
def sq_store(tmp_path):
    """A migrated SQLite store in a file."""
    with SQLiteStore(tmp_path / "hub.db") as opened:
        opened.migrate()
        yield opened


def test_open_uses_wal_and_full_sync(sq_store):
    """The file is in WAL mode with synchronous FULL (2): commits survive power cuts."""
    assert sq_store._query("PRAGMA journal_mode") == [("wal",)]
    assert sq_store._query("PRAGMA synchronous") == [(2,)]


def test_reads_from_other_threads_while_writing(sq_store):
    """API threads read while the hub thread writes; every write lands."""
    errors: list[BaseException] = []
    done = threading.Event()

    def read():
        while not done.is_set():
            try:
                sq_store.readings("dev-1", limit=10)
                sq_store.latest("dev-1")
                sq_store.list_devices()
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for seq in range(40):
            ts = [RECEIVED + seq * HOUR_US + i for i in range(100)]
            sq_store.write(
                [item([block("dev-1", "temp", ts, range(100))], RECEIVED, "gw", seq)]
            )
    finally:
        done.set()
        for t in readers:
            t.join(timeout=10)

    assert errors == []
    assert sq_store.count_readings("dev-1") == 4000


def test_second_store_on_same_file_migrates_nothing(tmp_path, sq_store):
    """Another process opening the same file finds the schema applied."""
    with SQLiteStore(tmp_path / "hub.db") as other:
        assert other.migrate() == []
        assert other.schema_versions() == ALL_VERSIONS


def test_open_store_sqlite_url_opens_relative_file(tmp_path, monkeypatch):
    """open_store("sqlite:///hub.db") opens hub.db in the working directory."""
    monkeypatch.chdir(tmp_path)

    store = open_store("sqlite:///hub.db")

    try:
        assert (store.kind, store.migrate()) == ("sqlite", ALL_VERSIONS)
    finally:
        store.close()
    assert (tmp_path / "hub.db").exists()


def test_open_store_sqlite_url_without_path_is_in_memory():
    """open_store("sqlite://") opens an in-memory database."""
    store = open_store("sqlite://")

    try:
        assert (store.kind, store.migrate(), store.count_readings()) == (
            "sqlite",
            ALL_VERSIONS,
            0,
        )
    finally:
        store.close()


def test_open_store_unknown_scheme_raises():
    """A URL of another scheme fails naming the URL."""
    with pytest.raises(ValueError, match="unknown store URL 'mysql://x'"):
        open_store("mysql://x")
