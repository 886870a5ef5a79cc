"""The gateway's state messages: birth, periodic state and death (the will).

All are :class:`protocol.models.GatewayState`, retained on
``sf/v1/gw/{gw}/up/state``: the buffer depth (readings, batches, bytes and the
receive time of the oldest buffered reading, so its age), and the cumulative
counters of readings dropped by policy and rejected at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Literal

from edge_agent.const import AGENT_NAME
from protocol.models import BufferState, GatewayState
from protocol.validate import now_us


def agent_version() -> str:
    """The installed version of the agent, or ``0+unknown`` from a source tree."""
    try:
        return metadata.version("streamflow")
    except metadata.PackageNotFoundError:
        return "0+unknown"


AGENT = f"{AGENT_NAME}/{agent_version()}"


def state_payload(
    gateway_id: str,
    status: Literal["online", "offline"],
    buffer: BufferState,
    dropped: Mapping[str, int],
    rejected: Mapping[str, int],
) -> bytes:
    """Encode a birth, periodic or final state message."""
    state = GatewayState(
        gw=gateway_id,
        status=status,
        agent=AGENT,
        ts=now_us(),
        buffer=buffer,
        dropped=dict(dropped),
        rejected=dict(rejected),
    )
    return state.model_dump_json().encode()


def will_payload(gateway_id: str) -> bytes:
    """The will: ``offline`` with no time or depth, since both are unknown then."""
    return (
        GatewayState(gw=gateway_id, status="offline", agent=AGENT)
        .model_dump_json(exclude={"ts"})
        .encode()
    )
