"""What both stores share: exact time conversions, input checks, the write plan.

:class:`WritePlan` is the store-independent half of :meth:`Store.write`: it
finds the batch keys, builds the reading rows, and, once the store has said
which batches and readings were new, works out the result, the devices and
gateways seen, the latest values and the accounting increments. The stores do
only the SQL, so that both count exactly the same way.
"""

from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.storage.base import Accounting, DeviceInfo, IngestItem, WriteResult
from protocol.const import Notice
from protocol.models import GatewayState
from protocol.readings import SeriesBlock
from protocol.topics import check_id, is_valid_id

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
HOUR_US = 3_600_000_000
DAY_S = 86_400
#: time_bucket's default origin, 2000-01-03 (a Monday), which both stores use
#: so that multi-day buckets start on the same days.
BUCKET_ORIGIN = date(2000, 1, 3)
BUCKET_ORIGIN_US = 946_857_600_000_000
# MQTT 3.1.1 section 4.7.3: topic names are UTF-8 of at most 65535 bytes.
_MAX_TOPIC_BYTES = 65_535
# The same control characters protocol.topics refuses in topic names.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Accounting reasons of duplicates: a resent batch, or a (series, ts) stored.
_DUP_BATCH = Notice.DUPLICATE_BATCH.value
_DUP_READING = Notice.DUPLICATE_READING.value

BatchKey = tuple[str, int]
#: A reading as a store returns it from an insert: series id, ts, value, flags.
ReadingRow = tuple[int, int, float, int]
#: A series' readings as columns sorted by ts: ts, values, flags.
SeriesColumns = tuple[list[int], list[float], list[int]]
#: One accounting increment: bucket, scope, ident, kind, reason, n.
AccountingRow = tuple[int, str, str, str, str, int]


def us_to_dt(ts_us: int) -> datetime:
    """Epoch microseconds as an aware UTC datetime, exactly (no float seconds)."""
    return _EPOCH + timedelta(microseconds=ts_us)


def dt_to_us(dt: datetime) -> int:
    """An aware datetime as epoch microseconds, exactly."""
    return (dt - _EPOCH) // _ONE_US


def opt_dt_to_us(dt: datetime | None) -> int | None:
    """Like :func:`dt_to_us`, passing None through."""
    return None if dt is None else dt_to_us(dt)


def hour_of(ts_us: int) -> int:
    """The start of the UTC hour holding ``ts_us`` (an accounting bucket)."""
    return ts_us - ts_us % HOUR_US


def nfc(text: str) -> str:
    """``text`` in Unicode normal form C, the form names and topics are kept in."""
    return unicodedata.normalize("NFC", text)


def check_mqtt_topic(topic: str) -> str:
    """Return a device's MQTT topic, NFC-normalised, if it is a valid topic name.

    Raises:
        ValueError: the topic is empty, too long, not encodable as UTF-8, or
            has a wildcard (``+``, ``#``) or a control character; the message
            names the field ``mqtt_topic`` and the character (case C10).
    """
    topic = nfc(topic)
    if not topic:
        raise ValueError("invalid mqtt_topic '': expected a topic name")
    for char in topic:
        if char in "+#":
            raise ValueError(
                f"invalid mqtt_topic {topic!r}: {char!r} is a wildcard, "
                "not allowed in a topic name"
            )
        if _CONTROL_RE.match(char):
            raise ValueError(
                f"invalid mqtt_topic {topic!r}: control character {char!r} "
                "is not allowed in a topic name"
            )
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"invalid mqtt_topic {topic!r}: not valid UTF-8") from exc
    if size > _MAX_TOPIC_BYTES:
        raise ValueError(
            f"invalid mqtt_topic: {size} bytes, expected at most {_MAX_TOPIC_BYTES}"
        )
    return topic


