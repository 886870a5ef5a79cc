"""Wire models of protocol v1: what crosses MQTT between gateway and hub.

Readings inside a batch travel as columns (one array of timestamps and one of
values per series), which keeps encoding and decoding cheap; their per-element
validation lives in :mod:`protocol.validate` so that one bad reading is a
reject of its own and not a failure of the whole model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from protocol.const import ID_PATTERN, MAX_SEQ, PROTOCOL_VERSION

DeviceId = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$")]
GatewayId = DeviceId
#: Metric names are free text for people, but bounded and single-line.
MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")
]
Unit = Annotated[str, StringConstraints(max_length=32, pattern=r"^[^\x00-\x1f]*$")]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SeriesColumns(_Wire):
    """One series of a batch: a device's metric, as two parallel arrays.

    ``ts`` holds epoch microseconds as the edge agent writes them; the hub also
    accepts seconds, ms and ns (told apart by magnitude) and ISO 8601 strings.
    """

    dev: DeviceId
    metric: MetricName
    unit: Unit = ""
    ts: list[Any]
    values: list[Any]
    #: Per-reading FLAG_* bits set at the edge (FLAG_SERVER_TIME: the sensor's
    #: clock was unset and the gateway stamped the reading); absent = all 0.
    flags: list[int] | None = None


class LogEntry(_Wire):
    """One device log record in a batch (its checks: :mod:`protocol.logs`).

    ``ts`` is epoch microseconds as the edge agent writes it; ``level`` one
    of debug, info, warning, error, critical.
    """

    dev: DeviceId
    ts: int
    level: Literal["debug", "info", "warning", "error", "critical"]
    msg: str = Field(max_length=1024)
    src: str = ""
    flags: int = 0


class BatchEnvelope(_Wire):
    """A batch a gateway sends on ``sf/v1/gw/{gw}/up/batch``.

    ``seq`` is the gateway's persisted counter: never reused, so that
    ``(gw, seq)`` is the hub's idempotency key. ``late`` marks a batch sent
    from the backlog after an outage rather than live.
    """

    v: Literal[1] = PROTOCOL_VERSION
    gw: GatewayId
    seq: int = Field(ge=0, le=MAX_SEQ)
    sent: int = Field(description="send time, epoch microseconds")
    late: bool = False
    series: list[SeriesColumns]
    #: Device log records; optional and additive (left out when there are none).
    logs: list[LogEntry] | None = None


class BufferState(_Wire):
    """What a gateway holds on disk, waiting for the hub."""

    readings: int = 0
    batches: int = 0
    bytes: int = 0
    oldest_us: int | None = None
    #: Readings waiting longer than the agent's late_after_s: the backlog of an
    #: outage, drained beside live data; and when the oldest of them arrived.
    backlog_readings: int = 0
    backlog_oldest_us: int | None = None


class GatewayState(_Wire):
    """Birth, death (the LWT) and periodic state of a gateway, retained."""

    v: Literal[1] = PROTOCOL_VERSION
    gw: GatewayId
    status: Literal["online", "offline"]
    agent: str = ""
    ts: int | None = Field(default=None, description="epoch microseconds")
    buffer: BufferState = BufferState()
    #: Readings dropped at the edge, by reason, since the buffer was created.
    dropped: dict[str, int] = {}
    #: Readings rejected by the edge's own validation, by reason.
    rejected: dict[str, int] = {}


class RejectedReading(_Wire):
    """One reading of a batch that the hub did not store, and why."""

    seq: int
    dev: str = ""
    metric: str = ""
    index: int | None = None
    field: str = ""
    reason: str


class BatchAck(_Wire):
    """The hub's answer on ``sf/v1/gw/{gw}/down/ack``.

    ``seqs`` lists committed batch seqs as inclusive ``[first, last]`` ranges;
    a seq appears here only once its transaction has committed (or had already
    committed: a resent batch is acked again, never stored twice).
    """

    v: Literal[1] = PROTOCOL_VERSION
    seqs: list[tuple[int, int]]
    rejected: list[RejectedReading] = []


class DownlinkMessage(_Wire):
    """An alert or command for one device, relayed by its gateway."""

    v: Literal[1] = PROTOCOL_VERSION
    dev: DeviceId
    kind: str
    ts: int = Field(description="epoch microseconds")
    body: dict[str, Any] = {}


def seq_ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """Fold seqs into sorted inclusive ranges: ``[1, 2, 3, 7] -> [(1, 3), (7, 7)]``."""
    ranges: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if ranges and ranges[-1][1] == s - 1:
            ranges[-1] = (ranges[-1][0], s)
        else:
            ranges.append((s, s))
    return ranges


def in_ranges(seq: int, ranges: list[tuple[int, int]]) -> bool:
    """Tell whether ``seq`` lies in one of the inclusive ``ranges``."""
    return any(lo <= seq <= hi for lo, hi in ranges)
