"""Device log records: the ``logs`` member of a batch (protocol.logs)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from protocol.batch import decode_batch
from protocol.const import CLOCK_FLOOR_US, FLAG_LATE, FLAG_SERVER_TIME, Notice
from protocol.const import RejectReason as R
from protocol.errors import DecodeError
from protocol.logs import (
    LEVELS,
    MAX_MESSAGE_CHARS,
    LogRecord,
    decode_logs,
    device_of_log_topic,
    log_topic,
    parse_level,
    parse_log,
)
from protocol.models import BatchEnvelope
from tests.protocol.helpers import us
from tests.protocol.strategies import JSON_DOCS

RECEIVED = us("2026-11-30T12:00:05Z")
T0 = us("2026-11-30T12:00:00Z")
SKEW = 300.0


def _record(**fields) -> dict:
    doc = {"dev": "mote-1", "ts": T0, "level": "error", "msg": "i2c timeout"}
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}


def _batch(logs, series=None, **header) -> bytes:
    doc = {"v": 1, "gw": "gw-01", "seq": 7, "sent": RECEIVED, "series": series or []}
    doc["logs"] = logs
    doc.update(header)
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("raw", "level"),
    [
        *((name, name) for name in LEVELS),
        ("ERROR", "error"),
        (" Warning ", "warning"),
        ("warn", "warning"),
        ("WARN", "warning"),
        ("err", "error"),
        ("fatal", "critical"),
        ("crit", "critical"),
        ("emerg", "critical"),
        ("trace", "debug"),
        ("notice", "info"),
    ],
)
def test_parse_level_maps_names_and_aliases(raw, level):
    """Levels are read in any case, and common aliases map to the five levels."""
    assert parse_level(raw) == level


@pytest.mark.parametrize("raw", ["loud", "", "errors", 40, None, ["error"]])
def test_parse_level_bad_is_bad_log_level(raw):
    """Anything else is refused as bad_log_level, naming the field."""
    with pytest.raises(DecodeError) as caught:
        parse_level(raw, "logs[3].level")
    assert (caught.value.reason, caught.value.field) == (
        R.BAD_LOG_LEVEL,
        "logs[3].level",
    )


def test_parse_log_reads_every_field():
    """A full record is read as it is, its source kept."""
    record, cut = parse_log(_record(src="sht31"), RECEIVED, SKEW)
    assert (record, cut) == (
        LogRecord("mote-1", T0, "error", "i2c timeout", "sht31", 0),
        False,
    )


def test_parse_log_takes_iso_time():
    """The time takes the forms a reading's takes (ISO 8601 with a zone)."""
    record, _ = parse_log(_record(ts="2026-11-30T12:00:00.5Z"), RECEIVED, SKEW)
    assert record.ts_us == T0 + 500_000


def test_parse_log_truncates_long_message():
    """A message over 1024 characters is cut there, and the cut is told."""
    record, cut = parse_log(_record(msg="x" * 5000), RECEIVED, SKEW)
    assert (len(record.message), cut) == (MAX_MESSAGE_CHARS, True)


def test_parse_log_replaces_nul_and_lone_surrogate():
    """Characters no store can hold are replaced, not refused."""
    record, _ = parse_log(_record(msg="a\x00b\ud800c"), RECEIVED, SKEW)
    assert record.message == "a\ufffdb?c"
    assert record.message.encode("utf-8")


def test_parse_log_clock_not_set_is_stamped_and_flagged():
    """A time before 2000 gets the receive time and FLAG_SERVER_TIME."""
    record, _ = parse_log(_record(ts=12), RECEIVED, SKEW)
    assert (record.ts_us, record.flags) == (RECEIVED, FLAG_SERVER_TIME)


def test_parse_log_missing_time_stamped_only_when_asked():
    """No ts: stamped for a device's own message, refused in a batch."""
    record, _ = parse_log(_record(ts=...), RECEIVED, SKEW, stamp_missing=True)
    assert (record.ts_us, record.flags) == (RECEIVED, FLAG_SERVER_TIME)
    with pytest.raises(DecodeError) as caught:
        parse_log(_record(ts=...), RECEIVED, SKEW, "logs[0]")
    assert (caught.value.reason, caught.value.field) == (
        R.MISSING_TIMESTAMP,
        "logs[0].ts",
    )