def normalize_device(device: DeviceInfo) -> DeviceInfo:
    """Check a device's registry fields and return them NFC-normalised.

    Raises:
        ValueError: an invalid id or gateway id (a :class:`TopicError`), an
            invalid ``mqtt_topic`` (see :func:`check_mqtt_topic`), or an
            ``expected_interval_s`` that is not a positive finite number.
    """
    check_id(device.id, "device id")
    if device.gateway is not None:
        check_id(device.gateway, "gateway id")
    interval = device.expected_interval_s
    if interval is not None and not (math.isfinite(interval) and interval > 0):
        raise ValueError(
            f"invalid expected_interval_s {interval!r}: expected a positive number"
        )
    return dataclasses.replace(
        device,
        name=None if device.name is None else nfc(device.name),
        mqtt_topic=(
            None if device.mqtt_topic is None else check_mqtt_topic(device.mqtt_topic)
        ),
        tags={nfc(k): nfc(v) for k, v in device.tags.items()},
    )


def dropped_increase(
    previous: Mapping[str, int], current: Mapping[str, int]
) -> tuple[dict[str, int], list[str]]:
    """The edge drops since the last state, from cumulative counters.

    A counter smaller than before means the gateway's buffer was created anew
    (counters restart at zero), so its whole new value is the increase.

    Returns:
        The increase by reason (only positive ones), and the reasons whose
        counter was reset.
    """
    increase: dict[str, int] = {}
    resets: list[str] = []
    for reason, count in current.items():
        before = previous.get(reason, 0)
        if count < before:
            resets.append(reason)
            delta = count
        else:
            delta = count - before
        if delta > 0:
            increase[reason] = delta
    return increase, resets


@dataclass(frozen=True, slots=True)
class GatewayCounters:
    """What one gateway state changes in the store's edge counters.

    Attributes:
        dropped: the cumulative drop counters to keep.
        rejected: the cumulative edge reject counters to keep.
        accounting: the rows to add, ``(hour, "gateway", gw, kind, reason, n)``.
        resets: the drop reasons whose counter was reset (logged).
    """

    dropped: dict[str, int]
    rejected: dict[str, int]
    accounting: list[tuple[int, str, str, str, str, int]]
    resets: list[str]


def gateway_counters(
    state: GatewayState,
    dropped_before: Mapping[str, int],
    rejected_before: Mapping[str, int],
    received_us: int,
) -> GatewayCounters:
    """The increases a gateway state brings, and the counters to keep after it.

    A state that names no counter for a reason knows nothing of it (the will
    carries none at all), so that reason's previous value stays the baseline;
    otherwise the next state would count all of its drops again.
    """
    increase, resets = dropped_increase(dropped_before, state.dropped)
    rejected, _ = dropped_increase(rejected_before, state.rejected)
    bucket, gw = hour_of(received_us), state.gw
    rows = [(bucket, "gateway", gw, "dropped", r, n) for r, n in increase.items()]
    rows += [(bucket, "gateway", gw, "rejected", r, n) for r, n in rejected.items()]
    return GatewayCounters(
        dropped={**dropped_before, **state.dropped},
        rejected={**rejected_before, **state.rejected},
        accounting=rows,
        resets=resets,
    )


def accounting_from_rows(rows: Iterable[tuple[str, str, int]]) -> Accounting:
    """Fold (kind, reason, n) sums into an :class:`Accounting`."""
    received = duplicates = 0
    by_kind: dict[str, dict[str, int]] = {"rejected": {}, "dropped": {}, "notice": {}}
    for kind, reason, n in rows:
        if kind == "received":
            received += int(n)
        elif kind == "duplicate":
            duplicates += int(n)
        elif kind in by_kind:
            by_kind[kind][reason] = by_kind[kind].get(reason, 0) + int(n)
    return Accounting(
        received=received,
        duplicates=duplicates,
        rejected=by_kind["rejected"],
        dropped=by_kind["dropped"],
        notices=by_kind["notice"],
    )


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """How to bucket an aggregate: fixed widths in UTC, or local days in a zone.

    Attributes:
        width_s: the bucket width in seconds.
        days: the width in local days when buckets follow the zone's days
            (``width_s`` is a whole number of days), else 0.
        tz: the zone name, as given.
        zone: the zone.
    """

    width_s: int
    days: int
    tz: str
    zone: ZoneInfo


