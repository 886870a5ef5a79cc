"""The store contract: SQLite and TimescaleDB must give the same answers.

Every test here runs on both stores (the ``store`` fixture in conftest.py).
"""

from __future__ import annotations

import itertools
import math
import struct
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hub.storage import Accounting, Bucket, DeadLetter, DeviceInfo
from protocol.const import CLOCK_FLOOR_US, FLAG_SERVER_TIME, RejectReason
from protocol.models import GatewayState
from protocol.readings import Reading
from tests.hub.storage.helpers import (
    ALL_VERSIONS,
    HOUR_US,
    MINUTE_US,
    block,
    count_before,
    item,
    reject,
    us,
)

T0 = us("2026-11-30T06:00:00+00:00")
RECEIVED = us("2026-11-30T06:00:05+00:00")


def _three(device="dev-1", metric="temp", start=T0, values=(1.0, 2.0, 3.0)):
    return block(device, metric, [start + i * MINUTE_US for i in range(3)], values)


def _state(gw, status="online", dropped=None, **kw):
    return GatewayState(gw=gw, status=status, dropped=dropped or {}, **kw)


# -- idempotency ---------------------------------------------------------------


def test_write_new_batch_reports_new_readings(store):
    """A batch seen for the first time is stored and reported as new."""
    result = store.write([item([_three()], RECEIVED, "gw-1", 1)])

    assert [(b.device, b.metric, b.ts_us, b.values) for b in result.new] == [
        ("dev-1", "temp", [T0, T0 + MINUTE_US, T0 + 2 * MINUTE_US], [1.0, 2.0, 3.0])
    ]
    assert (result.inserted, result.duplicates) == (3, 0)
    assert (result.batches, result.duplicate_batches) == ([("gw-1", 1)], [])


def test_write_names_only_the_series_it_created(store, request, tmp_path):
    """created_series: new series once; never again, even from a fresh store."""
    first = store.write([item([_three()], RECEIVED, "gw-1", 1)])
    second = store.write(
        [item([_three(start=T0 + HOUR_US), _three("dev-2")], RECEIVED, "gw-1", 2)]
    )
    # A second store on the same database has an empty cache of series ids.
    if store.kind == "sqlite":
        other = type(store)(tmp_path / "store.db")
    else:
        other = type(store)(request.getfixturevalue("pg_dsn"))
    try:
        third = other.write(
            [item([_three(start=T0 + 2 * HOUR_US)], RECEIVED, "gw-1", 3)]
        )
    finally:
        other.close()

    assert first.created_series == {("dev-1", "temp")}
    assert second.created_series == {("dev-2", "temp")}
    assert third.created_series == set()


def test_write_same_batch_twice_stores_once(store):
    """A resent (gateway, seq) is stored once; the second write says duplicate."""
    store.write([item([_three()], RECEIVED, "gw-1", 1)])

    again = store.write([item([_three()], RECEIVED + 10, "gw-1", 1)])

    assert store.count_readings() == 3
    assert (again.inserted, again.duplicates) == (0, 3)
    assert again.batches == [("gw-1", 1)]
    assert again.duplicate_batches == [("gw-1", 1)]


def test_write_same_batch_twice_in_one_write_stores_once(store):
    """Two copies of a batch in one write: stored once, not listed as seen before."""
    copies = [item([_three()], RECEIVED, "gw-1", 1) for _ in range(2)]

    result = store.write(copies)

    assert (result.inserted, result.duplicates) == (3, 3)
    assert (result.batches, result.duplicate_batches) == ([("gw-1", 1)], [])


def test_write_without_seq_dedupes_by_series_and_ts(store):
    """Readings without a seq rely on (series, ts): a second copy is skipped."""
    store.write([item([_three()], RECEIVED)])

    again = store.write([item([_three(values=(7.0, 8.0, 9.0))], RECEIVED + 10)])

    assert (again.inserted, again.duplicates, again.batches) == (0, 3, [])
    assert [r.value for r in store.readings("dev-1")] == [1.0, 2.0, 3.0]


