"""Silence: devices and gateways that stopped reporting, and why.

A device is *offline* when it has sent nothing for ``offline_factor`` times its
usual interval and at least ``min_silence_s``; data again resolves it. The
usual interval is the device's ``expected_interval_s`` when its registry entry
has one, else learned from its own reading times: the ``interval_quantile``
of its last ``interval_gaps`` gaps. A high quantile, not the mean, because
radios drop readings: an Intel lab mote sends every 31 s, but one gap in ten
is 90 s or more (two readings lost), and that must not look like an outage.

Causes are told apart, so that one fault is one alert:

- a gateway whose retained ``up/state`` (its birth, its periodic state, or its
  LWT) says ``offline`` is one alert, naming how many devices it hides; its
  devices get no alert of their own while it is down;
- a device silent behind a live gateway is its own alert;
- while the hub itself is not reporting, nothing arrives from anyone and no
  device is judged (the hub's own alert says why).

After a gateway or the hub comes back, its devices' silence is counted from
that moment, so that the backlog has time to arrive before anyone is judged.

Silence is measured on arrival times (the store's ``last_seen_us``), which a
device's clock cannot skew; intervals on reading times, which a backlog
delivered at once cannot compress.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.alerts.notice import iso_us
from hub.monitor._types import Finding
from hub.monitor.config import MonitorConfig
from hub.storage.base import AlertRecord, Store

_LOGGER = logging.getLogger(__name__)

#: Kind of the alerts this module raises.
OFFLINE_KIND = "offline"
#: Reading times read from the store per device and query.
_READINGS_PER_QUERY = 5_000
#: The first look back for a device's reading times (doubled until enough).
_FIRST_WINDOW_S = 3_600.0


def device_fingerprint(device: str) -> str:
    """The fingerprint of a device's offline alert."""
    return f"device/{device}/{OFFLINE_KIND}/"


def gateway_fingerprint(gateway: str) -> str:
    """The fingerprint of a gateway's offline alert."""
    return f"gateway/{gateway}/{OFFLINE_KIND}/"


def format_s(seconds: float) -> str:
    """A duration for people: ``45 s``, ``12m30s``, ``3h05m``."""
    s = round(seconds)
    if s < 120:
        return f"{seconds:.3g} s" if seconds < 10 else f"{s} s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What the detector needs to know of a device (from the store's registry).

    Attributes:
        id: the device id.
        gateway: the gateway it sits behind, if any.
        last_seen_us: when the hub last received data from it (arrival).
        expected_interval_s: its configured interval, overriding the learned one.
    """

    id: str
    gateway: str | None = None
    last_seen_us: int | None = None
    expected_interval_s: float | None = None


class IntervalLearner:
    """Each device's usual interval, from its recent reading times.

    Args:
        gaps: how many recent gaps are kept per device.
        quantile: the usual interval is this quantile of them.
        min_gaps: gaps needed before an interval is given.
    """

    def __init__(
        self, gaps: int = 64, quantile: float = 0.9, min_gaps: int = 8
    ) -> None:
        """Build an empty learner."""
        self._times: dict[str, deque[int]] = {}
        self._gaps = gaps
        self._quantile = quantile
        self._min_gaps = min_gaps

    def add(self, device: str, ts_us: int) -> None:
        """Take one reading time; times at or before the newest are ignored."""
        times = self._times.get(device)
        if times is None:
            times = self._times[device] = deque(maxlen=self._gaps + 1)
        if not times or ts_us > times[-1]:
            times.append(ts_us)

    def newest_us(self, device: str) -> int | None:
        """The newest reading time taken for a device."""
        times = self._times.get(device)
        return times[-1] if times else None

    def gap_count(self, device: str) -> int:
        """How many gaps the device's interval is learned from."""
        times = self._times.get(device)
        return max(0, len(times) - 1) if times else 0

    def interval_s(self, device: str) -> float | None:
        """The device's usual interval, or None while fewer than ``min_gaps``."""
        times = self._times.get(device)
        if times is None or len(times) - 1 < self._min_gaps:
            return None
        it = iter(times)
        prev = next(it)
        gaps = []
        for t in it:
            gaps.append(t - prev)
            prev = t
        gaps.sort()
        # Nearest rank: the smallest gap with at least q of them at or below.
        rank = max(1, math.ceil(self._quantile * len(gaps) - 1e-9))
        return gaps[rank - 1] / 1e6


@dataclass(slots=True)
class _Offline:
    since_us: int
    last_seen_us: int


@dataclass(slots=True)
class _Gateway:
    online: bool
    since_us: int
    hidden: int = 0
    resumed_us: int | None = None