def bucket_spec(bucket_s: int, tz: str) -> BucketSpec:
    """Check aggregate parameters and say how to bucket.

    Buckets of a day or longer must be whole days: they follow local days in
    ``tz`` (23 or 25 hours on DST days). Shorter ones are fixed lengths of
    absolute time from the origin 2000-01-03T00:00Z, so the repeated hour of a
    fall-back day makes two buckets (case C15).

    Raises:
        ValueError: ``bucket_s`` is not positive or not whole days past a
            day, or ``tz`` is not a known IANA zone.
    """
    if isinstance(bucket_s, bool) or not isinstance(bucket_s, int) or bucket_s <= 0:
        raise ValueError(f"invalid bucket_s {bucket_s!r}: expected whole seconds > 0")
    if bucket_s >= DAY_S and bucket_s % DAY_S:
        raise ValueError(
            f"invalid bucket_s {bucket_s!r}: buckets of a day or more must be "
            "whole days"
        )
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}: expected an IANA name") from exc
    days = bucket_s // DAY_S if bucket_s >= DAY_S else 0
    return BucketSpec(bucket_s, days, tz, zone)


def local_day_bounds(spec: BucketSpec, from_us: int, to_us: int) -> list[int]:
    """Starts of the local-day buckets covering ``[from_us, to_us)``, plus the end.

    Bucket ``i`` is ``[bounds[i], bounds[i + 1])``; the first starts at or
    before ``from_us``, counted in steps of ``spec.days`` from 2000-01-03 as
    TimescaleDB's ``time_bucket(interval, ts, timezone)`` does.
    """
    first = us_to_dt(from_us).astimezone(spec.zone).date()
    steps = (first - BUCKET_ORIGIN).days // spec.days
    day = BUCKET_ORIGIN + timedelta(days=steps * spec.days)
    bounds = [_local_midnight_us(day, spec.zone)]
    while bounds[-1] < to_us:
        day += timedelta(days=spec.days)
        bounds.append(_local_midnight_us(day, spec.zone))
    return bounds


def _local_midnight_us(day: date, zone: ZoneInfo) -> int:
    return dt_to_us(datetime(day.year, day.month, day.day, tzinfo=zone))


# A context is what the accounting of a reading depends on besides its device:
# the gateway it came through and the hour it was received in.
_Context = tuple[str | None, int]