def test_write_resent_readings_under_new_seq_dedupes(store):
    """Readings already stored, resent in a new batch, are duplicates of a new batch."""
    store.write([item([_three()], RECEIVED, "gw-1", 1)])

    result = store.write([item([_three()], RECEIVED + 10, "gw-1", 2)])

    assert (result.inserted, result.duplicates) == (0, 3)
    assert (result.batches, result.duplicate_batches) == ([("gw-1", 2)], [])


def test_write_equal_series_ts_in_one_write_keeps_first(store):
    """Of equal (series, ts) in one write, the first reading is the one stored."""
    first = block("dev-1", "temp", [T0], [1.5])
    second = block("dev-1", "temp", [T0], [2.5])

    result = store.write([item([first], RECEIVED), item([second], RECEIVED + 1)])

    assert (result.inserted, result.duplicates) == (1, 1)
    assert [r.value for r in store.readings("dev-1")] == [1.5]


def test_write_result_new_lists_only_new_readings(store):
    """A write of stored and new readings reports only the new ones, per series."""
    store.write([item([block("dev-1", "temp", [T0], [1.0])], RECEIVED)])
    mixed = block("dev-1", "temp", [T0 + 2, T0, T0 + 1], [3.0, 1.0, 2.0])

    result = store.write([item([mixed], RECEIVED + 10)])

    assert [(b.ts_us, b.values) for b in result.new] == [([T0 + 1, T0 + 2], [2.0, 3.0])]
    assert result.duplicates == 1


