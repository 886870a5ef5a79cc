"""Threshold rules: above, below or outside a band, for a duration, with hysteresis.

A :class:`ThresholdRule` is kept in the store's ``rules`` table (kind
``threshold``), where the API manages it; the processor reloads the rules
every few seconds (:meth:`ThresholdProcessor.refresh`). A route's options may
also give fixed rules (``rules = [...]``), for a site without the API.

Per rule and series, a small state machine in event time:

``normal`` → ``pending``
    a reading breaches the rule (above ``threshold``, below it, or outside
    ``[low, high]``); with ``for_s = 0`` it raises at once;
``pending`` → ``raised`` (event ``raised``)
    the breach has lasted ``for_s``: the first breaching reading at least
    ``for_s`` after the first of the run raises; any reading that does not
    breach goes back to ``normal``;
``raised`` → ``normal`` (event ``cleared``)
    a reading is back inside by more than ``hysteresis`` (below
    ``threshold - hysteresis`` for ``above``), so that a value hovering at
    the threshold does not raise and clear on every reading.

A rule selects its series by device id and metric (glob patterns, ``*`` by
default) and by device tags (all must match the registry's tags).
"""

from __future__ import annotations

import enum
import fnmatch
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from hub.processors.base import (
    Bools,
    Context,
    Floats,
    SeriesBatch,
    SeriesKey,
    SeriesProcessor,
)
from hub.processors.events import Event, EventKind, EventState, Severity
from hub.storage.base import RuleRecord
from protocol.const import ID_PATTERN

if TYPE_CHECKING:
    from hub.storage.base import Store

_LOGGER = logging.getLogger(__name__)

#: The ``kind`` of threshold rules in the store's rules table.
RULE_KIND = "threshold"

RuleId = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$")]


class Selector(BaseModel):
    """Which series a rule watches: device and metric patterns, device tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    devices: list[str] = Field(
        default_factory=lambda: ["*"], description="device id glob patterns"
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["*"], description="metric glob patterns"
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="tags the device must have, all of them"
    )

    def matches(self, device: str, metric: str, tags: dict[str, str]) -> bool:
        """Tell whether the rule watches this series."""
        return (
            any(fnmatch.fnmatchcase(device, p) for p in self.devices)
            and any(fnmatch.fnmatchcase(metric, p) for p in self.metrics)
            and all(tags.get(k) == v for k, v in self.tags.items())
        )


class ThresholdRule(BaseModel):
    """A threshold rule, as the API receives it and the store keeps it.

    Raises:
        pydantic.ValidationError: ``above``/``below`` without ``threshold``,
            ``outside`` without ``low < high``, or an invalid field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId
    name: str = Field(default="", max_length=200)
    condition: Literal["above", "below", "outside"]
    threshold: float | None = Field(
        default=None, allow_inf_nan=False, description="for above and below"
    )
    low: float | None = Field(default=None, allow_inf_nan=False)
    high: float | None = Field(default=None, allow_inf_nan=False)
    for_s: float = Field(
        default=0.0, ge=0, description="how long the breach must last to raise"
    )
    hysteresis: float = Field(
        default=0.0, ge=0, description="how far back inside a reading must be to clear"
    )
    severity: Severity = Severity.WARNING
    enabled: bool = True
    selector: Selector = Field(default_factory=Selector)

    @model_validator(mode="after")
    def _check_bounds(self) -> ThresholdRule:
        if self.condition == "outside":
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError("condition 'outside' needs low < high")
        elif self.threshold is None:
            raise ValueError(f"condition {self.condition!r} needs threshold")
        return self

    def breached(self, values: Floats) -> Bools:
        """Which values breach the rule."""
        if self.condition == "above":
            return values > self._threshold
        if self.condition == "below":
            return values < self._threshold
        return (values < self._low) | (values > self._high)

    def inside(self, values: Floats) -> Bools:
        """Which values are back inside by more than the hysteresis (they clear)."""
        h = self.hysteresis
        if self.condition == "above":
            return values < self._threshold - h
        if self.condition == "below":
            return values > self._threshold + h
        return (values > self._low + h) & (values < self._high - h)

    @property
    def _threshold(self) -> float:
        return self.threshold if self.threshold is not None else 0.0

    @property
    def _low(self) -> float:
        return self.low if self.low is not None else 0.0

    @property
    def _high(self) -> float:
        return self.high if self.high is not None else 0.0

    def bounds(self) -> dict[str, Any]:
        """The rule's condition and limits, for event details."""
        if self.condition == "outside":
            limits: dict[str, Any] = {"low": self.low, "high": self.high}
        else:
            limits = {"threshold": self.threshold}
        return {
            "condition": self.condition,
            **limits,
            "for_s": self.for_s,
            "hysteresis": self.hysteresis,
        }

    def to_record(self) -> RuleRecord:
        """The rule as the store keeps it."""
        return RuleRecord(
            id=self.id,
            kind=RULE_KIND,
            spec=self.model_dump(mode="json", exclude={"id"}),
        )

    @classmethod
    def from_record(cls, record: RuleRecord) -> ThresholdRule:
        """The rule a stored record holds.

        Raises:
            pydantic.ValidationError: the stored spec is not a valid rule.
        """
        return cls.model_validate({**record.spec, "id": record.id})


