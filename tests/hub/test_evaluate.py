"""The NAB scorer and ``streamflow evaluate``, on hand-made and real NAB files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.evaluate import (
    STANDARD,
    CostMatrix,
    EvaluateError,
    FileScore,
    Window,
    probation_length,
    read_nab_csv,
    read_windows,
    scaled_sigmoid,
    score_file,
    total,
)

NAB = Path(__file__).parent / "data" / "nab"
IIO = "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv"
TRAVEL = "realTraffic/TravelTime_451.csv"
MINUTE = 60_000_000
#: 2020-01-01T00:00:00Z
T0 = 1_577_836_800_000_000
KEYS = {"windows", "detected", "false_alarms", "points", "mean_delay_s", "nab_standard"}


def _tiny_file(tmp_path: Path) -> tuple[Path, Path]:
    """20 rows a minute apart and one window over rows 10-13."""
    csv = tmp_path / "data" / "tiny" / "tiny.csv"
    csv.parent.mkdir(parents=True)
    rows = [f"2020-01-01 00:{m:02d}:00,{m}.5" for m in range(20)]
    csv.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    windows = tmp_path / "windows.json"
    windows.write_text(
        '{"tiny/tiny.csv": [["2020-01-01 00:10:00.000000",'
        ' "2020-01-01 00:13:00.000000"]]}'
    )
    return csv, windows


def test_scaled_sigmoid_matches_the_nab_paper():
    """A(-1), A(0), A(1) and A(3) are the values the NAB paper gives."""
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


@pytest.mark.parametrize(
    ("points", "expected"),
    [(20, 3), (1243, 186), (4032, 604), (5000, 750), (22695, 750)],
)
def test_probation_length_is_15_percent_capped_at_750(points, expected):
    """NAB's probation: 15 % of the rows, at most 15 % of 5000."""
    assert probation_length(points) == expected


def test_score_file_hand_computed(tmp_path):
    """Rows 1, 5, 11, 12, 16 against a window over rows 10-13 score as by hand."""
    csv, windows_file = _tiny_file(tmp_path)
    ts_us, values = read_nab_csv(csv)
    (window,) = read_windows(windows_file)["tiny/tiny.csv"]

    score = score_file("tiny/tiny.csv", ts_us, [1, 5, 11, 12, 16], [window])

    # By hand: probation = floor(0.15 * 20) = 3 rows, so row 1 does not count.
    # Row 11 is the window's first detection: y = -(13 - 11 + 1) / 4 = -0.75,
    # A(-0.75) / A(-1) = 0.9540453 / 0.9866143 = 0.9669891; row 12 adds
    # nothing. Row 5 precedes every window: -0.11. Row 16 is after it:
    # y = |16 - 13| / (4 - 1) = 1, 0.11 * A(1) = 0.11 * -0.9866143 = -0.1085276.
    raw = 0.9669891 - 0.11 - 0.1085276
    assert (ts_us[0], values[0], len(ts_us)) == (T0, 0.5, 20)
    assert (score.windows, score.detected, score.false_alarms) == (1, 1, 2)
    assert score.delays_s == (60.0,)
    assert score.raw == pytest.approx(raw, abs=1e-6)
    # Normalised: null = -1, perfect = 1, so 100 * (raw + 1) / 2 = 87.42308.
    assert score.nab_standard == pytest.approx(87.42308, abs=1e-4)


def test_score_file_null_and_perfect_detectors_score_0_and_100(tmp_path):
    """No detection scores 0; one at each window's first row scores 100."""
    csv, windows_file = _tiny_file(tmp_path)
    ts_us, _ = read_nab_csv(csv)
    windows = read_windows(windows_file)["tiny/tiny.csv"]

    null = score_file("t", ts_us, [], windows)
    perfect = score_file("t", ts_us, [10], windows)

    assert (null.nab_standard, null.mean_delay_s) == (0.0, None)
    assert perfect.nab_standard == pytest.approx(100.0)
    assert perfect.mean_delay_s == 0.0


