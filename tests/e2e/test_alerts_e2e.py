"""Alerts end to end: a reading at a sensor becomes an alert back at its device.

Processes, as in a deployment: sensors (a replay of the Intel lab slice, or
the test's own publisher) -> local Mosquitto -> ``streamflow-edge`` -> hub
broker -> ``streamflow hub`` (processors, a threshold rule) -> events ->
``streamflow monitor`` -> ``sf/v1/alerts/{dev}`` and the device's downlink ->
the edge agent's relay -> the device's topic on the local broker.
"""

from __future__ import annotations

import threading
import time

import pytest

from hub.processors.thresholds import Selector, ThresholdRule, create_rule
from hub.storage import DeviceInfo, open_store
from protocol import codec, topics
from protocol.validate import now_us
from tests.e2e.harness import (
    REPLAY_CLIENT_ID,
    DataSlice,
    Service,
    Site,
    _child_env,
    _command,
)
from tests.hub.monitor.helpers import Listener
from tests.services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.slow]

#: A replay of the slice takes 13.5 s at a speed-up of 60.
ALERT_TIMEOUT_S = 60.0
RULE_ID = "e2e-hot"


def _monitor(site: Site, extra: dict[str, str]) -> Service:
    """``streamflow monitor`` on the site's hub broker and store, started."""
    service = Service(
        "monitor",
        [*_command("streamflow", "hub.cli"), "monitor"],
        site.root,
        _child_env(
            {
                "STREAMFLOW_DB": site.db_url,
                "STREAMFLOW_MQTT_URL": site.hub_broker.url,
                "STREAMFLOW_DATA_DIR": str(site.root / "monitor"),
                "STREAMFLOW_MONITOR__METRICS_PORT": str(free_port()),
                "STREAMFLOW_MONITOR__TICK_S": "0.2",
                **extra,
            }
        ),
    )
    service.start()
    service.wait_log("subscriptions ready")
    return service


def _print_tail(service: Service, lines: int = 60) -> None:
    """The end of a log, in the test's output (the site's report has the rest)."""
    tail = service.all_logs().decode("utf-8", "replace").splitlines()[-lines:]
    print(f"----- {service.log_path} (last {lines} lines)", *tail, sep="\n")


def _migrated(site: Site) -> None:
    store = open_store(site.db_url)
    try:
        store.migrate()
    finally:
        store.close()


def _hottest(data: DataSlice) -> tuple[str, float]:
    """The mote with the slice's highest temperature, and that temperature."""
    device, _, _, value = max(
        (r for r in data.rows if r[1] == "temperature"), key=lambda r: r[3]
    )
    return device, value


@pytest.mark.parametrize("broker", ["amqtt"], indirect=True)
def test_replayed_breach_reaches_device_local_topic(site: Site, intel_slice):
    """A replayed Intel reading over a rule: the alert JSON arrives on the
    device's own topic at its gateway's local broker."""
    device, hottest = _hottest(intel_slice)
    _migrated(site)
    create_rule(
        site.store,
        ThresholdRule(
            id=RULE_ID,
            condition="above",
            threshold=hottest - 0.001,
            severity="critical",
            selector=Selector(devices=[device], metrics=["temperature"]),
        ),
    )
    local_topic = f"sf/v1/dev/{device}/down/alert"
    local = Listener(site.local.host, site.local.port, local_topic)
    monitor = _monitor(site, {})
    try:
        site.start_hub()
        site.start_edge()
        _start_replay_now(site, intel_slice)

        message = local.wait(local_topic, timeout=ALERT_TIMEOUT_S)[0]
    except BaseException:
        _print_tail(monitor)
        raise
    finally:
        local.close()
        monitor.stop()

    assert (message["dev"], message["kind"]) == (device, "alert")
    body = message["body"]
    assert body["change"] == "opened"
    assert body["fingerprint"] == f"device/{device}/threshold/temperature:{RULE_ID}"
    assert (body["kind"], body["severity"], body["state"]) == (
        "threshold",
        "critical",
        "open",
    )
    assert (body["device"], body["gateway"], body["past"]) == (
        device,
        site.gateway,
        False,
    )
    assert body["details"]["value"] == hottest
    # The next, cooler reading may have resolved it already: the same alert.
    later = local.on(local_topic)[1:]
    assert all(m["body"]["id"] == body["id"] for m in later)
    assert [m["body"]["change"] for m in later] in ([], ["resolved"])
    stored = site.store.get_alert(body["id"])
    assert stored is not None
    assert stored.fingerprint == body["fingerprint"]


