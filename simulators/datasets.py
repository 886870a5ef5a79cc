"""Loaders of real sensor datasets as StreamFlow readings.

Each loader yields :class:`~protocol.readings.Reading` objects in file order,
and never raises for a bad line: the line (or the one value) becomes a
:class:`~protocol.readings.Reject` with a :class:`~protocol.const.RejectReason`
naming the field, counted in a :class:`LoadReport` and logged at WARNING (the
first few of each reason, then a note that more are suppressed).

Formats (``../shared/datasets/README.md`` describes the files):

``intel``
    Intel Berkeley lab ``data.txt`` lines,
    ``date time epoch moteid temperature humidity light voltage``, plain or
    gzip. Rules chosen for the quirks of the real file:

    - Fields are split on single spaces, so an empty field keeps its place:
      ``19.665 38.3946  2.74963`` is temperature, humidity, no light, voltage.
      Every one of the 10,237 such lines of 2004-03-04..06 has the empty field
      in the light position and a voltage-like value (2.6-2.8) after it,
      which confirms the positional reading. An empty field yields no reading
      for that metric and is counted in ``LoadReport.missing``; it is not a
      reject (like ``null`` in protocol v1: no value was sent).
    - A line with other than 8 fields is rejected whole (``length_mismatch``,
      field ``line``).
    - Mote ids are 1-54 (``mote_locs.txt``); any other id is a corrupt packet
      and its line is rejected whole (``bad_device_id``, field ``moteid``),
      since its values cannot be attributed to a mote. The one such record,
      2004-03-05 08:29:04 with id 65407 (0xFF7F) and a temperature of 294, is
      dropped this way.
    - Physically impossible values from a real mote (mote 8 at 2004-03-06
      23:15:40: humidity -8983) are kept: that is what the device sent, and
      what alert rules must catch.
    - Times are naive local time of the lab, America/Los_Angeles (PST, UTC-8,
      in March 2004; DST began on 2004-04-04). A repeated fall-back hour is
      read as its first occurrence (``fold=0``).
    - The ``epoch`` field (a per-mote sequence number) is not used.

``nab``
    Numenta Anomaly Benchmark CSV, header ``timestamp,value``. Times have no
    zone and are read as UTC (NAB's own tooling treats them as naive, and UTC
    keeps their regular spacing: no DST gaps). The device id is the file's
    stem (characters outside ``[A-Za-z0-9_.-]`` become ``-``), the metric
    ``value``.

``uci``
    UCI Occupancy Detection, header
    ``"date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"``
    whose data rows carry a leading quoted row id (8 fields for 7 names);
    rows without the id (7 fields) are read too. Times are naive local time
    of the office in Mons, Belgium (Europe/Brussels, CET in February 2015).
    Metrics are the columns in snake case (``temperature`` C, ``humidity`` %,
    ``light`` lux, ``co2`` ppm, ``humidity_ratio`` kg/kg, ``occupancy``), so
    that a rule on ``temperature`` reads the Intel lab and this room alike.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Final, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol.const import RejectReason
from protocol.readings import Reading, Reject
from simulators.errors import DatasetError

_LOGGER = logging.getLogger(__name__)

#: The slice of the Intel lab data shipped with StreamFlow (PROVENANCE.md).
SHIPPED_DATA: Final = Path(__file__).parent / "data"

INTEL_TZ: Final = "America/Los_Angeles"
UCI_TZ: Final = "Europe/Brussels"
#: The lab's motes (mote_locs.txt); any other id is a corrupt record.
INTEL_MOTE_IDS: Final = range(1, 55)
INTEL_METRICS: Final = (
    ("temperature", "C"),
    ("humidity", "%"),
    ("light", "lux"),
    ("voltage", "V"),
)
UCI_DEVICE: Final = "uci-room"
UCI_METRICS: Final = {
    "Temperature": ("temperature", "C"),
    "Humidity": ("humidity", "%"),
    "Light": ("light", "lux"),
    "CO2": ("co2", "ppm"),
    "HumidityRatio": ("humidity_ratio", "kg/kg"),
    "Occupancy": ("occupancy", ""),
}
NAB_METRIC: Final = "value"

#: How many warnings of one reason a report logs before it only counts.
WARNINGS_PER_REASON: Final = 5
#: How many rejects a report keeps as examples, per reason.
EXAMPLES_PER_REASON: Final = 3

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INTEL_FIRST_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)? \d+ \d+ ")
_BAD_ID_CHARS_RE = re.compile(r"[^A-Za-z0-9_.-]")
_DATA_SUFFIXES = (".txt", ".txt.gz", ".csv", ".csv.gz", ".gz")


class DatasetFormat(StrEnum):
    """The dataset formats the loaders read."""

    INTEL = "intel"
    NAB = "nab"
    UCI = "uci"


@dataclass(slots=True)
class LoadReport:
    """What loading found: counts of lines, readings, rejects and gaps.

    Attributes:
        files: the files read, in order.
        lines: data lines read (headers and blank lines are not counted).
        readings: readings yielded.
        rejected: rejected lines or values, by reject reason.
        missing: empty fields (no reading, not a reject), by metric.
        examples: the first few rejects of each reason, with file and line.
        quiet: count without logging (a first pass over data read again).
    """

    files: list[Path] = field(default_factory=list)
    lines: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)
    examples: list[Reject] = field(default_factory=list)
    quiet: bool = False

    def reject(self, reject: Reject) -> None:
        """Count a reject, keep it as an example and warn (rate-limited)."""
        reason = reject.reason.value
        self.rejected[reason] += 1
        seen = self.rejected[reason]
        if seen <= EXAMPLES_PER_REASON:
            self.examples.append(reject)
        if self.quiet:
            return
        if seen <= WARNINGS_PER_REASON:
            _LOGGER.warning(
                "dataset line rejected reason=%s field=%s device=%s detail=%s",
                reason,
                reject.field,
                reject.device or "-",
                reject.detail,
            )
        elif seen == WARNINGS_PER_REASON + 1:
            _LOGGER.warning(
                "further dataset rejects suppressed reason=%s: counted only", reason
            )

    def summary(self) -> str:
        """One line with the exact counts, for logs and the CLI."""
        rejected = " ".join(f"{k}={v}" for k, v in sorted(self.rejected.items()))
        missing = " ".join(f"{k}={v}" for k, v in sorted(self.missing.items()))
        return (
            f"files={len(self.files)} lines={self.lines} readings={self.readings}"
            f" rejected={sum(self.rejected.values())} ({rejected or 'none'})"
            f" missing={sum(self.missing.values())} ({missing or 'none'})"
        )


def zone(name: str) -> tzinfo:
    """The time zone named ``name``.

    Raises:
        DatasetError: the system has no zone data for it (``pip install
            tzdata`` provides it where the OS does not).
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DatasetError(
            f"unknown time zone {name!r}: install tzdata for zone data"
        ) from exc


