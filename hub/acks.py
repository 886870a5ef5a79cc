"""Batch acks: what the hub tells each gateway after a commit.

An ack lists the seqs the store has committed (new or stored before: a resent
batch is acked again) and the readings of those batches that were rejected,
so that the edge agent can delete the batches from its disk buffer and report
the rejects. It is built only from a :class:`WriteResult`, i.e. after commit.
"""

from __future__ import annotations

from collections import defaultdict

from hub.storage.base import IngestItem, WriteResult
from protocol.models import BatchAck, RejectedReading, seq_ranges

#: Rejects listed per ack at most; beyond that the gateway still gets its seqs
#: acked, and the full counts are in the store's accounting. Keeps an ack of a
#: batch of bad readings far below any broker's packet limit.
MAX_REJECTED_PER_ACK = 1000


def build_acks(result: WriteResult, items: list[IngestItem]) -> dict[str, BatchAck]:
    """One ack per gateway for the batches a write committed.

    Args:
        result: the committed write; only its ``batches`` are acked.
        items: the write's items, for the rejects of each batch.

    Returns:
        The ack of each gateway, by gateway id.
    """
    rejects: dict[tuple[str, int], list[RejectedReading]] = defaultdict(list)
    for item in items:
        if item.gateway is None or item.seq is None:
            continue
        key = (item.gateway, item.seq)
        for r in item.rejects:
            rejects[key].append(
                RejectedReading(
                    seq=item.seq,
                    dev=r.device,
                    metric=r.metric,
                    index=r.index,
                    field=r.field,
                    reason=r.reason.value,
                )
            )
    seqs: dict[str, list[int]] = defaultdict(list)
    for gateway, seq in result.batches:
        seqs[gateway].append(seq)
    acks: dict[str, BatchAck] = {}
    for gateway, gw_seqs in seqs.items():
        listed: list[RejectedReading] = []
        for seq in sorted(set(gw_seqs)):
            listed.extend(rejects.get((gateway, seq), ()))
        acks[gateway] = BatchAck(
            seqs=seq_ranges(gw_seqs), rejected=listed[:MAX_REJECTED_PER_ACK]
        )
    return acks