def test_parse_log_topic_device_fills_and_must_agree():
    """On a device's topic the record may leave dev out, and may not name another."""
    record, _ = parse_log(_record(dev=...), RECEIVED, SKEW, device="mote-9")
    assert record.device == "mote-9"
    with pytest.raises(DecodeError) as caught:
        parse_log(_record(dev="mote-1"), RECEIVED, SKEW, device="mote-9")
    assert caught.value.reason is R.BAD_DEVICE_ID


@pytest.mark.parametrize(
    ("fields", "reason", "where"),
    [
        ({"dev": "Küche 1"}, R.BAD_DEVICE_ID, "log.dev"),
        ({"dev": ...}, R.BAD_DEVICE_ID, "log.dev"),
        ({"level": "loud"}, R.BAD_LOG_LEVEL, "log.level"),
        ({"level": ...}, R.BAD_LOG_LEVEL, "log.level"),
        ({"msg": 42}, R.BAD_LOG_MESSAGE, "log.msg"),
        ({"msg": ...}, R.BAD_LOG_MESSAGE, "log.msg"),
        ({"src": "a\nb"}, R.BAD_ENVELOPE, "log.src"),
        ({"src": "s" * 129}, R.BAD_ENVELOPE, "log.src"),
        ({"ts": "30/11/2026 06:32"}, R.BAD_TIMESTAMP, "log.ts"),
        ({"ts": "2026-11-30T12:00:00"}, R.NAIVE_TIMESTAMP, "log.ts"),
        ({"ts": T0 + 3_600_000_000}, R.FUTURE_TIMESTAMP, "log.ts"),
        ({"ts": True}, R.BAD_TIMESTAMP, "log.ts"),
    ],
)
def test_parse_log_bad_field_names_it(fields, reason, where):
    """A bad field is refused with its reason and its path."""
    with pytest.raises(DecodeError) as caught:
        parse_log(_record(**fields), RECEIVED, SKEW)
    assert (caught.value.reason, caught.value.field) == (reason, where)


def test_decode_logs_keeps_good_records_around_bad_ones():
    """Bad records are rejects of their own with their index; the rest is kept."""
    raw = [
        _record(msg="one"),
        _record(level="loud"),
        "not an object",
        _record(msg="four", level="warn"),
    ]
    out = decode_logs(raw, RECEIVED, SKEW)
    assert [(r.message, r.level) for r in out.records] == [
        ("one", "error"),
        ("four", "warning"),
    ]
    assert [(r.reason, r.field, r.index, r.device) for r in out.rejects] == [
        (R.BAD_LOG_LEVEL, "logs[1].level", 1, "mote-1"),
        (R.BAD_ENVELOPE, "logs[2]", 2, ""),
    ]


def test_decode_logs_not_a_list_is_one_reject():
    """A logs member that is no list is one reject; nothing else is lost."""
    out = decode_logs({"dev": "x"}, RECEIVED, SKEW)
    assert (out.records, [(r.reason, r.field) for r in out.rejects]) == (
        [],
        [(R.BAD_ENVELOPE, "logs")],
    )


def test_decode_logs_counts_notices():
    """Cut messages and unset clocks are counted as notices, not rejects."""
    raw = [_record(msg="y" * 2000), _record(ts=5), _record(ts=5, flags=1)]
    out = decode_logs(raw, RECEIVED, SKEW)
    assert (len(out.records), out.rejects) == (3, [])
    assert dict(out.notices) == {Notice.LOG_TRUNCATED: 1, Notice.CLOCK_NOT_SET: 1}


def test_decode_batch_logs_rejects_name_fields_and_readings_kept():
    """In a batch, log rejects name logs[i].field; readings and good logs stay."""
    series = [{"dev": "mote-1", "metric": "t", "ts": [T0], "values": [21.5]}]
    logs = [_record(), _record(level="noisy"), _record(dev="bad id")]
    batch = decode_batch(_batch(logs, series), RECEIVED)
    assert batch.accepted == 1
    assert [r.level for r in batch.logs] == ["error"]
    assert [(r.reason, r.field) for r in batch.rejects] == [
        (R.BAD_LOG_LEVEL, "logs[1].level"),
        (R.BAD_DEVICE_ID, "logs[2].dev"),
    ]


