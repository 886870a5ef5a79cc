"""The offline detector on synthetic arrivals: who is offline, and why."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.monitor.config import MonitorConfig
from hub.monitor.offline import (
    DeviceView,
    IntervalLearner,
    OfflineDetector,
    StoreIntervals,
    format_s,
)
from hub.storage.base import AlertRecord

S = 1_000_000
T0 = 1_700_000_000 * S
#: Small numbers so that the arithmetic reads: interval 10 s, 5 x, 60 s floor.
CONFIG = MonitorConfig(
    offline_factor=5, min_silence_s=60, interval_quantile=0.9, min_gaps=4
)


def learned(devices: Mapping[str, str | None], every_s: float = 10, n: int = 10):
    """A detector that saw ``n`` readings of each device, ``every_s`` apart."""
    det = OfflineDetector(CONFIG)
    for dev in devices:
        for i in range(n):
            det.observe(dev, T0 + int(i * every_s * S))
    last = T0 + int((n - 1) * every_s * S)
    views = [DeviceView(d, gw, last) for d, gw in devices.items()]
    return det, views, last


def test_learner_interval_is_the_quantile_of_recent_gaps():
    """Nine gaps of 10 s and one of 100 s: q0.9 is 10 s, q1.0 is 100 s."""
    times = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 190]
    low, high = IntervalLearner(64, 0.9, 4), IntervalLearner(64, 1.0, 4)
    for t in times:
        low.add("d", t * S)
        high.add("d", t * S)

    assert (low.interval_s("d"), high.interval_s("d")) == (10.0, 100.0)


def test_learner_needs_min_gaps_and_ignores_old_times():
    """Fewer than min_gaps gaps: no interval; a time not after the newest is skipped."""
    learner = IntervalLearner(64, 0.5, 3)
    for t in (0, 10, 10, 5, 20):
        learner.add("d", t * S)

    assert (learner.gap_count("d"), learner.interval_s("d")) == (2, None)
    learner.add("d", 30 * S)
    assert learner.interval_s("d") == 10.0


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=80))
def test_learner_interval_is_one_of_the_last_gaps(gaps):
    """Whatever the gaps, the interval is one of the last ``interval_gaps`` of them."""
    learner = IntervalLearner(16, 0.9, 1)
    t = 0
    learner.add("d", t)
    for g in gaps:
        t += g * S
        learner.add("d", t)

    interval = learner.interval_s("d")
    assert interval is not None
    assert int(interval * S) in {g * S for g in gaps[-16:]}


def test_device_silent_past_factor_and_floor_goes_offline():
    """Interval 10 s, factor 5, floor 60 s: offline after 60 s, not at 60 s."""
    det, views, last = learned({"d1": "gw"})

    assert det.check(last + 60 * S, views) == []
    (found,) = det.check(last + 61 * S, views)

    assert (found.fingerprint, found.kind, found.state) == (
        "device/d1/offline/",
        "offline",
        "raised",
    )
    assert (found.device, found.gateway, found.at_us) == ("d1", "gw", last + 61 * S)
    assert found.details["interval_s"] == 10.0
    assert found.details["threshold_s"] == 60.0
    assert found.summary == "d1 offline: no data for 61 s (usual interval 10 s)"


def test_device_skipping_readings_stays_online():
    """Two readings lost (a 30 s gap) is far from offline."""
    det, views, last = learned({"d1": None})

    assert det.check(last + 30 * S, views) == []
    assert det.offline_devices == []


def test_slow_device_threshold_is_factor_times_interval():
    """Interval 60 s: offline after 5 x 60 = 300 s, not after the 60 s floor."""
    det, views, last = learned({"d1": None}, every_s=60)

    assert det.check(last + 299 * S, views) == []
    assert [f.state for f in det.check(last + 301 * S, views)] == ["raised"]


def test_offline_is_raised_once_and_cleared_by_data():
    """One raise while silent; data again clears it, naming the silence."""
    det, views, last = learned({"d1": "gw"})
    det.check(last + 61 * S, views)

    assert det.check(last + 120 * S, views) == []
    back = [DeviceView("d1", "gw", last + 200 * S)]
    (found,) = det.check(last + 201 * S, back)

    assert (found.state, found.fingerprint) == ("cleared", "device/d1/offline/")
    assert found.summary == "d1 back: data again after 3m20s"
    assert det.offline_devices == []


def test_expected_interval_overrides_learning():
    """A device with expected_interval_s is judged at once, on that interval."""
    det = OfflineDetector(CONFIG)
    view = [DeviceView("d1", None, T0, expected_interval_s=30)]

    assert det.check(T0 + 150 * S, view) == []
    (found,) = det.check(T0 + 151 * S, view)

    assert found.details["interval_source"] == "expected"
    assert found.details["threshold_s"] == 150.0


def test_device_never_seen_or_not_learned_is_not_judged():
    """No arrival yet, or too few gaps: nothing to judge."""
    det = OfflineDetector(CONFIG)
    det.observe("d2", T0)

    assert (
        det.check(T0 + 3600 * S, [DeviceView("d1"), DeviceView("d2", None, T0)]) == []
    )


def test_gateway_lwt_with_40_devices_is_one_alert():
    """A gateway's LWT: one gateway alert naming 40 devices, none per device."""
    devices = {f"d{i}": "gw-1" for i in range(40)}
    det, views, last = learned(devices)
    det.gateway_state("gw-1", True, T0, 40)

    found = det.gateway_state("gw-1", False, last + 5 * S, 40, reason="lwt")
    found += det.check(last + 3600 * S, views)

    assert len(found) == 1
    (alert,) = found
    assert (alert.fingerprint, alert.state, alert.gateway, alert.device) == (
        "gateway/gw-1/offline/",
        "raised",
        "gw-1",
        None,
    )
    assert alert.details == {"devices_hidden": 40, "reason": "lwt"}
    assert alert.summary == (
        "gateway gw-1 offline (its last will): 40 device(s) behind it not checked"
    )
    assert det.offline_gateways == ["gw-1"]
    assert det.offline_devices == []


