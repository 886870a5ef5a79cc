"""The real-world cases at hub level: a real broker, the hub service, TimescaleDB.

Each test publishes the case's exact payloads to Mosquitto, lets the running
hub store them in TimescaleDB, and checks rows, counters and the registry.
Protocol-level items of the same cases are in the other files of this folder.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.config import AdapterRoute, HubSettings
from hub.security.config import AuthConfig
from hub.service import HubService, load_adapters
from hub.storage import open_store
from protocol import topics
from protocol.const import FLAG_SERVER_TIME
from tests.services import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.db]


class Sensor:
    """A sensor's MQTT client: publishes QoS 1 and waits for the PUBACK."""

    def __init__(self, broker) -> None:
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"s-{uuid.uuid4().hex[:8]}"
        )
        self._client.connect(broker.host, broker.port, 30)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def store(pg_dsn):
    s = open_store(pg_dsn)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def hub(mosquitto_broker, store, tmp_path):
    settings = HubSettings(
        mqtt_url=mosquitto_broker.url,
        client_id=f"hub-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        write_max_delay_s=0.01,
        adapters=[
            AdapterRoute(adapter="json", filter=topics.TELEMETRY_FILTER),
            AdapterRoute(adapter="json", filter="sensor/data"),
            AdapterRoute(adapter="json", filter="edge/+/batch"),
            AdapterRoute(adapter="tasmota", filter="tele/+/SENSOR"),
            AdapterRoute(adapter="zigbee2mqtt", filter="zigbee2mqtt/#"),
        ],
    )
    service = HubService(settings, store, adapters=load_adapters(settings))
    service.start()
    yield service
    service.stop(5)


@pytest.fixture
def sensor(mosquitto_broker):
    s = Sensor(mosquitto_broker)
    yield s
    s.close()


def values_of(store, device: str) -> dict[str, list[tuple[int, float, int]]]:
    """Stored readings of a device as {metric: [(ts_us, value, flags), ...]}."""
    out: dict[str, list[tuple[int, float, int]]] = {}
    for r in store.readings(device):
        out.setdefault(r.metric, []).append((r.ts_us, r.value, r.flags))
    return out


def us(text: str) -> int:
    """An RFC 3339 instant as epoch µs."""
    return int(datetime.fromisoformat(text).timestamp()) * 1_000_000 + (
        datetime.fromisoformat(text).microsecond
    )


def test_c01_nan_fields_counted_device_alive_follow_up_stored(hub, sensor, store):
    """C01 items 1-5: 2 non_finite_value rejects, last_seen set, follow-up stored."""
    sensor.publish(
        "tele/dev-a01/SENSOR",
        b'{"Time":"2026-11-30T12:00:00","DHT11":{"Temperature":nan,"Humidity":nan},'
        b'"TempUnit":"C"}',
    )
    wait_for(lambda: store.get_device("dev-a01"), timeout=10, what="dev-a01 seen")
    assert store.count_readings("dev-a01") == 0
    assert hub.metrics.snapshot()["rejects"] == {"non_finite_value": 2}
    assert store.get_device("dev-a01").last_seen_us is not None

    sensor.publish(
        "tele/dev-a01/SENSOR",
        b'{"Time":"2026-11-30T12:00:10","DHT11":{"Temperature":21.4,"Humidity":48.0},'
        b'"TempUnit":"C"}',
    )
    wait_for(lambda: store.count_readings("dev-a01") == 2, timeout=10)
    ts = us("2026-11-30T12:00:10+00:00")
    assert values_of(store, "dev-a01") == {
        "DHT11.Humidity": [(ts, 48.0, 0)],
        "DHT11.Temperature": [(ts, 21.4, 0)],
    }
    accounting = store.accounting("device", "dev-a01")
    assert (accounting.received, accounting.rejected) == (2, {"non_finite_value": 2})