def test_write_failure_rolls_back_everything(store, monkeypatch):
    """A write failing at its last step keeps nothing, so the resend is new."""

    def fail(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "_insert_dead_letters", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.write([item([_three()], RECEIVED, "gw-1", 1)])
    monkeypatch.undo()

    result = store.write([item([_three()], RECEIVED, "gw-1", 1)])

    assert (result.inserted, result.duplicate_batches) == (3, [])
    # Through the series table: a series id cached from the rolled-back
    # transaction would leave the readings pointing at no series.
    assert [r.value for r in store.readings("dev-1")] == [1.0, 2.0, 3.0]


# -- reading time --------------------------------------------------------------


def test_write_out_of_order_readings_accepted(store):
    """A reading older than those stored is accepted and read back in time order."""
    store.write([item([block("dev-1", "temp", [T0 + HOUR_US], [2.0])], RECEIVED)])

    late = store.write([item([block("dev-1", "temp", [T0], [1.0])], RECEIVED + 1)])

    assert late.inserted == 1
    assert [(r.ts_us, r.value) for r in store.readings("dev-1")] == [
        (T0, 1.0),
        (T0 + HOUR_US, 2.0),
    ]


def test_write_integer_value_reads_back_as_float(store):
    """A value given as an int is stored and read back as a float."""
    readings = block("dev-1", "count", [T0], [0])
    readings.values[0] = 3  # as a careless caller might pass it

    store.write([item([readings], RECEIVED)])

    (back,) = store.readings("dev-1")
    assert (type(back.value), back.value) == (float, 3.0)


def test_latest_is_newest_reading_time_not_last_arrival(store):
    """latest() gives the reading with the newest time, even if it arrived first."""
    store.write([item([block("dev-1", "temp", [T0 + HOUR_US], [2.0])], RECEIVED)])
    store.write([item([block("dev-1", "temp", [T0], [1.0])], RECEIVED + 1)])

    assert store.latest("dev-1") == [Reading("dev-1", "temp", T0 + HOUR_US, 2.0)]


def test_latest_one_reading_per_metric(store):
    """latest() gives each metric's newest reading, ordered by metric, with units."""
    store.write(
        [
            item(
                [
                    block("dev-1", "temp", [T0, T0 + 5], [1.0, 1.5], unit="°C"),
                    block("dev-1", "hum", [T0 + 9, T0 + 3], [40.0, 41.0], unit="%"),
                ],
                RECEIVED,
            )
        ]
    )

    assert store.latest("dev-1") == [
        Reading("dev-1", "hum", T0 + 9, 40.0, "%"),
        Reading("dev-1", "temp", T0 + 5, 1.5, "°C"),
    ]


def test_readings_round_trip_microseconds(store):
    """Timestamps keep every microsecond digit and flags survive."""
    half = us("2026-11-30T06:33:07.500000+00:00")
    odd = us("2026-11-30T06:33:07.123457+00:00")
    readings = block("dev-1", "temp", [half, odd], [21.5, 0.1], flags=[0, 3])

    store.write([item([readings], RECEIVED)])

    assert [(r.ts_us, r.value, r.flags) for r in store.readings("dev-1")] == [
        (odd, 0.1, 3),
        (half, 21.5, 0),
    ]
    assert odd % 1_000_000 == 123_457


def test_readings_window_is_half_open_and_filtered_by_metric(store):
    """readings() takes [from, to) of one metric, oldest first, up to a limit."""
    store.write([item([_three(), _three(metric="hum")], RECEIVED)])

    got = store.readings("dev-1", "temp", T0 + MINUTE_US, T0 + 2 * MINUTE_US)
    limited = store.readings("dev-1", limit=2)

    assert [(r.metric, r.ts_us) for r in got] == [("temp", T0 + MINUTE_US)]
    assert [(r.metric, r.ts_us) for r in limited] == [("hum", T0), ("temp", T0)]


def test_write_server_stamped_readings_creates_nothing_before_2000(store):
    """Case C07: readings stamped at receive time leave no row before 2000."""
    received = us("2026-11-30T12:00:05+00:00")
    metrics = ["Total", "Yesterday", "Today", "Power", "Factor", "Voltage", "Current"]
    values = [25, 3, 2, 7, 0.2, 246, 0]
    blocks = [
        block("dev-g07", f"ENERGY.{m}", [received], [v], flags=[FLAG_SERVER_TIME])
        for m, v in zip(metrics, values, strict=True)
    ]

    store.write([item(blocks, received, notices={"clock_not_set": 1})])

    assert count_before(store, CLOCK_FLOOR_US) == 0
    assert store.count_readings("dev-g07") == 7
    assert {(r.ts_us, r.flags) for r in store.readings("dev-g07")} == {
        (received, FLAG_SERVER_TIME)
    }


# -- devices and gateways ------------------------------------------------------


def test_write_registers_device_on_first_sight(store):
    """A device's first readings create it: gateway, first and last seen, online."""
    store.write([item([_three()], RECEIVED, "gw-1", 1)])

    assert store.get_device("dev-1") == DeviceInfo(
        "dev-1",
        gateway="gw-1",
        first_seen_us=RECEIVED,
        last_seen_us=RECEIVED,
        online=True,
    )


def test_write_keeps_first_and_newest_seen_times(store):
    """A message received earlier than the last one moves neither seen time wrongly."""
    store.write([item([_three()], RECEIVED + 100, "gw-1", 1)])

    store.write([item([_three(start=T0 + HOUR_US)], RECEIVED, "gw-1", 2)])

    device = store.get_device("dev-1")
    assert (device.first_seen_us, device.last_seen_us) == (RECEIVED, RECEIVED + 100)


def test_write_of_messages_received_apart_keeps_both_ends(store):
    """In one write, a device's first seen is its earliest receipt, last the latest."""
    later = item([_three(start=T0)], RECEIVED + 100, "gw-2", 1)
    earlier = item([_three(start=T0 + HOUR_US)], RECEIVED, "gw-1", 1)

    store.write([later, earlier])

    device = store.get_device("dev-1")
    assert (device.first_seen_us, device.last_seen_us, device.gateway) == (
        RECEIVED,
        RECEIVED + 100,
        "gw-2",
    )
    gateway = store.get_gateway("gw-1")
    assert (gateway.first_seen_us, gateway.last_seen_us) == (RECEIVED, RECEIVED)


def test_write_registers_device_alive_without_readings(store):
    """A device in ``devices`` with no reading left is registered alive (case C01)."""
    broken = reject(RejectReason.NON_FINITE_VALUE, device="dev-c01")

    store.write([item([], RECEIVED, rejects=[broken], devices={"dev-c01"})])

    device = store.get_device("dev-c01")
    assert (device.online, device.last_seen_us) == (True, RECEIVED)
    assert store.count_readings("dev-c01") == 0


def test_write_registers_gateway_with_seen_times(store):
    """A batch registers its gateway with its seen times and status unknown."""
    store.write([item([_three()], RECEIVED, "gw-1", 1)])

    gateway = store.get_gateway("gw-1")
    assert (gateway.status, gateway.first_seen_us, gateway.last_seen_us) == (
        "unknown",
        RECEIVED,
        RECEIVED,
    )


def test_record_gateway_state_keeps_reported_state(store):
    """A gateway's state keeps status, agent, buffer depth and drop counters."""
    state = GatewayState.model_validate(
        {
            "gw": "gw-1",
            "status": "online",
            "agent": "streamflow-edge/0.1",
            "buffer": {"readings": 1200, "bytes": 65536},
            "dropped": {"buffer_full": 4},
        }
    )

    store.record_gateway_state(state, RECEIVED)

    gateway = store.get_gateway("gw-1")
    assert store.list_gateways() == [gateway]
    assert (gateway.status, gateway.agent, gateway.last_seen_us) == (
        "online",
        "streamflow-edge/0.1",
        RECEIVED,
    )
    assert (gateway.buffer_readings, gateway.buffer_bytes, gateway.dropped) == (
        1200,
        65536,
        {"buffer_full": 4},
    )


def test_record_gateway_state_offline_marks_its_devices_offline(store):
    """An offline state (the LWT) marks that gateway's devices offline, no others."""
    store.write(
        [
            item([_three("dev-1")], RECEIVED, "gw-1", 1),
            item([_three("dev-2")], RECEIVED, "gw-2", 1),
        ]
    )

    store.record_gateway_state(_state("gw-1", "offline"), RECEIVED + 1)

    assert [(d.id, d.online) for d in store.list_devices()] == [
        ("dev-1", False),
        ("dev-2", True),
    ]
    assert store.get_gateway("gw-1").status == "offline"


def test_write_after_offline_marks_device_online_again(store):
    """A device's next readings after its gateway went offline mark it online."""
    store.write([item([_three()], RECEIVED, "gw-1", 1)])
    store.record_gateway_state(_state("gw-1", "offline"), RECEIVED + 1)

    store.write([item([_three(start=T0 + HOUR_US)], RECEIVED + 2, "gw-1", 2)])

    assert store.get_device("dev-1").online is True


def test_list_devices_filters_by_gateway_ordered_by_id(store):
    """list_devices(gateway) gives only that gateway's devices, by id."""
    store.write(
        [
            item([_three("dev-b"), _three("dev-a")], RECEIVED, "gw-1", 1),
            item([_three("dev-c")], RECEIVED, "gw-2", 1),
        ]
    )

    assert [d.id for d in store.list_devices("gw-1")] == ["dev-a", "dev-b"]
    assert [d.id for d in store.list_devices()] == ["dev-a", "dev-b", "dev-c"]


# -- accounting ----------------------------------------------------------------


def test_accounting_counts_received_rejected_and_duplicates(store):
    """Stored, rejected and duplicate readings count for the device and its gateway."""
    rejects = [
        reject(RejectReason.NON_FINITE_VALUE, "dev-1"),
        reject(RejectReason.NON_FINITE_VALUE, "dev-1"),
        reject(RejectReason.BAD_TIMESTAMP, "dev-1", "ts"),
    ]
    store.write([item([_three()], RECEIVED, "gw-1", 1, rejects=rejects)])
    store.write([item([_three()], RECEIVED + 1, "gw-1", 1, rejects=rejects)])

    expected = Accounting(
        received=3,
        duplicates=3,
        rejected={"non_finite_value": 2, "bad_timestamp": 1},
    )
    assert store.accounting("device", "dev-1") == expected
    assert store.accounting("gateway", "gw-1") == Accounting(
        received=3,
        duplicates=3,
        rejected={"non_finite_value": 2, "bad_timestamp": 1},
        notices={"duplicate_batch": 1},
    )


def test_accounting_notices_of_a_single_device_message(store):
    """Notices of a plain sensor's message count for that device."""
    stamped = block(
        "dev-g07", "ENERGY.Power", [RECEIVED], [7], flags=[FLAG_SERVER_TIME]
    )

    store.write([item([stamped], RECEIVED, notices={"clock_not_set": 1})])

    assert store.accounting("device", "dev-g07") == Accounting(
        received=1, notices={"clock_not_set": 1}
    )


def test_accounting_same_device_through_two_gateways(store):
    """Readings of one series in one write count for the gateway that brought them."""
    first = block("dev-1", "temp", [T0, T0 + 1], [1.0, 2.0])
    second = block("dev-1", "temp", [T0 + 1, T0 + 2], [2.0, 3.0])

    store.write(
        [item([first], RECEIVED, "gw-1", 1), item([second], RECEIVED, "gw-2", 1)]
    )

    assert store.accounting("gateway", "gw-1") == Accounting(received=2)
    assert store.accounting("gateway", "gw-2") == Accounting(received=1, duplicates=1)
    assert store.accounting("device", "dev-1") == Accounting(received=3, duplicates=1)


def test_accounting_dropped_from_cumulative_counters_with_reset(store):
    """Edge drop counters count their increase; a smaller value is a reset."""
    for n, dropped in enumerate(
        [{"buffer_full": 5}, {"buffer_full": 8, "expired": 1}, {"buffer_full": 2}]
    ):
        store.record_gateway_state(_state("gw-1", dropped=dropped), RECEIVED + n)

    assert store.accounting("gateway", "gw-1").dropped == {
        "buffer_full": 5 + 3 + 2,
        "expired": 1,
    }


def test_accounting_will_without_counters_keeps_the_baseline(store):
    """A state with no counter for a reason (the will) does not reset it."""
    states = [
        _state("gw-1", dropped={"buffer_full": 5}, rejected={"bad_json": 2}),
        _state("gw-1", status="offline"),  # the will: no counters at all
        _state("gw-1", dropped={"buffer_full": 7}, rejected={"bad_json": 3}),
    ]
    for n, state in enumerate(states):
        store.record_gateway_state(state, RECEIVED + n)

    accounting = store.accounting("gateway", "gw-1")
    assert (accounting.dropped, accounting.rejected) == (
        {"buffer_full": 7},
        {"bad_json": 3},
    )
    assert store.get_gateway("gw-1").dropped == {"buffer_full": 7}


def test_accounting_rejected_at_the_edge_from_cumulative_counters(store):
    """Edge reject counters in up/state join the gateway's rejects, by increase."""
    store.write([item([_three()], RECEIVED, "gw-1", 1)])
    for n, rejected in enumerate(
        [{"naive_timestamp": 2}, {"naive_timestamp": 5, "bad_device_id": 1}]
    ):
        store.record_gateway_state(_state("gw-1", rejected=rejected), RECEIVED + n)

    accounting = store.accounting("gateway", "gw-1")
    assert accounting.rejected == {"naive_timestamp": 5, "bad_device_id": 1}
    assert accounting.completeness == 3 / (3 + 6)


def test_accounting_window_selects_hours_of_receipt(store):
    """The window is over receive hours: the hour holding ``from_us`` counts."""
    hour = us("2026-11-30T06:00:00+00:00")
    for n, received in enumerate([hour + 5, hour + HOUR_US + 5, hour + 3 * HOUR_US]):
        store.write([item([_three(start=T0 + n * HOUR_US)], received, "gw-1", n)])

    window = store.accounting(
        "device", "dev-1", hour + HOUR_US + 60, hour + 3 * HOUR_US
    )

    assert window.received == 3
    assert store.accounting("device", "dev-1").received == 9


def test_accounting_completeness(store):
    """Completeness is stored over stored plus lost readings."""
    store.write(
        [
            item(
                [_three()],
                RECEIVED,
                "gw-1",
                1,
                rejects=[reject(RejectReason.NON_FINITE_VALUE, "dev-1")],
            )
        ]
    )

    assert store.accounting("gateway", "gw-1").completeness == 0.75


# -- dead letters --------------------------------------------------------------


def test_dead_letters_stored_with_raw_bytes(store):
    """Dead letters keep the payload byte for byte, from write() and on their own."""
    first = DeadLetter(
        "sf/v1/gw/gw-1/up/batch", b"\x1f\x8b\x00\xff{", "bad_compression", "", RECEIVED
    )
    second = DeadLetter(
        "sf/v1/dev/x/up/telemetry",
        b'{"t": nan\x00}',
        "invalid_json",
        "offset 6",
        RECEIVED + 1,
        gateway=None,
        device="x",
    )

    store.write([], [first])
    store.record_dead_letters([second])

    assert store.list_dead_letters() == [second, first]
    assert store.stats()["dead_letters"] == 2


# -- aggregates ----------------------------------------------------------------


def test_aggregate_hourly_utc(store):
    """Hourly buckets in UTC give count, min, max, avg, sum and last exactly."""
    ts = [T0 + 30 * MINUTE_US * i for i in range(5)]  # 06:00 .. 08:00
    store.write([item([block("dev-1", "temp", ts, [4, 2, 6, 1, 5])], RECEIVED)])

    buckets = store.aggregate("dev-1", "temp", 3600, T0, T0 + 3 * HOUR_US)

    assert buckets == [
        Bucket(T0, 2, 2.0, 4.0, 3.0, 6.0, 2.0),
        Bucket(T0 + HOUR_US, 2, 1.0, 6.0, 3.5, 7.0, 1.0),
        Bucket(T0 + 2 * HOUR_US, 1, 5.0, 5.0, 5.0, 5.0, 5.0),
    ]


def _minutes(store, first, last, device="dev-o15"):
    ts = list(range(us(first), us(last) + 1, MINUTE_US))
    readings = block(device, "temperature", ts, range(len(ts)))
    store.write([item([readings], ts[-1])])
    return len(ts)


def test_aggregate_fall_back_hourly_splits_repeated_hour(store):
    """Case C15: the fall-back day's two 01:00 hours in Chicago are two buckets."""
    _minutes(store, "2022-11-06T05:00:00+00:00", "2022-11-07T06:59:00+00:00")

    buckets = store.aggregate(
        "dev-o15",
        "temperature",
        3600,
        us("2022-11-06T05:00:00+00:00"),
        us("2022-11-06T09:00:00+00:00"),
        tz="America/Chicago",
    )

    assert [(b.start_us, b.count) for b in buckets] == [
        (us("2022-11-06T00:00:00-05:00"), 60),
        (us("2022-11-06T01:00:00-05:00"), 60),
        (us("2022-11-06T01:00:00-06:00"), 60),
        (us("2022-11-06T02:00:00-06:00"), 60),
    ]


def test_aggregate_fall_back_daily_has_25_hours(store):
    """Case C15: the fall-back local day holds 25 hours of minutes."""
    _minutes(store, "2022-11-06T05:00:00+00:00", "2022-11-07T06:59:00+00:00")

    buckets = store.aggregate(
        "dev-o15",
        "temperature",
        86400,
        us("2022-11-06T05:00:00+00:00"),
        us("2022-11-07T07:00:00+00:00"),
        tz="America/Chicago",
    )

    assert [(b.start_us, b.count) for b in buckets] == [
        (us("2022-11-06T00:00:00-05:00"), 1500),
        (us("2022-11-07T00:00:00-06:00"), 60),
    ]
    assert buckets[0].last == 1499.0


def test_aggregate_spring_forward_daily_has_23_hours(store):
    """Case C15: the spring-forward local day holds 23 hours of minutes."""
    _minutes(store, "2023-03-12T06:00:00+00:00", "2023-03-13T04:59:00+00:00")

    buckets = store.aggregate(
        "dev-o15",
        "temperature",
        86400,
        us("2023-03-12T06:00:00+00:00"),
        us("2023-03-13T05:00:00+00:00"),
        tz="America/Chicago",
    )

    assert [(b.start_us, b.count) for b in buckets] == [
        (us("2023-03-12T00:00:00-06:00"), 1380)
    ]


def test_aggregate_weekly_buckets_start_on_monday(store):
    """Seven-day buckets start on Mondays (time_bucket's origin 2000-01-03)."""
    wednesday = us("2026-12-02T12:00:00+00:00")
    next_tuesday = us("2026-12-08T12:00:00+00:00")
    store.write([item([block("dev-1", "temp", [wednesday, next_tuesday], [1, 2])], 0)])

    buckets = store.aggregate(
        "dev-1", "temp", 7 * 86400, wednesday, next_tuesday + 1, tz="Europe/Berlin"
    )

    assert [(b.start_us, b.count) for b in buckets] == [
        (us("2026-11-30T00:00:00+01:00"), 1),
        (us("2026-12-07T00:00:00+01:00"), 1),
    ]


@pytest.mark.parametrize(
    ("bucket_s", "tz", "message"),
    [
        (0, "UTC", "bucket_s"),
        (-60, "UTC", "bucket_s"),
        (90_000, "UTC", "whole days"),
        (3600, "Mars/Olympus_Mons", "time zone"),
    ],
)
def test_aggregate_bad_parameters_raise(store, bucket_s, tz, message):
    """Buckets that are not positive whole seconds or days, or unknown zones, fail."""
    with pytest.raises(ValueError, match=message):
        store.aggregate("dev-1", "temp", bucket_s, T0, T0 + HOUR_US, tz=tz)


# -- retention, migrations, stats ----------------------------------------------


def test_drop_before_removes_old_readings(store):
    """Retention removes readings of days wholly before the cut, keeps the rest."""
    days = [us("2026-11-28T12:00:00+00:00") + d * 24 * HOUR_US for d in range(3)]
    store.write([item([block("dev-1", "temp", days, [1, 2, 3])], RECEIVED)])

    removed = store.drop_before(us("2026-11-30T00:00:00+00:00"))

    assert removed == 2  # two chunks on TimescaleDB, two rows on SQLite
    assert [r.ts_us for r in store.readings("dev-1")] == [days[2]]
    assert store.latest("dev-1") == [Reading("dev-1", "temp", days[2], 3.0)]


def test_migrate_again_applies_nothing(store):
    """A second migrate() applies nothing and the schema stays at the latest version."""
    assert store.migrate() == []
    assert store.schema_versions() == ALL_VERSIONS


def test_stats_counts_registry_rows(store):
    """stats() counts series, devices and gateways and names the store kind."""
    store.write([item([_three("dev-1"), _three("dev-2")], RECEIVED, "gw-1", 1)])

    stats = store.stats()

    assert (stats["kind"], stats["series"], stats["devices"], stats["gateways"]) == (
        store.kind,
        2,
        2,
        1,
    )


# -- the device registry -------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "char"), [("zigbee2mqtt/bulb #1", "#"), ("zigbee2mqtt/plug+2", "+")]
)
def test_upsert_device_rejects_wildcard_topic(store, topic, char):
    """Case C10: a topic with a wildcard fails naming mqtt_topic and the character."""
    with pytest.raises(ValueError, match=rf"mqtt_topic .*'\{char}' is a wildcard"):
        store.upsert_device(DeviceInfo("bulb-1", name="bulb", mqtt_topic=topic))

    assert store.get_device("bulb-1") is None


