"""Score the production anomaly detector on NAB-format data: ``streamflow evaluate``.

The Numenta Anomaly Benchmark (Lavin and Ahmad 2015, "Evaluating Real-time
Anomaly Detection Algorithms - the Numenta Anomaly Benchmark",
arXiv:1510.03336) labels each file with anomaly *windows* and scores a
detector's detections (rows where it raised) against them:

- The first ``min(floor(0.15 n), 0.15 * 5000)`` rows of a file of ``n`` rows
  are a probationary period in which a detector learns: detections there do
  not count, and neither do the rows of a window that fall there (NAB's
  ``Sweeper._getProbationaryLength``: 15 % of the file, at most 750 rows).
- A window counts once: only its first detection scores, with the scaled
  sigmoid of its relative position ``y = -(right - i + 1) / width`` (rows, -1
  at the window's first row, near 0 at its last), ``A(y) = 2 / (1 + e^{5y}) -
  1``, weighted by ``A_tp / A(-1)``, so that the earliest detection scores
  ``A_tp`` and a late one nearly 0. A window without detection costs
  ``-A_fn``.
- Every detection outside a window costs ``A_fp * A(y)``, with
  ``y = |i - right| / (width - 1)`` of the window before it (a detection just
  after a window costs little, one far after it ``A_fp``), or the full
  ``-A_fp`` when no window precedes it; ``A(y) = -1`` for ``y >= 3``.
- The standard profile weighs ``A_tp = 1``, ``A_fp = 0.11``, ``A_fn = 1``
  (``labels/profiles.json``).

The raw score is normalised so that the null detector (no detections)
scores 0 and a perfect one (each window detected at its first row, nothing
else) 100: ``100 * (raw - null) / (perfect - null)``, with
``null = -A_fn * windows`` and ``perfect = A_tp * windows``. Per file, a file
without windows has no normalised score (both bounds are 0); the total
normalises the sums of raw, null and perfect over the files, as NAB does for
a corpus. NAB also optimises each detector's threshold on the corpus; this
scorer does not: it scores the one configuration the hub runs.

The other figures: ``detected`` counts windows with at least one detection,
``false_alarms`` the detections outside windows (both after the probationary
period), ``mean_delay_s`` the mean time from a window's start to its first
detection.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import click
import numpy as np
import orjson

from hub._errors import HubError
from hub.processors.anomaly import PRODUCTION, AnomalyConfig, AnomalyProcessor
from hub.processors.base import Context, Floats, Int64s, SeriesBatch, SeriesKey
from hub.processors.events import EventState

_LOGGER = logging.getLogger(__name__)

#: NAB's probationary share of each file, and the row count it is taken of at most.
PROBATION_PERCENT: Final = 0.15
_PROBATION_CAP_ROWS: Final = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


class EvaluateError(HubError):
    """A data, windows or profiles file cannot be read."""


@dataclass(frozen=True, slots=True)
class CostMatrix:
    """The weights of an application profile (NAB ``profiles.json``)."""

    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0

    @classmethod
    def from_profiles(cls, path: Path, profile: str = "standard") -> CostMatrix:
        """The cost matrix of ``profile`` in a NAB ``profiles.json``.

        Raises:
            EvaluateError: the file is unreadable or lacks the profile.
        """
        try:
            doc = orjson.loads(path.read_bytes())
            matrix = doc[profile]["CostMatrix"]
            return cls(
                float(matrix["tpWeight"]),
                float(matrix["fpWeight"]),
                float(matrix["fnWeight"]),
            )
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise EvaluateError(
                f"cannot read profile {profile!r} from {str(path)!r}: {exc}"
            ) from exc


#: NAB's standard profile.
STANDARD: Final = CostMatrix()


@dataclass(frozen=True, slots=True)
class Window:
    """A labelled anomaly window, inclusive at both ends."""

    start_us: int
    end_us: int


@dataclass(frozen=True, slots=True)
class FileScore:
    """The figures of one file (or of the total).

    Attributes:
        name: the file's path relative to the data folder, or ``total``.
        points: rows.
        windows: labelled windows scored (with rows after the probation).
        detected: windows with at least one detection.
        false_alarms: detections outside every window.
        delays_s: per detected window, start to first detection.
        raw: the NAB raw score.
        null: the null detector's raw score.
        perfect: a perfect detector's raw score.
    """

    name: str
    points: int
    windows: int
    detected: int
    false_alarms: int
    delays_s: tuple[float, ...]
    raw: float
    null: float
    perfect: float

    @property
    def mean_delay_s(self) -> float | None:
        """Mean time from a window's start to its first detection."""
        return sum(self.delays_s) / len(self.delays_s) if self.delays_s else None

    @property
    def nab_standard(self) -> float | None:
        """The normalised score: null detector 0, perfect 100 (module docstring)."""
        if self.perfect == self.null:
            return None
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)

    def as_json(self) -> dict[str, Any]:
        """The figures ``--json`` writes."""
        return {
            "windows": self.windows,
            "detected": self.detected,
            "false_alarms": self.false_alarms,
            "points": self.points,
            "mean_delay_s": self.mean_delay_s,
            "nab_standard": self.nab_standard,
        }


