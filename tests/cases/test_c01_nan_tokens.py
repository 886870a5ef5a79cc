"""C01: bare lowercase ``nan`` in a Tasmota SENSOR payload (arendst/Tasmota#4147).

Protocol level: each non-finite field is one ``non_finite_value`` reject, the
rest of the message is kept, the device is alive. Counters in the running
hub, ``last_seen`` and the absence of alerts are checked at hub level.
"""

from __future__ import annotations

import orjson
import pytest

from protocol import codec
from protocol.adapters import get_adapter
from protocol.batch import Limits, decode_batch
from protocol.const import RejectReason as R
from tests.protocol.helpers import us

TOPIC = "tele/dev-a01/SENSOR"
PAYLOAD_1 = (
    b'{"Time":"2026-11-30T12:00:00","DHT11":{"Temperature":nan,"Humidity":nan},'
    b'"TempUnit":"C"}'
)
PAYLOAD_2 = (
    b'{"Time":"2026-11-30T12:00:10","DHT11":{"Temperature":21.4,"Humidity":48.0},'
    b'"TempUnit":"C"}'
)
RECEIVED_1 = us("2026-11-30T12:00:00.300Z")
RECEIVED_2 = us("2026-11-30T12:00:10.300Z")

#: Every bare non-finite token firmware prints, and quoted ones too.
TOKENS = [
    *(b"nan", b"NaN", b"NAN", b"-nan", b"+nan", b"inf", b"-inf", b"+inf"),
    *(b"Inf", b"INF", b"Infinity", b"-Infinity", b"infinity"),
    *(b'"nan"', b'"NaN"', b'"-inf"', b'"Infinity"'),
]


def _tasmota(payload, received=RECEIVED_1):
    return get_adapter("tasmota").adapt(TOPIC, payload, received, Limits())


def test_c01_nan_payload_two_rejects():
    """Item 3: two non_finite_value rejects naming DHT11.Temperature and .Humidity."""
    msg = _tasmota(PAYLOAD_1)
    assert [(r.reason, r.field, r.device) for r in msg.rejects] == [
        (R.NON_FINITE_VALUE, "DHT11.Temperature", "dev-a01"),
        (R.NON_FINITE_VALUE, "DHT11.Humidity", "dev-a01"),
    ]


def test_c01_nan_payload_no_reading():
    """Item 2: no reading at all (no NaN, no 0, no null) comes from the message."""
    assert _tasmota(PAYLOAD_1).readings == []


def test_c01_nan_payload_device_alive():
    """Item 4: the message counts as activity of dev-a01 (only its sensor broke)."""
    msg = _tasmota(PAYLOAD_1)
    assert (msg.source, msg.alive) == ("dev-a01", True)


def test_c01_follow_up_stored():
    """Item 5: the follow-up gives 2 readings at its device time (naive as UTC)."""
    msg = _tasmota(PAYLOAD_2, RECEIVED_2)
    assert [(r.metric, r.ts_us, r.value, r.unit, r.flags) for r in msg.readings] == [
        ("DHT11.Temperature", us("2026-11-30T12:00:10Z"), 21.4, "°C", 0),
        ("DHT11.Humidity", us("2026-11-30T12:00:10Z"), 48.0, "%", 0),
    ]
    assert msg.rejects == []


@pytest.mark.parametrize("token", TOKENS)
@pytest.mark.parametrize(
    ("name", "topic"),
    [
        ("tasmota", TOPIC),
        ("json", "sf/v1/dev/dev-a01/up/telemetry"),
        ("zigbee2mqtt", "zigbee2mqtt/dev-a01"),
    ],
)
def test_c01_every_token_every_adapter(token, name, topic):
    """Item 3, whole kind: any non-finite token is one reject; other fields kept."""
    payload = b'{"S":{"a":' + token + b'},"b":1.5}'
    msg = get_adapter(name).adapt(topic, payload, RECEIVED_1, Limits())
    assert [(r.reason, r.field) for r in msg.rejects] == [(R.NON_FINITE_VALUE, "S.a")]
    assert [(r.metric, r.value) for r in msg.readings] == [("b", 1.5)]


def test_c01_nan_inside_string_untouched():
    """Item 3: only tokens outside string literals are treated; strings stay text."""
    payload = b'{"Name":"x nan, inf","DHT11":{"Temperature":nan,"Id":"0316 nan"}}'
    msg = _tasmota(payload)
    assert [(r.reason, r.field) for r in msg.rejects] == [
        (R.NON_FINITE_VALUE, "DHT11.Temperature")
    ]


def test_c01_nan_in_batch_envelope():
    """Item 3, whole kind: in a v1 batch a bare nan rejects only its reading."""
    envelope = {
        "v": 1,
        "gw": "gw-01",
        "seq": 1,
        "sent": RECEIVED_1,
        "series": [
            {"dev": "dev-a01", "metric": "t", "ts": [RECEIVED_1] * 2, "values": [1, 2]}
        ],
    }
    payload = codec.dumps(envelope).replace(b"[1,2]", b"[nan,2]")
    out = decode_batch(payload, RECEIVED_1)
    assert [(r.reason, r.field) for r in out.rejects] == [
        (R.NON_FINITE_VALUE, "series[0].values[0]")
    ]
    assert out.blocks[0].values == [2.0]


def test_c01_payload_is_not_strict_json():
    """Context: the exact payload is refused by a strict JSON parser."""
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(PAYLOAD_1)