def _start_replay_now(site: Site, data: DataSlice) -> None:
    """The slice as plain JSON sensors on the local broker, stamped to now."""
    site.replay = Service(
        "replay",
        [
            *_command("streamflow", "hub.cli"),
            "replay",
            "--via",
            "mqtt",
            "--mqtt-url",
            site.local.url,
            "--data",
            str(data.path),
            "--format",
            "intel",
            "--speedup",
            "60",
            "--timestamps",
            "now",
            "--client-id",
            REPLAY_CLIENT_ID,
            "--no-progress",
        ],
        site.root,
        _child_env({}),
    )
    site.replay.start()


class Sensors:
    """Two plain JSON sensors publishing to the local broker every 0.2 s."""

    def __init__(self, host: str, port: int, devices: list[str]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.silent: set[str] = set()
        self._devices = devices
        self._stop = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="sf-e2e-sensors", clean_session=True
        )
        self._client.connect(host, port, keepalive=10)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        value = 20.0
        while not self._stop.wait(0.2):
            value += 0.01
            for dev in self._devices:
                if dev not in self.silent:
                    doc = {"ts": now_us(), "temperature": round(value, 2)}
                    self._client.publish(topics.telemetry(dev), codec.dumps(doc), 1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
def test_silent_device_goes_offline_and_back(site: Site):
    """Stop one device's data: offline alert for it alone; data again: resolved."""
    _migrated(site)
    for dev in ("sensor-a", "sensor-b"):
        site.store.upsert_device(DeviceInfo(id=dev, expected_interval_s=0.2))
    alerts = Listener(site.hub_broker.host, site.hub_broker.port, "sf/v1/alerts/#")
    monitor = _monitor(
        site,
        {"STREAMFLOW_MONITOR__MIN_SILENCE_S": "3", "STREAMFLOW_MONITOR__TICK_S": "0.2"},
    )
    sensors: Sensors | None = None
    try:
        site.start_hub()
        site.start_edge()
        sensors = Sensors(site.local.host, site.local.port, ["sensor-a", "sensor-b"])
        time.sleep(4)  # both report for longer than the offline delay
        assert alerts.on("sf/v1/alerts/sensor-a") == []

        sensors.silent.add("sensor-a")
        (offline,) = alerts.wait("sf/v1/alerts/sensor-a", timeout=30)
        sensors.silent.clear()
        back = alerts.wait("sf/v1/alerts/sensor-a", 2, timeout=30)[1]
    except BaseException:
        _print_tail(monitor)
        raise
    finally:
        if sensors is not None:
            sensors.close()
        alerts.close()
        monitor.stop()

    assert (offline["change"], offline["kind"], offline["fingerprint"]) == (
        "opened",
        "offline",
        "device/sensor-a/offline/",
    )
    assert (offline["device"], offline["gateway"]) == ("sensor-a", site.gateway)
    assert offline["details"]["interval_source"] == "expected"
    # silence_s is rounded to the millisecond, so a silence just past the
    # threshold can read as equal to it.
    assert offline["details"]["threshold_s"] == 3
    assert offline["details"]["silence_s"] >= offline["details"]["threshold_s"]
    assert (back["change"], back["state"], back["id"]) == (
        "resolved",
        "resolved",
        offline["id"],
    )
    # The other device kept reporting: never offline.
    assert alerts.on("sf/v1/alerts/sensor-b") == []
