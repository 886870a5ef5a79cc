"""Processors in the hub: real broker, real TimescaleDB, a threshold rule.

A gateway's batch over the rule's threshold gives exactly one event,
published on sf/v1/events/threshold/{dev} and stored; the same batch sent
again gives none, since processors see only what a commit stored as new.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from paho.mqtt.client import Client, MQTTMessage, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion

from hub.processors.events import Event, EventState
from hub.processors.thresholds import ThresholdRule, create_rule
from hub.storage.timescale import TimescaleStore
from protocol.validate import now_us
from tests.hub.test_ingest import (
    SECOND,
    TestGateway,
    batch,
    hub_settings,
    series,
    start_hub,
)
from tests.services import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.db]


class EventListener:
    """A subscriber to every processor event on the broker."""

    def __init__(self, url: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        host, port = url.removeprefix("mqtt://").split(":")
        self._client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"events-{uuid.uuid4().hex[:6]}",
            protocol=MQTTv311,
        )
        subscribed = threading.Event()
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.connect(host, int(port), 30)
        self._client.loop_start()
        self._client.subscribe("sf/v1/events/#", 1)
        assert subscribed.wait(10), "event subscription not confirmed"

    def _on_message(self, client, userdata, msg: MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def pg_store(pg_dsn):
    """A migrated TimescaleDB store with the rule ``hot``: above 30."""
    store = TimescaleStore(pg_dsn)
    store.migrate()
    create_rule(store, ThresholdRule(id="hot", condition="above", threshold=30.0))
    yield store
    store.close()


@pytest.fixture
def running(broker, pg_store, tmp_path):
    """A hub with the default processors, a test gateway and an event listener."""
    listener = EventListener(broker.url)
    service = start_hub(hub_settings(broker.url, tmp_path), pg_store)
    gateway = TestGateway(broker.url, "gw-e")
    yield service, gateway, listener
    gateway.close()
    listener.close()
    service.stop(5)


def test_threshold_event_published_stored_once_and_not_again_on_resend(
    running, pg_store
):
    """One breach: one event on its topic and in the store; the resend adds none."""
    service, gateway, listener = running
    t0 = now_us() - 60 * SECOND
    payload = batch(
        "gw-e",
        1,
        series(
            "dev-e",
            "temperature",
            [t0, t0 + SECOND, t0 + 2 * SECOND],
            [25.0, 35.0, 36.0],
            "C",
        ),
    )

    gateway.send(payload)
    gateway.wait_acks(1)
    ((topic, body),) = wait_for(listener.received, timeout=10, what="the event")
    gateway.send(payload)
    gateway.wait_acks(2)
    # A later batch of another device, processed after anything the resend
    # could have caused: once it is through, the resend's effect is known.
    gateway.send(batch("gw-e", 2, series("dev-f", "temperature", [t0], [20.0], "C")))
    gateway.wait_acks(3)
    wait_for(
        lambda: service.processors.figures()["batches"] == 2,
        timeout=10,
        what="the processors to take the third batch",
    )

    event = Event.model_validate_json(body)
    assert topic == "sf/v1/events/threshold/dev-e"
    assert (event.state, event.ts_us, event.value, event.rule, event.past) == (
        EventState.RAISED,
        t0 + SECOND,
        35.0,
        "hot",
        False,
    )
    assert [r.id for r in pg_store.list_events()] == [event.id]
    assert listener.received() == [(topic, body)]
    assert service.processors.figures()["events_published"] == 1
