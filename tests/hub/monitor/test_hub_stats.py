"""The hub publishes its figures for the monitor; `streamflow monitor` runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hub.monitor.config import MonitorConfig
from hub.storage import open_store
from tests.hub.monitor.helpers import Listener
from tests.hub.test_ingest import hub_settings, start_hub
from tests.services import free_port

pytestmark = [pytest.mark.broker]

FIGURES = {
    "readings_per_s",
    "rejects_per_s",
    "shed_per_s",
    "store_errors_per_s",
    "lag_p50_s",
    "lag_p99_s",
    "lag_samples",
    "write_latency_s",
    "queue_depth",
    "queue_max",
    "queue_fill",
}


def test_hub_publishes_stats_qos0_not_retained(amqtt_broker, tmp_path):
    """A running hub publishes its figures every stats_interval_s, QoS 0."""
    store = open_store(f"sqlite:///{tmp_path}/hub.db")
    store.migrate()
    settings = hub_settings(
        amqtt_broker.url, tmp_path, monitor=MonitorConfig(stats_interval_s=0.2)
    )
    listener = Listener(amqtt_broker.host, amqtt_broker.port, "sf/v1/hub/+/stats")
    service = start_hub(settings, store)
    try:
        topic = f"sf/v1/hub/{settings.client_id}/stats"
        first, second = listener.wait(topic, 2)[:2]
    finally:
        service.stop(5)
        listener.close()
        store.close()

    assert set(first) >= FIGURES
    assert (first["v"], first["hub"]) == (1, settings.client_id)
    assert (first["readings_per_s"], first["queue_max"]) == (0.0, 256)
    assert second["ts"] > first["ts"]
    assert not any(retain for _, _, retain in listener.messages)


def test_hub_stats_off_with_interval_zero(amqtt_broker, tmp_path):
    """stats_interval_s = 0: the hub publishes no figures."""
    store = open_store(f"sqlite:///{tmp_path}/hub.db")
    store.migrate()
    settings = hub_settings(
        amqtt_broker.url, tmp_path, monitor=MonitorConfig(stats_interval_s=0)
    )
    service = start_hub(settings, store)
    try:
        assert service._stats is None
    finally:
        service.stop(5)
        store.close()


def test_cli_monitor_unreachable_broker_is_one_line(tmp_path):
    """`streamflow monitor` without a broker: exit 2, one line naming it."""
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "monitor", "--metrics-port", "0"],
        env={
            "PATH": "/usr/bin:/bin",
            "STREAMFLOW_DATA_DIR": str(tmp_path),
            "STREAMFLOW_MQTT_URL": f"mqtt://127.0.0.1:{port}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("streamflow: error: ")
    assert f"127.0.0.1:{port}" in last