@dataclass(slots=True)
class OfflineDetector:
    """Finds silent devices and offline gateways (see the module docstring).

    A pure state machine: it is shown reading times (:meth:`observe`), gateway
    states and the device registry at an instant (:meth:`check`), and answers
    with findings. The service feeds it from the store and MQTT; the tests
    feed it recorded data in event time.
    """

    config: MonitorConfig = field(default_factory=MonitorConfig)
    learner: IntervalLearner = field(init=False)
    _devices: dict[str, _Offline] = field(default_factory=dict, init=False)
    _gateways: dict[str, _Gateway] = field(default_factory=dict, init=False)
    _hub_down: bool = field(default=False, init=False)
    _hub_resumed_us: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        c = self.config
        self.learner = IntervalLearner(c.interval_gaps, c.interval_quantile, c.min_gaps)

    # ---------------------------------------------------------------- inputs

    def observe(self, device: str, ts_us: int) -> None:
        """Take one reading time of a device (for its interval)."""
        self.learner.add(device, ts_us)

    def restore(self, alerts: Iterable[AlertRecord]) -> None:
        """Take up the offline alerts still active after a restart."""
        for alert in alerts:
            if alert.kind != OFFLINE_KIND or not alert.active:
                continue
            if alert.fingerprint.startswith("device/") and alert.device:
                seen = int(alert.details.get("last_seen_us", alert.opened_us))
                self._devices[alert.device] = _Offline(alert.opened_us, seen)
            elif alert.fingerprint.startswith("gateway/") and alert.gateway:
                hidden = int(alert.details.get("devices_hidden", 0))
                self._gateways[alert.gateway] = _Gateway(False, alert.opened_us, hidden)

    def gateway_state(
        self, gateway: str, online: bool, at_us: int, devices: int, reason: str = ""
    ) -> list[Finding]:
        """Take a gateway's reported status (birth, state or LWT).

        Args:
            gateway: the gateway id.
            online: its status.
            at_us: when the state was received, epoch µs.
            devices: how many devices sit behind it (for the alert's text).
            reason: how the state came (``lwt`` when it is the will), for people.

        Returns:
            A raised finding when it went offline, a cleared one when it came
            back, nothing when the status did not change.
        """
        known = self._gateways.get(gateway)
        if known is not None and known.online == online:
            return []
        if known is None and online:
            self._gateways[gateway] = _Gateway(True, at_us)
            return []
        if not online:
            self._gateways[gateway] = _Gateway(False, at_us, devices)
            how = " (its last will)" if reason == "lwt" else ""
            return [
                Finding(
                    fingerprint=gateway_fingerprint(gateway),
                    kind=OFFLINE_KIND,
                    state="raised",
                    at_us=at_us,
                    severity="warning",
                    summary=f"gateway {gateway} offline{how}: {devices} device(s) "
                    "behind it not checked",
                    gateway=gateway,
                    details={"devices_hidden": devices, "reason": reason or "state"},
                    group_key=f"offline/{gateway}",
                )
            ]
        assert known is not None
        self._gateways[gateway] = _Gateway(True, at_us, resumed_us=at_us)
        return [
            Finding(
                fingerprint=gateway_fingerprint(gateway),
                kind=OFFLINE_KIND,
                state="cleared",
                at_us=at_us,
                severity="warning",
                summary=f"gateway {gateway} back online after "
                f"{format_s((at_us - known.since_us) / 1e6)}",
                gateway=gateway,
                details={"devices_hidden": known.hidden},
                group_key=f"offline/{gateway}",
            )
        ]

    def hub_reporting(self, reporting: bool, at_us: int) -> None:
        """Say whether the hub reports (its stats are fresh); none judged if not."""
        if self._hub_down and reporting:
            self._hub_resumed_us = at_us
        self._hub_down = not reporting

    # ----------------------------------------------------------------- state

    @property
    def offline_devices(self) -> list[str]:
        """Devices with an offline alert raised, sorted."""
        return sorted(self._devices)

    @property
    def offline_gateways(self) -> list[str]:
        """Gateways reported offline, sorted."""
        return sorted(g for g, s in self._gateways.items() if not s.online)

    def gateway_online(self, gateway: str | None) -> bool:
        """Whether a gateway is not known to be offline (None: no gateway)."""
        state = self._gateways.get(gateway) if gateway else None
        return state is None or state.online

    def interval_s(self, device: DeviceView) -> tuple[float | None, str]:
        """The device's usual interval and where it comes from."""
        if device.expected_interval_s:
            return device.expected_interval_s, "expected"
        return self.learner.interval_s(device.id), "learned"

    # ----------------------------------------------------------------- check

    def check(self, now_us: int, devices: Iterable[DeviceView]) -> list[Finding]:
        """Judge each device's silence at ``now_us``.

        Returns:
            Raised findings for devices that just went silent, cleared ones
            for devices offline until now that sent data again.
        """
        found: list[Finding] = []
        for device in devices:
            if device.last_seen_us is None:
                continue  # registered ahead of time, never heard from
            offline = self._devices.get(device.id)
            if offline is not None:
                if device.last_seen_us > offline.last_seen_us:
                    found.append(self._back(device, offline, now_us))
                continue
            if self._hub_down or not self.gateway_online(device.gateway):
                continue  # the cause is upstream, and has its own alert
            finding = self._judge(device, now_us)
            if finding is not None:
                found.append(finding)
        return found

    def _judge(self, device: DeviceView, now_us: int) -> Finding | None:
        assert device.last_seen_us is not None
        interval, source = self.interval_s(device)
        if interval is None:
            return None
        threshold = max(
            self.config.offline_factor * interval, self.config.min_silence_s
        )
        since = max(device.last_seen_us, self._resumed_us(device.gateway))
        if (now_us - since) / 1e6 <= threshold:
            return None
        self._devices[device.id] = _Offline(now_us, device.last_seen_us)
        silence = (now_us - device.last_seen_us) / 1e6
        _LOGGER.info(
            "device offline device=%s gateway=%s silence_s=%.0f interval_s=%.1f",
            device.id,
            device.gateway,
            silence,
            interval,
        )
        return Finding(
            fingerprint=device_fingerprint(device.id),
            kind=OFFLINE_KIND,
            state="raised",
            at_us=now_us,
            severity="warning",
            summary=f"{device.id} offline: no data for {format_s(silence)} "
            f"(usual interval {format_s(interval)})",
            device=device.id,
            gateway=device.gateway,
            details={
                "last_seen": iso_us(device.last_seen_us),
                "last_seen_us": device.last_seen_us,
                "silence_s": round(silence, 3),
                "interval_s": round(interval, 3),
                "interval_source": source,
                "threshold_s": round(threshold, 3),
            },
            group_key=f"offline/{device.gateway or '-'}",
        )

    def _back(self, device: DeviceView, offline: _Offline, now_us: int) -> Finding:
        del self._devices[device.id]
        assert device.last_seen_us is not None
        silent = (device.last_seen_us - offline.last_seen_us) / 1e6
        _LOGGER.info("device back device=%s silent_s=%.0f", device.id, silent)
        return Finding(
            fingerprint=device_fingerprint(device.id),
            kind=OFFLINE_KIND,
            state="cleared",
            at_us=now_us,
            severity="warning",
            summary=f"{device.id} back: data again after {format_s(silent)}",
            device=device.id,
            gateway=device.gateway,
            details={"last_seen": iso_us(device.last_seen_us), "silent_s": silent},
            group_key=f"offline/{device.gateway or '-'}",
        )

    def _resumed_us(self, gateway: str | None) -> int:
        state = self._gateways.get(gateway) if gateway else None
        gw = state.resumed_us if state is not None and state.resumed_us else 0
        return max(gw, self._hub_resumed_us or 0)


