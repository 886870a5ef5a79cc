"""MonitorService on a real broker and a real store (SQLite and TimescaleDB)."""

from __future__ import annotations

import time

import httpx
import pytest

from hub.alerts.notice import Notice
from hub.config import load_settings
from hub.monitor.service import MonitorService
from hub.processors.events import Event, EventKind, EventState, Severity
from hub.storage import DeviceInfo, open_store
from protocol import topics
from protocol.validate import now_us
from tests.e2e.harness import pg_url
from tests.hub.monitor.helpers import Listener, publish
from tests.services import free_port, wait_for

pytestmark = [pytest.mark.broker]


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store(request, tmp_path):
    """A migrated store: a SQLite file, or TimescaleDB in a fresh database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/monitor.db"
    else:
        url = pg_url(request.getfixturevalue("pg_dsn"))
    opened = open_store(url)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def monitor(amqtt_broker, store, tmp_path):
    """A started monitor on the broker and store, with its metrics port."""
    settings = load_settings(
        mqtt_url=amqtt_broker.url,
        data_dir=tmp_path / "data",
        monitor={
            "tick_s": 0.1,
            "metrics_port": free_port(),
            "client_id": f"sf-test-monitor-{free_port()}",
        },
    )
    service = MonitorService(settings, store, channels=[])
    service.start()
    yield service
    service.stop(1)


@pytest.fixture
def listener(amqtt_broker):
    """Everything the monitor publishes: alerts and downlinks."""
    got = Listener(
        amqtt_broker.host, amqtt_broker.port, "sf/v1/alerts/#", "sf/v1/gw/+/down/#"
    )
    yield got
    got.close()


def _event(state: EventState, value: float) -> bytes:
    return Event(
        kind=EventKind.THRESHOLD,
        state=state,
        device="dev-1",
        metric="temperature",
        ts_us=now_us(),
        value=value,
        severity=Severity.CRITICAL,
        rule="too-hot",
        details={"above": 30.0},
    ).payload()


def test_threshold_event_becomes_alert_on_device_topic(
    monitor, listener, amqtt_broker, store
):
    """An event on sf/v1/events/threshold/dev-1 opens an alert on sf/v1/alerts/dev-1."""
    broker = (amqtt_broker.host, amqtt_broker.port)
    publish(*broker, "sf/v1/events/threshold/dev-1", _event(EventState.RAISED, 31.5))

    (opened,) = listener.wait("sf/v1/alerts/dev-1")

    assert opened["change"] == "opened"
    assert (opened["fingerprint"], opened["kind"], opened["state"]) == (
        "device/dev-1/threshold/temperature:too-hot",
        "threshold",
        "open",
    )
    assert (opened["severity"], opened["device"], opened["metric"]) == (
        "critical",
        "dev-1",
        "temperature",
    )
    assert opened["details"] == {"above": 30.0, "value": 31.5}
    (stored,) = store.active_alerts()
    assert stored.id == opened["id"]

    publish(*broker, "sf/v1/events/threshold/dev-1", _event(EventState.CLEARED, 20.0))
    resolved = listener.wait("sf/v1/alerts/dev-1", 2)[1]
    assert (resolved["change"], resolved["state"], resolved["id"]) == (
        "resolved",
        "resolved",
        opened["id"],
    )
    assert store.active_alerts() == []


def test_alert_of_device_behind_gateway_goes_down_its_gateway(
    monitor, listener, amqtt_broker, store
):
    """A device registered behind gw-1 gets its alert on its downlink topic."""
    store.upsert_device(DeviceInfo(id="dev-1", gateway="gw-1"))
    broker = (amqtt_broker.host, amqtt_broker.port)
    publish(*broker, "sf/v1/events/threshold/dev-1", _event(EventState.RAISED, 33.0))

    (down,) = listener.wait(topics.downlink("gw-1", "dev-1", "alert"))

    assert (down["dev"], down["kind"]) == ("dev-1", "alert")
    assert (down["body"]["change"], down["body"]["gateway"]) == ("opened", "gw-1")
    assert down["body"]["fingerprint"] == "device/dev-1/threshold/temperature:too-hot"


def test_gateway_lwt_with_40_devices_is_one_alert(
    monitor, listener, amqtt_broker, store
):
    """The will of a gateway with 40 devices: one alert on sf/v1/alerts/gw-9."""
    for i in range(40):
        store.upsert_device(DeviceInfo(id=f"d{i}", gateway="gw-9"))
    # The registry as the monitor's loop (a tick every 0.1 s) knows it.
    wait_for(lambda: len(monitor._devices) == 40, timeout=5, what="40 devices")
    will = b'{"v":1,"gw":"gw-9","status":"offline","agent":"streamflow-edge/1"}'
    try:
        publish(amqtt_broker.host, amqtt_broker.port, topics.state("gw-9"), will, True)

        (alert,) = listener.wait("sf/v1/alerts/gw-9")
        wait_for(lambda: monitor.offline.offline_gateways == ["gw-9"], timeout=5)
        time.sleep(0.5)  # five more ticks: no device alert follows

        assert (alert["fingerprint"], alert["change"], alert["device"]) == (
            "gateway/gw-9/offline/",
            "opened",
            None,
        )
        assert alert["details"] == {"devices_hidden": 40, "reason": "lwt"}
        alerts = [t for t, _, _ in listener.messages if t.startswith("sf/v1/alerts/")]
        assert alerts == ["sf/v1/alerts/gw-9"]
        assert [a.fingerprint for a in store.active_alerts()] == [
            "gateway/gw-9/offline/"
        ]
    finally:
        # Retained: clear it, so that no later test on this broker sees it.
        publish(amqtt_broker.host, amqtt_broker.port, topics.state("gw-9"), b"", True)


def test_metrics_endpoint_shows_alerts_and_figures(monitor, listener, amqtt_broker):
    """/metrics on 127.0.0.1 counts the open alert and the hub's figures."""
    broker = (amqtt_broker.host, amqtt_broker.port)
    publish(*broker, "sf/v1/events/threshold/dev-1", _event(EventState.RAISED, 31.5))
    publish(*broker, "sf/v1/hub/hub-x/stats", b'{"lag_p99_s": 2.5, "queue_depth": 3}')
    listener.wait("sf/v1/alerts/dev-1")
    url = f"http://127.0.0.1:{monitor.metrics_port}/metrics"

    def scraped() -> str | None:
        text = httpx.get(url, timeout=5).text
        return (
            text if 'streamflow_hub_lag_p99_seconds{hub="hub-x"} 2.5' in text else None
        )

    text = wait_for(scraped, timeout=10)

    assert (
        'streamflow_alerts_active{kind="threshold",severity="critical",state="open"}'
        " 1.0" in text
    )
    assert 'streamflow_hub_queue_depth{hub="hub-x"} 3.0' in text
    assert (
        'streamflow_monitor_signals_total{kind="threshold",state="raised"} 1.0' in text
    )


