"""Alert records for the tests of the alert API and of ``streamflow alerts``."""

from __future__ import annotations

from typing import Any

from hub.storage.base import AlertRecord, Store

T0 = 1_796_000_000_000_000  # 2026-11-30T…Z, epoch µs
MIN = 60_000_000


def alert(ident: str, opened_us: int, **fields: Any) -> AlertRecord:
    """An alert about a device, with a fingerprint of its own."""
    fields.setdefault("device", "dev-1")
    fields.setdefault("kind", "threshold")
    fields.setdefault("severity", "warning")
    return AlertRecord(
        id=ident,
        fingerprint=f"device/{fields['device']}/{fields['kind']}/{ident}",
        summary=f"summary of {ident}",
        opened_us=opened_us,
        **fields,
    )


def open_alerts(store: Store, *records: AlertRecord) -> None:
    """Open each alert as the monitor would; each must be new."""
    for record in records:
        assert store.open_alert(record, "monitor")