def test_score_file_without_windows_has_no_normalised_score():
    """A file with no anomaly: every detection is a false alarm, no NAB score."""
    ts_us = T0 + MINUTE * np.arange(100, dtype=np.int64)

    score = score_file("clean", ts_us, [50, 60], [])

    assert (score.windows, score.false_alarms, score.nab_standard) == (0, 2, None)
    assert score.raw == pytest.approx(-0.22)


def test_total_normalises_the_sums():
    """The total adds raw, null and perfect scores, then normalises once."""
    a = FileScore("a", 10, 1, 1, 0, (60.0,), 1.0, -1.0, 1.0)
    b = FileScore("b", 30, 2, 0, 3, (), -2.33, -2.0, 2.0)

    t = total([a, b])

    assert (t.points, t.windows, t.detected, t.false_alarms) == (40, 3, 1, 3)
    assert t.mean_delay_s == 60.0
    assert t.nab_standard == pytest.approx(100 * (-1.33 + 3.0) / 6.0)


def test_cost_matrix_from_profiles_reads_the_standard_profile():
    """NAB's profiles.json gives the standard weights tp 1, fp 0.11, fn 1."""
    cost = CostMatrix.from_profiles(NAB / "labels" / "profiles.json")

    assert cost == STANDARD == CostMatrix(1.0, 0.11, 1.0)


def test_read_nab_csv_bad_row_names_the_line(tmp_path):
    """A row that is not a time and a number fails with its line number."""
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:01:00,x\n")

    with pytest.raises(EvaluateError, match=r"bad\.csv:3: bad value 'x'"):
        read_nab_csv(bad)


def test_windows_json_times_are_utc_microseconds(tmp_path):
    """Window edges with NAB's '.000000' suffix are read as UTC."""
    _, windows_file = _tiny_file(tmp_path)

    assert read_windows(windows_file) == {
        "tiny/tiny.csv": [Window(T0 + 10 * MINUTE, T0 + 13 * MINUTE)]
    }


def test_evaluate_cli_on_two_nab_files_writes_the_figures(tmp_path):
    """Two real NAB files: a table, and JSON with six figures per file and total."""
    data = tmp_path / "nab"
    for name in (IIO, TRAVEL):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(NAB / name, data / name)
    out = tmp_path / "scores.json"

    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--data",
            str(data),
            "--windows",
            str(NAB / "labels" / "combined_windows.json"),
            "--json",
            str(out),
        ],
    )

    assert result.exit_code == 0, result.output
    doc = orjson.loads(out.read_bytes())
    assert set(doc) == {IIO, TRAVEL, "total"}
    assert all(set(figures) == KEYS for figures in doc.values())
    # The production detector's figures on these files (BENCHMARKS.md); a
    # change of the detector changes them, on purpose.
    assert {k: doc[IIO][k] for k in KEYS - {"nab_standard"}} == {
        "windows": 2,
        "detected": 1,
        "false_alarms": 0,
        "points": 1243,
        "mean_delay_s": 9300.0,
    }
    assert {k: doc[TRAVEL][k] for k in KEYS - {"nab_standard"}} == {
        "windows": 1,
        "detected": 1,
        "false_alarms": 4,
        "points": 2162,
        "mean_delay_s": 166500.0,
    }
    assert {k: doc["total"][k] for k in KEYS - {"nab_standard"}} == {
        "windows": 3,
        "detected": 2,
        "false_alarms": 4,
        "points": 3405,
        "mean_delay_s": 87900.0,
    }
    assert doc["total"]["nab_standard"] == pytest.approx(54.3741, abs=1e-3)
    assert "total" in result.output
    assert "TravelTime_451.csv" in result.output


def test_evaluate_cli_missing_folder_fails_with_one_line(tmp_path):
    """A data folder that does not exist ends with a one-line error."""
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--data",
            str(tmp_path / "nowhere"),
            "--windows",
            str(NAB / "labels" / "combined_windows.json"),
        ],
    )

    assert result.exit_code == 2
    assert result.stderr == (
        f"streamflow: error: data folder {str(tmp_path / 'nowhere')!r} does not exist\n"
    )
