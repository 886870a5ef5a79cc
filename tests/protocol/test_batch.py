"""Batch envelopes decoded reading by reading (protocol.batch.decode_batch)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.batch import Limits, decode_batch
from protocol.const import (
    CLOCK_FLOOR_US,
    FLAG_LATE,
    FLAG_SERVER_TIME,
    ID_PATTERN,
    Notice,
)
from protocol.const import RejectReason as R
from protocol.errors import DecodeError
from protocol.models import BatchEnvelope, SeriesColumns
from tests.protocol.helpers import bits, us
from tests.protocol.strategies import JSON_DOCS

RECEIVED = us("2026-11-30T12:00:05Z")
T0 = us("2026-11-30T12:00:00Z")


def _envelope(series_: list | dict, **header) -> bytes:
    doc = {"v": 1, "gw": "gw-01", "seq": 7, "sent": RECEIVED, "series": series_}
    doc.update(header)
    return codec.dumps(doc)


def _series(ts: list, values: list, dev: str = "dev-1", metric: str = "t") -> dict:
    return {"dev": dev, "metric": metric, "unit": "°C", "ts": ts, "values": values}


def _decode_error(payload: bytes, **kwargs) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode_batch(payload, RECEIVED, **kwargs)
    return info.value


def test_decode_batch_header():
    """The header's gateway, seq, send time and late flag are returned as sent."""
    out = decode_batch(_envelope([], late=True), RECEIVED)
    assert (out.gw, out.seq, out.sent_us, out.late) == ("gw-01", 7, RECEIVED, True)


def test_decode_batch_clean_series_exact():
    """Clean µs series come back as blocks with exact times, values and units."""
    payload = _envelope(
        [_series([T0, T0 + 1], [21.5, -0.0]), _series([T0], [3], metric="h")]
    )
    out = decode_batch(payload, RECEIVED)
    got = [(b.device, b.metric, b.unit, b.ts_us, b.flags) for b in out.blocks]
    assert got == [
        ("dev-1", "t", "°C", [T0, T0 + 1], [0, 0]),
        ("dev-1", "h", "°C", [T0], [0]),
    ]
    assert [bits(v) for v in out.blocks[0].values] == [bits(21.5), bits(-0.0)]
    assert out.accepted == 3
    assert out.rejects == []


def test_decode_batch_mixed_time_forms():
    """Seconds, ms, ns and ISO strings in one series all convert exactly."""
    ts = [1796040000, 1796040000001, "2026-11-30T12:00:00.000002Z", 1796040000000003000]
    out = decode_batch(_envelope([_series(ts, [1, 2, 3, 4])]), RECEIVED)
    assert out.blocks[0].ts_us == [T0, T0 + 1000, T0 + 2, T0 + 3]


def test_decode_batch_bare_nan_rejected_alone():
    """A bare nan is one reject naming its index; the series' other readings stay."""
    payload = _envelope([_series([T0, T0 + 1, T0 + 2], [1, 2, 3])]).replace(
        b"[1,2,3]", b"[1,nan,3]"
    )
    out = decode_batch(payload, RECEIVED)
    assert out.blocks[0].values == [1.0, 3.0]
    assert [(r.reason, r.field, r.device, r.metric, r.index) for r in out.rejects] == [
        (R.NON_FINITE_VALUE, "series[0].values[1]", "dev-1", "t", 1)
    ]


