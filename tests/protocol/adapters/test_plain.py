"""The ``json`` adapter: shapes, devices, times, strings (protocol.adapters.plain)."""

from __future__ import annotations

import gzip
from zoneinfo import ZoneInfo

import orjson
import pytest

from protocol.adapters.plain import PlainJsonAdapter
from protocol.batch import Limits
from protocol.const import FLAG_SERVER_TIME, Notice
from protocol.const import RejectReason as R
from protocol.readings import Reading
from tests.protocol.helpers import triples, us

RECEIVED = us("2026-11-30T12:00:05Z")
T0 = us("2026-11-30T12:00:00Z")
TELEMETRY = "sf/v1/dev/dev-1/up/telemetry"


def _adapt(payload, topic=TELEMETRY, adapter=None):
    if not isinstance(payload, bytes):
        payload = orjson.dumps(payload)
    adapter = adapter or PlainJsonAdapter()
    msg = adapter.adapt(topic, payload, RECEIVED, Limits())
    assert msg is not None
    return msg


def _rejects(msg):
    return [(r.reason, r.field) for r in msg.rejects]


# -- devices ------------------------------------------------------------------


def test_telemetry_topic_names_device():
    """On the v1 telemetry topic the topic's id is the device, not the payload's."""
    msg = _adapt({"device": "dev-2", "temperature": 21.5})
    assert msg.source == "dev-1"
    assert msg.readings == [
        Reading("dev-1", "temperature", RECEIVED, 21.5, "", FLAG_SERVER_TIME)
    ]


@pytest.mark.parametrize("key", ["device", "device_name", "dev"])
def test_payload_device_key(key):
    """On other topics the payload's device field names the device."""
    msg = _adapt({key: "dev-e05", "t": 1}, topic="sensor/data")
    assert (msg.source, [r.device for r in msg.readings]) == ("dev-e05", ["dev-e05"])


def test_payload_device_integer():
    """An integer device field is the device's name as decimal text."""
    assert _adapt({"device": 12345, "t": 1}, topic="sensor/data").source == "12345"


@pytest.mark.parametrize(
    ("topic", "source"),
    [("sensor/data", "data"), ("a/b/", "b"), ("one", "one"), ("/", "/")],
)
def test_device_from_last_topic_level(topic, source):
    """Without a device field the last non-empty topic level is the device."""
    assert _adapt({"t": 1}, topic=topic).source == source


@pytest.mark.parametrize("device", ["", "a\x00b", ["x"], 1.5, True, "d" * 129])
def test_bad_device_field_rejected(device):
    """A device field that cannot name a device rejects the message whole."""
    msg = _adapt({"device": device, "t": 1}, topic="sensor/data")
    assert (_rejects(msg), msg.readings) == ([(R.BAD_DEVICE_ID, "device")], [])


# -- shapes -------------------------------------------------------------------


def test_flat_object_with_ts():
    """A flat object's fields are readings at its ts, with the device's time."""
    msg = _adapt({"ts": 1796040000, "temperature": 21.5, "humidity": 48})
    assert triples(msg.readings) == [("temperature", T0, 21.5), ("humidity", T0, 48.0)]
    assert [r.flags for r in msg.readings] == [0, 0]


def test_nested_objects_flattened():
    """Nested objects become dotted metrics and lists indexed ones."""
    msg = _adapt({"ts": T0, "ENERGY": {"Power": 7, "Voltage": [230, 231]}})
    assert triples(msg.readings) == [
        ("ENERGY.Power", T0, 7.0),
        ("ENERGY.Voltage[0]", T0, 230.0),
        ("ENERGY.Voltage[1]", T0, 231.0),
    ]


def test_thingsboard_values_object():
    """{"ts", "values"}: the readings are the fields of values, named bare."""
    msg = _adapt({"ts": 1796040000000, "values": {"key1": 1000, "key2": "x"}})
    assert triples(msg.readings) == [("key1", T0, 1000.0)]
    assert _rejects(msg) == [(R.NON_NUMERIC_STRING, "values.key2")]


