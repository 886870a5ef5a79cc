"""Load mode of ``streamflow simulate``: the ramp, its bounds, and what it reports.

The end-to-end tests run the command against a real broker and a real hub
writing to SQLite, and check the summary against the store: every reading
the summary says was sent and acked is there, once.
"""

from __future__ import annotations

import uuid

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from hub.config import HubSettings
from hub.service import HubService, load_adapters
from hub.storage import open_store
from simulators.cli import simulate
from simulators.load import LoadPlan, parse_ramp, weighted_percentile


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("devices=10..200", ("devices", 10.0, 200.0)),
        ("rate=0.5..4", ("rate", 0.5, 4.0)),
        ("rate=2", ("rate", 2.0, 2.0)),
        (" devices=5..1 ", ("devices", 5.0, 1.0)),
        ("rate=1e-1..1e1", ("rate", 0.1, 10.0)),
    ],
)
def test_parse_ramp(text, expected):
    """A ramp is KEY=FROM..TO, or KEY=VALUE for a constant."""
    assert parse_ramp(text) == expected


@pytest.mark.parametrize(
    "text",
    ["speed=1..2", "devices=0..10", "rate=-1..2", "devices=1.5..3", "rate=", "rate=a"],
)
def test_parse_ramp_bad(text):
    """Another key, a bound at or below 0, or fractional devices: refused."""
    with pytest.raises(ValueError, match="bad ramp"):
        parse_ramp(text)


def test_plan_interpolates_then_holds():
    """Devices and rate move linearly over the ramp, then hold the end value."""
    plan = LoadPlan(("gw",), devices=(10, 110), rate=(1.0, 3.0), ramp_s=10, count=1)
    assert [plan.devices_at(t) for t in (0, 5, 10, 60)] == [10, 60, 110, 110]
    assert [plan.rate_at(t) for t in (0, 5, 10, 60)] == [1.0, 2.0, 3.0, 3.0]


def test_plan_needs_a_bound():
    """Load mode stops by itself: a plan without duration or count is refused."""
    with pytest.raises(ValueError, match="duration or a count"):
        LoadPlan(("gw",))


@given(
    st.lists(
        st.tuples(
            st.floats(0, 1e6, allow_nan=False), st.integers(min_value=1, max_value=50)
        ),
        min_size=1,
        max_size=50,
    )
)
def test_weighted_percentile_is_a_sample_in_order(samples):
    """p50 <= p99 <= max, each a sample value, for any weighted samples."""
    p50 = weighted_percentile(samples, 0.5)
    p99 = weighted_percentile(samples, 0.99)
    values = {v for v, _ in samples}
    assert p50 is not None
    assert p99 is not None
    assert p50 in values
    assert p99 in values
    assert p50 <= p99 <= max(values)


def test_weighted_percentile_weights_count():
    """A value carrying most of the weight is the median."""
    assert weighted_percentile([(1.0, 1), (2.0, 98), (9.0, 1)], 0.5) == 2.0
    assert weighted_percentile([(1.0, 1), (2.0, 98), (9.0, 1)], 0.995) == 9.0
    assert weighted_percentile([], 0.5) is None


# -- against a real broker and hub ---------------------------------------------


@pytest.fixture
def store(tmp_path):
    """A migrated SQLite store for the hub."""
    s = open_store(f"sqlite:///{tmp_path}/hub.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def hub(amqtt_broker, store, tmp_path):
    """A real hub on the embedded broker, writing to SQLite."""
    settings = HubSettings(
        mqtt_url=amqtt_broker.url,
        client_id=f"hub-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "hub",
        write_max_delay_s=0.01,
    )
    service = HubService(settings, store, adapters=load_adapters(settings))
    service.start()
    yield service
    service.stop(5)


@pytest.mark.broker
@pytest.mark.e2e
def test_load_ramp_through_edge_agents_store_matches_summary(
    amqtt_broker, hub, store, tmp_path
):
    """A 10 s ramp through two edge agents: the summary's counts are the store's."""
    out = tmp_path / "load.json"
    result = CliRunner().invoke(
        simulate,
        [
            "--gateways", "2",
            "--ramp", "devices=5..50",
            "--ramp", "rate=1..4",
            "--duration", "10",
            "--via", "edge",
            "--hub-url", amqtt_broker.url,
            "--edge-dir", str(tmp_path / "edge"),
            "--json", str(out),
            "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = orjson.loads(out.read_bytes())
    print(result.output.strip())

    assert summary["stopped"] == "duration"
    assert summary["sent"] > 0
    assert (summary["acked"], summary["unacked"]) == (summary["sent"], 0)
    assert store.count_readings() == summary["sent"]
    assert summary["gateways"] == summary["connected"] == 2
    assert summary["devices_max"] == 100
    # Achieved throughput is reported, and so is the ramp's climb.
    assert summary["achieved_rps"] == pytest.approx(
        summary["sent"] / summary["elapsed_s"]
    )
    steps = summary["steps"]
    assert len(steps) >= 9
    assert steps[0]["devices"] < steps[-1]["devices"]
    assert steps[0]["target_rps"] < steps[-1]["target_rps"]
    assert 0 < summary["lag_p50_s"] <= summary["lag_p99_s"] <= summary["lag_max_s"]
    assert f"sent={summary['sent']} acked={summary['sent']} unacked=0" in result.output


@pytest.mark.broker
@pytest.mark.e2e
def test_load_count_as_plain_sensors_stops_at_count(amqtt_broker, hub, store):
    """--count stops the load at exactly that many readings, all stored."""
    result = CliRunner().invoke(
        simulate,
        [
            "--load",
            "--devices", "50",
            "--interval", "0.1",
            "--count", "777",
            "--via", "mqtt",
            "--mqtt-url", amqtt_broker.url,
            "--client-id", f"load-{uuid.uuid4().hex[:8]}",
            "--json", "-",
            "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.output)

    assert (summary["stopped"], summary["sent"], summary["unacked"]) == (
        "count",
        777,
        0,
    )
    assert (summary["gateways"], summary["connected"]) == (0, None)
    assert summary["devices_max"] == 100  # 50 per gateway, 2 gateways

    def stored() -> int:
        return int(store.count_readings())

    from tests.services import wait_for

    wait_for(lambda: stored() >= 777, timeout=20, what="777 readings stored")
    assert stored() == 777


def test_load_options_without_load_mode_are_usage_errors():
    """--json without --ramp or --load is refused (exit 2)."""
    result = CliRunner().invoke(simulate, ["--json", "-", "--count", "1"])
    assert result.exit_code == 2
    assert "need --ramp or --load" in result.output


def test_load_without_bound_is_usage_error():
    """Load mode without --duration or --count is refused (exit 2)."""
    result = CliRunner().invoke(simulate, ["--ramp", "devices=1..2"])
    assert result.exit_code == 2
    assert "duration or a count" in result.output
