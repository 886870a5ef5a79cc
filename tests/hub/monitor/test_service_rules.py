"""Service rules: thresholds held for a duration, raised once, cleared later."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.monitor.config import MonitorConfig, ServiceRule
from hub.monitor.service_rules import DropWindow, ServiceRules, gateway_figures
from protocol.models import BufferState, GatewayState

S = 1_000_000
T0 = 1_700_000_000 * S

LAG = ServiceRule(id="hub-lag", source="hub", figure="lag_p99_s", above=60, for_s=30)


def test_breach_raises_only_after_its_duration():
    """Above 60 s at 0, 10 and 29 s: nothing; still above at 30 s: raised once."""
    rules = ServiceRules([LAG])

    for at in (0, 10, 29):
        assert rules.observe("hub", "h1", {"lag_p99_s": 90}, T0 + at * S) == []
    (found,) = rules.observe("hub", "h1", {"lag_p99_s": 95}, T0 + 30 * S)

    assert (found.fingerprint, found.kind, found.state, found.severity) == (
        "hub/h1/service/hub-lag",
        "service",
        "raised",
        "warning",
    )
    assert (found.metric, found.gateway, found.at_us) == (
        "lag_p99_s",
        None,
        T0 + 30 * S,
    )
    assert found.details == {
        "rule": "hub-lag",
        "source": "h1",
        "figure": "lag_p99_s",
        "value": 95,
        "above": 60,
        "for_s": 30,
    }
    assert found.summary == "hub h1 lag_p99_s 95: above 60 for 30 s (hub-lag)"
    assert rules.observe("hub", "h1", {"lag_p99_s": 99}, T0 + 40 * S) == []


def test_breach_interrupted_starts_its_duration_again():
    """Back under the threshold for one sample: the 30 s count anew."""
    rules = ServiceRules([LAG])
    rules.observe("hub", "h1", {"lag_p99_s": 90}, T0)
    rules.observe("hub", "h1", {"lag_p99_s": 10}, T0 + 20 * S)

    assert rules.observe("hub", "h1", {"lag_p99_s": 90}, T0 + 35 * S) == []
    assert len(rules.observe("hub", "h1", {"lag_p99_s": 90}, T0 + 65 * S)) == 1


def test_clear_waits_for_the_clear_threshold():
    """Raised above 0.8; 0.6 keeps it raised (clear 0.5); 0.4 clears it."""
    rule = ServiceRule(
        id="queue-full", source="hub", figure="queue_fill", above=0.8, clear=0.5
    )
    rules = ServiceRules([rule])

    assert [f.state for f in rules.observe("hub", "h", {"queue_fill": 0.9}, T0)] == [
        "raised"
    ]
    assert rules.observe("hub", "h", {"queue_fill": 0.6}, T0 + S) == []
    (cleared,) = rules.observe("hub", "h", {"queue_fill": 0.4}, T0 + 2 * S)
    assert cleared.state == "cleared"
    assert cleared.summary == "hub h queue_fill 0.4: back to normal (queue-full)"


def test_below_rule_breaches_under_its_threshold():
    """A rate under its floor (a hub that ingests nothing) breaches."""
    rule = ServiceRule(id="idle", source="hub", figure="readings_per_s", below=1)
    rules = ServiceRules([rule])

    assert rules.observe("hub", "h", {"readings_per_s": 5}, T0) == []
    assert [f.state for f in rules.observe("hub", "h", {"readings_per_s": 0}, T0)] == [
        "raised"
    ]


def test_sources_are_judged_apart():
    """Two gateways: only the one with the backlog raises, named in the alert."""
    rule = ServiceRule(
        id="edge-backlog", source="gateway", figure="buffer_readings", above=100
    )
    rules = ServiceRules([rule])

    assert rules.observe("gateway", "gw-a", {"buffer_readings": 5}, T0) == []
    (found,) = rules.observe("gateway", "gw-b", {"buffer_readings": 500}, T0)
    assert (found.fingerprint, found.gateway) == (
        "gateway/gw-b/service/edge-backlog",
        "gw-b",
    )
    # A hub figure of the same name is not a gateway's.
    assert rules.observe("hub", "gw-b", {"buffer_readings": 500}, T0) == []


def test_hub_silent_raises_on_tick_and_clears_with_stats():
    """No stats for more than 30 s: hub-silent; the next stats clear it."""
    rules = ServiceRules(MonitorConfig().service_rules)
    figures = {"lag_p99_s": 1.0, "queue_fill": 0.0, "shed_per_s": 0.0}
    rules.observe("hub", "h1", figures, T0)

    assert rules.tick(T0 + 30 * S) == []
    (silent,) = rules.tick(T0 + 31 * S)
    assert (silent.fingerprint, silent.state) == ("hub/h1/service/hub-silent", "raised")
    assert rules.stale_hubs() == ["h1"]
    (back,) = rules.observe("hub", "h1", figures, T0 + 40 * S)
    assert (back.fingerprint, back.state) == ("hub/h1/service/hub-silent", "cleared")
    assert rules.stale_hubs() == []


def test_default_rules_stay_quiet_on_a_healthy_hub():
    """Normal figures for ten minutes raise nothing."""
    rules = ServiceRules(MonitorConfig().service_rules)
    healthy = {
        "readings_per_s": 250.0,
        "rejects_per_s": 0.0,
        "shed_per_s": 0.0,
        "lag_p99_s": 1.5,
        "write_latency_s": 0.01,
        "queue_fill": 0.02,
    }

    found = []
    for i in range(120):
        found += rules.observe("hub", "h", healthy, T0 + i * 5 * S)
        found += rules.tick(T0 + i * 5 * S + S)

    assert found == []


def test_drop_window_counts_drops_of_the_last_window():
    """Cumulative 0, 10, 10: 10 dropped recently; 5 minutes later, none."""
    window = DropWindow(300)

    assert window.add(T0, 0) == 0
    assert window.add(T0 + 10 * S, 10) == 10
    assert window.add(T0 + 200 * S, 10) == 10
    assert window.add(T0 + 320 * S, 10) == 0


def test_drop_window_restarts_when_the_counter_does():
    """A total below the last one (a new buffer) is a new start, not drops."""
    window = DropWindow(300)
    window.add(T0, 50)

    assert window.add(T0 + S, 3) == 0
    assert window.add(T0 + 2 * S, 7) == 4


def test_gateway_figures_from_state():
    """Buffer depth, backlog, oldest age and recent drops from one state."""
    state = GatewayState(
        gw="gw",
        status="online",
        ts=T0,
        buffer=BufferState(
            readings=120, bytes=4096, oldest_us=T0 - 90 * S, backlog_readings=7
        ),
        dropped={"buffer_full": 4, "too_old": 1},
    )
    drops = DropWindow()
    drops.add(T0 - 10 * S, 2)

    assert gateway_figures(state, T0, drops) == {
        "buffer_readings": 120.0,
        "buffer_bytes": 4096.0,
        "backlog_readings": 7.0,
        "oldest_age_s": 90.0,
        "dropped_recent": 3.0,
    }


def test_edge_drops_rule_raises_on_any_new_drop():
    """The default edge-drops rule: a drop in the last 5 minutes is an alert."""
    rules = ServiceRules(MonitorConfig().service_rules)
    drops = DropWindow()

    def state(total: int) -> GatewayState:
        return GatewayState(gw="gw", status="online", ts=T0, dropped={"full": total})

    assert (
        rules.observe("gateway", "gw", gateway_figures(state(5), T0, drops), T0) == []
    )
    at = T0 + 10 * S
    found = rules.observe("gateway", "gw", gateway_figures(state(9), at, drops), at)
    assert [(f.fingerprint, f.state) for f in found] == [
        ("gateway/gw/service/edge-drops", "raised")
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"id": "x", "source": "hub", "figure": "nope", "above": 1},
            "unknown hub figure 'nope'",
        ),
        (
            {"id": "x", "source": "gateway", "figure": "lag_p99_s", "above": 1},
            "unknown gateway figure 'lag_p99_s'",
        ),
        (
            {"id": "x", "source": "hub", "figure": "lag_p99_s"},
            "give exactly one of above, below",
        ),
        (
            {"id": "x", "source": "hub", "figure": "lag_p99_s", "above": 1, "below": 0},
            "give exactly one of above, below",
        ),
        (
            {"id": "a b", "source": "hub", "figure": "lag_p99_s", "above": 1},
            "String should match pattern",
        ),
    ],
)
def test_service_rule_bad(spec, message):
    """A bad rule fails at load, naming what is wrong."""
    with pytest.raises(ValidationError, match=message):
        ServiceRule(**spec)


def test_service_rules_from_environment(monkeypatch):
    """STREAMFLOW_MONITOR__SERVICE_RULES is a JSON list of rules."""
    from hub.config import load_settings

    monkeypatch.setenv(
        "STREAMFLOW_MONITOR__SERVICE_RULES",
        '[{"id": "lag", "source": "hub", "figure": "lag_p99_s", "above": 5}]',
    )
    monkeypatch.setenv("STREAMFLOW_MONITOR__MIN_SILENCE_S", "10")

    settings = load_settings()

    assert [r.id for r in settings.monitor.service_rules] == ["lag"]
    assert settings.monitor.min_silence_s == 10.0


def test_monitor_setting_bad_names_its_variable(monkeypatch):
    """A bad monitor setting is one line naming the nested variable."""
    from hub._errors import ConfigError
    from hub.config import load_settings

    monkeypatch.setenv("STREAMFLOW_MONITOR__OFFLINE_FACTOR", "1")

    with pytest.raises(ConfigError, match="STREAMFLOW_MONITOR__OFFLINE_FACTOR"):
        load_settings()


def test_restored_service_alert_clears_when_figures_are_normal():
    """After a restart an active hub-lag alert is raised state: normal clears it."""
    from hub.storage.base import AlertRecord

    rules = ServiceRules([LAG])
    rules.restore(
        [
            AlertRecord(
                id="a1",
                fingerprint="hub/h1/service/hub-lag",
                kind="service",
                severity="warning",
                summary="",
                opened_us=T0,
            ),
            AlertRecord(  # another rule's, unknown here: left alone
                id="a2",
                fingerprint="hub/h1/service/gone",
                kind="service",
                severity="warning",
                summary="",
                opened_us=T0,
            ),
        ]
    )

    assert rules.observe("hub", "h1", {"lag_p99_s": 90}, T0) == []
    (cleared,) = rules.observe("hub", "h1", {"lag_p99_s": 1}, T0 + S)
    assert (cleared.fingerprint, cleared.state) == ("hub/h1/service/hub-lag", "cleared")
