"""Properties every adapter keeps on any input: never raise, sound output."""

from __future__ import annotations

import math
import re

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol.adapters import get_adapter
from protocol.adapters.base import AdaptedMessage
from protocol.batch import Limits
from protocol.const import CLOCK_FLOOR_US, FLAG_SERVER_TIME, Notice, RejectReason
from protocol.readings import Reading
from tests.protocol.helpers import us
from tests.protocol.strategies import (
    JSON_DOCS,
    NAN_SENTINEL,
    PAYLOAD_REASONS,
    SENSOR_DOCS,
)

RECEIVED = us("2026-11-30T12:00:05Z")
LIMITS = Limits()
_METRIC_RE = re.compile(r"[^\x00-\x1f]{1,128}")

#: Each adapter with a data topic of its convention.
TARGETS = [
    ("json", "sf/v1/dev/dev-1/up/telemetry"),
    ("json", "sensor/data"),
    ("tasmota", "tele/dev-a01/SENSOR"),
    ("zigbee2mqtt", "zigbee2mqtt/Küche Sensor 1"),
]
_PROFILE = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _check_reading(reading: Reading, source: str) -> None:
    assert reading.device == source
    assert math.isfinite(reading.value), reading
    assert _METRIC_RE.fullmatch(reading.metric), reading
    assert len(reading.unit) <= 32
    assert reading.flags & ~FLAG_SERVER_TIME == 0
    if reading.flags:
        assert reading.ts_us == RECEIVED, reading
    else:
        assert CLOCK_FLOOR_US <= reading.ts_us <= RECEIVED + 300_000_000, reading


def _check(name: str, topic: str, payload: bytes) -> None:
    msg = get_adapter(name).adapt(topic, payload, RECEIVED, LIMITS)
    assert isinstance(msg, AdaptedMessage)
    assert msg.source
    for reading in msg.readings:
        _check_reading(reading, msg.source)
    for reject in msg.rejects:
        assert isinstance(reject.reason, RejectReason)
        assert reject.device == msg.source
        # A reject without a field path stands for the whole payload, alone.
        if not reject.field:
            assert reject.reason in PAYLOAD_REASONS, reject
            assert (msg.rejects, msg.readings) == ([reject], [])
    assert set(msg.notices) <= set(Notice)
    assert msg.alive is (payload != b"")


@pytest.mark.parametrize(("name", "topic"), TARGETS)
@_PROFILE
@given(payload=st.binary(max_size=300))
@example(payload=b"")
@example(payload=b'{"TempUnit": [1], "DHT11": {"Temperature": 1}}')
def test_adapt_arbitrary_bytes(name, topic, payload):
    """On any bytes adapt() returns a sound message and never raises."""
    _check(name, topic, payload)


@pytest.mark.parametrize(("name", "topic"), TARGETS)
@_PROFILE
@given(doc=st.one_of(JSON_DOCS, SENSOR_DOCS))
def test_adapt_arbitrary_documents(name, topic, doc):
    """On any JSON document, bare nan tokens included, adapt() never raises."""
    payload = orjson.dumps(doc).replace(orjson.dumps(NAN_SENTINEL), b"nan")
    _check(name, topic, payload)
