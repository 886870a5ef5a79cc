"""Dataset loaders: exact readings from real lines, rejects by reason."""

from __future__ import annotations

import gzip
import itertools
import logging
from datetime import datetime
from pathlib import Path

import pytest

from protocol.readings import Reading
from simulators.datasets import (
    SHIPPED_DATA,
    DatasetFormat,
    LoadReport,
    dataset_files,
    detect_format,
    local_to_us,
    read_intel,
    read_nab,
    read_uci,
    zone,
)
from simulators.errors import DatasetError

# Real lines of ../shared/datasets/intel_lab (file lines 1, 11, 121331,
# 273407): a plain line, mote 28 without light, the corrupt mote id, and the
# mote 8 glitch.
INTEL_LINES = (
    "2004-03-04 00:00:00.154051 14284 43 19.5376 38.7698 28.52 2.62796\n"
    "2004-03-04 00:00:26.912185 14285 28 19.665 38.3946  2.74963\n"
    "2004-03-05 08:29:04.505813 18182 65407 294.251   0.0130561\n"
    "2004-03-06 23:15:40.595268 22835 8 0.016 -8983.13 0 0.0346855\n"
)
# Real lines broken the ways a damaged file breaks: truncated, a garbled
# value, a garbled date, a nan, trailing garbage.
INTEL_BAD_LINES = (
    "2004-03-04 00:00:01.548485 14284 52 18.048\n"
    "2004-03-04 00:00:00.265616 14284 47 18.8614 4l.3771 0.46 2.62796\n"
    "2004-13-04 00:00:00.928346 14284 49 18.1656 41.5116 0.46 2.60491\n"
    "2004-03-04 00:00:01.548485 14284 52 nan 43.4191 0.92 2.60491\n"
    "2004-03-04 00:00:01.548485 14284 52 18.048 43.4191 0.92 2.60491 x\n"
    "\n"
)
# machine_temperature_system_failure.csv: the header, the first row, and
# lines 10151-10152 where the time jumps back 55 minutes.
NAB_LINES = (
    "timestamp,value\n"
    "2013-12-02 21:15:00,73.96732207\n"
    "2014-01-07 02:55:00,92.85599879\n"
    "2014-01-07 02:00:00,94.13972336\n"
)
# datatraining.txt: the header and the first data row, with its row id.
UCI_LINES = (
    '"date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"\n'
    '"1","2015-02-04 17:51:00",23.18,27.272,426,721.25,0.00479298817650529,1\n'
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)
    return path


def _us(iso: str) -> int:
    return local_to_us(datetime.fromisoformat(iso.removesuffix("Z")), zone("UTC"))


def test_local_to_us_intel_lab_midnight_is_8_utc():
    """2004-03-04 00:00:00.154051 in the lab (PST) is 08:00:00.154051Z."""
    naive = datetime.fromisoformat("2004-03-04 00:00:00.154051")
    got = local_to_us(naive, zone("America/Los_Angeles"))
    assert got == _us("2004-03-04T08:00:00.154051Z")
    assert got == 1_078_387_200_154_051


def test_read_intel_real_lines_readings(tmp_path):
    """Real lines give one reading per present field, keeping the glitch."""
    path = _write(tmp_path, "intel.txt.gz", INTEL_LINES)
    readings = list(read_intel(path))
    t1 = _us("2004-03-04T08:00:00.154051Z")
    t2 = _us("2004-03-04T08:00:26.912185Z")
    t4 = _us("2004-03-07T07:15:40.595268Z")
    assert readings == [
        Reading("mote-43", "temperature", t1, 19.5376, "C"),
        Reading("mote-43", "humidity", t1, 38.7698, "%"),
        Reading("mote-43", "light", t1, 28.52, "lux"),
        Reading("mote-43", "voltage", t1, 2.62796, "V"),
        Reading("mote-28", "temperature", t2, 19.665, "C"),
        Reading("mote-28", "humidity", t2, 38.3946, "%"),
        Reading("mote-28", "voltage", t2, 2.74963, "V"),
        Reading("mote-8", "temperature", t4, 0.016, "C"),
        Reading("mote-8", "humidity", t4, -8983.13, "%"),
        Reading("mote-8", "light", t4, 0.0, "lux"),
        Reading("mote-8", "voltage", t4, 0.0346855, "V"),
    ]


