"""Simulated gateways: real edge agents running in this process.

Each gateway is an :class:`edge_agent.agent.EdgeAgent` with its own disk
buffer under a common folder; readings are submitted to it directly (the
agent writes them to its buffer before returning, then batches and forwards
them to the hub's broker and waits for the hub's acks). Devices are spread
over the gateways round-robin, in the order they first appear, so the same
data always gives the same assignment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from protocol import topics
from protocol.readings import Reading
from simulators.errors import SinkError
from simulators.sinks import assign_gateway

if TYPE_CHECKING:
    from edge_agent.agent import EdgeAgent

_LOGGER = logging.getLogger(__name__)

#: Poll period while waiting for the agents' buffers to drain (longer than a
#: turn of the agent's busy loop, edge_agent.const.BUSY_WAKE_S).
_DRAIN_POLL_S: Final = 0.1


def gateway_ids(count: int, prefix: str = "sim-gw") -> list[str]:
    """Ids of ``count`` simulated gateways: ``sim-gw-1`` ... ``sim-gw-N``.

    Raises:
        ValueError: ``count`` is below 1 or the prefix makes invalid ids.
    """
    if count < 1:
        raise ValueError(f"gateway count {count!r}: expected 1 or more")
    return [topics.check_id(f"{prefix}-{i}", "gateway id") for i in range(1, count + 1)]


def make_agent(
    gateway_id: str, hub_url: str, data_dir: Path, settings: Mapping[str, Any]
) -> EdgeAgent:
    """Build (not start) one edge agent buffering in ``data_dir``.

    Settings not given here come, as for ``streamflow-edge``, from the
    ``STREAMFLOW_EDGE_*`` environment and the file ``STREAMFLOW_EDGE_CONFIG``
    names; the id, hub URL and buffer folder given here win over both.

    Raises:
        SinkError: the settings are invalid.
    """
    from edge_agent.agent import EdgeAgent
    from edge_agent.config import load_settings
    from edge_agent.errors import SettingsError

    try:
        edge_settings = load_settings(
            None,
            gateway_id=gateway_id,
            hub_url=hub_url,
            data_dir=data_dir,
            **settings,
        )
    except SettingsError as exc:
        raise SinkError(f"edge agent {gateway_id!r}: {exc}") from exc
    return EdgeAgent(edge_settings)


class EdgeGatewaySink:
    """Hands readings to in-process edge agents, one per simulated gateway.

    Args:
        gateways: the gateway ids.
        hub_url: the hub's broker (``mqtt://host:port``; credentials go in
            ``settings`` as ``username`` and ``password``).
        data_dir: the folder holding one buffer folder per gateway.
        settings: further edge agent settings for every gateway.
    """

    def __init__(
        self,
        gateways: list[str],
        hub_url: str,
        data_dir: Path,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        if not gateways:
            raise ValueError("expected at least one gateway")
        self.gateways = list(gateways)
        self.hub_url = hub_url
        self.data_dir = data_dir
        self.settings = dict(settings or {})
        self.assignment: dict[str, str] = {}
        self._agents: dict[str, EdgeAgent] = {}

    def gateway_of(self, device: str) -> str:
        """The gateway a device is assigned to (round-robin on first sight)."""
        return assign_gateway(self.assignment, self.gateways, device)

    def start(self) -> None:
        """Start every agent.

        Raises:
            SinkError: an agent could not be built or started; those already
                started are stopped again.
        """
        for gw in self.gateways:
            try:
                agent = make_agent(gw, self.hub_url, self.data_dir / gw, self.settings)
                agent.start()
            except SinkError:
                self.close(0)
                raise
            except Exception as exc:  # the agent's own errors, translated here
                self.close(0)
                raise SinkError(f"edge agent {gw!r} did not start: {exc}") from exc
            self._agents[gw] = agent
        _LOGGER.info(
            "edge agents started gateways=%d data_dir=%s",
            len(self._agents),
            self.data_dir,
        )

    def send(self, readings: list[Reading]) -> None:
        """Submit the readings to their devices' gateways, one call per gateway.

        Raises:
            SinkError: an agent refused them (stopped, or its buffer failed).
        """
        per_gateway: dict[str, list[Reading]] = {}
        for r in readings:
            per_gateway.setdefault(self.gateway_of(r.device), []).append(r)
        for gw, batch in per_gateway.items():
            try:
                self._agents[gw].submit(batch)
            except Exception as exc:  # the agent's own errors, translated here
                raise SinkError(f"edge agent {gw!r} refused readings: {exc}") from exc

    def pending(self) -> int:
        """Readings the agents still hold that the hub has not acknowledged."""
        return sum(_pending_of(agent) for agent in self._agents.values())

    def acked_and_connected(self) -> tuple[int, int]:
        """Readings the hub acked to the agents, and the agents connected.

        The acked readings are cumulative, as the agents' buffers count them.
        """
        stats = [agent.stats for agent in self._agents.values()]
        return sum(s.acked_readings for s in stats), sum(s.connected for s in stats)

    def close(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` s for the hub to ack everything, then stop.

        Returns:
            Readings still waiting in the agents' buffers (they stay on disk
            and go out on the next start).
        """
        deadline = time.monotonic() + timeout
        # The agents' figures are snapshots taken after each turn of their
        # loops: let one turn pass so the last submit is counted.
        time.sleep(_DRAIN_POLL_S)
        left = self.pending()
        while left and time.monotonic() < deadline:
            time.sleep(_DRAIN_POLL_S)
            left = self.pending()
        if left:
            _LOGGER.warning(
                "stopping edge agents with readings unacknowledged pending=%d"
                " (kept on disk)",
                left,
            )
        for gw, agent in self._agents.items():
            try:
                agent.stop()
            except Exception:  # stopping the others matters more
                _LOGGER.exception("edge agent did not stop cleanly gateway=%s", gw)
        self._agents.clear()
        return left


def _pending_of(agent: EdgeAgent) -> int:
    # Every reading held in the buffer, batched or not: only an ack from the
    # hub (after its commit) removes one.
    return agent.stats.readings
