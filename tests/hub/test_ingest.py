"""Ingest end to end against real brokers (amqtt and Mosquitto) and SQLite.

A test-side gateway publishes batches, the hub service stores them and acks;
the test checks the rows, the ack and the counters.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import orjson
import pytest
from paho.mqtt.client import Client, MQTTMessage, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion

from hub.config import AdapterRoute, HubSettings
from hub.service import HubService, load_adapters
from hub.storage import open_store
from protocol import topics
from protocol.const import FLAG_SERVER_TIME
from protocol.models import BatchAck, RejectedReading
from protocol.readings import Reading
from tests.services import wait_for

pytestmark = [pytest.mark.broker]

#: 2026-11-30T12:00:00Z in epoch µs: in the past of the machine's clock.
T0 = 1_796_040_000_000_000
SECOND = 1_000_000
LIMIT = 262_144


# --------------------------------------------------------------------- helpers


class TestGateway:
    """A gateway's MQTT side: publishes batches, collects the hub's acks."""

    __test__ = False  # not a test class

    def __init__(self, url: str, gw: str) -> None:
        self.gw = gw
        self.acks: list[BatchAck] = []
        self._cond = threading.Condition()
        host, port = url.removeprefix("mqtt://").split(":")
        self._client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{gw}-{uuid.uuid4().hex[:6]}",
            protocol=MQTTv311,
        )
        subscribed = threading.Event()
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.connect(host, int(port), 30)
        self._client.loop_start()
        self._client.subscribe(topics.ack(gw), 1)
        assert subscribed.wait(10), "ack subscription not confirmed"

    def _on_message(self, client, userdata, msg: MQTTMessage) -> None:
        with self._cond:
            self.acks.append(BatchAck.model_validate_json(msg.payload))
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and wait for the broker's PUBACK."""
        info = self._client.publish(topic, payload, qos)
        info.wait_for_publish(10)

    def send(self, payload: bytes) -> None:
        """Publish on this gateway's batch topic."""
        self.publish(topics.batch(self.gw), payload)

    def wait_acks(self, n: int, timeout: float = 10.0) -> list[BatchAck]:
        """Wait until ``n`` acks arrived; return them."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.acks) >= n, timeout)
        assert ok, f"{len(self.acks)} acks after {timeout} s, expected {n}"
        return list(self.acks)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def series(dev: str, metric: str, ts: list, values: list, unit: str = "") -> dict:
    """One series of a batch envelope."""
    return {"dev": dev, "metric": metric, "unit": unit, "ts": ts, "values": values}


def batch(gw: str, seq: int, *series_: dict, pad_to: int | None = None) -> bytes:
    """A batch envelope; padded with an ignored field to exactly ``pad_to`` bytes."""
    doc = {"v": 1, "gw": gw, "seq": seq, "sent": T0, "series": list(series_)}
    body = orjson.dumps(doc)
    if pad_to is None:
        return body
    doc["pad"] = ""
    overhead = len(orjson.dumps(doc))
    doc["pad"] = "x" * (pad_to - overhead)
    body = orjson.dumps(doc)
    assert len(body) == pad_to
    return body


def hub_settings(url: str, tmp_path, **values) -> HubSettings:
    """Settings of a hub on ``url`` with a unique client id."""
    return HubSettings(
        mqtt_url=url,
        client_id=f"hub-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        write_max_delay_s=0.01,
        **values,
    )


@pytest.fixture
def store(tmp_path):
    """A migrated SQLite store."""
    s = open_store(f"sqlite:///{tmp_path}/hub.db")
    s.migrate()
    yield s
    s.close()


def start_hub(settings: HubSettings, store) -> HubService:
    """A started hub service with the adapters of ``settings``."""
    service = HubService(settings, store, adapters=load_adapters(settings))
    service.start()
    return service


@pytest.fixture
def hub(broker, store, tmp_path) -> Iterator[HubService]:
    """A hub on the test's broker, with tasmota and zigbee2mqtt adapters too."""
    settings = hub_settings(
        broker.url,
        tmp_path,
        adapters=[
            AdapterRoute(adapter="json", filter=topics.TELEMETRY_FILTER),
            AdapterRoute(adapter="tasmota", filter="tele/+/SENSOR"),
            AdapterRoute(adapter="zigbee2mqtt", filter="zigbee2mqtt/#"),
        ],
    )
    service = start_hub(settings, store)
    yield service
    service.stop(5)