class WritePlan:
    """The store-independent work of one write (see the module docstring).

    A store calls, in order: :attr:`batch_rows` (insert them, learn the new
    ones), :meth:`split`, :meth:`series_keys` (resolve them to ids),
    :meth:`build_rows` (insert :attr:`ts`, :attr:`series_ids`, :attr:`values`,
    :attr:`flags`, the first of equal (series, ts) winning), then
    :meth:`finish` with the rows the insert reported as new.
    """

    def __init__(self, items: Sequence[IngestItem]) -> None:
        """Plan a write of ``items``."""
        self.items = list(items)
        self.batches: list[BatchKey] = []
        #: (gateway, seq, readings) for each batch of the write, sorted.
        self.batch_rows: list[tuple[str, int, int]] = []
        planned: set[BatchKey] = set()
        for item in self.items:
            key = _batch_key(item)
            if key is not None and key not in planned:
                planned.add(key)
                self.batches.append(key)
                size = sum(len(b) for b in item.blocks)
                self.batch_rows.append((key[0], key[1], size))
        self.batch_rows.sort()

        # Set by split(): which items carry readings to insert.
        self.fresh: list[IngestItem] = []
        self.stale: list[IngestItem] = []
        self.duplicate_batches: list[BatchKey] = []

        # Set by build_rows(): the reading rows, as columns.
        self.ts: list[int] = []
        self.series_ids: list[int] = []
        self.values: list[float] = []
        self.flags: list[int] = []
        self._series: dict[int, tuple[str, str, str]] = {}
        self._spans: dict[int, list[tuple[int, int, int]]] = {}
        self._contexts: list[_Context] = []

        # Set by finish(): the new readings by series id.
        self._new: dict[int, SeriesColumns] = {}

    def split(self, new_batches: set[BatchKey]) -> None:
        """Sort items into fresh and stale given the batch keys that were new.

        A batch whose key was stored before is stale: its readings are skipped
        and counted as duplicates. So is a second copy within this write.
        """
        claimed: set[BatchKey] = set()
        for item in self.items:
            key = _batch_key(item)
            if key is None:
                self.fresh.append(item)
            elif key in new_batches and key not in claimed:
                claimed.add(key)
                self.fresh.append(item)
            else:
                self.stale.append(item)
        self.duplicate_batches = [k for k in self.batches if k not in new_batches]

    def series_keys(self) -> list[tuple[str, str, str]]:
        """(device, metric, unit) of every series with fresh readings, sorted.

        Sorted so that concurrent writers take row locks in the same order.
        """
        units: dict[tuple[str, str], str] = {}
        for item in self.fresh:
            for block in item.blocks:
                if len(block):
                    units.setdefault((block.device, block.metric), block.unit)
        return sorted((d, m, u) for (d, m), u in units.items())

    def build_rows(self, ids: Mapping[tuple[str, str], int]) -> None:
        """Lay out the fresh readings as columns, with their series ids.

        Raises:
            ValueError: a block's columns differ in length (a bug upstream).
        """
        context_index: dict[_Context, int] = {}
        for item in self.fresh:
            context = (item.gateway, hour_of(item.received_us))
            ctx = context_index.setdefault(context, len(context_index))
            for block in item.blocks:
                n = len(block.ts_us)
                if not n:
                    continue
                if len(block.values) != n or len(block.flags) != n:
                    raise ValueError(
                        f"series block {block.device}/{block.metric}: "
                        f"{n} ts, {len(block.values)} values, {len(block.flags)} flags"
                    )
                sid = ids[(block.device, block.metric)]
                self._series.setdefault(sid, (block.device, block.metric, block.unit))
                start = len(self.ts)
                self._spans.setdefault(sid, []).append((start, start + n, ctx))
                self.ts.extend(block.ts_us)
                self.values.extend(block.values)
                self.flags.extend(block.flags)
                self.series_ids.extend([sid] * n)
        self._contexts = list(context_index)

    def finish(self, new_rows: Iterable[ReadingRow]) -> WriteResult:
        """The write's result, given the rows the store inserted for the first time."""
        return self.finish_by_series(group_rows(new_rows))

    def finish_by_series(self, new: Mapping[int, SeriesColumns]) -> WriteResult:
        """Like :meth:`finish`, given the new rows already grouped by series.

        Args:
            new: per series id, its new readings as columns (ts, values,
                flags) sorted by ts; each (series, ts) at most once, since
                these are rows the unique index took for the first time.
        """
        # Columns rather than row tuples: a store that has its rows as arrays
        # (the COPY way) hands them over without a tuple per reading.
        self._new = {sid: cols for sid, cols in new.items() if cols[0]}
        result = WriteResult(
            batches=list(self.batches),
            duplicate_batches=list(self.duplicate_batches),
        )
        for sid in self._spans:
            cols = self._new.get(sid)
            if cols is None:
                continue
            device, metric, unit = self._series[sid]
            result.new.append(SeriesBlock(device, metric, unit, *cols))
        stale = sum(len(b) for item in self.stale for b in item.blocks)
        result.duplicates = len(self.ts) - result.inserted + stale
        return result

    def latest_rows(self) -> list[ReadingRow]:
        """Per series with new readings, the one with the newest ts (after finish)."""
        # Each series' columns are sorted by ts, with no equal ts: the last.
        return [
            (sid, ts[-1], values[-1], flags[-1])
            for sid, (ts, values, flags) in sorted(self._new.items())
        ]

    def device_rows(self) -> list[tuple[str, str | None, int, int]]:
        """(device, gateway, first, last received) of devices fresh items show alive.

        Stale items (batches stored before) are left out: their devices were
        seen when the batch first arrived. The gateway is the one of the
        latest message. Sorted by id, the lock order of concurrent writers.
        """
        seen: dict[str, tuple[str | None, int, int]] = {}
        for item in self.fresh:
            names = set(item.devices)
            names.update(b.device for b in item.blocks if len(b))
            at = item.received_us
            for name in names:
                before = seen.get(name)
                if before is None:
                    seen[name] = (item.gateway, at, at)
                else:
                    gw = item.gateway if at >= before[2] else before[0]
                    seen[name] = (gw, min(before[1], at), max(before[2], at))
        return [(name, *info) for name, info in sorted(seen.items())]

    def gateway_rows(self) -> list[tuple[str, int, int]]:
        """(gateway, first, last received) of every gateway in the write, sorted."""
        seen: dict[str, tuple[int, int]] = {}
        for item in self.items:
            if item.gateway is None:
                continue
            at = item.received_us
            first, last = seen.get(item.gateway, (at, at))
            seen[item.gateway] = (min(first, at), max(last, at))
        return [(gw, first, last) for gw, (first, last) in sorted(seen.items())]

    def accounting_rows(self) -> list[AccountingRow]:
        """The accounting increments of the write (after :meth:`finish`), sorted.

        Each increment counts for the device and for the gateway it came
        through, in the hour it was received: readings stored (``received``),
        readings already stored (``duplicate``, by why), rejects by reason and
        notices by name, and one ``duplicate_batch`` notice per resent batch.
        """
        tally = _Tally()
        for item in self.fresh:
            ctx = (item.gateway, hour_of(item.received_us))
            for reject in item.rejects:
                device = reject.device if is_valid_id(reject.device) else None
                tally.add(ctx, device, "rejected", str(reject.reason), 1)
            # Notices carry no device: they are the device's only when the
            # message concerned a single device (a plain sensor's message).
            names = set(item.devices) | {b.device for b in item.blocks}
            only = next(iter(names)) if len(names) == 1 else None
            for reason, n in item.notices.items():
                tally.add(ctx, only, "notice", str(reason), n)
        for item in self.stale:
            ctx = (item.gateway, hour_of(item.received_us))
            tally.add(ctx, None, "notice", _DUP_BATCH, 1)
            for block in item.blocks:
                tally.add(ctx, block.device, "duplicate", _DUP_BATCH, len(block))
        for sid, spans in self._spans.items():
            device = self._series[sid][0]
            for index, (offered, stored) in self._split_by_context(sid, spans).items():
                ctx = self._contexts[index]
                tally.add(ctx, device, "received", "", stored)
                tally.add(ctx, device, "duplicate", _DUP_READING, offered - stored)
        return tally.rows()

    def _split_by_context(
        self, sid: int, spans: list[tuple[int, int, int]]
    ) -> dict[int, tuple[int, int]]:
        # (offered, stored) per context of one series. Usually a series comes
        # in one context; only when it comes in several do we look up which
        # one offered each new reading first (the first of equal ts wins).
        new_ts = self._new[sid][0] if sid in self._new else []
        offered: Counter[int] = Counter()
        for start, end, ctx in spans:
            offered[ctx] += end - start
        if len(offered) == 1:
            ((ctx, n),) = offered.items()
            return {ctx: (n, len(new_ts))}
        first: dict[int, int] = {}
        for start, end, ctx in spans:
            for ts in self.ts[start:end]:
                first.setdefault(ts, ctx)
        stored = Counter(first[ts] for ts in new_ts)
        return {ctx: (n, stored[ctx]) for ctx, n in offered.items()}


