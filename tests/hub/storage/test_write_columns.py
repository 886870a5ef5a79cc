"""The columnar hand-over of new readings (the COPY way) and the fast decode path.

The COPY way gives :meth:`WritePlan.finish_by_series` the new rows as columns
per series (``timescale._by_series``); the staging way and SQLite give rows to
:meth:`WritePlan.finish`. Both must produce the same result, latest rows and
accounting, whatever the order of the rows.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hub.storage._common import WritePlan, group_rows
from hub.storage.timescale import _by_series, first_unique
from protocol.batch import decode_batch
from protocol.const import RejectReason
from tests.hub.storage.helpers import HOUR_US, block, item
from tests.protocol.test_batch import RECEIVED, T0, _envelope, _series

_IDS = {("dev-1", "t"): 7, ("dev-2", "t"): 3}

# (device, ts offset, value) of readings; two messages in different hours, so
# that the accounting has two contexts for a series.
_readings = st.lists(
    st.tuples(
        st.sampled_from(["dev-1", "dev-2"]),
        st.integers(0, 20),
        st.floats(-1e6, 1e6, allow_nan=False),
    ),
    min_size=1,
    max_size=40,
)


def _plan(first: list, second: list) -> WritePlan:
    items = []
    for k, readings in enumerate((first, second)):
        blocks = []
        for device in ("dev-1", "dev-2"):
            mine = [(ts, v) for d, ts, v in readings if d == device]
            if mine:
                blocks.append(
                    block(device, "t", [ts for ts, _ in mine], [v for _, v in mine])
                )
        items.append(item(blocks, 10 + k * HOUR_US, "gw", k + 1))
    plan = WritePlan(items)
    plan.split({("gw", 1), ("gw", 2)})
    plan.build_rows(_IDS)
    return plan


@given(_readings, _readings, st.randoms(use_true_random=False))
def test_columns_and_rows_give_the_same_write(first, second, rnd):
    """finish_by_series(_by_series(...)) equals finish(rows in any order)."""
    by_rows, by_columns = _plan(first, second), _plan(first, second)
    ts = np.asarray(by_columns.ts, dtype=np.int64)
    sid = np.asarray(by_columns.series_ids, dtype=np.int32)
    keep = first_unique(sid, ts)
    values = np.asarray(by_columns.values, dtype=np.float64)[keep]
    flags = np.asarray(by_columns.flags, dtype=np.int16)[keep]
    rows = list(
        zip(
            sid[keep].tolist(),
            ts[keep].tolist(),
            values.tolist(),
            flags.tolist(),
            strict=True,
        )
    )
    rnd.shuffle(rows)

    expected = by_rows.finish(rows)
    got = by_columns.finish_by_series(_by_series(sid[keep], ts[keep], values, flags))

    assert got == expected
    assert got.inserted == len(rows)
    assert by_columns.latest_rows() == by_rows.latest_rows()
    assert by_columns.accounting_rows() == by_rows.accounting_rows()


def test_by_series_splits_sorted_rows_into_columns():
    """Runs of one series id become that series' columns, in order."""
    sid = np.array([3, 3, 7], dtype=np.int32)
    ts = np.array([1, 5, 2], dtype=np.int64)
    out = _by_series(sid, ts, np.array([0.5, 1.5, 2.5]), np.array([0, 1, 0]))

    assert out == {3: ([1, 5], [0.5, 1.5], [0, 1]), 7: ([2], [2.5], [0])}
    assert _by_series(sid[:0], ts[:0], np.array([]), np.array([])) == {}


def test_latest_rows_take_the_newest_reading_of_each_series():
    """The newest ts wins, whatever order the readings came in."""
    plan = _plan([("dev-1", 9, 1.0), ("dev-1", 2, 2.0), ("dev-2", 4, 3.0)], [])
    plan.finish([(7, 2, 2.0, 0), (3, 4, 3.0, 0), (7, 9, 1.0, 0)])

    assert plan.latest_rows() == [(3, 4, 3.0, 0), (7, 9, 1.0, 0)]


def test_group_rows_sorts_each_series_by_ts():
    """Rows of a series come out as columns sorted by ts."""
    rows = [(7, 9, 1.0, 0), (3, 4, 3.0, 1), (7, 2, 2.0, 0)]

    assert group_rows(rows) == {7: ([2, 9], [2.0, 1.0], [0, 0]), 3: ([4], [3.0], [1])}


def test_boolean_timestamp_leaves_the_fast_path_and_is_rejected():
    """A JSON true among integer timestamps is a reject of its own, not a time."""
    out = decode_batch(_envelope([_series([T0, True], [1, 2])]), RECEIVED)

    assert out.blocks[0].ts_us == [T0]
    assert [(r.reason, r.field, r.index) for r in out.rejects] == [
        (RejectReason.BAD_TIMESTAMP, "series[0].ts[1]", 1)
    ]


def test_integer_values_on_the_fast_path_become_floats():
    """Plain integer values are stored as floats, exactly as the slow path does."""
    out = decode_batch(_envelope([_series([T0, T0 + 1], [1, 2])]), RECEIVED)

    assert out.blocks[0].values == [1.0, 2.0]
    assert all(type(v) is float for v in out.blocks[0].values)
    assert out.rejects == []