def test_c03_strings_coerced_states_skipped_bad_strings_rejected(hub, sensor, store):
    """C03 items 1-4: exactly 7 doubles; OFF and null skipped; bad strings rejected."""
    sensor.publish(
        "zigbee2mqtt/dev-c03",
        b'{"away_mode":"OFF","away_setting":null,"battery":87,'
        b'"comfort_temperature":"22.0","current_heating_setpoint":"10.5",'
        b'"eco_temperature":"16.0","friday_hour_1":"06","linkquality":120,'
        b'"local_temperature":19.5}',
    )
    wait_for(lambda: store.count_readings("dev-c03") == 7, timeout=10)
    latest = {r.metric: r.value for r in store.latest("dev-c03")}
    assert latest == {
        "battery": 87.0,
        "comfort_temperature": 22.0,
        "current_heating_setpoint": 10.5,
        "eco_temperature": 16.0,
        "friday_hour_1": 6.0,
        "linkquality": 120.0,
        "local_temperature": 19.5,
    }
    assert hub.metrics.snapshot()["rejects"] == {}

    sensor.publish(
        "zigbee2mqtt/dev-c03",
        b'{"comfort_temperature":"22,0","eco_temperature":"abc",'
        b'"local_temperature":19.6}',
    )
    wait_for(lambda: store.count_readings("dev-c03") == 8, timeout=10)
    assert {r.metric: r.value for r in store.latest("dev-c03")}[
        "local_temperature"
    ] == (19.6)
    assert hub.metrics.snapshot()["rejects"] == {"non_numeric_string": 2}


def test_c04_same_instants_in_ms_and_us_store_no_new_rows(hub, sensor, store):
    """C04 items 1-3: seconds give 4 readings; the same instants in ms and µs add 0."""
    a = (
        b'[{"ts":1796040000,"values":{"key1":1000,"key2":3}},'
        b'{"ts":1796040001,"values":{"key1":20000,"key2":3}}]'
    )
    sensor.publish("edge/gw-01/batch", a)
    wait_for(lambda: store.count_readings() == 4, timeout=10)
    device = store.list_devices()[0].id
    t0, t1 = us("2026-11-30T12:00:00+00:00"), us("2026-11-30T12:00:01+00:00")
    assert values_of(store, device) == {
        "key1": [(t0, 1000.0, 0), (t1, 20000.0, 0)],
        "key2": [(t0, 3.0, 0), (t1, 3.0, 0)],
    }

    sensor.publish(
        "edge/gw-01/batch", a.replace(b"0,", b"0000,").replace(b"1,", b"1000,")
    )
    sensor.publish(
        "edge/gw-01/batch", a.replace(b"0,", b"0000000,").replace(b"1,", b"1000000,")
    )
    wait_for(lambda: hub.metrics.snapshot()["duplicates"] == 8, timeout=10)
    assert store.count_readings() == 4


def test_c05_iso_times_kept_to_the_microsecond_through_the_api(hub, sensor, store):
    """C05 items 1-5: null skipped, +00:00/+0100/Z honoured, µs kept in the REST API."""
    payloads = [
        b'{"unit":"%","description":"state of charge","status":0,"value":null,'
        b'"device_name":"dev-e05","timestamp":"2026-11-30T06:32:07.507569+00:00",'
        b'"sensor_type":"state_of_charge","scalefactor":1.0,"smart_device":"gw-05"}',
        b'{"unit":"%","status":0,"value":81.5,"device_name":"dev-e05",'
        b'"timestamp":"2026-11-30T06:33:07.5+00:00","sensor_type":"state_of_charge"}',
        b'{"value":"317.3988","timestamp":"2026-11-30T07:55:31+0100",'
        b'"device_name":"dev-e05","sensor_type":"state_of_charge"}',
        b'{"unit":"%","status":0,"value":82.0,"device_name":"dev-e05",'
        b'"timestamp":"2026-11-30T06:34:07Z","sensor_type":"state_of_charge"}',
    ]
    for payload in payloads:
        sensor.publish("sensor/data", payload)
    wait_for(lambda: store.count_readings("dev-e05") == 3, timeout=10)
    assert hub.metrics.snapshot()["rejects"] == {}

    # Auth off on purpose: the case is about times, tests/hub/security about auth.
    no_auth = hub.settings.model_copy(update={"auth": AuthConfig(enabled=False)})
    client = TestClient(create_app(store, no_auth))
    body = client.get("/v1/devices/dev-e05/readings").json()
    got = [(r["metric"], r["ts"], r["value"]) for r in body]
    assert got == [
        ("state_of_charge", "2026-11-30T06:33:07.500000Z", 81.5),
        ("state_of_charge", "2026-11-30T06:34:07.000000Z", 82.0),
        ("state_of_charge", "2026-11-30T06:55:31.000000Z", 317.3988),
    ]