def test_upsert_device_rejects_control_character_topic(store):
    """A topic with a control character fails naming mqtt_topic and the character."""
    with pytest.raises(ValueError, match=r"mqtt_topic .*'\\x00'"):
        store.upsert_device(DeviceInfo("dev-1", mqtt_topic="zigbee2mqtt/a\x00b"))


def test_upsert_device_rejects_invalid_id(store):
    """A device id outside [A-Za-z0-9_.-] fails naming the id."""
    with pytest.raises(ValueError, match="device id 'Küche Sensor 1'"):
        store.upsert_device(DeviceInfo("Küche Sensor 1"))


def test_upsert_device_stores_nfc_name_and_topic(store):
    """Case C10: a decomposed name and topic are stored NFC and found either way."""
    nfd = "Ku\u0308che Sensor 1"
    nfc = "K\u00fcche Sensor 1"
    store.upsert_device(
        DeviceInfo(
            "kueche-1", name=nfd, mqtt_topic=f"zigbee2mqtt/{nfd}", tags={"a": "b"}
        )
    )

    device = store.get_device("kueche-1")

    assert (device.name, device.mqtt_topic, device.tags) == (
        nfc,
        f"zigbee2mqtt/{nfc}",
        {"a": "b"},
    )
    assert device.name.encode() == b"K\xc3\xbcche Sensor 1"
    assert store.device_for_topic(f"zigbee2mqtt/{nfd}") == "kueche-1"
    assert store.device_for_topic(f"zigbee2mqtt/{nfc}") == "kueche-1"


