"""Topics the hub cannot read (bad UTF-8, control characters) and its log lines."""

from __future__ import annotations

import logging

import pytest
from paho.mqtt.client import MQTTMessage

from hub.config import AdapterRoute, HubSettings
from hub.service import HubService, load_adapters
from tests.hub.test_ingest import (
    C09_PAYLOAD,
    TestGateway,
    hub_settings,
    start_hub,
)
from tests.hub.test_ingest_faults import RecordingTransport, make_pipeline
from tests.services import wait_for

BAD_TOPICS = [
    pytest.param(b"sf/v1/gw/\xff\xfe/up/batch", id="invalid-utf8"),
    pytest.param(b"tele/dev\x00x/SENSOR", id="nul"),
    pytest.param(b"sf/v1/dev/dev\x01a/up/telemetry", id="c0-control"),
    pytest.param("sf/v1/dev/dev\x9fa/up/telemetry".encode(), id="c1-control"),
    pytest.param(b"sf/v1/gw/bad id/up/batch", id="invalid-gateway-id"),
]


@pytest.mark.parametrize("raw_topic", BAD_TOPICS)
def test_bad_topic_counted_acked_dropped(sqlite_store, tmp_path, raw_topic):
    """A topic the hub cannot read is counted as bad_topic, PUBACKed, not queued."""
    pipeline, transport = make_pipeline(sqlite_store, tmp_path)

    pipeline.receive(raw_topic, b'{"t": 1}', 7, 1, False)

    assert transport.pubacks == [7]
    snap = pipeline.metrics.snapshot()
    assert (snap["rejects"], snap["queue_depth"]) == ({"bad_topic": 1}, 0)


def test_service_on_message_invalid_utf8_topic_does_not_raise(sqlite_store, tmp_path):
    """paho's msg.topic raises on invalid UTF-8; the service reads the raw bytes."""
    settings = HubSettings(data_dir=tmp_path)
    service = HubService(settings, sqlite_store, adapters=[])
    msg = MQTTMessage(mid=3, topic=b"tele/\xc3\x28/SENSOR")
    msg.payload = b"{}"
    msg.qos = 0
    with pytest.raises(UnicodeDecodeError):
        _ = msg.topic

    service._on_message(service._client, None, msg)

    assert service.metrics.snapshot()["rejects"] == {"bad_topic": 1}


def test_topic_on_no_filter_acked_and_counted_ignored(sqlite_store, tmp_path):
    """A message on none of the hub's filters is acked and counted as ignored."""
    pipeline, transport = make_pipeline(sqlite_store, tmp_path)
    pipeline.start()

    pipeline.receive(b"somewhere/else", b"{}", 5, 1, False)
    wait_for(lambda: transport.pubacks == [5], timeout=5)
    pipeline.stop(5)

    assert pipeline.metrics.snapshot()["ignored"] == 1
    assert sqlite_store.count_readings() == 0


def test_repeated_dead_letter_logged_once_without_payload(
    sqlite_store, tmp_path, caplog
):
    """Five bad payloads on one topic give one WARNING naming topic, size, offset."""
    settings = HubSettings(data_dir=tmp_path, write_max_delay_s=0.0)
    transport = RecordingTransport()
    adapters = load_adapters(
        settings.model_copy(
            update={
                "adapters": [AdapterRoute(adapter="tasmota", filter="tele/+/SENSOR")]
            }
        )
    )
    from hub.ingest import IngestPipeline

    pipeline = IngestPipeline(settings, sqlite_store, transport, adapters)
    pipeline.start()
    with caplog.at_level(logging.WARNING, logger="hub"):
        for mid in range(1, 6):
            pipeline.receive(b"tele/dev-i09/SENSOR", C09_PAYLOAD, mid, 1, False)
        wait_for(lambda: len(transport.pubacks) == 5, timeout=5)
    pipeline.stop(5)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "message rejected topic=tele/dev-i09/SENSOR size=117 reason=invalid_utf8 "
        "detail=invalid byte 0xf4 at offset 39 suppressed=0"
    ]
    assert pipeline.metrics.snapshot()["rejects"] == {"invalid_utf8": 5}
    assert len(sqlite_store.list_dead_letters()) == 5


@pytest.mark.broker
def test_control_character_topic_through_broker_keeps_client(
    amqtt_broker, sqlite_store, tmp_path
):
    """C10: a control character in a topic (amqtt passes it) is bad_topic; next kept."""
    service = start_hub(hub_settings(amqtt_broker.url, tmp_path), sqlite_store)
    sensor = TestGateway(amqtt_broker.url, "gw-x")
    try:
        sensor.publish("sf/v1/dev/dev\x01x/up/telemetry", b'{"t": 1}')
        sensor.publish("sf/v1/dev/dev-x/up/telemetry", b'{"t": 2}')

        wait_for(lambda: sqlite_store.count_readings("dev-x") == 1, timeout=10)
        assert service.metrics.snapshot()["rejects"] == {"bad_topic": 1}
        assert service.connected is True
    finally:
        sensor.close()
        service.stop(5)


@pytest.fixture
def sqlite_store(tmp_path):
    """A migrated SQLite store."""
    from hub.storage import open_store

    store = open_store(f"sqlite:///{tmp_path}/hub.db")
    store.migrate()
    yield store
    store.close()