def test_device_silent_behind_live_gateway_is_its_own_alert():
    """One of 40 devices silent, its gateway live: one alert, for that device."""
    devices = {f"d{i}": "gw-1" for i in range(40)}
    det, views, last = learned(devices)
    det.gateway_state("gw-1", True, T0, 40)
    now = last + 120 * S
    views = [
        DeviceView(v.id, v.gateway, v.last_seen_us if v.id == "d7" else now - S)
        for v in views
    ]

    found = det.check(now, views)

    assert [(f.fingerprint, f.gateway) for f in found] == [
        ("device/d7/offline/", "gw-1")
    ]


def test_gateway_back_clears_and_gives_its_devices_time():
    """Back online: the gateway alert clears, its devices' silence counts anew."""
    det, views, last = learned({"d1": "gw-1", "d2": "gw-1"})
    det.gateway_state("gw-1", False, last + 5 * S, 2)

    (back,) = det.gateway_state("gw-1", True, last + 600 * S, 2)

    assert (back.state, back.fingerprint) == ("cleared", "gateway/gw-1/offline/")
    assert back.details == {"devices_hidden": 2}
    assert back.summary == "gateway gw-1 back online after 9m55s"
    # 60 s after the return, with no data yet: not offline; 61 s: offline.
    assert det.check(last + 660 * S, views) == []
    assert len(det.check(last + 661 * S, views)) == 2


def test_gateway_state_repeated_changes_nothing():
    """The same status again (a periodic state, a retained one) finds nothing."""
    det = OfflineDetector(CONFIG)

    assert det.gateway_state("gw", True, T0, 3) == []
    assert det.gateway_state("gw", True, T0 + S, 3) == []
    assert len(det.gateway_state("gw", False, T0 + 2 * S, 3)) == 1
    assert det.gateway_state("gw", False, T0 + 3 * S, 3) == []


def test_hub_not_reporting_judges_nobody_then_gives_time():
    """While the hub is down nobody is offline; after it returns, a full delay."""
    det, views, last = learned({"d1": None})
    det.hub_reporting(False, last + 10 * S)

    assert det.check(last + 3600 * S, views) == []
    det.hub_reporting(True, last + 3600 * S)
    assert det.check(last + 3660 * S, views) == []
    assert len(det.check(last + 3661 * S, views)) == 1


def test_restore_takes_up_active_offline_alerts():
    """After a restart the detector knows what is offline: data again clears it."""
    det = OfflineDetector(CONFIG)
    det.restore(
        [
            AlertRecord(
                id="a1",
                fingerprint="device/d1/offline/",
                kind="offline",
                severity="warning",
                summary="",
                opened_us=T0,
                device="d1",
                details={"last_seen_us": T0 - 100 * S},
            ),
            AlertRecord(
                id="a2",
                fingerprint="gateway/gw/offline/",
                kind="offline",
                severity="warning",
                summary="",
                opened_us=T0,
                gateway="gw",
                details={"devices_hidden": 3},
            ),
        ]
    )

    assert (det.offline_devices, det.offline_gateways) == (["d1"], ["gw"])
    found = det.check(T0 + S, [DeviceView("d1", None, T0)])
    assert [f.state for f in found] == ["cleared"]
    assert [f.state for f in det.gateway_state("gw", True, T0, 3)] == ["cleared"]


class _Readings:
    """A store stand-in with one device's reading times (unit test of one class)."""

    def __init__(self, times: list[int]) -> None:
        self.times = times
        self.calls: list[int] = []

    def readings(self, device, metric=None, from_us=None, to_us=None, limit=10_000):
        from protocol.readings import Reading

        self.calls.append(from_us)
        return [Reading(device, "t", t, 1.0) for t in self.times if t >= from_us][
            :limit
        ]


def test_store_intervals_read_new_times_only():
    """The first read looks back; later reads start after the newest time."""
    times = [T0 + i * 10 * S for i in range(100)]
    store = _Readings(times[:50])
    config = CONFIG.model_copy(update={"interval_gaps": 8, "interval_refresh_s": 30})
    learner = IntervalLearner(8, 0.9, 4)
    reader = StoreIntervals(store, learner, config)  # type: ignore[arg-type]
    view = DeviceView("d", None, times[49])

    assert reader.refresh(times[49], [view]) == 1
    assert learner.interval_s("d") == 10.0
    assert store.calls == [times[49] - 3600 * S]
    # Not due again before interval_refresh_s; then from the newest time on.
    assert reader.refresh(times[49] + 10 * S, [view]) == 0
    store.times = times
    assert reader.refresh(times[49] + 31 * S, [DeviceView("d", None, times[99])]) == 1
    assert store.calls[-1] == times[49] + 1
    assert learner.newest_us("d") == times[99]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "0.5 s"), (45, "45 s"), (119, "119 s"), (750, "12m30s"), (11100, "3h05m")],
)
def test_format_s(seconds, text):
    """Durations read as people write them."""
    assert format_s(seconds) == text
