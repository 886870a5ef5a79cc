"""Which adapters read zone-less device times in naive_time_zone, and which reject."""

from __future__ import annotations

from hub.config import AdapterRoute, HubSettings
from hub.service import load_adapters
from protocol.batch import Limits
from protocol.const import RejectReason

RECEIVED = 1_796_314_800_000_000  # 2026-12-03T16:20:00Z


def adapters(tmp_path) -> dict[str, object]:
    settings = HubSettings(
        data_dir=tmp_path,
        naive_time_zone="Europe/Berlin",
        adapters=[
            AdapterRoute(adapter="json", filter="sf/v1/dev/+/up/telemetry"),
            AdapterRoute(adapter="tasmota", filter="tele/+/SENSOR"),
        ],
    )
    return {type(a).__name__: a for _, a in load_adapters(settings)}


def test_json_adapter_rejects_a_time_without_zone(tmp_path):
    """JSON with a zone-less ISO time is a naive_timestamp reject, as at the edge."""
    json_adapter = adapters(tmp_path)["PlainJsonAdapter"]
    out = json_adapter.adapt(
        "sf/v1/dev/g6/up/telemetry",
        b'{"temperature":19.7,"ts":"2026-12-03T10:00:00"}',
        RECEIVED,
        Limits(),
    )
    assert out.readings == []
    assert [r.reason for r in out.rejects] == [RejectReason.NAIVE_TIMESTAMP]


def test_tasmota_reads_its_zone_less_time_in_naive_time_zone(tmp_path):
    """Tasmota's Time 10:00 in Europe/Berlin (CET in December) is 09:00Z."""
    tasmota = adapters(tmp_path)["TasmotaAdapter"]
    out = tasmota.adapt(
        "tele/plug-1/SENSOR",
        b'{"Time":"2026-12-03T10:00:00","ENERGY":{"Power":7}}',
        RECEIVED,
        Limits(),
    )
    (reading,) = out.readings
    assert reading.ts_us == 1_796_288_400_000_000  # 2026-12-03T09:00:00Z
