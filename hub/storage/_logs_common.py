"""Store-independent work of device logs: what a write counts and keeps.

Both stores count the log records of the *fresh* items of a write (those
whose batch key was new, see :class:`hub.storage._common.WritePlan`) in the
same transaction as the batch keys, so that a batch sent twice counts once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Final

from hub.storage.base import IngestItem, LogCount
from protocol.logs import LEVELS, LogRecord

# TODO: retention (Store.drop_before) leaves log_counts and device_logs
# alone; drop their old chunks/rows there too once the stores' owners agree.

#: Raw records kept per device for inspection; older ones are deleted.
LOGS_KEPT_PER_DEVICE: Final = 1000
#: Log counts are kept per minute.
MINUTE_US: Final = 60_000_000

_LEVEL_ORDER = {name: i for i, name in enumerate(LEVELS)}


def fresh_logs(items: Sequence[IngestItem]) -> list[tuple[LogRecord, int]]:
    """The log records of ``items`` with the receive time of their message."""
    return [(r, item.received_us) for item in items for r in item.logs]


def minute_of(ts_us: int) -> int:
    """The start of the minute holding ``ts_us``, epoch µs."""
    return ts_us - ts_us % MINUTE_US


def count_rows(
    records: Sequence[tuple[LogRecord, int]],
) -> list[tuple[str, int, str, int]]:
    """(device, minute start µs, level, records) of each minute, sorted.

    Sorted so that concurrent writers take row locks in the same order; each
    key once, as one ``ON CONFLICT DO UPDATE`` may not touch a row twice.
    """
    counts: Counter[tuple[str, int, str]] = Counter(
        (r.device, minute_of(r.ts_us), r.level) for r, _ in records
    )
    return [(d, m, lv, n) for (d, m, lv), n in sorted(counts.items())]


def sorted_counts(rows: Sequence[tuple[int, str, int]]) -> list[LogCount]:
    """Bucket rows as :class:`LogCount`, by bucket and then by level severity."""
    return sorted(
        (LogCount(int(b), str(lv), int(n)) for b, lv, n in rows),
        key=lambda c: (c.start_us, _LEVEL_ORDER.get(c.level, len(LEVELS))),
    )


def check_bucket(bucket_s: int) -> int:
    """The bucket length in µs.

    Raises:
        ValueError: ``bucket_s`` is not a positive multiple of 60 seconds.
    """
    if bucket_s <= 0 or bucket_s % 60:
        raise ValueError(
            f"bucket_s must be a positive multiple of 60, got {bucket_s!r}"
        )
    return bucket_s * 1_000_000
