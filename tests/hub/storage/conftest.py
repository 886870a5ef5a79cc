"""The ``store`` fixture: each contract test runs on SQLite and TimescaleDB."""

from __future__ import annotations

import pytest

from hub.storage.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store(request, tmp_path):
    """A migrated, empty store of each kind, closed afterwards."""
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "store.db")
    else:
        from hub.storage.timescale import TimescaleStore

        opened = TimescaleStore(request.getfixturevalue("pg_dsn"))
    opened.migrate()
    yield opened
    opened.close()