def test_device_for_topic_matches_exactly(store):
    """Topic lookup is exact: no case or ASCII folding, spaces kept."""
    store.upsert_device(DeviceInfo("kueche-1", mqtt_topic="zigbee2mqtt/Küche Sensor 1"))

    assert store.device_for_topic("zigbee2mqtt/küche Sensor 1") is None
    assert store.device_for_topic("zigbee2mqtt/Kuche Sensor 1") is None
    assert store.device_for_topic("zigbee2mqtt/Küche Sensor 1 ") is None


def test_upsert_device_topic_taken_raises(store):
    """A topic registered to one device cannot be registered to another."""
    store.upsert_device(DeviceInfo("dev-1", mqtt_topic="tele/plug/SENSOR"))

    with pytest.raises(ValueError, match="mqtt_topic 'tele/plug/SENSOR': already"):
        store.upsert_device(DeviceInfo("dev-2", mqtt_topic="tele/plug/SENSOR"))


def test_upsert_device_keeps_seen_fields(store):
    """Updating registry fields keeps the gateway and seen times learned from data."""
    store.write([item([_three()], RECEIVED, "gw-1", 1)])

    store.upsert_device(DeviceInfo("dev-1", name="boiler", expected_interval_s=60.0))

    assert store.get_device("dev-1") == DeviceInfo(
        "dev-1",
        gateway="gw-1",
        name="boiler",
        expected_interval_s=60.0,
        first_seen_us=RECEIVED,
        last_seen_us=RECEIVED,
        online=True,
    )


