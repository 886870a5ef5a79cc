"""Versioned schema migrations: SQL files shipped with the package.

Each store kind has a folder under ``hub/storage/migrations/`` holding files
named ``NNNN_what.sql`` (``0001_initial.sql``, ``0002_rollups.sql``, ...). A
store applies the ones it has not recorded in its ``schema_migrations`` table,
in version order, each in a transaction of its own, so that a failed migration
leaves the schema at the previous version and a second run applies nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

MigrationKind = Literal["timescale", "sqlite"]

_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change: its version, its name and its SQL script."""

    version: int
    name: str
    sql: str


def load_migrations(kind: MigrationKind) -> list[Migration]:
    """Read the migrations of one store kind, ordered by version.

    Args:
        kind: the folder under ``hub/storage/migrations/``.

    Returns:
        Every migration of that kind, oldest first.

    Raises:
        ValueError: a ``.sql`` file is misnamed, or two files share a version.
    """
    folder = resources.files("hub.storage").joinpath("migrations", kind)
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME_RE.match(entry.name)
        if match is None:
            raise ValueError(
                f"misnamed migration {entry.name!r}: expected NNNN_name.sql"
            )
        version = int(match.group(1))
        if version in found:
            raise ValueError(
                f"two {kind} migrations with version {version}: "
                f"{found[version].name!r} and {match.group(2)!r}"
            )
        found[version] = Migration(
            version, match.group(2), entry.read_text(encoding="utf-8")
        )
    return [found[v] for v in sorted(found)]


def pending(migrations: list[Migration], applied: set[int]) -> list[Migration]:
    """The migrations not yet applied, in the order to apply them."""
    return [m for m in migrations if m.version not in applied]