def test_decode_batch_late_sets_flag_on_logs():
    """A late batch's records carry FLAG_LATE, like its readings."""
    batch = decode_batch(_batch([_record()], late=True), RECEIVED)
    assert batch.logs[0].flags & FLAG_LATE


def test_decode_batch_without_logs_has_none():
    """A batch of readings only decodes as before: no logs, no rejects."""
    doc = {"v": 1, "gw": "gw-01", "seq": 7, "sent": RECEIVED, "series": []}
    batch = decode_batch(orjson.dumps(doc), RECEIVED)
    assert (batch.logs, batch.rejects) == ([], [])


def test_decode_batch_logs_null_is_no_logs():
    """``"logs": null`` is the same as no member."""
    batch = decode_batch(_batch(None), RECEIVED)
    assert (batch.logs, batch.rejects) == ([], [])


def test_envelope_model_accepts_logs():
    """The wire model describes the member the edge writes."""
    env = BatchEnvelope.model_validate_json(_batch([_record(src="a")]))
    assert env.logs is not None
    assert (env.logs[0].level, env.logs[0].src) == ("error", "a")


def test_log_topic_roundtrip():
    """A device's log topic names it, and nothing else is a log topic."""
    assert device_of_log_topic(log_topic("mote-3")) == "mote-3"
    assert device_of_log_topic("sf/v1/dev/mote-3/up/telemetry") is None
    with pytest.raises(ValueError, match="invalid device id"):
        log_topic("a/b")


_LEVEL_TEXT = st.sampled_from([*LEVELS, "warn", "err", "fatal", "ERROR", "loud", ""])
_RECORD = st.fixed_dictionaries(
    {
        "dev": st.one_of(st.sampled_from(["mote-1", "gw.2_x"]), st.text(max_size=5)),
        "ts": st.one_of(
            st.integers(CLOCK_FLOOR_US - 10, T0 + 10**9),
            st.sampled_from(["2026-11-30T12:00:00Z", "bad", None]),
        ),
        "level": st.one_of(_LEVEL_TEXT, JSON_DOCS),
        "msg": st.one_of(st.text(max_size=1500), JSON_DOCS),
    },
    optional={"src": st.one_of(st.text(max_size=20), st.integers())},
)


@given(st.lists(st.one_of(_RECORD, JSON_DOCS), max_size=12))
@example([_record(), 7, _record(level="nope")])
def test_decode_logs_property_every_record_kept_or_rejected(raw):
    """Each record is either kept or rejected with a logs[i] field, never both."""
    out = decode_logs(raw, RECEIVED, SKEW)
    rejected = [r.index for r in out.rejects]
    assert len(out.records) + len(rejected) == len(raw)
    assert len(set(rejected)) == len(rejected)
    for r in out.rejects:
        assert r.field.startswith(f"logs[{r.index}]")
    for record in out.records:
        assert record.level in LEVELS
        assert len(record.message) <= MAX_MESSAGE_CHARS
        assert "\x00" not in record.message
        record.message.encode("utf-8")  # raises on a lone surrogate
        assert CLOCK_FLOOR_US <= record.ts_us <= RECEIVED + SKEW * 1e6


@given(
    st.lists(
        st.builds(
            LogRecord,
            device=st.sampled_from(["mote-1", "m.2", "x_3"]),
            ts_us=st.integers(CLOCK_FLOOR_US, RECEIVED),
            level=st.sampled_from(LEVELS),
            message=st.text(
                st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                max_size=MAX_MESSAGE_CHARS,
            ),
            source=st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=20),
            flags=st.sampled_from([0, FLAG_SERVER_TIME]),
        ),
        max_size=8,
    )
)
def test_log_doc_roundtrip(records):
    """A record written as the edge writes it decodes to the same record."""
    raw = orjson.loads(orjson.dumps([r.to_doc() for r in records]))
    out = decode_logs(raw, RECEIVED, SKEW)
    assert (out.records, out.rejects) == (records, [])