@pytest.fixture
def gateway(broker) -> Iterator[TestGateway]:
    """A test gateway ``gw-t`` on the test's broker."""
    gw = TestGateway(broker.url, "gw-t")
    yield gw
    gw.close()


# ----------------------------------------------------------------------- tests


def test_batch_stored_exactly_and_acked_after_commit(hub, gateway, store):
    """A batch is stored reading for reading, and acked with its seq once committed."""
    gateway.send(
        batch(
            "gw-t",
            7,
            series(
                "dev-a", "temp", [T0, T0 + 500_000, T0 + 1], [20.5, 21.0, -3.25], "C"
            ),
            series("dev-b", "rh", [T0], [48.0], "%"),
        )
    )

    (ack,) = gateway.wait_acks(1)
    # Read right when the ack arrives: it is sent only after the commit.
    rows_a = store.readings("dev-a")
    rows_b = store.readings("dev-b")

    assert ack == BatchAck(seqs=[(7, 7)], rejected=[])
    assert rows_a == [
        Reading("dev-a", "temp", T0, 20.5, "C", 0),
        Reading("dev-a", "temp", T0 + 1, -3.25, "C", 0),
        Reading("dev-a", "temp", T0 + 500_000, 21.0, "C", 0),
    ]
    assert rows_b == [Reading("dev-b", "rh", T0, 48.0, "%", 0)]
    snap = hub.metrics.snapshot()
    assert (snap["readings_received"], snap["readings_new"]) == (4, 4)
    # Counted just after the publish call, so possibly after the ack arrived.
    wait_for(lambda: hub.metrics.snapshot()["acks_published"] == 1, timeout=5)


def test_batch_resent_stored_once_acked_twice(hub, gateway, store):
    """The same batch sent twice is stored once and acked both times."""
    payload = batch("gw-t", 3, series("dev-a", "temp", [T0, T0 + SECOND], [1.0, 2.0]))

    gateway.send(payload)
    gateway.wait_acks(1)
    gateway.send(payload)
    acks = gateway.wait_acks(2)

    assert acks == [BatchAck(seqs=[(3, 3)]), BatchAck(seqs=[(3, 3)])]
    assert store.count_readings("dev-a") == 2
    snap = hub.metrics.snapshot()
    assert (snap["readings_new"], snap["duplicates"], snap["duplicate_batches"]) == (
        2,
        2,
        1,
    )


def test_batch_bad_readings_rejected_good_kept(hub, gateway, store):
    """Bad readings are listed in the ack with reason and field; good ones stored."""
    future = T0 + 400 * 24 * 3600 * SECOND  # a year past the machine's clock
    gateway.send(
        batch(
            "gw-t",
            11,
            series("dev-c", "temp", [T0, T0 + SECOND, future], [20.0, "22,0", 21.0]),
            series("bad id", "temp", [T0], [1.0]),
        )
    )

    (ack,) = gateway.wait_acks(1)

    assert ack.seqs == [(11, 11)]
    assert ack.rejected == [
        RejectedReading(
            seq=11,
            dev="dev-c",
            metric="temp",
            index=1,
            field="series[0].values[1]",
            reason="non_numeric_string",
        ),
        RejectedReading(
            seq=11,
            dev="dev-c",
            metric="temp",
            index=2,
            field="series[0].ts[2]",
            reason="future_timestamp",
        ),
        RejectedReading(
            seq=11,
            dev="",
            metric="",
            index=None,
            field="series[1].dev",
            reason="bad_device_id",
        ),
    ]
    assert store.readings("dev-c") == [Reading("dev-c", "temp", T0, 20.0, "", 0)]
    assert hub.metrics.snapshot()["rejects"] == {
        "non_numeric_string": 1,
        "future_timestamp": 1,
        "bad_device_id": 1,
    }


