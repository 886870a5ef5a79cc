"""What both stores share for the API's data routes: bucketing and percentiles.

Bucket starts are found the way :meth:`hub.storage.base.Store.aggregate`
finds them (fixed lengths from TimescaleDB's origin 2000-01-03T00:00Z, or
local days in a zone), so that figures computed here line up with it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from hub.storage._common import BUCKET_ORIGIN_US, BucketSpec, local_day_bounds


def bucket_starts(spec: BucketSpec, ts_us: Sequence[int]) -> list[int]:
    """The start of the bucket of each time in ``ts_us`` (sorted ascending)."""
    if not ts_us:
        return []
    if not spec.days:
        width = spec.width_s * 1_000_000
        # Python's % floors, so times before the origin fall right too.
        return [t - (t - BUCKET_ORIGIN_US) % width for t in ts_us]
    bounds = local_day_bounds(spec, ts_us[0], ts_us[-1] + 1)
    return [bounds[bisect.bisect_right(bounds, t) - 1] for t in ts_us]


def percentiles_by_bucket(
    spec: BucketSpec,
    ts_us: Sequence[int],
    values: Sequence[float],
    quantiles: Sequence[float],
) -> list[tuple[int, list[float]]]:
    """Continuous percentiles of the values in each bucket, oldest first.

    ``numpy.quantile``'s default (linear) method is the one of PostgreSQL's
    ``percentile_cont``: the two stores answer the same figures.

    Args:
        spec: how to bucket.
        ts_us: reading times, sorted ascending.
        values: the reading values, in the same order.
        quantiles: fractions in ``[0, 1]``.

    Returns:
        ``(bucket start µs, [one value per quantile])`` of every bucket that
        holds readings.
    """
    starts = bucket_starts(spec, ts_us)
    out: list[tuple[int, list[float]]] = []
    arr = np.asarray(values, dtype=np.float64)
    i = 0
    while i < len(starts):
        j = bisect.bisect_right(starts, starts[i], lo=i)
        figures = np.quantile(arr[i:j], np.asarray(quantiles, dtype=np.float64))
        out.append((starts[i], [float(v) for v in figures]))
        i = j
    return out