def test_c07_unset_clock_stamped_on_receipt_no_1970_chunk(hub, sensor, store, pg_dsn):
    """C07 items 1-5: 1970 readings kept at receive time, flagged; no chunk before 2000.

    Payload 2's device time is the wall clock (not the case's 2026-11-30), so that
    it is newer than payload 1's receive time, as it is in the case.
    """
    before = datetime.now(UTC)
    sensor.publish(
        "tele/dev-g07/SENSOR",
        b'{"Time":"1970-01-01T00:00:03","ENERGY":{"Total":25,"Yesterday":3,"Today":2,'
        b'"Power":7,"Factor":0.20,"Voltage":246,"Current":0}}',
    )
    wait_for(lambda: store.count_readings("dev-g07") == 7, timeout=10)
    first = store.readings("dev-g07")
    assert {r.flags for r in first} == {FLAG_SERVER_TIME}
    assert {r.metric for r in first} == {
        f"ENERGY.{k}"
        for k in (
            "Total",
            "Yesterday",
            "Today",
            "Power",
            "Factor",
            "Voltage",
            "Current",
        )
    }
    received = first[0].ts_us
    assert before.timestamp() * 1e6 <= received <= datetime.now(UTC).timestamp() * 1e6
    assert hub.metrics.snapshot()["notices"].get("clock_not_set") == 7

    device_time = (datetime.now(UTC) + timedelta(seconds=2)).replace(tzinfo=None)
    stamp = device_time.isoformat(timespec="seconds").encode()
    sensor.publish(
        "tele/dev-g07/SENSOR",
        b'{"Time":"' + stamp + b'","ENERGY":{"Total":25.01,"Yesterday":3,'
        b'"Today":2.01,"Power":8,"Factor":0.21,"Voltage":245,"Current":0.035}}',
    )
    wait_for(lambda: store.count_readings("dev-g07") == 14, timeout=10)
    latest = {r.metric: (r.value, r.flags) for r in store.latest("dev-g07")}
    assert latest["ENERGY.Power"] == (8.0, 0)
    assert latest["ENERGY.Current"] == (0.035, 0)

    with psycopg.connect(pg_dsn) as conn:
        old = conn.execute(
            "SELECT count(*) FROM readings WHERE ts < '2000-01-01'"
        ).fetchone()
        chunks = conn.execute(
            "SELECT count(*) FROM show_chunks('readings', "
            "older_than => '2000-01-01'::timestamptz)"
        ).fetchone()
    assert (old, chunks) == ((0,), (0,))


def test_c11_empty_and_non_object_payloads(hub, sensor, store):
    """C11 items 1-5: a clear is not activity; non-objects rejected; 20.5 kept."""
    sensor.publish("zigbee2mqtt/dev-k11", b"", retain=True)
    sensor.publish("zigbee2mqtt/dev-k11/availability", b"", retain=True)
    wait_for(
        lambda: hub.metrics.snapshot()["notices"].get("empty_payload") == 1, timeout=10
    )
    assert store.get_device("dev-k11") is None

    for payload in (b'""', b"[]", b"42", b"null"):
        sensor.publish("zigbee2mqtt/dev-k11", payload)
    sensor.publish("zigbee2mqtt/dev-k11", b'{"temperature":20.5}')
    wait_for(lambda: store.count_readings("dev-k11") == 1, timeout=10)
    assert hub.metrics.snapshot()["rejects"] == {"payload_not_object": 4}
    (reading,) = store.readings("dev-k11")
    assert (reading.metric, reading.value) == ("temperature", 20.5)
    sensor.publish("zigbee2mqtt/dev-k11", b"", retain=True)  # leave no retained value