def create_rule(store: Store, rule: ThresholdRule, replace: bool = False) -> None:
    """Store a threshold rule (what the API calls).

    Raises:
        ValueError: a rule with this id exists and ``replace`` is false.
    """
    store.create_rule(rule.to_record(), replace=replace)


def list_rules(store: Store) -> list[ThresholdRule]:
    """The valid threshold rules in the store, ordered by id (invalid ones skipped)."""
    rules = []
    for record in store.list_rules(RULE_KIND):
        try:
            rules.append(ThresholdRule.from_record(record))
        except ValidationError as exc:
            _LOGGER.warning(
                "threshold rule skipped, invalid rule=%s error=%s",
                record.id,
                str(exc).replace("\n", " ")[:200],
            )
    return rules


class _Phase(enum.Enum):
    NORMAL = 0
    PENDING = 1
    RAISED = 2


@dataclass(slots=True)
class _RuleState:
    rule: ThresholdRule
    phase: _Phase = _Phase.NORMAL
    since_us: int = 0
    raised_us: int = 0


@dataclass(slots=True)
class ThresholdState:
    """One series' state under each rule that watches it, by rule id."""

    rules: dict[str, _RuleState] = field(default_factory=dict)


class ThresholdProcessor(SeriesProcessor[ThresholdState]):
    """Threshold events (kind ``threshold``, ``rule`` the rule's id).

    Args:
        rules: fixed rules (dicts of :class:`ThresholdRule` fields); they
            are kept, and the store's rules are added to them at each
            :meth:`refresh`.
        load_from_store: whether :meth:`refresh` reads the store's rules.

    Raises:
        pydantic.ValidationError: a fixed rule is invalid.
    """

    name: ClassVar[str] = "thresholds"

    def __init__(
        self,
        rules: list[dict[str, Any]] | list[ThresholdRule] | None = None,
        load_from_store: bool = True,
    ) -> None:
        super().__init__()
        self._fixed = {
            r.id: r
            for r in (
                rule if isinstance(rule, ThresholdRule) else ThresholdRule(**rule)
                for rule in rules or []
            )
        }
        self._load = load_from_store
        self._rules: dict[str, ThresholdRule] = dict(self._fixed)
        # Which rules watch a series; dropped whenever the rules change.
        self._matches: dict[SeriesKey, list[ThresholdRule]] = {}
        self._update_warm_up()

    @property
    def rules(self) -> list[ThresholdRule]:
        """The rules in force, ordered by id."""
        return [self._rules[k] for k in sorted(self._rules)]

    def set_rules(self, rules: list[ThresholdRule]) -> None:
        """Replace the rules (fixed ones stay); a changed rule starts afresh."""
        # TODO: a rule deleted or changed while raised sends no cleared event
        # (no reading to attach it to); the monitor resolves alerts whose rule
        # is gone from the rules table.
        new = {**{r.id: r for r in rules}, **self._fixed}
        if new == self._rules:
            return
        changed = {
            k
            for k in new.keys() | self._rules.keys()
            if new.get(k) != self._rules.get(k)
        }
        self._rules = new
        self._matches.clear()
        for lane in (self._live, self._past):
            for state in lane.values():
                for rule_id in changed & state.rules.keys():
                    del state.rules[rule_id]
        self._update_warm_up()
        _LOGGER.info(
            "threshold rules loaded rules=%d changed=%d", len(new), len(changed)
        )

    def _update_warm_up(self) -> None:
        # A restart must know whether a breach was already running: replay
        # the longest duration, plus a margin.
        longest = max((r.for_s for r in self._rules.values()), default=0.0)
        self.warm_up_s = longest + 300.0 if self._rules else 0.0

    def refresh(self, store: Store, now_us: int) -> None:
        """Reload the store's threshold rules; match series to them afresh.

        Matching again picks up changed device tags (the host caches a
        device's registry entry for ``device_cache_s``).
        """
        if self._load:
            self.set_rules(list_rules(store))
        self._matches.clear()

    def new_state(self, key: SeriesKey) -> ThresholdState:
        """No rule has seen the series."""
        return ThresholdState()

    def step(
        self, state: ThresholdState, batch: SeriesBatch, ctx: Context, past: bool
    ) -> list[Event]:
        """Run each rule watching the series over the readings."""
        events: list[Event] = []
        for rule in self._watching(batch.key, ctx):
            rs = state.rules.get(rule.id)
            if rs is None:
                rs = state.rules[rule.id] = _RuleState(rule)
            breach = rule.breached(batch.values)
            # Most batches breach nothing, under a rule that is quiet.
            if rs.phase is _Phase.NORMAL and not breach.any():
                continue
            events += self._run(rs, batch, breach, rule.inside(batch.values), ctx, past)
        return events

    def _watching(self, key: SeriesKey, ctx: Context) -> list[ThresholdRule]:
        rules = self._matches.get(key)
        if rules is None:
            info = ctx.device(key.device)
            tags = info.tags if info is not None else {}
            rules = [
                r
                for r in self.rules
                if r.enabled and r.selector.matches(key.device, key.metric, tags)
            ]
            self._matches[key] = rules
        return rules

    def _run(
        self,
        rs: _RuleState,
        batch: SeriesBatch,
        breach: Bools,
        inside: Bools,
        ctx: Context,
        past: bool,
    ) -> list[Event]:
        rule = rs.rule
        for_us = int(rule.for_s * 1e6)
        events = []
        for i, t in enumerate(batch.ts_us.tolist()):
            if rs.phase is _Phase.RAISED:
                if inside[i]:
                    rs.phase = _Phase.NORMAL
                    details = {**rule.bounds(), "raised_us": rs.raised_us}
                    events.append(
                        self._event(
                            rule, EventState.CLEARED, batch, i, ctx, past, details
                        )
                    )
                continue
            if not breach[i]:
                rs.phase = _Phase.NORMAL
                continue
            if rs.phase is _Phase.NORMAL:
                rs.phase, rs.since_us = _Phase.PENDING, t
            if t - rs.since_us >= for_us:
                rs.phase, rs.raised_us = _Phase.RAISED, t
                details = {**rule.bounds(), "since_us": rs.since_us}
                events.append(
                    self._event(rule, EventState.RAISED, batch, i, ctx, past, details)
                )
        return events

    def _event(
        self,
        rule: ThresholdRule,
        state: EventState,
        batch: SeriesBatch,
        i: int,
        ctx: Context,
        past: bool,
        details: dict[str, Any],
    ) -> Event:
        return Event(
            kind=EventKind.THRESHOLD,
            state=state,
            device=batch.device,
            metric=batch.metric,
            ts_us=int(batch.ts_us[i]),
            value=float(batch.values[i]),
            severity=rule.severity,
            rule=rule.id,
            past=past,
            details={"name": rule.name, **details},
            detected_us=ctx.now_us,
        )
