"""Storage: one interface (:class:`Store`), TimescaleDB and SQLite behind it."""

from __future__ import annotations

from hub.storage.base import (
    Accounting,
    Bucket,
    DeadLetter,
    DeviceInfo,
    GatewayInfo,
    IngestItem,
    Store,
    WriteResult,
)

__all__ = [
    "Accounting",
    "Bucket",
    "DeadLetter",
    "DeviceInfo",
    "GatewayInfo",
    "IngestItem",
    "Store",
    "WriteResult",
    "open_store",
]


def open_store(url: str) -> Store:
    """Open the store a URL names: ``postgresql://…`` or ``sqlite:///path``.

    Raises:
        ValueError: the URL's scheme is neither.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from hub.storage.timescale import TimescaleStore

        return TimescaleStore(url)
    if url.startswith("sqlite://"):
        from hub.storage.sqlite import SQLiteStore

        return SQLiteStore(
            url.removeprefix("sqlite://").removeprefix("/") or ":memory:"
        )
    raise ValueError(
        f"unknown store URL {url!r}: expected postgresql://… or sqlite:///…"
    )
