"""The processor interface: batches, the live and past lanes, warm-up on restart."""

from __future__ import annotations

import numpy as np

from hub.processors.base import MINUTE_US, SeriesBatch, SeriesKey
from hub.processors.events import EventState
from hub.processors.thresholds import ThresholdProcessor, ThresholdRule
from protocol.const import FLAG_LATE, FLAG_SERVER_TIME
from protocol.readings import Reading, SeriesBlock
from tests.hub.processors.helpers import MINUTE, SECOND, T0, HistoryStore, batch, ctx

HOT = ThresholdRule(id="hot", condition="above", threshold=30.0, for_s=60)


def _hot() -> ThresholdProcessor:
    return ThresholdProcessor(rules=[HOT], load_from_store=False)


def test_series_batch_from_block_sorts_and_marks_late_readings():
    """Columns come sorted by time; FLAG_LATE or age past the horizon is past."""
    block = SeriesBlock(
        "dev-1",
        "t",
        "C",
        [T0 + 3 * MINUTE, T0, T0 + MINUTE, T0 + 2 * MINUTE],
        [4.0, 1.0, 2.0, 3.0],
        [0, 0, FLAG_LATE, FLAG_SERVER_TIME],
    )

    b = SeriesBatch.from_block(block, now_us=T0 + 10 * MINUTE, horizon_us=9 * MINUTE)

    assert b.key == SeriesKey("dev-1", "t")
    assert b.ts_us.tolist() == [T0, T0 + MINUTE, T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    assert b.values.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert b.flags.tolist() == [0, FLAG_LATE, FLAG_SERVER_TIME, 0]
    # T0 is 10 minutes old (past the 9-minute horizon); T0+1m is flagged late.
    assert b.past.tolist() == [True, True, False, False]
    assert (b.ts_us.dtype, b.values.dtype, b.unit) == (np.int64, np.float64, "C")
    assert MINUTE_US == MINUTE


def test_late_reading_in_order_updates_live_state_and_is_past():
    """A late backlog in time order drives the live state; its events are past."""
    proc = _hot()
    ts = [T0 + i * 30 * SECOND for i in range(6)]

    late = proc.process(batch(ts[:4], [31.0, 32.0, 33.0, 34.0], past=[True] * 4), ctx())
    live = proc.process(batch(ts[4:], [35.0, 20.0]), ctx())

    assert [(e.state, e.ts_us, e.past) for e in late.events] == [
        (EventState.RAISED, ts[2], True)
    ]
    # The live lane knew of the breach: it clears, and raises nothing again.
    assert [(e.state, e.ts_us, e.past) for e in live.events] == [
        (EventState.CLEARED, ts[5], False)
    ]


def test_old_readings_take_the_past_lane_and_leave_live_state_alone():
    """Readings older than the live clock raise past events; live stays raised."""
    proc = _hot()
    step = 30 * SECOND
    live_ts = [T0 + 100 * MINUTE + i * step for i in range(4)]
    old_ts = [T0 + i * step for i in range(4)]

    first = proc.process(batch(live_ts[:3], [31.0, 32.0, 33.0]), ctx())
    backlog = proc.process(batch(old_ts, [10.0, 35.0, 36.0, 37.0]), ctx())
    after = proc.process(batch(live_ts[3:], [34.0]), ctx())

    assert [(e.state, e.ts_us, e.past) for e in first.events] == [
        (EventState.RAISED, live_ts[2], False)
    ]
    assert [(e.state, e.ts_us, e.past) for e in backlog.events] == [
        (EventState.RAISED, old_ts[3], True)
    ]
    assert after.events == []


def test_warm_up_rebuilds_state_without_emitting():
    """After a restart, a breach already raised is neither raised again nor lost."""
    step = 30 * SECOND
    history = [Reading("dev-1", "temperature", T0 + i * step, 35.0) for i in range(10)]
    store = HistoryStore(history)
    proc = _hot()
    first = T0 + 10 * step

    out = proc.process(batch([first, first + step], [36.0, 20.0]), ctx(store=store))

    assert [(e.state, e.ts_us) for e in out.events] == [
        (EventState.CLEARED, first + step)
    ]
    # The warm-up read the rule's duration plus five minutes before the batch.
    assert store.calls == [("dev-1", "temperature", first - 360 * SECOND, first)]


def test_warm_up_failure_leaves_a_fresh_state():
    """A store that fails during the warm-up costs the history, not the batch."""

    class Broken(HistoryStore):
        def readings(self, *args, **kwargs):
            raise OSError("connection reset")

    proc = _hot()
    ts = [T0 + i * 30 * SECOND for i in range(3)]

    out = proc.process(batch(ts, [31.0, 32.0, 33.0]), ctx(store=Broken([])))

    assert [(e.state, e.ts_us) for e in out.events] == [(EventState.RAISED, ts[2])]