def local_to_us(naive: datetime, tz: tzinfo) -> int:
    """Convert a naive local time in ``tz`` to epoch microseconds, exactly."""
    delta = naive.replace(tzinfo=tz) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def device_id_from_name(name: str) -> str:
    """A valid device id made from a file name (invalid characters become -)."""
    return _BAD_ID_CHARS_RE.sub("-", name)[:64] or "device"


def open_text(path: Path) -> TextIO:
    """Open a data file as text, gunzipping it when it starts with gzip magic.

    Raises:
        DatasetError: the file cannot be opened.
    """
    try:
        with path.open("rb") as raw:
            magic = raw.read(2)
        if magic == b"\x1f\x8b":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise DatasetError(f"cannot open dataset file {str(path)!r}: {exc}") from exc


def detect_format(path: Path) -> DatasetFormat | None:
    """Tell a data file's format from its first line, or None if unknown.

    Raises:
        DatasetError: the file cannot be opened or is not text.
    """
    try:
        with open_text(path) as text:
            first = text.readline().strip().lstrip("\ufeff")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DatasetError(f"cannot read dataset file {str(path)!r}: {exc}") from exc
    names = [n.strip().strip('"').lower() for n in first.split(",")]
    if names[:2] == ["timestamp", "value"]:
        return DatasetFormat.NAB
    if names[:2] == ["date", "temperature"] and "occupancy" in names:
        return DatasetFormat.UCI
    if _INTEL_FIRST_RE.match(first):
        return DatasetFormat.INTEL
    return None