def test_read_intel_real_lines_report(tmp_path):
    """The corrupt mote id is one reject and the empty light one missing field."""
    path = _write(tmp_path, "intel.txt", INTEL_LINES)
    report = LoadReport()
    list(read_intel(path, report))
    assert (report.lines, report.readings) == (4, 11)
    assert dict(report.rejected) == {"bad_device_id": 1}
    assert dict(report.missing) == {"light": 1}
    assert report.examples[0].field == "moteid"
    assert report.examples[0].detail == "intel.txt:3: '65407'"


def test_read_intel_bad_lines_counted_by_reason(tmp_path):
    """Each broken line is counted under its reason; good values are kept."""
    path = _write(tmp_path, "bad.txt", INTEL_BAD_LINES)
    report = LoadReport()
    readings = list(read_intel(path, report))
    assert dict(report.rejected) == {
        "length_mismatch": 2,
        "non_numeric_string": 1,
        "bad_timestamp": 1,
        "non_finite_value": 1,
    }
    assert [(r.device, r.metric) for r in readings] == [
        ("mote-47", "temperature"),
        ("mote-47", "light"),
        ("mote-47", "voltage"),
        ("mote-52", "humidity"),
        ("mote-52", "light"),
        ("mote-52", "voltage"),
    ]
    assert report.lines == 5


def test_read_intel_warnings_rate_limited(tmp_path, caplog):
    """Twenty bad lines of one reason log five warnings and one suppression note."""
    path = _write(tmp_path, "bad.txt", "2004-03-04 00:00:01.548485 14284 52\n" * 20)
    report = LoadReport()
    with caplog.at_level(logging.WARNING, logger="simulators.datasets"):
        assert list(read_intel(path, report)) == []
    assert report.rejected["length_mismatch"] == 20
    assert len(caplog.records) == 6
    assert "suppressed" in caplog.records[-1].getMessage()


def test_read_nab_real_lines(tmp_path):
    """NAB rows are read as UTC, in file order, the device named by the file."""
    path = _write(tmp_path, "machine_temperature_system_failure.csv", NAB_LINES)
    report = LoadReport()
    readings = list(read_nab(path, report))
    dev = "machine_temperature_system_failure"
    assert readings == [
        Reading(dev, "value", _us("2013-12-02T21:15:00Z"), 73.96732207),
        Reading(dev, "value", _us("2014-01-07T02:55:00Z"), 92.85599879),
        Reading(dev, "value", _us("2014-01-07T02:00:00Z"), 94.13972336),
    ]
    assert (report.lines, report.readings, sum(report.rejected.values())) == (3, 3, 0)


def test_read_nab_bad_rows_counted(tmp_path):
    """A short row, a bad time and a bad value are three rejects."""
    text = NAB_LINES + "2014-01-07 02:05:00\nyesterday,1.0\n2014-01-07 02:10:00,n/a\n"
    report = LoadReport()
    readings = list(read_nab(_write(tmp_path, "x.csv", text), report))
    assert len(readings) == 3
    assert dict(report.rejected) == {
        "length_mismatch": 1,
        "bad_timestamp": 1,
        "non_numeric_string": 1,
    }


def test_read_uci_real_row_skips_row_id(tmp_path):
    """The leading row id is dropped; times are Brussels local (CET, UTC+1)."""
    path = _write(tmp_path, "datatraining.txt", UCI_LINES)
    readings = list(read_uci(path))
    ts = _us("2015-02-04T16:51:00Z")
    assert readings == [
        Reading("uci-room", "temperature", ts, 23.18, "C"),
        Reading("uci-room", "humidity", ts, 27.272, "%"),
        Reading("uci-room", "light", ts, 426.0, "lux"),
        Reading("uci-room", "co2", ts, 721.25, "ppm"),
        Reading("uci-room", "humidity_ratio", ts, 0.00479298817650529, "kg/kg"),
        Reading("uci-room", "occupancy", ts, 1.0, ""),
    ]


def test_read_uci_row_without_id(tmp_path):
    """A row without the row id (7 fields) is read the same way."""
    text = UCI_LINES.splitlines()[0] + '\n"2015-02-04 17:51:00",23.18,1,2,3,4,0\n'
    readings = list(read_uci(_write(tmp_path, "t.txt", text)))
    assert [r.value for r in readings] == [23.18, 1.0, 2.0, 3.0, 4.0, 0.0]


