"""Load mode of ``streamflow simulate``: ramp devices and rates, measure, stop.

One process drives many devices (thousands are fine): every
:data:`TICK_S` the generator works out how many reports are due from the
devices active now at the rate of now, both interpolated along the ramp, and
hands their readings to the sink (real in-process edge agents, or plain MQTT
sensors). It stops by itself at ``duration_s`` or after ``count`` readings,
then waits up to ``drain_s`` for the outstanding acks.

What is measured, live and in the final :class:`LoadSummary`:

- achieved readings/s: what the sink took, which falls below the target when
  the pipeline pushes back (an edge agent's ``submit`` returns only after its
  disk commit; the MQTT sink waits when too many publishes are unacked);
- acked readings: through edge agents, readings in batches the hub acked
  after its commit (the agents' buffers count them); as plain sensors,
  readings in messages the broker PUBACKed, which says nothing of the store;
- lag reading -> ack: for each chunk handed to the sink, the time from the
  hand-over to the moment the acked count covers it. Acks are taken as
  covering the oldest readings first (a gateway forms its live batches in
  arrival order). A thread polls the count every :data:`POLL_S`, so a lag
  is known to that;
- connected gateways (edge agents with their hub session up).

Readings get the wall clock as their time, one µs later at least than the
device's previous one, so no two are the same (series, ts).
"""

from __future__ import annotations

import bisect
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Final, Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table

from protocol import topics
from protocol.readings import Reading
from protocol.validate import now_us
from simulators.fleet import DEFAULT_METRICS, MetricModel
from simulators.sinks import Sink

_LOGGER = logging.getLogger(__name__)

#: The generator's period: reports are formed this often.
TICK_S: Final = 0.1
#: The acked count is polled this often (the resolution of the lag).
POLL_S: Final = 0.01
#: Live figures (rates, lag percentiles) cover this many recent seconds.
WINDOW_S: Final = 5.0
#: A tick never forms more than this many seconds' worth of reports: a sink
#: that held the generator up is not flooded to catch up.
MAX_CATCH_UP_S: Final = 1.0
_RAMP_KEYS: Final = ("devices", "rate")