def dataset_files(
    path: Path, fmt: DatasetFormat | str = "auto"
) -> list[tuple[Path, DatasetFormat]]:
    """The data files a path names, each with its format, in name order.

    A file is taken as it is; in a folder, every file ending in ``.txt``,
    ``.csv`` or ``.gz`` whose first line is a known format is taken, others
    (``mote_locs.txt``, ``PROVENANCE.md``) are left out.

    Args:
        path: a data file or a folder of them.
        fmt: a :class:`DatasetFormat` value, or ``auto`` to detect each file's.

    Raises:
        DatasetError: the path does not exist, holds no data file, or a named
            file's format cannot be detected.
    """
    forced = None if fmt == "auto" else DatasetFormat(fmt)
    if path.is_file():
        found = forced or detect_format(path)
        if found is None:
            raise DatasetError(
                f"unknown dataset format in {str(path)!r}: expected intel, nab or uci"
            )
        return [(path, found)]
    if not path.is_dir():
        raise DatasetError(f"no such dataset file or folder {str(path)!r}")
    files: list[tuple[Path, DatasetFormat]] = []
    for candidate in sorted(path.iterdir()):
        if not candidate.is_file() or not candidate.name.endswith(_DATA_SUFFIXES):
            continue
        found = detect_format(candidate)
        if found is not None and (forced is None or found == forced):
            files.append((candidate, found))
    if not files:
        raise DatasetError(f"no dataset files in {str(path)!r}")
    return files


def read_file(
    path: Path, fmt: DatasetFormat, report: LoadReport | None = None
) -> Iterator[Reading]:
    """Readings of one data file in the given format, in file order.

    Raises:
        DatasetError: the file cannot be opened (bad lines never raise).
    """
    if fmt == DatasetFormat.INTEL:
        return read_intel(path, report)
    if fmt == DatasetFormat.NAB:
        return read_nab(path, report)
    return read_uci(path, report)