def test_bad_messages_are_counted_and_skipped(monitor, listener, amqtt_broker):
    """A broken event and a broken state are skipped; the next event still works."""
    broker = (amqtt_broker.host, amqtt_broker.port)
    publish(*broker, "sf/v1/events/threshold/dev-1", b"{not json")
    publish(*broker, "sf/v1/gw/gw-2/up/state", b'{"status": "sideways"}')
    publish(*broker, "sf/v1/events/threshold/dev-1", _event(EventState.RAISED, 40.0))

    (opened,) = listener.wait("sf/v1/alerts/dev-1")

    assert opened["change"] == "opened"
    bad = monitor.metrics.bad_messages
    assert bad.labels("event")._value.get() == 1
    assert bad.labels("state")._value.get() == 1


class Recorder:
    """A channel that keeps what it is given (delivery itself: hub/alerts tests)."""

    name = "recorder"

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def send(self, notice: Notice) -> None:
        self.notices.append(notice)


def test_people_are_notified_through_the_dispatcher(amqtt_broker, store, tmp_path):
    """An opened critical alert is one notice to each channel."""
    recorder = Recorder()
    settings = load_settings(
        mqtt_url=amqtt_broker.url,
        data_dir=tmp_path / "data",
        monitor={"tick_s": 0.1, "metrics_port": 0, "client_id": "sf-test-notify"},
    )
    service = MonitorService(settings, store, channels=[recorder])
    service.start()
    try:
        publish(
            amqtt_broker.host,
            amqtt_broker.port,
            "sf/v1/events/threshold/dev-1",
            _event(EventState.RAISED, 35.0),
        )
        wait_for(lambda: recorder.notices, timeout=15, what="a notice")
    finally:
        service.stop(2)

    (notice,) = recorder.notices
    assert (notice.kind, notice.change) == ("alert", "opened")
    assert [a.fingerprint for a in notice.alerts] == [
        "device/dev-1/threshold/temperature:too-hot"
    ]
