"""The alert lifecycle's invariants over random signals, clocks and restarts."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hub.alerts.lifecycle import AlertEngine, Signal
from hub.storage.sqlite import SQLiteStore
from tests.hub.alerts._lifecycle import Clock, Recorder

#: Conditions on two gateways; the small numbers make flapping and storms likely.
_FINGERPRINTS = [
    ("device/d1/threshold/t:hot", "gw-1"),
    ("device/d2/threshold/t:hot", "gw-1"),
    ("device/d3/spike/t", "gw-1"),
    ("device/d4/offline/", "gw-2"),
]
_CONFIG = {
    "instant_resolve_s": 60,
    "flap_window_s": 120,
    "flap_threshold": 2,
    "storm_window_s": 30,
    "storm_threshold": 2,
    "storm_digest_s": 30,
    "notify_rate_per_min": 2,
}
#: The state changes an alert may make, (from, to); None is its opening.
_VALID = {
    (None, "open"),
    ("open", "acknowledged"),
    ("open", "resolved"),
    ("acknowledged", "resolved"),
    ("resolved", "open"),
}
_STATE_OF_CHANGE = {
    "opened": "open",
    "reopened": "open",
    "acknowledged": "acknowledged",
    "resolved": "resolved",
}
#: The actor of the changes made through the store by "another process".
_OTHER = "api-user"


class AlertLifecycle(RuleBasedStateMachine):
    """Signals, clock steps, ticks, people's changes and restarts, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.store = SQLiteStore(":memory:")
        self.store.migrate()
        self.clock = Clock()
        self.recorder = Recorder()
        self.engine = self._engine()

    def _engine(self) -> AlertEngine:
        return self.recorder.engine(self.store, self.clock, **_CONFIG)

    def teardown(self) -> None:
        self.store.close()

    # -- rules ---------------------------------------------------------------

    @rule(
        which=st.sampled_from(_FINGERPRINTS),
        state=st.sampled_from(["raised", "cleared", "instant"]),
        past=st.booleans(),
        back_s=st.integers(0, 3600),
        severity=st.sampled_from(["info", "warning", "critical"]),
    )
    def signal(self, which, state, past, back_s, severity) -> None:
        fingerprint, gateway = which
        at_us = self.clock.now - back_s * 1_000_000
        self.engine.handle(
            Signal(
                fingerprint=fingerprint,
                kind=fingerprint.split("/")[2],
                state=state,
                at_us=at_us,
                severity=severity,
                past=past,
                gateway=gateway,
                group_key=gateway,
            )
        )

    @rule(
        burst=st.lists(
            st.tuples(
                st.sampled_from(_FINGERPRINTS),
                st.sampled_from(["raised", "cleared", "instant"]),
            ),
            min_size=2,
            max_size=12,
        )
    )
    def signals(self, burst) -> None:
        for (fingerprint, gateway), state in burst:
            self.engine.handle(
                Signal(
                    fingerprint=fingerprint,
                    kind=fingerprint.split("/")[2],
                    state=state,
                    at_us=self.clock.now,
                    gateway=gateway,
                    group_key=gateway,
                )
            )
            self.clock.advance(0.5)

    @rule(seconds=st.sampled_from([0.5, 5, 29, 31, 61, 121, 600]), tick=st.booleans())
    def advance(self, seconds, tick) -> None:
        self.clock.advance(seconds)
        if tick:
            self.engine.tick()

    @rule()
    def tick(self) -> None:
        self.engine.tick()

    @rule()
    def restart(self) -> None:
        self.engine = self._engine()
        self.engine.load()

    @precondition(lambda self: self.store.active_alerts())
    @rule(data=st.data(), by_engine=st.booleans())
    def acknowledge(self, data, by_engine) -> None:
        alert = data.draw(st.sampled_from(self.store.active_alerts()))
        if by_engine:
            self.engine.acknowledge(alert.id, "ops")
        else:
            self.store.transition_alert(
                alert.id, "acknowledged", _OTHER, self.clock.now, ("open",)
            )

    @precondition(lambda self: self.store.active_alerts())
    @rule(data=st.data(), by_engine=st.booleans())
    def resolve(self, data, by_engine) -> None:
        alert = data.draw(st.sampled_from(self.store.active_alerts()))
        if by_engine:
            self.engine.resolve(alert.id, "ops")
        else:
            self.store.transition_alert(
                alert.id, "resolved", _OTHER, self.clock.now, ("open", "acknowledged")
            )

    # -- invariants ----------------------------------------------------------

    @invariant()
    def one_active_alert_per_fingerprint(self) -> None:
        active = [a.fingerprint for a in self.store.active_alerts()]
        assert len(active) == len(set(active)), active

    @invariant()
    def histories_are_valid_paths(self) -> None:
        for alert in self.store.list_alerts(limit=10_000):
            history = self.store.alert_history(alert.id)
            assert history, alert
            previous = None
            for row in history:
                assert row.from_state == previous, (alert.id, history)
                assert (row.from_state, row.to_state) in _VALID, (alert.id, history)
                previous = row.to_state
            assert previous == alert.state, (alert, history)

    @invariant()
    def on_change_once_per_history_row(self) -> None:
        made = [
            (row.alert_id, row.to_state)
            for alert in self.store.list_alerts(limit=10_000)
            for row in self.store.alert_history(alert.id)
            if row.actor != _OTHER
        ]
        seen = [(a.id, _STATE_OF_CHANGE[c]) for a, c in self.recorder.changes]
        assert sorted(seen) == sorted(made)
        # And in the order the store numbered them, per alert.
        for alert_id in {a for a, _ in made}:
            assert [s for a, s in seen if a == alert_id] == [
                s for a, s in made if a == alert_id
            ]

    @invariant()
    def notices_carry_stored_alerts(self) -> None:
        for notice in self.recorder.notices:
            assert notice.alerts
            for alert in notice.alerts:
                assert self.store.get_alert(alert.id) is not None

    @invariant()
    def no_callback_errors(self) -> None:
        assert self.engine.stats["callback_errors"] == 0


AlertLifecycle.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_alert_lifecycle = AlertLifecycle.TestCase
