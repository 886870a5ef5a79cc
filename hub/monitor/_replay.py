"""The offline detector on recorded data, in event time: who goes offline when.

``python -m hub.monitor._replay [FILE ...] [--factor F] [--min-silence S]``
plays each data file (default: the shipped Intel lab slices) through an
:class:`~hub.monitor.offline.OfflineDetector` on the file's own clock: every
reading is an arrival at its reading time, and the detector is asked every
``--tick`` seconds. It prints each offline and back finding, which is how the
defaults of ``offline_factor`` and ``min_silence_s`` were chosen (README,
"Monitor"); ``tests/hub/monitor/test_offline_intel.py`` holds the result.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hub.monitor.config import MonitorConfig
from hub.monitor.offline import DeviceView, OfflineDetector


@dataclass(frozen=True, slots=True)
class Change:
    """One finding of a replay: a device went offline or came back."""

    state: str
    device: str
    at_us: int
    silence_s: float


def replay_readings(
    readings: Iterable[tuple[str, int]], config: MonitorConfig, tick_s: float = 10.0
) -> Iterator[Change]:
    """Play (device, ts_us) arrivals in time order through a detector.

    Args:
        readings: device and reading time of each reading, oldest first.
        config: the detector's settings.
        tick_s: how often (event time) the detector is asked.

    Yields:
        Each finding, in time order.
    """
    detector = OfflineDetector(config)
    last_seen: dict[str, int] = {}
    tick_us = int(tick_s * 1e6)
    next_tick: int | None = None
    for device, ts_us in readings:
        if next_tick is None:
            next_tick = ts_us + tick_us
        while next_tick <= ts_us:
            yield from _check(detector, next_tick, last_seen)
            next_tick += tick_us
        detector.observe(device, ts_us)
        last_seen[device] = max(ts_us, last_seen.get(device, ts_us))
    if next_tick is not None:
        yield from _check(detector, next_tick, last_seen)


def _check(
    detector: OfflineDetector, now_us: int, last_seen: dict[str, int]
) -> Iterator[Change]:
    views = [DeviceView(d, "lab", t) for d, t in last_seen.items()]
    for f in detector.check(now_us, views):
        assert f.device is not None
        silence = f.details.get("silence_s", f.details.get("silent_s", 0.0))
        yield Change(f.state, f.device, f.at_us, float(silence))


def replay_file(
    path: Path, config: MonitorConfig, tick_s: float = 10.0
) -> list[Change]:
    """The findings of one Intel lab file (see :func:`replay_readings`)."""
    from simulators.datasets import LoadReport, read_intel

    arrivals = ((r.device, r.ts_us) for r in read_intel(path, LoadReport(quiet=True)))
    return list(replay_readings(arrivals, config, tick_s))


def main(argv: list[str] | None = None) -> None:
    """Print the offline findings of each file."""
    from hub.alerts.notice import iso_us
    from simulators.datasets import SHIPPED_DATA, zone

    parser = argparse.ArgumentParser(prog="python -m hub.monitor._replay")
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--factor", type=float, default=MonitorConfig().offline_factor)
    parser.add_argument(
        "--min-silence", type=float, default=MonitorConfig().min_silence_s
    )
    parser.add_argument("--tick", type=float, default=10.0)
    args = parser.parse_args(argv)
    config = MonitorConfig(offline_factor=args.factor, min_silence_s=args.min_silence)
    files = args.files or sorted(SHIPPED_DATA.glob("intel_lab_*.txt.gz"))
    lab = zone("America/Los_Angeles")
    from datetime import datetime

    for path in files:
        print(f"{path.name}: factor={args.factor:g} min_silence_s={args.min_silence:g}")
        for c in replay_file(path, config, args.tick):
            local = datetime.fromtimestamp(c.at_us / 1e6, lab).strftime("%H:%M:%S")
            print(
                f"  {c.state:<8} {c.device:<8} {local} ({iso_us(c.at_us)})"
                f" silence={c.silence_s:.0f}s"
            )


if __name__ == "__main__":
    main()