def read_intel(
    path: Path, report: LoadReport | None = None, tz_name: str = INTEL_TZ
) -> Iterator[Reading]:
    """Readings of an Intel Berkeley lab file (plain or gzip), in file order.

    Args:
        path: the data file.
        report: where to count lines, readings and rejects.
        tz_name: the zone of the file's naive times.

    Raises:
        DatasetError: the file cannot be opened or the zone is unknown.
    """
    tz = zone(tz_name)
    rep = report if report is not None else LoadReport()
    if path not in rep.files:
        rep.files.append(path)
    with open_text(path) as text:
        for lineno, raw in enumerate(text, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            rep.lines += 1
            yield from _intel_line(line, f"{path.name}:{lineno}", tz, rep)


def _intel_line(
    line: str, where: str, tz: tzinfo, rep: LoadReport
) -> Iterator[Reading]:
    parts = line.split(" ")
    if len(parts) != 8:
        rep.reject(
            Reject(
                RejectReason.LENGTH_MISMATCH, "line", f"{where}: {len(parts)} fields"
            )
        )
        return
    mote = _intel_mote(parts[3])
    if mote is None:
        rep.reject(
            Reject(RejectReason.BAD_DEVICE_ID, "moteid", f"{where}: {parts[3]!r}")
        )
        return
    device = f"mote-{mote}"
    try:
        ts_us = local_to_us(datetime.fromisoformat(f"{parts[0]} {parts[1]}"), tz)
    except ValueError:
        rep.reject(
            Reject(
                RejectReason.BAD_TIMESTAMP,
                "time",
                f"{where}: {parts[0]!r} {parts[1]!r}",
                device,
            )
        )
        return
    for (metric, unit), token in zip(INTEL_METRICS, parts[4:], strict=True):
        value = _value(token, metric, device, where, rep)
        if value is not None:
            rep.readings += 1
            yield Reading(device, metric, ts_us, value, unit)


def _intel_mote(token: str) -> int | None:
    if not token.isdigit():
        return None
    mote = int(token)
    return mote if mote in INTEL_MOTE_IDS else None


def _value(
    token: str, metric: str, device: str, where: str, rep: LoadReport
) -> float | None:
    """Parse one value field; None for an empty field or a reject."""
    token = token.strip()
    if not token:
        rep.missing[metric] += 1
        return None
    try:
        value = float(token)
    except ValueError:
        rep.reject(
            Reject(
                RejectReason.NON_NUMERIC_STRING,
                metric,
                f"{where}: {token[:40]!r}",
                device,
                metric,
            )
        )
        return None
    if not math.isfinite(value):
        rep.reject(
            Reject(
                RejectReason.NON_FINITE_VALUE,
                metric,
                f"{where}: {token[:40]!r}",
                device,
                metric,
            )
        )
        return None
    return value


def read_nab(
    path: Path,
    report: LoadReport | None = None,
    device: str | None = None,
    metric: str = NAB_METRIC,
) -> Iterator[Reading]:
    """Readings of a NAB ``timestamp,value`` CSV file, in file order.

    Args:
        path: the CSV file.
        report: where to count lines, readings and rejects.
        device: the device id; by default made from the file's stem.
        metric: the metric name of the values.

    Raises:
        DatasetError: the file cannot be opened.
    """
    dev = device or device_id_from_name(path.name.split(".")[0])
    rep = report if report is not None else LoadReport()
    if path not in rep.files:
        rep.files.append(path)
    with open_text(path) as text:
        for lineno, row in enumerate(csv.reader(text), 1):
            if lineno == 1 and row and row[0].strip().lower() == "timestamp":
                continue
            if not row or not "".join(row).strip():
                continue
            rep.lines += 1
            where = f"{path.name}:{lineno}"
            if len(row) != 2:
                rep.reject(
                    Reject(
                        RejectReason.LENGTH_MISMATCH,
                        "line",
                        f"{where}: {len(row)} fields",
                        dev,
                    )
                )
                continue
            ts_us = _naive_ts(row[0], UTC, "timestamp", dev, where, rep)
            if ts_us is None:
                continue
            value = _value(row[1], metric, dev, where, rep)
            if value is not None:
                rep.readings += 1
                yield Reading(dev, metric, ts_us, value)


def _naive_ts(
    token: str, tz: tzinfo, name: str, device: str, where: str, rep: LoadReport
) -> int | None:
    try:
        parsed = datetime.fromisoformat(token.strip())
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is not None:
        # An aware time in a file documented as naive is as suspect as garbage.
        rep.reject(
            Reject(RejectReason.BAD_TIMESTAMP, name, f"{where}: {token[:40]!r}", device)
        )
        return None
    return local_to_us(parsed, tz)


def read_uci(
    path: Path,
    report: LoadReport | None = None,
    device: str = UCI_DEVICE,
    tz_name: str = UCI_TZ,
) -> Iterator[Reading]:
    """Readings of a UCI occupancy file, in file order.

    Args:
        path: the CSV file (with or without the leading row-id column).
        report: where to count lines, readings and rejects.
        device: the device id of the room.
        tz_name: the zone of the file's naive times.

    Raises:
        DatasetError: the file cannot be opened, has no header or the zone is
            unknown.
    """
    tz = zone(tz_name)
    rep = report if report is not None else LoadReport()
    if path not in rep.files:
        rep.files.append(path)
    with open_text(path) as text:
        rows = csv.reader(text)
        header = [name.strip().lstrip("\ufeff") for name in next(rows, [])]
        if not header or header[0].lower() != "date":
            raise DatasetError(f"no UCI header in {str(path)!r}: expected 'date',...")
        columns = [UCI_METRICS.get(name) for name in header[1:]]
        for lineno, row in enumerate(rows, 2):
            if not row or not "".join(row).strip():
                continue
            rep.lines += 1
            yield from _uci_row(row, header, columns, device, tz, path, lineno, rep)


def _uci_row(
    row: list[str],
    header: list[str],
    columns: list[tuple[str, str] | None],
    device: str,
    tz: tzinfo,
    path: Path,
    lineno: int,
    rep: LoadReport,
) -> Iterator[Reading]:
    where = f"{path.name}:{lineno}"
    if len(row) == len(header) + 1:
        row = row[1:]  # the quoted row id the UCI files put before each row
    if len(row) != len(header):
        rep.reject(
            Reject(
                RejectReason.LENGTH_MISMATCH,
                "line",
                f"{where}: {len(row)} fields",
                device,
            )
        )
        return
    ts_us = _naive_ts(row[0], tz, "date", device, where, rep)
    if ts_us is None:
        return
    for column, token in zip(columns, row[1:], strict=True):
        if column is None:
            continue  # a column we do not know: not a metric of this dataset
        metric, unit = column
        value = _value(token, metric, device, where, rep)
        if value is not None:
            rep.readings += 1
            yield Reading(device, metric, ts_us, value, unit)
