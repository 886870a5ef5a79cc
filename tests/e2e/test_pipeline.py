"""The whole pipeline as separate processes stores exactly the accepted readings.

Replay (real Intel lab lines as plain JSON sensors) -> local Mosquitto ->
edge agent -> hub broker (amqtt and Mosquitto) -> hub -> store (SQLite and
TimescaleDB): four runs of the same data with the same exact accounting.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from hub.client import StreamFlowClient
from tests.e2e.harness import (
    DataSlice,
    Site,
    assert_exact_accounting,
    cut_slice,
    load_slice,
)
from tests.services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.slow]

#: A replay takes 13.5 s; delivery ends a few seconds later.
DELIVERY_TIMEOUT_S = 60.0

_ADMIN_PASSWORD = "admin-password-of-the-e2e-test"
_RFC3339_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(text: str) -> int:
    """Epoch µs of an RFC 3339 time, in integers (no float rounding)."""
    delta = datetime.fromisoformat(text) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def test_pipeline_stores_exactly_accepted_readings(
    site: Site, intel_slice: DataSlice, request
):
    """Every accepted reading is stored once, value for value; rejects counted."""
    site.start(intel_slice.path)
    site.wait_delivered(intel_slice, DELIVERY_TIMEOUT_S)
    out = site.finish()
    print(f"{request.node.name}: {out.figures(intel_slice)}")

    assert (intel_slice.lines, len(intel_slice.rows)) == (800, 3187)
    assert intel_slice.rejected == {"bad_device_id": 1}
    assert_exact_accounting(out, intel_slice)


@pytest.mark.db
@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("store_url", ["timescaledb"], indirect=True)
def test_api_returns_one_mote_value_for_value(
    site: Site, intel_slice: DataSlice, tmp_path
):
    """`streamflow api` serves a mote's stored readings exactly, with µs times."""
    # The API's first start makes the admin with this password (start_api
    # runs it with the hub's environment).
    site.hub.env["STREAMFLOW_ADMIN_PASSWORD"] = _ADMIN_PASSWORD
    data = load_slice(cut_slice(intel_slice.path, tmp_path / "head.txt.gz", 1, 200))
    site.start(data.path, speedup=0)
    site.wait_delivered(data, DELIVERY_TIMEOUT_S)
    base = site.start_api(free_port())
    device = max(
        sorted({r[0] for r in data.rows}), key=lambda d: len(data.device_rows(d))
    )

    with StreamFlowClient(base, username="admin", password=_ADMIN_PASSWORD) as api:
        response = api.get(f"/v1/devices/{device}/readings", params={"limit": 100_000})

    assert response.status_code == 200
    body = response.json()
    assert all(_RFC3339_US.fullmatch(r["ts"]) for r in body)
    got = sorted((device, r["metric"], _epoch_us(r["ts"]), r["value"]) for r in body)
    expected = sorted(data.device_rows(device))
    assert len(expected) >= 12
    assert got == expected