def test_read_uci_without_header_raises(tmp_path):
    """A file without the UCI header is refused, naming the file."""
    with pytest.raises(DatasetError, match="no UCI header"):
        list(read_uci(_write(tmp_path, "t.txt", '"1","2015-02-04 17:51:00",1\n')))


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.txt.gz", INTEL_LINES, DatasetFormat.INTEL),
        ("a.txt", INTEL_LINES, DatasetFormat.INTEL),
        ("b.csv", NAB_LINES, DatasetFormat.NAB),
        ("c.txt", UCI_LINES, DatasetFormat.UCI),
        ("mote_locs.txt", "1 21.5 23\n2 24.5 20\n", None),
    ],
)
def test_detect_format(tmp_path, name, text, expected):
    """The first line tells the format; other files are not datasets."""
    assert detect_format(_write(tmp_path, name, text)) == expected


def test_dataset_files_folder_skips_non_data(tmp_path):
    """A folder yields its data files in name order, without mote_locs.txt."""
    _write(tmp_path, "b.csv", NAB_LINES)
    _write(tmp_path, "a.txt.gz", INTEL_LINES)
    _write(tmp_path, "mote_locs.txt", "1 21.5 23\n")
    _write(tmp_path, "PROVENANCE.md", "# x\n")
    assert dataset_files(tmp_path) == [
        (tmp_path / "a.txt.gz", DatasetFormat.INTEL),
        (tmp_path / "b.csv", DatasetFormat.NAB),
    ]


def test_dataset_files_unknown_file_raises(tmp_path):
    """A named file of no known format is refused with the expected formats."""
    with pytest.raises(DatasetError, match="expected intel, nab or uci"):
        dataset_files(_write(tmp_path, "mote_locs.txt", "1 21.5 23\n"))


def test_dataset_files_missing_path_raises(tmp_path):
    """A path that does not exist is refused, naming it."""
    with pytest.raises(DatasetError, match="no such dataset"):
        dataset_files(tmp_path / "nope")


def test_shipped_slice_files():
    """The shipped data is three Intel lab slices, in time order."""
    assert [(p.name, f) for p, f in dataset_files(SHIPPED_DATA)] == [
        ("intel_lab_2004-03-04_0000-0800.txt.gz", DatasetFormat.INTEL),
        ("intel_lab_2004-03-05_0630-0845.txt.gz", DatasetFormat.INTEL),
        ("intel_lab_2004-03-06_2245-2345.txt.gz", DatasetFormat.INTEL),
    ]


def test_shipped_slice_counts():
    """The whole shipped slice: exact lines, readings, devices, rejects, gaps."""
    report = LoadReport()
    devices: set[str] = set()
    first = last = None
    for path, fmt in dataset_files(SHIPPED_DATA):
        assert fmt == DatasetFormat.INTEL
        for r in read_intel(path, report):
            devices.add(r.device)
            first = r.ts_us if first is None else first
            last = r.ts_us
    assert (report.lines, report.readings) == (42_400, 165_644)
    assert dict(report.rejected) == {"bad_device_id": 1}
    assert dict(report.missing) == {"light": 3_952}
    assert len(devices) == 52
    assert "mote-5" not in devices
    assert "mote-15" not in devices
    assert first == _us("2004-03-04T08:00:00.154051Z")
    assert last == _us("2004-03-07T07:44:45.305237Z")


def test_shipped_slice_has_the_glitch_and_the_silence():
    """Mote 8's glitch is in the slice, and mote 24 is silent for 40 minutes."""
    path = SHIPPED_DATA / "intel_lab_2004-03-05_0630-0845.txt.gz"
    mote24 = sorted({r.ts_us for r in read_intel(path) if r.device == "mote-24"})
    longest = max(b - a for a, b in itertools.pairwise(mote24))
    assert longest == _us("2004-03-05T16:08:02.573276Z") - _us(
        "2004-03-05T15:27:32.226544Z"
    )
    glitch = SHIPPED_DATA / "intel_lab_2004-03-06_2245-2345.txt.gz"
    humid = [
        r
        for r in read_intel(glitch)
        if r.device == "mote-8" and r.metric == "humidity" and r.value < 0
    ]
    assert humid == [
        Reading("mote-8", "humidity", _us("2004-03-07T07:15:40.595268Z"), -8983.13, "%")
    ]
