"""Rollups: per series and minute, count, min, max, mean and last.

The processor only names the minutes a batch touched; the store recomputes
each of them from its stored readings and upserts it whole
(:meth:`hub.storage.base.Store.refresh_rollups`). That makes the rollups
exact whatever the arrival order: a late reading, an edge backlog, a
re-processed batch, all end in the same row, as if the minute had arrived
at once. Late readings update rollups like any other (they are history).
Read them back with :meth:`hub.storage.base.Store.rollups`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hub.processors.base import MINUTE_US, Context, Output, Processor, SeriesBatch


class RollupProcessor(Processor):
    """Names the minutes whose 1-minute rollups a batch changes."""

    name: ClassVar[str] = "rollups"

    def process(self, batch: SeriesBatch, ctx: Context) -> Output:
        """The distinct minutes of the batch's readings."""
        # numpy's % on integers floors like Python's, so times before 1970
        # fall in the right minute too.
        minutes = np.unique(batch.ts_us - batch.ts_us % MINUTE_US)
        return Output(
            rollups=[(batch.device, batch.metric, int(m)) for m in minutes.tolist()]
        )
