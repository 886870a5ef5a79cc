"""Service rules: thresholds with a duration on the hubs' and gateways' figures.

Each hub publishes its figures on ``sf/v1/hub/{id}/stats`` (ingest rate, lag
from reading time to commit, store write latency, queue depth, rejects); each
gateway reports its buffer depth and drop counters in its ``up/state``.
:func:`gateway_figures` turns a state into figures, among them
``dropped_recent``, the readings dropped in the last :data:`DROP_WINDOW_S`
(the state carries cumulative counters). A :class:`ServiceRules` keeps, per
rule and source, since when the figure is beyond its threshold: it raises
once the breach has lasted ``for_s`` and clears once the figure is back past
``clear``. One figure, ``stats_age_s`` (seconds since a hub's last stats),
grows by itself: :meth:`ServiceRules.tick` evaluates it, so that a hub that
stopped reporting raises ``hub-silent``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hub.monitor._types import Finding
from hub.monitor.config import ServiceRule
from hub.storage.base import AlertRecord
from protocol.models import GatewayState

_LOGGER = logging.getLogger(__name__)

#: Kind of the alerts this module raises.
SERVICE_KIND = "service"
#: The window of a gateway's ``dropped_recent`` figure.
DROP_WINDOW_S = 300.0


def rule_fingerprint(rule: ServiceRule, source: str) -> str:
    """``hub/{id}/service/{rule}`` or ``gateway/{id}/service/{rule}``."""
    return f"{rule.source}/{source}/{SERVICE_KIND}/{rule.id}"


@dataclass(slots=True)
class _RuleState:
    breach_since_us: int | None = None
    raised: bool = False
    value: float = 0.0


class DropWindow:
    """A gateway's cumulative drop counter, as drops within the last window."""

    def __init__(self, window_s: float = DROP_WINDOW_S) -> None:
        """Remember totals for ``window_s`` seconds."""
        self._window_us = int(window_s * 1e6)
        self._totals: deque[tuple[int, int]] = deque()

    def add(self, at_us: int, total: int) -> int:
        """Take the total at ``at_us``; return the increase within the window.

        A total below the last one means the buffer was created again (its
        counters restart at zero): the history is forgotten.
        """
        if self._totals and total < self._totals[-1][1]:
            self._totals.clear()
        self._totals.append((at_us, total))
        while len(self._totals) > 1 and self._totals[1][0] <= at_us - self._window_us:
            self._totals.popleft()
        # The oldest total kept is the newest at or before the window's start
        # (or the first state seen, which has no increase known yet).
        return total - self._totals[0][1]


def gateway_figures(
    state: GatewayState, at_us: int, drops: DropWindow
) -> dict[str, float]:
    """The figures of a gateway's state at ``at_us`` (receive time)."""
    oldest = state.buffer.oldest_us
    return {
        "buffer_readings": float(state.buffer.readings),
        "buffer_bytes": float(state.buffer.bytes),
        "backlog_readings": float(state.buffer.backlog_readings),
        "oldest_age_s": max(0.0, (at_us - oldest) / 1e6) if oldest else 0.0,
        "dropped_recent": float(drops.add(at_us, sum(state.dropped.values()))),
    }