def test_decode_batch_null_value_skipped():
    """A null value is skipped without a reject."""
    out = decode_batch(_envelope([_series([T0, T0 + 1], [None, 2])]), RECEIVED)
    assert (out.blocks[0].ts_us, out.rejects) == ([T0 + 1], [])


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (b"[]", R.PAYLOAD_NOT_OBJECT, ""),
        (b'"x"', R.PAYLOAD_NOT_OBJECT, ""),
        (_envelope([], v=2), R.UNSUPPORTED_VERSION, "v"),
        (_envelope([], v="1"), R.UNSUPPORTED_VERSION, "v"),
        (_envelope([], gw="bad id"), R.BAD_ENVELOPE, "gw"),
        (_envelope([], seq=-1), R.BAD_ENVELOPE, "seq"),
        # Over a signed 64-bit integer: no store could key it.
        (_envelope([], seq=2**63), R.BAD_ENVELOPE, "seq"),
        (_envelope({}), R.BAD_ENVELOPE, "series"),
        (b'{"v":1,"seq":1,"sent":1,"series":[]}', R.BAD_ENVELOPE, "gw"),
        (b"", R.EMPTY_PAYLOAD, ""),
        (b"{", R.INVALID_JSON, ""),
    ],
)
def test_decode_batch_bad_header(payload, reason, field):
    """A batch whose header is unreadable is refused whole, naming the field."""
    err = _decode_error(payload)
    assert (err.reason, err.field) == (reason, field)


def test_decode_batch_gateway_mismatch():
    """An envelope naming another gateway than its topic is gateway_mismatch."""
    err = _decode_error(_envelope([]), topic_gw="gw-02")
    assert (err.reason, err.field) == (R.GATEWAY_MISMATCH, "gw")


def test_decode_batch_payload_too_large():
    """The size limit of Limits applies before parsing."""
    err = _decode_error(b"x" * 101, limits=Limits(max_payload_bytes=100))
    assert err.reason is R.PAYLOAD_TOO_LARGE


@pytest.mark.parametrize(
    ("series", "reason", "field"),
    [
        (5, R.BAD_ENVELOPE, "series[0]"),
        ({"metric": "t", "ts": [], "values": []}, R.BAD_DEVICE_ID, "series[0].dev"),
        (_series([T0], [1], dev="bulb #1"), R.BAD_DEVICE_ID, "series[0].dev"),
        (_series([T0], [1], metric=""), R.BAD_ENVELOPE, "series[0].metric"),
        (_series([T0, T0], [1]), R.LENGTH_MISMATCH, "series[0]"),
    ],
)
def test_decode_batch_bad_series(series, reason, field):
    """A bad series is one reject naming it; the batch's other series are kept."""
    out = decode_batch(_envelope([series, _series([T0], [1.5])]), RECEIVED)
    assert [(r.reason, r.field) for r in out.rejects] == [(reason, field)]
    assert [b.values for b in out.blocks] == [[1.5]]


def test_decode_batch_clock_not_set():
    """A reading stamped before 2000 is kept at the receive time and flagged (C07)."""
    out = decode_batch(_envelope([_series([3_000_000, T0], [1, 2])]), RECEIVED)
    assert out.blocks[0].ts_us == [RECEIVED, T0]
    assert out.blocks[0].flags == [FLAG_SERVER_TIME, 0]
    assert out.notices == {Notice.CLOCK_NOT_SET: 1}


def test_decode_batch_future_rejected():
    """A reading beyond the future skew is rejected; the others are kept."""
    ahead = RECEIVED + 301_000_000
    out = decode_batch(_envelope([_series([T0, ahead], [1, 2])]), RECEIVED)
    assert out.blocks[0].ts_us == [T0]
    assert [(r.reason, r.field, r.index) for r in out.rejects] == [
        (R.FUTURE_TIMESTAMP, "series[0].ts[1]", 1)
    ]


def test_decode_batch_late_flags_every_reading():
    """A late batch flags each of its readings FLAG_LATE, on both paths."""
    payload = _envelope(
        [_series([T0, 3_000_000], [1, 2]), _series([T0], [1])], late=True
    )
    out = decode_batch(payload, RECEIVED)
    assert [b.flags for b in out.blocks] == [
        [FLAG_LATE, FLAG_LATE | FLAG_SERVER_TIME],
        [FLAG_LATE],
    ]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_decode_batch_compressed(compression):
    """A compressed envelope decodes to the same readings as the plain one."""
    plain = _envelope([_series([T0, T0 + 1], [1.25, 2.5])])
    out = decode_batch(codec.compress(plain, compression), RECEIVED)
    assert (out.blocks[0].ts_us, out.blocks[0].values) == ([T0, T0 + 1], [1.25, 2.5])


