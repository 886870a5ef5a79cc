"""Validated readings and rejects, as the rest of StreamFlow handles them."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.const import RejectReason


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated reading: a device's metric at an instant.

    ``ts_us`` is epoch microseconds, UTC; ``flags`` holds the ``FLAG_*`` bits
    of :mod:`protocol.const`.
    """

    device: str
    metric: str
    ts_us: int
    value: float
    unit: str = ""
    flags: int = 0


@dataclass(slots=True)
class SeriesBlock:
    """Validated readings of one series, as columns (what a store writes).

    ``kind`` says what the values are: ``reading`` for numeric readings, or
    ``log`` for a device's log records seen as a series (their level numbers,
    handed to the processors only; stores never write such a block).
    """

    device: str
    metric: str
    unit: str = ""
    ts_us: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    kind: str = "reading"

    def __len__(self) -> int:
        return len(self.ts_us)

    def append(self, ts_us: int, value: float, flags: int = 0) -> None:
        """Add one reading to the block."""
        self.ts_us.append(ts_us)
        self.values.append(value)
        self.flags.append(flags)

    def readings(self) -> list[Reading]:
        """The block as single readings."""
        return [
            Reading(self.device, self.metric, t, v, self.unit, f)
            for t, v, f in zip(self.ts_us, self.values, self.flags, strict=True)
        ]


@dataclass(frozen=True, slots=True)
class Reject:
    """Something that was not stored, with the field it concerns and why."""

    reason: RejectReason
    field: str = ""
    detail: str = ""
    device: str = ""
    metric: str = ""
    index: int | None = None


def group_readings(readings: list[Reading]) -> list[SeriesBlock]:
    """Group readings into one block per (device, metric), keeping their order."""
    blocks: dict[tuple[str, str], SeriesBlock] = {}
    for r in readings:
        key = (r.device, r.metric)
        block = blocks.get(key)
        if block is None:
            block = blocks[key] = SeriesBlock(r.device, r.metric, r.unit)
        block.append(r.ts_us, r.value, r.flags)
    return list(blocks.values())