def test_single_value_form():
    """{"value", "sensor_type", "unit"}: one reading; the other fields describe."""
    doc = {
        "value": 81.5,
        "sensor_type": "state_of_charge",
        "unit": "%",
        "status": 0,
        "scalefactor": 1.0,
        "description": "state of charge",
        "timestamp": "2026-11-30T12:00:00Z",
    }
    assert _adapt(doc).readings == [Reading("dev-1", "state_of_charge", T0, 81.5, "%")]


def test_single_value_metric_key():
    """ "metric" names a single value like "sensor_type"."""
    msg = _adapt({"value": "7", "metric": "co2", "ts": T0})
    assert triples(msg.readings) == [("co2", T0, 7.0)]


def test_single_value_object_value():
    """A single value that is an object flattens under the metric's name."""
    msg = _adapt({"value": {"lat": 1.5, "lon": 2.5}, "metric": "gps", "ts": T0})
    assert triples(msg.readings) == [("gps.lat", T0, 1.5), ("gps.lon", T0, 2.5)]


@pytest.mark.parametrize("name", [3, "", None, "a\nb"])
def test_single_value_bad_name(name):
    """A single value whose name is not a metric name is bad_metric, naming the key."""
    msg = _adapt({"value": 1, "sensor_type": name})
    assert (_rejects(msg), msg.readings) == ([(R.BAD_METRIC, "sensor_type")], [])


def test_value_alone_is_flat():
    """{"value": 300} without a name is a flat object: a reading named value."""
    assert triples(_adapt({"value": 300, "ts": T0}).readings) == [("value", T0, 300.0)]


def test_readings_envelope():
    """{"readings": [...]}: each element has its own time, or the envelope's."""
    doc = {
        "device": "dev-l12",
        "ts": T0,
        "readings": [
            {"ts": "2026-11-30T12:00:10Z", "temperature": 21.1},
            {"temperature": 21.0},
            {"ts": T0 + 5_000_000, "metric": "rh", "value": 40},
        ],
    }
    msg = _adapt(doc, topic="edge/gw-01/batch")
    assert msg.source == "dev-l12"
    assert triples(msg.readings) == [
        ("temperature", T0 + 10_000_000, 21.1),
        ("temperature", T0, 21.0),
        ("rh", T0 + 5_000_000, 40.0),
    ]


def test_readings_envelope_bad_element():
    """An element that is not an object is bad_value_type with its index."""
    msg = _adapt({"readings": [{"t": 1}, 5]})
    assert [(r.reason, r.field, r.index) for r in msg.rejects] == [
        (R.BAD_VALUE_TYPE, "readings[1]", 1)
    ]
    assert len(msg.readings) == 1


def test_readings_element_bad_time_rejects_element_only():
    """A bad time in one element rejects that element; the others are kept."""
    doc = {"readings": [{"ts": "garbage", "t": 1}, {"ts": T0, "t": 2}]}
    msg = _adapt(doc)
    assert [(r.reason, r.field, r.index) for r in msg.rejects] == [
        (R.BAD_TIMESTAMP, "readings[0].ts", 0)
    ]
    assert triples(msg.readings) == [("t", T0, 2.0)]


def test_list_of_objects():
    """A list of objects: each object with its own time (ThingsBoard list, C04)."""
    doc = [{"ts": T0, "values": {"k": 1}}, {"ts": T0 + 1, "k": 2}, 7]
    msg = _adapt(doc)
    assert triples(msg.readings) == [("k", T0, 1.0), ("k", T0 + 1, 2.0)]
    assert [(r.reason, r.field, r.index) for r in msg.rejects] == [
        (R.BAD_VALUE_TYPE, "[2]", 2)
    ]


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b'""', "str"),
        (b"[]", "empty list"),
        (b"[1, 2]", "list without objects"),
        (b"42", "int"),
        (b"null", "null"),
        (b"true", "bool"),
    ],
)
def test_not_object_rejected(payload, detail):
    """JSON that is neither an object nor a list of objects is payload_not_object."""
    msg = _adapt(payload)
    assert [(r.reason, r.field, r.detail) for r in msg.rejects] == [
        (R.PAYLOAD_NOT_OBJECT, "", detail)
    ]
    assert (msg.readings, msg.alive) == ([], True)