# -- properties ---------------------------------------------------------------

_EDGE_FLOATS = [
    -0.0,
    0.0,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
]
_VALUES = st.one_of(
    st.sampled_from(_EDGE_FLOATS), st.floats(allow_nan=False, allow_infinity=False)
)
_TS = st.integers(CLOCK_FLOOR_US, RECEIVED + 300_000_000)
_IDS = st.from_regex(rf"\A{ID_PATTERN}\Z")
_METRICS = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=("Cs",)),
    min_size=1,
    max_size=30,
)
_SERIES = st.builds(
    lambda dev, metric, unit, rows: SeriesColumns(
        dev=dev,
        metric=metric,
        unit=unit,
        ts=[t for t, _ in rows],
        values=[v for _, v in rows],
    ),
    _IDS,
    _METRICS,
    st.sampled_from(["", "°C", "kWh", "%"]),
    st.lists(st.tuples(_TS, _VALUES), max_size=12),
)
_ENVELOPES = st.builds(
    BatchEnvelope,
    gw=_IDS,
    seq=st.integers(0, 2**63 - 1),
    sent=_TS,
    late=st.booleans(),
    series=st.lists(_SERIES, max_size=4),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=_ENVELOPES, compression=st.sampled_from(["none", "gzip", "zstd"]))
def test_envelope_round_trip_exact(env, compression):
    """Encode then decode_batch keeps every reading exactly: µs, float bits, order."""
    payload = codec.compress(codec.dumps(env.model_dump()), compression)
    out = decode_batch(payload, RECEIVED)
    flag = FLAG_LATE if env.late else 0
    expected = [
        (s.dev, s.metric, s.unit, list(s.ts), [bits(v) for v in s.values])
        for s in env.series
        if s.ts
    ]
    got = [
        (b.device, b.metric, b.unit, b.ts_us, [bits(v) for v in b.values])
        for b in out.blocks
    ]
    assert (out.gw, out.seq, out.sent_us, out.late) == (
        env.gw,
        env.seq,
        env.sent,
        env.late,
    )
    assert got == expected
    assert all(f == flag for b in out.blocks for f in b.flags)
    assert out.rejects == []


_NEAR_SERIES = st.fixed_dictionaries(
    {"dev": st.one_of(_IDS, JSON_DOCS), "metric": st.one_of(_METRICS, JSON_DOCS)},
    optional={
        "unit": JSON_DOCS,
        "ts": st.lists(st.one_of(_TS, JSON_DOCS), max_size=4),
        "values": st.lists(JSON_DOCS, max_size=4),
    },
)
_NEAR_ENVELOPES = st.fixed_dictionaries(
    {
        "v": st.one_of(st.just(1), JSON_DOCS),
        "gw": st.one_of(_IDS, JSON_DOCS),
        "seq": st.one_of(st.integers(0, 10), JSON_DOCS),
        "sent": st.one_of(_TS, JSON_DOCS),
        "series": st.one_of(st.lists(st.one_of(_NEAR_SERIES, JSON_DOCS), max_size=3)),
    }
)


def _check_decode(payload: bytes) -> None:
    try:
        out, error = decode_batch(payload, RECEIVED), None
    except DecodeError as exc:
        out, error = None, exc
    if out is None:
        assert isinstance(error.reason, R)
        return
    for reject in out.rejects:
        assert isinstance(reject.reason, R)
        assert reject.field, reject
    for block in out.blocks:
        assert len(block.ts_us) == len(block.values) == len(block.flags) > 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
@example(b'{"v":1,"gw":"g","seq":1,"sent":1,"series":[5]}')
def test_decode_batch_arbitrary_bytes(payload):
    """On any bytes decode_batch raises nothing but DecodeError."""
    _check_decode(payload)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON_DOCS, _NEAR_ENVELOPES))
def test_decode_batch_arbitrary_documents(doc):
    """On any JSON document only DecodeError escapes; rejects name their field."""
    _check_decode(orjson.dumps(doc))
