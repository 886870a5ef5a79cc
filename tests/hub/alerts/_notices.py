"""Alerts and notices for the delivery tests."""

from __future__ import annotations

from typing import Any

from hub.alerts.notice import Notice
from hub.storage.base import AlertRecord

T0_US = 1_780_000_000_000_000


def make_alert(n: int = 8, **values: Any) -> AlertRecord:
    """An open critical alert about device ``mote-<n>`` behind ``gw-1``."""
    base: dict[str, Any] = {
        "id": f"alert-{n}",
        "fingerprint": f"device/mote-{n}/impossible/temperature:below_range",
        "kind": "impossible",
        "severity": "critical",
        "summary": f"mote-{n} temperature impossible value",
        "opened_us": T0_US,
        "device": f"mote-{n}",
        "gateway": "gw-1",
        "metric": "temperature",
        "details": {"value": -300.0, "min": -60.0},
    }
    base.update(values)
    return AlertRecord(**base)


def alert_notice(alert: AlertRecord | None = None, **values: Any) -> Notice:
    """A notice of one alert opened."""
    base: dict[str, Any] = {
        "kind": "alert",
        "change": "opened",
        "alerts": (alert or make_alert(),),
        "at_us": T0_US + 1,
    }
    base.update(values)
    return Notice(**base)


def digest_notice(count: int = 5, **values: Any) -> Notice:
    """A digest of ``count`` alerts opened in one storm."""
    base: dict[str, Any] = {
        "kind": "digest",
        "change": "opened",
        "alerts": tuple(make_alert(i, group="storm-1") for i in range(count)),
        "at_us": T0_US + 2,
        "title": "gateway gw-1 storm",
    }
    base.update(values)
    return Notice(**base)