class AckProbe(Protocol):
    """Tells how many readings the sink's far end has acknowledged."""

    def __call__(self) -> tuple[int, int | None]:
        """Readings acked so far (cumulative), and gateways connected.

        The second is None when the sink has no gateways (plain sensors).
        """
        ...


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What the load generator runs.

    Attributes:
        gateways: gateway ids; devices are spread over them evenly.
        devices: devices per gateway at the start and at the end of the ramp.
        rate: reports per device per second at the start and the end.
        ramp_s: seconds the ramp takes; after it the end values hold.
        duration_s: stop after this many seconds (None: only ``count``).
        count: stop after this many readings (None: only ``duration_s``).
        drain_s: after stopping, wait this long at most for the acks.
        metrics: what every device reports (one reading each per report).
        seed: the values' random generator seed.
    """

    gateways: tuple[str, ...]
    devices: tuple[int, int] = (10, 10)
    rate: tuple[float, float] = (1.0, 1.0)
    ramp_s: float = 10.0
    duration_s: float | None = None
    count: int | None = None
    drain_s: float = 30.0
    metrics: tuple[MetricModel, ...] = DEFAULT_METRICS
    seed: int = 1

    def __post_init__(self) -> None:
        if not self.gateways:
            raise ValueError("expected at least one gateway")
        if min(self.devices) < 1:
            raise ValueError(f"devices {self.devices!r}: expected 1 or more")
        if min(self.rate) <= 0 or not all(math.isfinite(r) for r in self.rate):
            raise ValueError(f"rate {self.rate!r}: expected above 0")
        if not self.ramp_s >= 0:
            raise ValueError(f"ramp_s {self.ramp_s!r}: expected 0 or more")
        if self.duration_s is None and self.count is None:
            raise ValueError("load mode needs a duration or a count to stop at")
        if not self.metrics:
            raise ValueError("expected at least one metric")

    def _at(self, ends: tuple[float, float], t: float) -> float:
        if self.ramp_s <= 0 or t >= self.ramp_s:
            return ends[1]
        return ends[0] + (ends[1] - ends[0]) * max(0.0, t) / self.ramp_s

    def devices_at(self, t: float) -> int:
        """Devices per gateway active ``t`` seconds into the run."""
        return max(1, round(self._at((float(self.devices[0]), self.devices[1]), t)))

    def rate_at(self, t: float) -> float:
        """Reports per device per second ``t`` seconds into the run."""
        return self._at(self.rate, t)

    def device_ids(self) -> list[list[str]]:
        """Every device id the plan may use, per gateway."""
        most = max(self.devices)
        return [
            [topics.check_id(f"{gw}-load-{d:05d}", "device id") for d in range(most)]
            for gw in self.gateways
        ]


def parse_ramp(text: str) -> tuple[str, float, float]:
    """Read one ``--ramp`` value: ``devices=FROM..TO`` or ``rate=FROM..TO``.

    ``devices`` counts devices per gateway, ``rate`` reports per device per
    second; ``KEY=VALUE`` alone holds the value for the whole run.

    Returns:
        The key and the two ends.

    Raises:
        ValueError: another key, or a bound that is not a number above 0
            (devices: a whole number).
    """
    key, eq, bounds = text.strip().partition("=")
    if key not in _RAMP_KEYS or not eq:
        raise ValueError(
            f"bad ramp {text!r}: expected devices=FROM..TO or rate=FROM..TO"
        )
    first, dots, second = bounds.partition("..")
    try:
        lo = float(first)
        hi = float(second) if dots else lo
    except ValueError:
        raise ValueError(f"bad ramp {text!r}: bounds must be numbers") from None
    if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"bad ramp {text!r}: bounds must be above 0")
    if key == "devices" and not (lo.is_integer() and hi.is_integer()):
        raise ValueError(f"bad ramp {text!r}: devices must be whole numbers")
    return key, lo, hi


def weighted_percentile(samples: list[tuple[float, int]], q: float) -> float | None:
    """The ``q``-quantile (0..1) of values weighted by counts; None when empty.

    The smallest value whose cumulative weight reaches ``q`` of the total
    (the nearest-rank definition, so the result is always a sample value).
    """
    if not samples:
        return None
    ordered = sorted(samples)
    total = sum(w for _, w in ordered)
    if total <= 0:
        return None
    goal = q * total
    running = 0
    for value, weight in ordered:
        running += weight
        if running >= goal:
            return value
    return ordered[-1][0]


@dataclass(slots=True)
class _Chunk:
    upto: int  # cumulative readings sent once this chunk was handed on
    n: int
    sent_at: float


@dataclass(frozen=True, slots=True)
class LoadStep:
    """The figures of one second of the run (the summary's time line)."""

    t_s: float
    devices: int
    target_rps: float
    achieved_rps: float
    acked: int
    lag_p99_s: float | None


@dataclass(slots=True)
class LoadSummary:
    """What a load run did; :meth:`line` and :meth:`as_dict` present it.

    Attributes:
        stopped: ``duration``, ``count`` or ``signal``.
        elapsed_s: the generating part, seconds.
        drain_s: the wait for acks after it, seconds.
        gateways: gateways (0 for plain sensors, whose ids only use theirs).
        connected: of those, connected at the end (None for plain sensors).
        devices_max: devices active at most (all gateways).
        sent: readings handed to the sink.
        acked: of those, readings acknowledged by the end.
        unacked: sent minus acked at the end.
        target_rps: readings per second the ramp asked for, averaged.
        achieved_rps: readings per second the sink took (sent / elapsed_s).
        lag_p50_s: median lag from hand-over to ack, seconds.
        lag_p99_s: its 99th percentile.
        lag_max_s: the largest.
        steps: the figures of each second.
    """

    stopped: str = "duration"
    elapsed_s: float = 0.0
    drain_s: float = 0.0
    gateways: int = 0
    connected: int | None = None
    devices_max: int = 0
    sent: int = 0
    acked: int = 0
    unacked: int = 0
    target_rps: float = 0.0
    achieved_rps: float = 0.0
    lag_p50_s: float | None = None
    lag_p99_s: float | None = None
    lag_max_s: float | None = None
    steps: list[LoadStep] = field(default_factory=list)

    def line(self) -> str:
        """One line with the exact counts and the figures."""

        def s(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"

        gws = (
            ""
            if self.connected is None
            else f" gateways={self.connected}/{self.gateways}"
        )
        return (
            f"load {self.stopped}: sent={self.sent} acked={self.acked}"
            f" unacked={self.unacked} elapsed_s={self.elapsed_s:.1f}"
            f" drain_s={self.drain_s:.1f} devices_max={self.devices_max}"
            f" target_rps={self.target_rps:.0f} achieved_rps={self.achieved_rps:.0f}"
            f" lag_p50_s={s(self.lag_p50_s)} lag_p99_s={s(self.lag_p99_s)}"
            f" lag_max_s={s(self.lag_max_s)}{gws}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data (``--json``)."""
        return asdict(self)


class _Meter:
    """Counts what was sent and acked; turns acks into lags."""

    def __init__(self, probe: AckProbe) -> None:
        # The generator hands chunks over while the poller thread reads acks.
        self._lock = threading.Lock()
        self._probe = probe
        base, connected = probe()
        self._base = base
        self.connected = connected
        self.sent = 0
        self.acked = 0
        self._chunks: deque[_Chunk] = deque()
        #: (lag s, readings, monotonic time of the ack) of each acked chunk.
        self.lags: list[tuple[float, int, float]] = []
        #: (monotonic time, sent, acked) samples, for rates over windows.
        self.history: deque[tuple[float, int, int]] = deque()

    def handed(self, n: int, at: float) -> None:
        if n:
            with self._lock:
                self.sent += n
                self._chunks.append(_Chunk(self.sent, n, at))

    def poll(self, now: float) -> None:
        total, connected = self._probe()
        with self._lock:
            self._poll(now, total, connected)

    def _poll(self, now: float, total: int, connected: int | None) -> None:
        self.connected = connected
        # Never past what was sent: a buffer reused from an earlier run may
        # bring acks of its own old batches.
        self.acked = min(self.sent, max(self.acked, total - self._base))
        while self._chunks and self._chunks[0].upto <= self.acked:
            chunk = self._chunks.popleft()
            self.lags.append((now - chunk.sent_at, chunk.n, now))
        self.history.append((now, self.sent, self.acked))
        while self.history and self.history[0][0] < now - WINDOW_S - 1.0:
            self.history.popleft()

    def rate(self, now: float, over_s: float, index: int) -> float:
        """Sent (index 1) or acked (index 2) per second over the last over_s."""
        with self._lock:
            history = list(self.history)
        if not history:
            return 0.0
        times = [h[0] for h in history]
        i = bisect.bisect_left(times, now - over_s)
        then = history[min(i, len(history) - 1)]
        last = history[-1]
        span = last[0] - then[0]
        return (last[index] - then[index]) / span if span > 0 else 0.0

    def lag(self, q: float, since: float | None = None) -> float | None:
        with self._lock:
            picked = [
                (lag, n) for lag, n, at in self.lags if since is None or at >= since
            ]
        return weighted_percentile(picked, q)


class LoadDisplay:
    """The live table (rich, on stderr), or nothing when disabled.

    Args:
        enabled: draw it; when False every call is a no-op.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._live: Live | None = None

    def __enter__(self) -> LoadDisplay:
        if self.enabled:
            # stderr, so that stdout holds only the summary (or the JSON).
            self._live = Live(
                _table({}), console=Console(stderr=True), refresh_per_second=4
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def show(self, figures: dict[str, str]) -> None:
        """Replace the table's figures."""
        if self._live is not None:
            self._live.update(_table(figures))


_ROWS: Final = (
    "elapsed",
    "devices",
    "target readings/s",
    "achieved readings/s",
    "sent",
    "acked",
    "acked readings/s",
    "lag to ack p50 / p99",
    "gateways connected",
)


def _table(figures: dict[str, str]) -> Table:
    table = Table(title="streamflow simulate: load", title_justify="left")
    table.add_column("figure")
    table.add_column("now", justify="right")
    for name in _ROWS:
        table.add_row(name, figures.get(name, ""))
    return table


class LoadGenerator:
    """Runs a :class:`LoadPlan` into a started sink.

    Args:
        plan: what to run.
        sink: where readings go (the caller starts it; :meth:`run` does not
            close it, the caller does, after the run).
        probe: tells the acked readings and connected gateways.
        display: the live table.
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        plan: LoadPlan,
        sink: Sink,
        probe: AckProbe,
        display: LoadDisplay | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.sink = sink
        self.display = display or LoadDisplay(enabled=False)
        self._clock = clock
        self._meter = _Meter(probe)
        self._devices = plan.device_ids()
        self._last_ts: dict[str, int] = {}
        self._rng = random.Random(plan.seed)
        self._next = 0  # round-robin position over the active devices
        self._reports = 0
        self._target = 0.0  # readings the ramp asked for so far
        self._figures: dict[str, str] = {}

    def run(self, stop: threading.Event | None = None) -> LoadSummary:
        """Generate until a bound is reached, then wait for the acks.

        Raises:
            SinkError: the sink failed.
        """
        stop = stop if stop is not None else threading.Event()
        summary = LoadSummary(gateways=len(self.plan.gateways))
        done = threading.Event()
        poller = threading.Thread(
            target=self._poll_until, args=(done,), name="load-ack-poller", daemon=True
        )
        poller.start()
        try:
            self._generate(summary, stop)
            self._drain(summary)
        finally:
            done.set()
            poller.join(5)
        return summary

    def _poll_until(self, done: threading.Event) -> None:
        while not done.wait(POLL_S):
            self._meter.poll(self._clock())

    def _generate(self, summary: LoadSummary, stop: threading.Event) -> None:
        start = self._clock()
        last = start
        carry = 0.0
        next_step = 1.0
        while True:
            now = self._clock()
            t = now - start
            summary.stopped = self._bound(t, stop)
            if summary.stopped:
                break
            dt = min(now - last, MAX_CATCH_UP_S)
            last = now
            per_gw, rate = self.plan.devices_at(t), self.plan.rate_at(t)
            active = per_gw * len(self.plan.gateways)
            summary.devices_max = max(summary.devices_max, active)
            due = active * rate * dt + carry
            reports = int(due)
            carry = due - reports
            self._target += active * rate * dt * len(self.plan.metrics)
            readings = self._readings(reports, per_gw)
            if readings:
                self.sink.send(readings)
                self._meter.handed(len(readings), self._clock())
            if t >= next_step:
                summary.steps.append(self._step(t, per_gw, rate))
                next_step += 1.0
            self._show(t, per_gw, rate)
            time.sleep(max(0.0, now + TICK_S - self._clock()))
        summary.elapsed_s = self._clock() - start

    def _bound(self, t: float, stop: threading.Event) -> str:
        plan = self.plan
        if stop.is_set():
            return "signal"
        if plan.count is not None and self._meter.sent >= plan.count:
            return "count"
        if plan.duration_s is not None and t >= plan.duration_s:
            return "duration"
        return ""

    def _readings(self, reports: int, per_gw: int) -> list[Reading]:
        """The readings of ``reports`` reports, round-robin over active devices."""
        plan = self.plan
        left = None if plan.count is None else plan.count - self._meter.sent
        out: list[Reading] = []
        n_gw = len(plan.gateways)
        active = per_gw * n_gw
        for _ in range(reports):
            k = self._next % active
            self._next += 1
            dev = self._devices[k % n_gw][k // n_gw]
            ts = max(now_us(), self._last_ts.get(dev, 0) + 1)
            self._last_ts[dev] = ts
            self._reports += 1
            for j, mm in enumerate(plan.metrics):
                if left is not None and len(out) >= left:
                    return out
                wave = mm.daily * math.sin(self._reports / 50.0 + j)
                value = mm.base + wave + self._rng.gauss(0.0, max(mm.noise, 1e-9))
                value = min(max(value, mm.low), mm.high)
                out.append(Reading(dev, mm.name, ts, round(value, 3), mm.unit))
        return out

    def _step(self, t: float, per_gw: int, rate: float) -> LoadStep:
        now = self._clock()
        n = len(self.plan.metrics) * len(self.plan.gateways)
        return LoadStep(
            t_s=round(t, 2),
            devices=per_gw * len(self.plan.gateways),
            target_rps=round(per_gw * rate * n, 1),
            achieved_rps=round(self._meter.rate(now, 1.0, 1), 1),
            acked=self._meter.acked,
            lag_p99_s=self._meter.lag(0.99, since=now - WINDOW_S),
        )

    def _show(self, t: float, per_gw: int | None, rate: float) -> None:
        """Draw the figures; ``per_gw`` None: draining, the generator stopped."""
        if not self.display.enabled:
            return
        m, now = self._meter, self._clock()
        n_gw = len(self.plan.gateways)

        def ms(q: float) -> str:
            v = m.lag(q, since=now - WINDOW_S)
            return "-" if v is None else f"{v * 1000:,.0f} ms"

        figures = {
            "elapsed": f"{t:.1f} s" + ("" if per_gw is not None else ", draining"),
            "sent": f"{m.sent:,}",
            "acked": f"{m.acked:,}",
            "achieved readings/s": f"{m.rate(now, 1.0, 1):,.0f}",
            "acked readings/s": f"{m.rate(now, 1.0, 2):,.0f}",
            "lag to ack p50 / p99": f"{ms(0.5)} / {ms(0.99)}",
            "gateways connected": "-"
            if m.connected is None
            else f"{m.connected}/{n_gw}",
        }
        if per_gw is not None:
            target = per_gw * rate * n_gw * len(self.plan.metrics)
            figures["devices"] = f"{per_gw * n_gw:,}"
            figures["target readings/s"] = f"{target:,.0f}"
            self._figures = figures
        else:
            figures = {**self._figures, **figures, "achieved readings/s": "-"}
        self.display.show(figures)

    def _drain(self, summary: LoadSummary) -> None:
        m = self._meter
        started = self._clock()
        deadline = started + self.plan.drain_s
        m.poll(started)
        while m.acked < m.sent and self._clock() < deadline:
            time.sleep(TICK_S)
            self._show(summary.elapsed_s, None, 0.0)
        self._show(summary.elapsed_s, None, 0.0)
        summary.drain_s = self._clock() - started
        summary.sent, summary.acked = m.sent, m.acked
        summary.unacked = m.sent - m.acked
        summary.connected = m.connected
        if m.connected is None:  # plain sensors: the gateways only name them
            summary.gateways = 0
        elapsed = summary.elapsed_s
        summary.achieved_rps = m.sent / elapsed if elapsed > 0 else 0.0
        summary.target_rps = self._target / elapsed if elapsed > 0 else 0.0
        summary.lag_p50_s = m.lag(0.5)
        summary.lag_p99_s = m.lag(0.99)
        summary.lag_max_s = max((lag for lag, _, _ in m.lags), default=None)
        _LOGGER.info("load finished %s", summary.line())


def edge_probe(sink: Any) -> AckProbe:
    """The probe of an :class:`~simulators.gateways.EdgeGatewaySink`."""

    def probe() -> tuple[int, int | None]:
        acked, connected = sink.acked_and_connected()
        return int(acked), int(connected)

    return probe


def mqtt_probe(sink: Any, readings_per_message: int) -> AckProbe:
    """The probe of an :class:`~simulators.sinks.MqttSensorSink`: PUBACKs.

    Every load message carries one report of one device: all its metrics.
    """

    def probe() -> tuple[int, int | None]:
        return int(sink.messages_acked) * readings_per_message, None

    return probe
