"""The hub's counters serialise: enum reasons become plain string keys."""

from __future__ import annotations

from collections import Counter

import orjson

from hub.metrics import IngestMetrics
from hub.storage.base import WriteResult
from protocol.const import Notice, RejectReason


def test_enum_reasons_and_notices_serialise_as_plain_keys():
    """A clock_not_set notice and a reject keep the status file writable (orjson)."""
    metrics = IngestMetrics()
    metrics.count_rejects(Counter({RejectReason.NON_FINITE_VALUE: 2}))
    metrics.record_write(0.01, WriteResult(), 0, Counter({Notice.CLOCK_NOT_SET: 7}))

    snap = metrics.snapshot()

    assert orjson.loads(orjson.dumps(snap))["notices"] == {"clock_not_set": 7}
    assert [type(k) for k in snap["rejects"]] == [str]
    assert snap["rejects"] == {"non_finite_value": 2}