def test_empty_payload_notice():
    """A zero-length payload is an empty_payload notice and not device activity."""
    msg = _adapt(b"")
    assert (msg.readings, msg.rejects, msg.alive) == ([], [], False)
    assert msg.notices == {Notice.EMPTY_PAYLOAD: 1}


def test_compressed_payload():
    """A gzip body is inflated before reading."""
    msg = _adapt(gzip.compress(b'{"ts": 1796040000, "t": 1.5}'))
    assert triples(msg.readings) == [("t", T0, 1.5)]


def test_undecodable_payload_one_reject():
    """A payload that fails decoding is one reject, attributed to the device."""
    msg = _adapt(b"{nope")
    assert [(r.reason, r.device) for r in msg.rejects] == [(R.INVALID_JSON, "dev-1")]


# -- fields and strings --------------------------------------------------------


def test_descriptive_keys_skipped():
    """Units, names, ids and descriptions are never readings, whatever their type."""
    doc = {"unit": "C", "description": "x", "name": "n", "id": 5, "type": 2, "t": 1}
    msg = _adapt(doc)
    assert ([r.metric for r in msg.readings], msg.rejects) == (["t"], [])


def test_state_words_counted_not_stored():
    """ON/OFF/open/true strings are state_value notices, not readings or rejects."""
    msg = _adapt({"relay": "ON", "door": "closed", "ok": "TRUE", "t": 1})
    assert ([r.metric for r in msg.readings], msg.rejects) == (["t"], [])
    assert msg.notices == {Notice.STATE_VALUE: 3}


def test_text_attribute_strings_ignored():
    """Strings of status/mode/state-like keys are text; their numbers are read."""
    msg = _adapt({"mode": "auto", "fan_mode": "low", "status": 0, "t": "21.5"})
    assert sorted(triples(msg.readings)) == [
        ("status", RECEIVED, 0.0),
        ("t", RECEIVED, 21.5),
    ]
    assert msg.rejects == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("22,0", R.NON_NUMERIC_STRING),
        ("abc", R.NON_NUMERIC_STRING),
        ("nan", R.NON_FINITE_VALUE),
        ("-Infinity", R.NON_FINITE_VALUE),
    ],
)
def test_bad_string_rejected_rest_kept(value, reason):
    """A bad string is a reject naming its field; the message's others are kept."""
    msg = _adapt({"a": value, "b": 2})
    assert _rejects(msg) == [(reason, "a")]
    assert triples(msg.readings) == [("b", RECEIVED, 2.0)]


def test_bare_nan_token_rejected_rest_kept():
    """A bare nan token is non_finite_value for its field only (C01 kind)."""
    msg = _adapt(b'{"a": {"b": nan}, "c": -inf, "d": 3}')
    assert _rejects(msg) == [(R.NON_FINITE_VALUE, "a.b"), (R.NON_FINITE_VALUE, "c")]
    assert [r.metric for r in msg.readings] == ["d"]


def test_booleans_are_numbers():
    """JSON booleans are readings 1.0 and 0.0 (protocol.validate)."""
    msg = _adapt({"occupancy": True, "leak": False})
    assert [r.value for r in msg.readings] == [1.0, 0.0]


def test_null_skipped_silently():
    """null is neither a reading nor a reject."""
    msg = _adapt({"a": None, "b": 1})
    assert ([r.metric for r in msg.readings], msg.rejects, msg.notices) == (
        ["b"],
        [],
        {},
    )


@pytest.mark.parametrize(
    ("key", "field"),
    [("m" * 129, "m" * 129), ("a\x01b", "a\x01b"), ("", '""')],
)
def test_bad_metric_name_rejected(key, field):
    """A key that cannot be a metric name (length, control, empty) is bad_metric."""
    msg = _adapt({key: 1, "ok": 2})
    assert _rejects(msg) == [(R.BAD_METRIC, field)]
    assert [r.metric for r in msg.readings] == ["ok"]