class _Tally:
    """Accounting increments being summed, by (bucket, scope, ident, kind, reason)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[int, str, str, str, str]] = Counter()

    def add(
        self, ctx: _Context, device: str | None, kind: str, reason: str, n: int
    ) -> None:
        """Count ``n`` for the device (if any) and the context's gateway (if any)."""
        gateway, bucket = ctx
        if n <= 0:
            return
        if device:
            self._counts[(bucket, "device", device, kind, reason)] += n
        if gateway:
            self._counts[(bucket, "gateway", gateway, kind, reason)] += n

    def rows(self) -> list[AccountingRow]:
        """The sums as rows, sorted (the lock order of concurrent writers)."""
        return [(*key, n) for key, n in sorted(self._counts.items())]


def group_rows(rows: Iterable[ReadingRow]) -> dict[int, SeriesColumns]:
    """Reading rows as columns per series id, each sorted by ts (stable)."""
    by_series: dict[int, list[tuple[int, float, int]]] = {}
    for sid, ts, value, flags in rows:
        by_series.setdefault(sid, []).append((ts, value, flags))
    out: dict[int, SeriesColumns] = {}
    for sid, found in by_series.items():
        found.sort(key=lambda r: r[0])
        out[sid] = ([r[0] for r in found], [r[1] for r in found], [r[2] for r in found])
    return out


def _batch_key(item: IngestItem) -> BatchKey | None:
    if item.gateway is None or item.seq is None:
        return None
    return (item.gateway, item.seq)