def test_batch_oversized_dead_lettered_next_stored(hub, gateway, store):
    """A 262,145-byte batch is a payload_too_large dead letter; the next is stored."""
    big = batch("gw-t", 1, series("dev-q17", "t", [T0], [1.0]), pad_to=LIMIT + 1)

    gateway.send(big)
    gateway.send(batch("gw-t", 2, series("dev-q17", "t", [T0 + SECOND], [2.0])))

    (ack,) = gateway.wait_acks(1)
    (letter,) = store.list_dead_letters()
    assert ack.seqs == [(2, 2)]
    assert store.readings("dev-q17") == [
        Reading("dev-q17", "t", T0 + SECOND, 2.0, "", 0)
    ]
    assert (letter.topic, letter.reason, letter.detail) == (
        "sf/v1/gw/gw-t/up/batch",
        "payload_too_large",
        "262145 bytes > 262144",
    )
    assert len(letter.payload) == LIMIT  # only the first max_payload_bytes kept
    assert hub.metrics.snapshot()["rejects"] == {"payload_too_large": 1}


def test_batch_at_payload_limit_accepted(hub, gateway, store):
    """A valid batch of exactly 262,144 bytes is stored whole (inclusive limit)."""
    ts = [T0 + i * SECOND for i in range(1000)]
    payload = batch(
        "gw-t",
        5,
        series("dev-q17", "t", ts, [float(i) for i in range(1000)]),
        pad_to=LIMIT,
    )

    gateway.send(payload)

    (ack,) = gateway.wait_acks(1)
    assert ack.seqs == [(5, 5)]
    assert store.count_readings("dev-q17") == 1000
    assert store.list_dead_letters() == []


C09_PAYLOAD = bytes.fromhex(
    "7b2254696d65223a22323032322d31322d32375431353a30363a3038222c225377697463683130"
    "f402001774656c652f6465762d6630392f484153535f53544154457b2256657273696f6e223a22"
    "382e322e30287461736d6f746129222c22557074696d65223a223133365431373a35363a323322"
)


def test_invalid_utf8_dead_lettered_next_stored(hub, gateway, store):
    """C09: a spliced non-UTF-8 payload is one invalid_utf8 dead letter; next kept."""
    gateway.publish("tele/dev-i09/SENSOR", C09_PAYLOAD)
    gateway.publish(
        "tele/dev-i09/SENSOR",
        b'{"Time":"2026-11-30T12:00:00","ENERGY":{"Power":118,"Voltage":230}}',
    )

    wait_for(lambda: store.count_readings("dev-i09") == 2, timeout=10)
    (letter,) = store.list_dead_letters()
    assert len(C09_PAYLOAD) == 117
    assert (letter.reason, letter.detail, letter.device) == (
        "invalid_utf8",
        "invalid byte 0xf4 at offset 39",
        "dev-i09",
    )
    assert {(r.metric, r.value) for r in store.readings("dev-i09")} == {
        ("ENERGY.Power", 118.0),
        ("ENERGY.Voltage", 230.0),
    }
    assert store.count_readings("dev-f09") == 0
    assert store.accounting("device", "dev-i09").rejected == {"invalid_utf8": 1}
    assert hub.metrics.snapshot()["rejects"] == {"invalid_utf8": 1}


def test_gateway_state_offline_marks_devices_offline(hub, gateway, store):
    """A gateway's offline state (its LWT) marks its devices offline."""
    gateway.send(batch("gw-t", 1, series("dev-s1", "t", [T0], [1.0])))
    gateway.wait_acks(1)
    assert store.get_device("dev-s1").online is True

    state = {"v": 1, "gw": "gw-t", "status": "offline", "agent": "edge/0.1"}
    gateway.publish(topics.state("gw-t"), orjson.dumps(state))

    wait_for(lambda: not store.get_device("dev-s1").online, timeout=10)
    assert store.get_gateway("gw-t").status == "offline"


def test_batch_for_other_gateway_dead_lettered(hub, gateway, store):
    """A batch of gateway A on gateway B's topic is a gateway_mismatch, not acked."""
    other = TestGateway(hub.settings.mqtt_url, "gw-a")
    try:
        gateway.send(batch("gw-a", 1, series("dev-m", "t", [T0], [1.0])))
        gateway.send(batch("gw-t", 2, series("dev-m", "t", [T0 + 1], [2.0])))

        (ack,) = gateway.wait_acks(1)
        assert ack.seqs == [(2, 2)]
        assert other.acks == []
        (letter,) = store.list_dead_letters()
        assert (letter.reason, letter.detail) == (
            "gateway_mismatch",
            "gw: 'gw-a' on 'gw-t''s topic",
        )
        assert store.count_readings("dev-m") == 1
    finally:
        other.close()