def probation_length(points: int, percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file where detections do not count (NAB's rule)."""
    return math.ceil(min(math.floor(percent * points), percent * _PROBATION_CAP_ROWS))


def scaled_sigmoid(position: float) -> float:
    """NAB's ``A(y)``: ``2 / (1 + e^{5y}) - 1``, and -1 from ``y = 3`` on."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def score_file(
    name: str,
    ts_us: Int64s,
    detections: Iterable[int],
    windows: Sequence[Window],
    cost: CostMatrix = STANDARD,
    probation_percent: float = PROBATION_PERCENT,
) -> FileScore:
    """Score detections (row positions) against a file's windows, as NAB does.

    Args:
        name: the file's name, for the result.
        ts_us: the file's reading times, in file order.
        detections: positions of the rows where the detector raised.
        windows: the labelled windows.
        cost: the profile's weights.
        probation_percent: the probationary share of the file.
    """
    points = len(ts_us)
    probation = probation_length(points, probation_percent)
    spans = [s for w in windows if (s := _rows(ts_us, w)) is not None]
    # A window's rows in the probation do not count; one wholly there, not at all.
    scored = [(max(lo, probation), lo, hi) for lo, hi in spans if hi >= probation]
    max_tp = scaled_sigmoid(-1.0)

    first: dict[int, int] = {}
    fp_score, false_alarms = 0.0, 0
    for i in sorted({int(d) for d in detections if probation <= d < points}):
        k = next((k for k, (s, _, hi) in enumerate(scored) if s <= i <= hi), None)
        if k is not None:
            first.setdefault(k, i)
            continue
        false_alarms += 1
        before = [(lo, hi) for lo, hi in spans if hi < i]
        if before:
            lo, hi = before[-1]
            width = hi - lo + 1
            position = abs(i - hi) / (width - 1) if width > 1 else 3.0
        else:
            position = 3.0
        fp_score += cost.fp * scaled_sigmoid(position)

    tp_score = 0.0
    delays: list[float] = []
    for k, i in sorted(first.items()):
        _, lo, hi = scored[k]
        width = hi - lo + 1
        tp_score += scaled_sigmoid(-(hi - i + 1) / width) * cost.tp / max_tp
        delays.append((int(ts_us[i]) - int(ts_us[lo])) / 1e6)
    missed = len(scored) - len(first)
    return FileScore(
        name=name,
        points=points,
        windows=len(scored),
        detected=len(first),
        false_alarms=false_alarms,
        delays_s=tuple(delays),
        raw=tp_score + fp_score - cost.fn * missed,
        null=-cost.fn * len(scored),
        perfect=cost.tp * len(scored),
    )


def _rows(ts_us: Int64s, window: Window) -> tuple[int, int] | None:
    # NAB finds a window's edges as the first rows with exactly those times;
    # for other data, the first row at or after the start and the last at or
    # before the end.
    lo = np.flatnonzero(ts_us == window.start_us)[:1]
    if not len(lo):
        lo = np.flatnonzero(ts_us >= window.start_us)[:1]
    hi = np.flatnonzero(ts_us == window.end_us)[:1]
    if not len(hi):
        hi = np.flatnonzero(ts_us <= window.end_us)[-1:]
    if not len(lo) or not len(hi) or hi[0] < lo[0]:
        return None
    return int(lo[0]), int(hi[0])


def total(scores: Sequence[FileScore]) -> FileScore:
    """The figures over every file: sums, and the normalisation of the sums."""
    return FileScore(
        name="total",
        points=sum(s.points for s in scores),
        windows=sum(s.windows for s in scores),
        detected=sum(s.detected for s in scores),
        false_alarms=sum(s.false_alarms for s in scores),
        delays_s=tuple(d for s in scores for d in s.delays_s),
        raw=sum(s.raw for s in scores),
        null=sum(s.null for s in scores),
        perfect=sum(s.perfect for s in scores),
    )


# -------------------------------------------------------------------- detection


def detect(
    ts_us: Int64s, values: Floats, config: AnomalyConfig = PRODUCTION
) -> list[int]:
    """Run the anomaly processor over a file as the hub would; return its raises.

    The rows go through :class:`AnomalyProcessor` in file order, split where
    time does not increase, so that out-of-order rows take the processor's
    past lane as they would in the hub.

    Returns:
        The positions of the rows where an anomaly was raised.
    """
    processor = AnomalyProcessor(**config.model_dump())
    key = SeriesKey("nab", "value")
    cuts = np.flatnonzero(np.diff(ts_us) <= 0) + 1
    found: list[int] = []
    for start, end in itertools.pairwise([0, *cuts.tolist(), len(ts_us)]):
        ts, vs = ts_us[start:end], values[start:end]
        batch = SeriesBatch(
            key,
            "",
            ts,
            vs,
            np.zeros(len(ts), dtype=np.int64),
            np.zeros(len(ts), dtype=np.bool_),
        )
        out = processor.process(batch, Context(now_us=int(ts[-1])))
        for event in out.events:
            if event.state is EventState.RAISED:
                found.append(start + int(np.searchsorted(ts, event.ts_us)))
    return sorted(found)


# ------------------------------------------------------------------------ files


def read_nab_csv(path: Path) -> tuple[Int64s, Floats]:
    """The rows of a NAB CSV file (``timestamp,value``; naive times read as UTC).

    Raises:
        EvaluateError: the file is unreadable, or a row is not a time and a
            number; the message names the line.
    """
    times: list[int] = []
    values: list[float] = []
    try:
        with path.open(newline="", encoding="utf-8") as text:
            for lineno, row in enumerate(csv.reader(text), 1):
                if lineno == 1 and row and row[0].strip().lower() == "timestamp":
                    continue
                if not row:
                    continue
                if len(row) != 2:
                    raise EvaluateError(
                        f"{path}:{lineno}: expected timestamp,value, got {row!r}"
                    )
                times.append(_naive_us(row[0], f"{path}:{lineno}"))
                values.append(_number(row[1], f"{path}:{lineno}"))
    except OSError as exc:
        raise EvaluateError(f"cannot read {str(path)!r}: {exc}") from exc
    return np.array(times, dtype=np.int64), np.array(values, dtype=np.float64)


def _naive_us(text: str, where: str) -> int:
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise EvaluateError(f"{where}: bad timestamp {text[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // _ONE_US


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EvaluateError(f"{where}: bad value {text[:40]!r}") from None
    if not math.isfinite(value):
        raise EvaluateError(f"{where}: value {text[:40]!r} is not finite")
    return value


def read_windows(path: Path) -> dict[str, list[Window]]:
    """NAB ``combined_windows.json``: windows by file path (``category/file.csv``).

    Raises:
        EvaluateError: the file is unreadable or not in that shape.
    """
    try:
        doc = orjson.loads(path.read_bytes())
        return {
            str(name): [
                Window(_naive_us(a, str(path)), _naive_us(b, str(path)))
                for a, b in spans
            ]
            for name, spans in doc.items()
        }
    except (OSError, orjson.JSONDecodeError, AttributeError, TypeError) as exc:
        raise EvaluateError(f"cannot read windows from {str(path)!r}: {exc}") from exc
    except ValueError as exc:  # a window that is not a pair
        raise EvaluateError(f"bad window in {str(path)!r}: {exc}") from exc


def data_files(data_dir: Path) -> list[tuple[str, Path]]:
    """The CSV files under a folder, by path relative to it, sorted.

    Raises:
        EvaluateError: the folder does not exist or holds no CSV file.
    """
    if not data_dir.is_dir():
        raise EvaluateError(f"data folder {str(data_dir)!r} does not exist")
    files = sorted(
        (p.relative_to(data_dir).as_posix(), p)
        for p in data_dir.rglob("*.csv")
        if p.is_file()
    )
    if not files:
        raise EvaluateError(f"no .csv file under {str(data_dir)!r}")
    return files


def windows_for(name: str, windows: dict[str, list[Window]]) -> list[Window] | None:
    """A file's windows by its relative path, else by its file name alone."""
    if name in windows:
        return windows[name]
    base = name.rsplit("/", 1)[-1]
    matches = [w for key, w in windows.items() if key.rsplit("/", 1)[-1] == base]
    return matches[0] if len(matches) == 1 else None


def evaluate(
    data_dir: Path,
    windows_file: Path,
    cost: CostMatrix = STANDARD,
    config: AnomalyConfig = PRODUCTION,
) -> list[FileScore]:
    """Score the detector on every CSV file under ``data_dir``.

    A file with no entry in the windows file is scored as a file without
    anomalies (every detection is a false alarm), with a warning.

    Raises:
        EvaluateError: a file cannot be read.
    """
    windows = read_windows(windows_file)
    scores = []
    for name, path in data_files(data_dir):
        labelled = windows_for(name, windows)
        if labelled is None:
            _LOGGER.warning("no windows for file=%s: scored as anomaly-free", name)
            labelled = []
        ts_us, values = read_nab_csv(path)
        scores.append(
            score_file(name, ts_us, detect(ts_us, values, config), labelled, cost)
        )
    return scores


def report_json(scores: Sequence[FileScore]) -> dict[str, Any]:
    """Each file's figures under its relative path, and the total under ``total``."""
    doc = {s.name: s.as_json() for s in scores}
    doc["total"] = total(scores).as_json()
    return doc


# -------------------------------------------------------------------------- cli


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(scores: Sequence[FileScore]) -> None:
    """Print the per-file figures and the total as a table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="NAB, standard profile, production detector")
    for column in (
        "file",
        "points",
        "windows",
        "detected",
        "false alarms",
        "FA / 1k",
        "mean delay h",
        "NAB",
    ):
        if column == "file":
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, justify="right")
    for s in [*scores, total(scores)]:
        delay = None if s.mean_delay_s is None else s.mean_delay_s / 3600
        table.add_row(
            s.name,
            str(s.points),
            str(s.windows),
            str(s.detected),
            str(s.false_alarms),
            _fmt(1000 * s.false_alarms / s.points if s.points else None, 2),
            _fmt(delay),
            _fmt(s.nab_standard),
            end_section=s is scores[-1],
        )
    # Wide enough for NAB's longest names, in a terminal or not.
    console = Console()
    Console(width=max(console.width, 118)).print(table)


@click.command("evaluate")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of NAB-format CSV files (timestamp,value), searched recursively.",
)
@click.option(
    "--windows",
    "windows_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="NAB combined_windows.json: anomaly windows by file path.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the figures per file and under 'total' to this file.",
)
@click.option(
    "--profiles",
    type=click.Path(dir_okay=False, path_type=Path),
    help="NAB profiles.json (default: profiles.json beside the windows file, "
    "else NAB's standard weights).",
)
def evaluate_command(
    data_dir: Path, windows_file: Path, json_out: Path | None, profiles: Path | None
) -> None:
    """Score the production anomaly detector on labelled NAB-format data."""
    try:
        if profiles is None and (windows_file.parent / "profiles.json").is_file():
            profiles = windows_file.parent / "profiles.json"
        cost = CostMatrix.from_profiles(profiles) if profiles else STANDARD
        scores = evaluate(data_dir, windows_file, cost)
    except EvaluateError as exc:
        # One line and status 2, as every streamflow command reports errors.
        click.echo(f"streamflow: error: {exc}", err=True)
        sys.exit(2)
    print_table(scores)
    if json_out is not None:
        json_out.write_bytes(
            orjson.dumps(report_json(scores), option=orjson.OPT_INDENT_2) + b"\n"
        )
        click.echo(f"figures written to {json_out}")
