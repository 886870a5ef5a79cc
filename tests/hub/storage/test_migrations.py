"""The migration loader: versioned SQL files, in order, checked for mistakes."""

from __future__ import annotations

import pytest

from hub.storage import _migrations
from hub.storage._migrations import Migration, load_migrations, pending


def test_load_migrations_both_kinds_have_the_same_versions():
    """Every schema version exists for both stores, so they stay in step."""
    timescale = load_migrations("timescale")
    sqlite = load_migrations("sqlite")

    expected = [
        (1, "initial"),
        (2, "processors"),
        (3, "edge_rejects"),
        (4, "alerts"),
        (5, "device_logs"),
        (6, "auth"),
        (7, "broker_credentials"),
    ]
    assert [(m.version, m.name) for m in timescale] == expected
    assert [(m.version, m.name) for m in sqlite] == expected


def test_load_migrations_orders_by_version(tmp_path, monkeypatch):
    """Files are applied by version number, not by listing order."""
    folder = tmp_path / "migrations" / "sqlite"
    folder.mkdir(parents=True)
    for name in ("0010_late.sql", "0002_second.sql", "0001_first.sql", "notes.txt"):
        (folder / name).write_text(f"-- {name}\n")
    monkeypatch.setattr(_migrations.resources, "files", lambda package: tmp_path)

    found = load_migrations("sqlite")

    assert [(m.version, m.name) for m in found] == [
        (1, "first"),
        (2, "second"),
        (10, "late"),
    ]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["1_initial.sql"], "misnamed migration '1_initial.sql'"),
        (["0001_Initial.sql"], "misnamed migration"),
        (["0001_a.sql", "0001_b.sql"], "two sqlite migrations with version 1"),
    ],
)
def test_load_migrations_bad_names_raise(tmp_path, monkeypatch, names, message):
    """A misnamed file or a reused version fails before anything is applied."""
    folder = tmp_path / "migrations" / "sqlite"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("SELECT 1;\n")
    monkeypatch.setattr(_migrations.resources, "files", lambda package: tmp_path)

    with pytest.raises(ValueError, match=message):
        load_migrations("sqlite")


def test_pending_skips_applied_versions():
    """pending() keeps the unapplied migrations in version order."""
    migrations = [Migration(v, f"m{v}", "") for v in (1, 2, 3)]

    assert [m.version for m in pending(migrations, {1, 3})] == [2]