def test_adapter_topic_resolved_to_registered_device(hub, gateway, store):
    """C10: a Zigbee2MQTT topic with spaces and UTF-8 goes to the registered device."""
    from hub.storage import DeviceInfo

    kueche = "zigbee2mqtt/Küche Sensor 1"
    sampling = "zigbee2mqtt/dev-j10/temp_&_humidity_sampling"
    store.upsert_device(DeviceInfo(id="kueche-1", mqtt_topic=kueche))
    store.upsert_device(DeviceInfo(id="dev-j10", mqtt_topic=sampling))

    gateway.publish(kueche, b'{"temperature":21.5}')
    gateway.publish(sampling, b'{"value":300}')

    wait_for(lambda: store.count_readings() == 2, timeout=10)
    (reading,) = store.readings("kueche-1")
    # No time in the payload: stamped on receipt, and flagged so.
    assert (reading.metric, reading.value, reading.unit, reading.flags) == (
        "temperature",
        21.5,
        "°C",
        FLAG_SERVER_TIME,
    )
    (sampled,) = store.readings("dev-j10")
    assert (sampled.metric, sampled.value) == ("value", 300.0)
    assert store.get_device("kueche-1").online is True
    assert store.list_dead_letters() == []


def test_adapter_unregistered_invalid_source_dead_lettered(hub, gateway, store):
    """An unregistered source that is no valid id is a bad_device_id dead letter."""
    gateway.publish("zigbee2mqtt/bulb one", b'{"brightness":100}')
    gateway.publish("zigbee2mqtt/bulb-2", b'{"brightness":50}')

    wait_for(lambda: store.count_readings("bulb-2") == 1, timeout=10)
    (letter,) = store.list_dead_letters()
    assert (letter.topic, letter.reason) == ("zigbee2mqtt/bulb one", "bad_device_id")
    assert hub.metrics.snapshot()["rejects"] == {"bad_device_id": 1}


def test_hub_restart_receives_batches_sent_while_down(broker, store, tmp_path):
    """The persistent session keeps QoS 1 batches while the hub is down."""
    settings = hub_settings(broker.url, tmp_path)
    service = start_hub(settings, store)
    gateway = TestGateway(broker.url, "gw-t")
    try:
        service.stop(5)
        for seq in (1, 2, 3):
            gateway.send(batch("gw-t", seq, series("dev-r", "t", [T0 + seq], [1.0])))

        service = start_hub(settings, store)  # same client id: same session

        wait_for(lambda: store.count_readings("dev-r") == 3, timeout=3)
        wait_for(lambda: acked_seqs(gateway) == [1, 2, 3], timeout=5)
    finally:
        gateway.close()
        service.stop(5)


def acked_seqs(gateway: TestGateway) -> list[int]:
    """Every seq the gateway's acks named, sorted."""
    return sorted(
        s for a in gateway.acks for lo, hi in a.seqs for s in range(lo, hi + 1)
    )


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
def test_shared_subscription_over_mqtt5(broker, gateway, store, tmp_path):
    """With MQTT 5 and a shared group the hub subscribes under $share and acks."""
    settings = hub_settings(broker.url, tmp_path, mqtt_version="5", shared_group="hubs")
    service = start_hub(settings, store)
    try:
        gateway.send(batch("gw-t", 4, series("dev-5", "t", [T0], [5.0])))

        (ack,) = gateway.wait_acks(1)
        assert service.subscriptions == [
            "$share/hubs/sf/v1/gw/+/up/batch",
            "$share/hubs/sf/v1/gw/+/up/state",
            "$share/hubs/sf/v1/dev/+/up/telemetry",
        ]
        assert ack.seqs == [(4, 4)]
        assert store.count_readings("dev-5") == 1
    finally:
        service.stop(5)
