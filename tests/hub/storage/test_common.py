"""Unit tests of the store-independent helpers (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.storage._common import (
    WritePlan,
    bucket_spec,
    check_mqtt_topic,
    dropped_increase,
    dt_to_us,
    hour_of,
    local_day_bounds,
    us_to_dt,
)
from tests.hub.storage.helpers import HOUR_US, block, item, us


@pytest.mark.parametrize(
    ("previous", "current", "increase", "resets"),
    [
        ({}, {"buffer_full": 3}, {"buffer_full": 3}, []),
        ({"buffer_full": 3}, {"buffer_full": 5}, {"buffer_full": 2}, []),
        ({"buffer_full": 5}, {"buffer_full": 5}, {}, []),
        ({"buffer_full": 5}, {"buffer_full": 2}, {"buffer_full": 2}, ["buffer_full"]),
        ({"buffer_full": 5}, {"buffer_full": 0}, {}, ["buffer_full"]),
        ({"a": 1}, {"a": 1, "b": 4}, {"b": 4}, []),
    ],
)
def test_dropped_increase(previous, current, increase, resets):
    """Cumulative counters give their increase; a smaller one counts in full."""
    assert dropped_increase(previous, current) == (increase, resets)


@pytest.mark.parametrize(
    "topic",
    [
        "zigbee2mqtt/Küche Sensor 1",
        "zigbee2mqtt/dev-j10/temp_&_humidity_sampling",
        "tele/plug/SENSOR",
        "/leading/slash",
    ],
)
def test_check_mqtt_topic_accepts_legal_names(topic):
    """Spaces, '&', UTF-8 letters and slashes are legal in topic names (case C10)."""
    assert check_mqtt_topic(topic) == topic


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("", "expected a topic name"),
        ("a/#", "'#' is a wildcard"),
        ("a/+/b", "'\\+' is a wildcard"),
        ("a\x00b", "control character '\\\\x00'"),
        ("a\x7fb", "control character '\\\\x7f'"),
        ("a\ud800b", "not valid UTF-8"),
        ("x" * 65_536, "65536 bytes"),
    ],
)
def test_check_mqtt_topic_rejects_bad_names(topic, message):
    """Bad topic names fail naming the field mqtt_topic and what is wrong."""
    with pytest.raises(ValueError, match=f"mqtt_topic.*{message}"):
        check_mqtt_topic(topic)


@pytest.mark.parametrize(
    ("bucket_s", "days"), [(1, 0), (3600, 0), (86_399, 0), (86_400, 1), (604_800, 7)]
)
def test_bucket_spec_days(bucket_s, days):
    """Whole days of a day or more follow local days; shorter buckets do not."""
    assert bucket_spec(bucket_s, "UTC").days == days


def test_local_day_bounds_fall_back_day_has_25_hours():
    """Local midnights in Chicago around the fall-back day are 25 hours apart."""
    spec = bucket_spec(86_400, "America/Chicago")

    bounds = local_day_bounds(
        spec, us("2022-11-06T12:00:00+00:00"), us("2022-11-07T07:00:00+00:00")
    )

    assert bounds == [
        us("2022-11-06T05:00:00+00:00"),
        us("2022-11-07T06:00:00+00:00"),
        us("2022-11-08T06:00:00+00:00"),
    ]


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC),
    )
)
def test_us_to_dt_round_trip_is_exact(dt):
    """Datetimes and epoch microseconds convert both ways without rounding."""
    ts = dt_to_us(dt)

    assert us_to_dt(ts) == dt
    assert ts == (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("ts", "hour"), [(0, 0), (HOUR_US - 1, 0), (HOUR_US, HOUR_US), (-1, -HOUR_US)]
)
def test_hour_of(ts, hour):
    """hour_of floors to the UTC hour, also before 1970."""
    assert hour_of(ts) == hour


def test_write_plan_second_copy_of_batch_is_stale():
    """Of two copies of a batch in one write, only the first carries readings."""
    readings = block("dev-1", "temp", [1, 2], [1.0, 2.0])
    plan = WritePlan([item([readings], 10, "gw", 1), item([readings], 11, "gw", 1)])

    plan.split({("gw", 1)})

    assert (len(plan.fresh), len(plan.stale), plan.duplicate_batches) == (1, 1, [])
    assert plan.batch_rows == [("gw", 1, 2)]


def test_write_plan_rejects_ragged_block():
    """A block whose columns differ in length is a bug upstream and fails loudly."""
    ragged = block("dev-1", "temp", [1, 2], [1.0, 2.0])
    ragged.values.pop()
    plan = WritePlan([item([ragged], 10)])
    plan.split(set())

    with pytest.raises(ValueError, match="dev-1/temp: 2 ts, 1 values, 2 flags"):
        plan.build_rows({("dev-1", "temp"): 1})
