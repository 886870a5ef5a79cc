"""Local input: sensors on the gateway's broker, through adapters, into the buffer."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent import Buffer, InputSettings
from protocol.validate import now_us
from tests.edge_agent.conftest import (
    GW,
    buffered_count,
    edge_settings,
    spawn_agent,
)
from tests.services import wait_for

pytestmark = [pytest.mark.broker]


def publisher(broker) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sf-test-sensor")
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    return client


def test_local_reading_reaches_hub(tmp_path, broker, responder, start_agent):
    """A sensor message on the local broker is buffered and delivered."""
    settings = edge_settings(tmp_path, broker.url, local_url=broker.url)
    start_agent(settings)
    sensor = publisher(broker)
    ts = now_us() - 1000
    sensor.publish(
        "sf/v1/dev/dev-7/up/telemetry",
        orjson.dumps({"temperature": 21.5, "ts": ts}),
        qos=1,
    ).wait_for_publish(5)
    sensor.disconnect()
    sensor.loop_stop()
    wait_for(lambda: responder.stored(), timeout=10, what="reading at the hub")
    assert responder.stored() == [("dev-7", "temperature", ts, 21.5)]


def test_local_rejects_counted_rest_kept(tmp_path, broker, start_agent):
    """Bad fields are counted by reason; the good field of the message is kept."""
    settings = edge_settings(
        tmp_path,
        broker.url,
        local_url=broker.url,
        batch_max_age_s=60.0,
        send_when_idle=False,
        stop_grace_s=0.1,
    )
    agent = start_agent(settings)
    sensor = publisher(broker)
    for topic, payload in [
        ("sf/v1/dev/dev-8/up/telemetry", b'{"t": 20.5, "h": "x", "p": NaN}'),
        ("sf/v1/dev/bad id/up/telemetry", b'{"t": 1}'),
    ]:
        sensor.publish(topic, payload, qos=1).wait_for_publish(5)
    sensor.disconnect()
    sensor.loop_stop()
    wait_for(lambda: len(agent.stats.rejected) == 3, timeout=10, what="rejects")
    assert agent.stats.rejected == {
        "non_numeric_string": 1,
        "non_finite_value": 1,
        "bad_device_id": 1,
    }
    assert agent.stats.pending == 1


def test_local_adapter_chosen_by_filter(tmp_path, broker, responder, start_agent):
    """A Tasmota input maps tele/<name>/SENSOR payloads to readings of <name>."""
    settings = edge_settings(
        tmp_path,
        broker.url,
        local_url=broker.url,
        inputs=[InputSettings(adapter="tasmota", filter="tele/+/SENSOR")],
    )
    start_agent(settings)
    sensor = publisher(broker)
    sensor.publish(
        "tele/kitchen/SENSOR",
        b'{"Time":"2026-11-30T12:00:00Z","AM2301":{"Temperature":21.3}}',
        qos=1,
    ).wait_for_publish(5)
    sensor.disconnect()
    sensor.loop_stop()
    wait_for(lambda: responder.stored(), timeout=10, what="reading at the hub")
    assert responder.stored() == [
        ("kitchen", "AM2301.Temperature", 1_796_040_000_000_000, 21.3)
    ]


def _publish_steadily(broker, count: int, stop: threading.Event) -> list[int]:
    """Publish ``count`` QoS 1 readings, value i, about 1,000 a second."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sf-test-steady")
    client.max_inflight_messages_set(100)
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    acked = []
    base = now_us() - 10_000_000
    try:
        for i in range(count):
            if stop.is_set():
                break
            info = client.publish(
                "sf/v1/dev/dev-s/up/telemetry",
                orjson.dumps({"n": i, "ts": base + i}),
                qos=1,
            )
            info.wait_for_publish(5)
            acked.append(i)
            time.sleep(0.001)
    finally:
        client.disconnect()
        client.loop_stop()
    return acked


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.fault
def test_local_persistent_session_survives_kill(tmp_path, mosquitto_broker):
    """Killed while a sensor publishes, the agent ends with every message once."""
    local = mosquitto_broker
    args = [
        "--gateway-id",
        GW,
        "--hub-url",
        mosquitto_broker.url,
        "--local-url",
        local.url,
        "--data-dir",
        str(tmp_path / "edge"),
    ]
    env = {
        "STREAMFLOW_EDGE_RECONNECT_MIN_S": "0.1",
        "STREAMFLOW_EDGE_RECONNECT_MAX_S": "0.5",
        "STREAMFLOW_EDGE_STOP_GRACE_S": "0.1",
    }
    db = tmp_path / "edge" / "buffer.sqlite"
    count = 1500
    agent = spawn_agent(tmp_path, *args, **env)
    try:
        log = tmp_path / "agent.log"
        wait_for(
            lambda: b"local subscriptions ready" in log.read_bytes(),
            timeout=15,
            what="local subscription",
        )
        stop = threading.Event()
        published: list[int] = []
        feeder = threading.Thread(
            target=lambda: published.extend(_publish_steadily(local, count, stop))
        )
        feeder.start()
        wait_for(lambda: buffered_count(db) >= 300, timeout=15, what="first readings")
        agent.send_signal(signal.SIGKILL)
        agent.wait(5)
        time.sleep(0.5)  # the sensor goes on publishing meanwhile
        agent = spawn_agent(tmp_path, *args, **env)
        feeder.join(30)
        assert published == list(range(count))
        wait_for(lambda: buffered_count(db) >= count, timeout=20, what="all buffered")
        time.sleep(0.3)  # a redelivery would show up here as a surplus
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(5)
    buf = Buffer(db, gateway_id=GW, max_bytes=1 << 30)
    values = Counter(int(r.value) for r in buf.readings())
    buf.close()
    assert sum(values.values()) == count
    assert sorted(values) == list(range(count))


def _session_client(broker, got: list[bytes]) -> mqtt.Client:
    """A persistent-session subscriber that never PUBACKs (manual_ack)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="sf-test-holder",
        clean_session=False,
        manual_ack=True,
    )
    subscribed = threading.Event()
    client.on_connect = lambda c, *a: c.subscribe("sf/test/held", qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    assert subscribed.wait(10), "holder did not subscribe"
    return client


@pytest.mark.parametrize(
    "kind",
    [
        "mosquitto",
        pytest.param(
            "amqtt",
            marks=pytest.mark.xfail(
                reason="amqtt 0.12 keeps the session and queues new messages but "
                "never resends the QoS 1 messages left un-PUBACKed at a disconnect "
                "(MQTT 3.1.1 section 4.4): those are lost",
                strict=True,
            ),
        ),
    ],
)
def test_local_broker_redelivers_unacked(kind, request):
    """The local broker resends, on reconnect, what the agent had not PUBACKed.

    The agent's no-loss promise for local input rests on this broker behaviour.
    """
    broker = request.getfixturevalue(f"{kind}_broker")
    first: list[bytes] = []
    holder = _session_client(broker, first)
    sensor = publisher(broker)
    for i in range(3):
        sensor.publish("sf/test/held", b"m%d" % i, qos=1).wait_for_publish(5)
    wait_for(lambda: len(first) == 3, timeout=10, what="first delivery")
    holder.disconnect()
    holder.loop_stop()
    sensor.disconnect()
    sensor.loop_stop()
    again: list[bytes] = []
    holder = _session_client(broker, again)
    try:
        wait_for(lambda: len(again) >= 3, timeout=3, what="redelivery")
    finally:
        holder.disconnect()
        holder.loop_stop()
    assert sorted(again) == [b"m0", b"m1", b"m2"]