# -- round trip of arbitrary values ----------------------------------------------

_EDGE_FLOATS = [
    sys.float_info.max,
    -sys.float_info.max,
    5e-324,
    -5e-324,
    sys.float_info.min,
    -0.0,
    0.0,
    2.0**53 + 2,
]
_EDGE_TIMES = [
    us("0001-01-01T00:00:00+00:00"),
    -1,
    0,
    CLOCK_FLOOR_US,
    us("2038-01-19T03:14:08+00:00"),
    us("9999-12-31T23:59:59.999999+00:00"),
]
# Mostly one week, so that few chunks are made; plus the edges of the range.
_TIMES = st.integers(T0 - 3 * 24 * HOUR_US, T0 + 4 * 24 * HOUR_US) | st.sampled_from(
    _EDGE_TIMES
)
_VALUES = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    _EDGE_FLOATS
)
_DEVICES = itertools.count()


def _bits(value):
    return struct.pack("<d", value)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(st.tuples(_TIMES, _VALUES), min_size=1, max_size=12))
@example(rows=[(t, v) for t, v in zip(_EDGE_TIMES, _EDGE_FLOATS, strict=False)])
def test_write_read_round_trip_is_exact(store, rows):
    """Any finite double and any µs timestamp is read back bit for bit."""
    device = f"dev-h{next(_DEVICES)}"
    unique = dict(rows)  # one value per ts, so that each one is stored
    ts = sorted(unique)
    store.write([item([block(device, "x", ts, [unique[t] for t in ts])], RECEIVED)])

    back = store.readings(device)

    assert [r.ts_us for r in back] == ts
    assert [_bits(r.value) for r in back] == [_bits(unique[t]) for t in ts]
    assert all(math.isfinite(r.value) for r in back)