def test_c12_redeliveries_stored_once_counted_latest_by_time(hub, sensor, store):
    """C12 items 1, 2, 4, 5: 3 rows; B0 accepted out of order; 4 duplicates counted."""
    b1 = (
        b'{"device":"dev-l12","readings":[{"ts":"2026-11-30T12:00:00Z",'
        b'"temperature":21.0},{"ts":"2026-11-30T12:00:10Z","temperature":21.1}]}'
    )
    b0 = (
        b'{"device":"dev-l12","readings":[{"ts":"2026-11-30T12:00:05Z",'
        b'"temperature":35.0}]}'
    )
    for payload in (b1, b1, b0, b1):
        sensor.publish("edge/gw-01/batch", payload)
    wait_for(lambda: hub.metrics.snapshot()["duplicates"] == 4, timeout=10)
    assert values_of(store, "dev-l12") == {
        "temperature": [
            (us("2026-11-30T12:00:00+00:00"), 21.0, 0),
            (us("2026-11-30T12:00:05+00:00"), 35.0, 0),
            (us("2026-11-30T12:00:10+00:00"), 21.1, 0),
        ]
    }
    (latest,) = store.latest("dev-l12")
    assert (latest.ts_us, latest.value) == (us("2026-11-30T12:00:10+00:00"), 21.1)
    assert hub.metrics.snapshot()["rejects"] == {}


def start_hub_with_rule(broker, store, tmp_path, rule: dict):
    """A hub whose threshold processor has ``rule`` from its first message."""
    from hub.processors.thresholds import ThresholdRule, create_rule

    create_rule(store, ThresholdRule.model_validate(rule))
    settings = HubSettings(
        mqtt_url=broker.url,
        client_id=f"hub-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        write_max_delay_s=0.01,
        adapters=[
            AdapterRoute(adapter="json", filter="edge/+/batch"),
            AdapterRoute(adapter="zigbee2mqtt", filter="zigbee2mqtt/#"),
        ],
    )
    service = HubService(settings, store, adapters=load_adapters(settings))
    service.start()
    return service


def raised(store, device: str) -> list[tuple[int, float | None, str]]:
    events = store.list_events(device=device, kind="threshold")
    return [(e.ts_us, e.value, e.rule) for e in events if e.state == "raised"]


def test_c12_threshold_fires_once_for_the_reading_despite_redeliveries(
    mosquitto_broker, store, sensor, tmp_path
):
    """C12 item 3: temperature > 30 raises once, at 12:00:05Z, whatever is resent."""
    hub = start_hub_with_rule(
        mosquitto_broker,
        store,
        tmp_path,
        {"id": "hot", "condition": "above", "threshold": 30.0},
    )
    b1 = (
        b'{"device":"dev-l12","readings":[{"ts":"2026-11-30T12:00:00Z",'
        b'"temperature":21.0},{"ts":"2026-11-30T12:00:10Z","temperature":21.1}]}'
    )
    b0 = (
        b'{"device":"dev-l12","readings":[{"ts":"2026-11-30T12:00:05Z",'
        b'"temperature":35.0}]}'
    )
    try:
        for payload in (b1, b1, b0, b1):
            sensor.publish("edge/gw-01/batch", payload)
        wait_for(lambda: raised(store, "dev-l12"), timeout=10, what="an event")
        sensor.publish("edge/gw-01/batch", b0)  # the breaching reading once more
        wait_for(lambda: hub.metrics.snapshot()["duplicates"] == 5, timeout=10)
        hub.processors.stop(5)
    finally:
        hub.stop(5)
    assert raised(store, "dev-l12") == [(us("2026-11-30T12:00:05+00:00"), 35.0, "hot")]


def test_c03_coerced_string_reaches_the_threshold_rule(
    mosquitto_broker, store, sensor, tmp_path
):
    """C03 item 5: "22.0" is coerced before processors run, so `> 21` fires."""
    hub = start_hub_with_rule(
        mosquitto_broker,
        store,
        tmp_path,
        {
            "id": "comfort",
            "condition": "above",
            "threshold": 21.0,
            "selector": {"metrics": ["comfort_temperature"]},
        },
    )
    try:
        sensor.publish(
            "zigbee2mqtt/dev-c03",
            b'{"away_mode":"OFF","comfort_temperature":"22.0","battery":87}',
        )
        wait_for(lambda: raised(store, "dev-c03"), timeout=10, what="an event")
    finally:
        hub.stop(5)
    (event,) = store.list_events(device="dev-c03", kind="threshold")
    assert (event.state, event.metric, event.value, event.rule) == (
        "raised",
        "comfort_temperature",
        22.0,
        "comfort",
    )
