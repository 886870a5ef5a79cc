"""Hypothesis strategies shared by the protocol property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from protocol.const import RejectReason as R

#: Stands for a bare ``nan`` token: replaced in the encoded bytes.
NAN_SENTINEL = "__bare_nan__"

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)

JSON_DOCS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
            children,
            max_size=5,
        ),
    ),
    max_leaves=25,
)

#: Values sensors send: numbers, number-like and state strings, times, nan.
_SENSOR_SCALARS = st.one_of(
    SCALARS,
    st.sampled_from(
        [
            *("22.0", "06", "22,0", "abc", "ON", "off", "nan", " 7 ", "1e400", ""),
            *("2026-11-30T12:00:00Z", "2026-11-30T12:00:00", "1796040000"),
            NAN_SENTINEL,
        ]
    ),
    st.sampled_from([0, 3, 1796040000, 1796040000.25, 1796040000000, -1, 10**19]),
)
_KEYS = st.one_of(
    st.sampled_from(
        [
            *("ts", "time", "Time", "timestamp", "last_seen", "value", "values"),
            *("readings", "metric", "sensor_type", "unit", "device", "dev"),
            *("TempUnit", "ENERGY", "Temperature", "state", "system_mode", ""),
        ]
    ),
    _TEXT,
)
SENSOR_DOCS = st.recursive(
    _SENSOR_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_KEYS, children, max_size=6),
    ),
    max_leaves=30,
)

#: Reasons that concern a whole payload: only these may have no field path.
PAYLOAD_REASONS = frozenset(
    {
        R.PAYLOAD_TOO_LARGE,
        R.EMPTY_PAYLOAD,
        R.INVALID_UTF8,
        R.INVALID_JSON,
        R.BAD_COMPRESSION,
        R.UNSUPPORTED_COMPRESSION,
        R.PAYLOAD_NOT_OBJECT,
    }
)