class ServiceRules:
    """Evaluates the service rules on each source's figures (module docstring).

    Args:
        rules: the rules, from ``monitor.service_rules``.
    """

    def __init__(self, rules: list[ServiceRule]) -> None:
        """Start with no source seen."""
        self.rules = list(rules)
        self._states: dict[tuple[str, str], _RuleState] = {}
        #: The latest figures of each (source kind, id), and when they came.
        self.latest: dict[tuple[str, str], tuple[int, dict[str, float]]] = {}

    def observe(
        self, kind: str, source: str, figures: Mapping[str, float], at_us: int
    ) -> list[Finding]:
        """Take a source's figures; return the findings of its rules.

        Args:
            kind: ``hub`` or ``gateway``.
            source: the hub's client id or the gateway id.
            figures: its figures (a missing one leaves its rules as they are).
            at_us: when they came, epoch µs.
        """
        values = dict(figures)
        if kind == "hub":
            values["stats_age_s"] = 0.0
        self.latest[(kind, source)] = (at_us, values)
        return self._evaluate(kind, source, values, at_us)

    def restore(self, alerts: Iterable[AlertRecord]) -> None:
        """Take up the service alerts still active after a restart.

        Their rules start raised, so that figures back to normal clear them
        (a rule that starts unraised would never send the clear).
        """
        by_id = {rule.id: rule for rule in self.rules}
        for alert in alerts:
            kind, _, rest = alert.fingerprint.partition("/")
            source, _, tail = rest.partition("/")
            rule = by_id.get(tail.removeprefix(f"{SERVICE_KIND}/"))
            if alert.kind != SERVICE_KIND or not alert.active or rule is None:
                continue
            if rule.source == kind and rule_fingerprint(rule, source) == (
                alert.fingerprint
            ):
                key = (f"{rule.id}#{rule.figure}", source)
                self._states[key] = _RuleState(raised=True)

    def forget(self, kind: str, source: str) -> None:
        """Stop watching a source (a hub that said it stopped)."""
        self.latest.pop((kind, source), None)

    def tick(self, now_us: int) -> list[Finding]:
        """Evaluate every source's latest figures at ``now_us`` (durations, age)."""
        found: list[Finding] = []
        for (kind, source), (at_us, values) in list(self.latest.items()):
            current = dict(values)
            if kind == "hub":
                current["stats_age_s"] = max(0.0, (now_us - at_us) / 1e6)
            found.extend(self._evaluate(kind, source, current, now_us))
        return found

    def stale_hubs(self) -> list[str]:
        """Hubs whose ``hub-silent``-style rule (on ``stats_age_s``) is raised."""
        return sorted(
            source
            for (fp_rule, source), state in self._states.items()
            if state.raised and fp_rule.endswith("#stats_age_s")
        )

    def _evaluate(
        self, kind: str, source: str, values: Mapping[str, float], at_us: int
    ) -> list[Finding]:
        found: list[Finding] = []
        for rule in self.rules:
            if rule.source != kind or rule.figure not in values:
                continue
            key = (f"{rule.id}#{rule.figure}", source)
            state = self._states.setdefault(key, _RuleState())
            finding = self._step(rule, source, state, values[rule.figure], at_us)
            if finding is not None:
                found.append(finding)
        return found

    def _step(
        self,
        rule: ServiceRule,
        source: str,
        state: _RuleState,
        value: float,
        at_us: int,
    ) -> Finding | None:
        state.value = value
        if state.raised:
            if _beyond(rule, value, clearing=True):
                return None
            state.raised = False
            state.breach_since_us = None
            return self._finding(rule, source, "cleared", value, at_us)
        if not _beyond(rule, value, clearing=False):
            state.breach_since_us = None
            return None
        if state.breach_since_us is None:
            state.breach_since_us = at_us
        if (at_us - state.breach_since_us) / 1e6 < rule.for_s:
            return None
        state.raised = True
        return self._finding(rule, source, "raised", value, at_us)

    @staticmethod
    def _finding(
        rule: ServiceRule, source: str, state: str, value: float, at_us: int
    ) -> Finding:
        threshold = rule.above if rule.above is not None else rule.below
        side = "above" if rule.above is not None else "below"
        what = f"{rule.source} {source} {rule.figure} {value:g}"
        if state == "raised":
            held = f" for {rule.for_s:g} s" if rule.for_s else ""
            summary = f"{what}: {side} {threshold:g}{held} ({rule.id})"
        else:
            summary = f"{what}: back to normal ({rule.id})"
        _LOGGER.info(
            "service rule %s rule=%s source=%s value=%g", state, rule.id, source, value
        )
        return Finding(
            fingerprint=rule_fingerprint(rule, source),
            kind=SERVICE_KIND,
            state="raised" if state == "raised" else "cleared",
            at_us=at_us,
            severity=rule.severity,
            summary=summary,
            gateway=source if rule.source == "gateway" else None,
            metric=rule.figure,
            details={
                "rule": rule.id,
                "source": source,
                "figure": rule.figure,
                "value": value,
                side: threshold,
                "for_s": rule.for_s,
            },
            group_key=f"service/{source}",
        )


def _beyond(rule: ServiceRule, value: float, clearing: bool) -> bool:
    """Whether ``value`` breaches the rule (while raised: not yet cleared)."""
    if rule.above is not None:
        limit = rule.clear if clearing and rule.clear is not None else rule.above
        return value > limit
    assert rule.below is not None
    limit = rule.clear if clearing and rule.clear is not None else rule.below
    return value < limit