def test_metric_name_of_128_accepted():
    """A metric name of exactly 128 characters is accepted."""
    assert [r.metric for r in _adapt({"m" * 128: 1}).readings] == ["m" * 128]


def test_too_deep_rejected():
    """Nesting deeper than the bound is one bad_value_type reject."""
    doc: dict = {"x": 1}
    for _ in range(10):
        doc = {"n": doc}
    msg = _adapt(doc)
    assert [r.reason for r in msg.rejects] == [R.BAD_VALUE_TYPE]
    assert msg.readings == []


def test_bad_unit_dropped_reading_kept():
    """A unit that is not a valid unit is dropped; the reading is kept."""
    msg = _adapt({"value": 1, "metric": "t", "unit": "u" * 33, "ts": T0})
    assert msg.readings == [Reading("dev-1", "t", T0, 1.0, "")]


# -- times --------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ts", "time", "timestamp", "TS", "Time", "TimeStamp"])
def test_time_keys(key):
    """ts, time and timestamp, in any case, stamp the object."""
    assert triples(_adapt({key: 1796040000, "t": 1}).readings) == [("t", T0, 1.0)]


def test_time_key_preference():
    """With several time keys, ts wins over time over timestamp."""
    doc = {"timestamp": T0 + 2, "time": T0 + 1, "ts": T0, "t": 1}
    assert [r.ts_us for r in _adapt(doc).readings] == [T0]


def test_no_time_is_receive_time():
    """Without a time (or with null) the readings get the receive time, flagged."""
    msg = _adapt({"ts": None, "t": 1})
    assert [(r.ts_us, r.flags) for r in msg.readings] == [(RECEIVED, FLAG_SERVER_TIME)]
    assert msg.notices == {}


def test_bad_time_rejects_object_once():
    """An unreadable time rejects the object once; its fields are not read."""
    msg = _adapt({"timestamp": "30/11/2026 06:32", "a": "abc", "b": 1})
    assert (_rejects(msg), msg.readings) == ([(R.BAD_TIMESTAMP, "timestamp")], [])


def test_naive_time_rejected_by_default():
    """An ISO time without an offset is naive_timestamp unless a zone is given."""
    msg = _adapt({"ts": "2026-11-30T12:00:00", "t": 1})
    assert _rejects(msg) == [(R.NAIVE_TIMESTAMP, "ts")]


def test_naive_time_in_given_zone():
    """With naive_tz, a naive ISO time is read in that zone."""
    adapter = PlainJsonAdapter(naive_tz=ZoneInfo("Europe/Berlin"))
    msg = _adapt({"ts": "2026-11-30T13:00:00", "t": 1}, adapter=adapter)
    assert [r.ts_us for r in msg.readings] == [T0]


def test_future_time_rejected():
    """A time further ahead than the skew is future_timestamp for the object."""
    msg = _adapt({"ts": RECEIVED + 301_000_000, "t": 1})
    assert (_rejects(msg), msg.readings) == ([(R.FUTURE_TIMESTAMP, "ts")], [])


def test_clock_not_set_per_reading():
    """A time before 2000 gives receive time, the flag, one notice per reading."""
    msg = _adapt({"ts": 3, "a": 1, "b": 2})
    assert [(r.ts_us, r.flags) for r in msg.readings] == [
        (RECEIVED, FLAG_SERVER_TIME),
        (RECEIVED, FLAG_SERVER_TIME),
    ]
    assert msg.notices == {Notice.CLOCK_NOT_SET: 2}


def test_default_filters():
    """The default filter is v1 telemetry; given filters replace it."""
    assert PlainJsonAdapter().default_filters() == ["sf/v1/dev/+/up/telemetry"]
    assert PlainJsonAdapter(["sensor/#"]).default_filters() == ["sensor/#"]