class StoreIntervals:
    """Feeds a learner with the devices' reading times from the store.

    Each device is read from where its last read ended (new reading times
    only), every ``interval_refresh_s``; a device without enough gaps yet is
    read again whenever it sent something new, so that a new device is
    judged after ``min_gaps`` readings, not after a refresh period.
    """

    def __init__(
        self, store: Store, learner: IntervalLearner, config: MonitorConfig
    ) -> None:
        """Read through ``store`` into ``learner``."""
        self._store = store
        self._learner = learner
        self._config = config
        self._next_us: dict[str, int] = {}
        self._seen_at_read: dict[str, int] = {}

    def refresh(self, now_us: int, devices: Iterable[DeviceView]) -> int:
        """Read the devices that are due; return how many were read."""
        read = 0
        for device in devices:
            if device.last_seen_us is None or device.expected_interval_s:
                continue
            if self._due(device, now_us):
                self._read(device)
                self._next_us[device.id] = now_us + int(
                    self._config.interval_refresh_s * 1e6
                )
                self._seen_at_read[device.id] = device.last_seen_us
                read += 1
        return read

    def _due(self, device: DeviceView, now_us: int) -> bool:
        if now_us >= self._next_us.get(device.id, 0):
            return True
        warming = self._learner.gap_count(device.id) < self._config.min_gaps
        changed = device.last_seen_us != self._seen_at_read.get(device.id)
        return warming and changed

    def _read(self, device: DeviceView) -> None:
        assert device.last_seen_us is not None
        newest = self._learner.newest_us(device.id)
        if newest is not None:
            times = self._times(device.id, newest + 1)
        else:
            # First read: look back an hour, then further while too few gaps.
            window = min(_FIRST_WINDOW_S, self._config.learn_window_s)
            while True:
                times = self._times(device.id, device.last_seen_us - int(window * 1e6))
                enough = len(times) > self._config.interval_gaps
                if enough or window >= self._config.learn_window_s:
                    break
                window = min(window * 2, self._config.learn_window_s)
        for ts in times:
            self._learner.add(device.id, ts)

    def _times(self, device: str, from_us: int) -> list[int]:
        readings = self._store.readings(
            device, from_us=from_us, limit=_READINGS_PER_QUERY
        )
        return sorted({r.ts_us for r in readings})
