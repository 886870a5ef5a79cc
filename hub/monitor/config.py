"""The monitor's settings (``HubSettings.monitor``), in TOML ``[monitor]``.

Every field has an environment variable ``STREAMFLOW_MONITOR__<NAME>``; the
service rules are a JSON list there (``STREAMFLOW_MONITOR__SERVICE_RULES``)
or an array of tables in TOML::

    [monitor]
    offline_factor = 5.0
    min_silence_s = 600

    [[monitor.service_rules]]
    id = "hub-lag"
    source = "hub"
    figure = "lag_p99_s"
    above = 60
    for_s = 120
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.const import ID_PATTERN

#: The figures a hub publishes on its stats topic that rules may name.
HUB_FIGURES = frozenset(
    {
        "readings_per_s",
        "rejects_per_s",
        "shed_per_s",
        "store_errors_per_s",
        "lag_p50_s",
        "lag_p99_s",
        "write_latency_s",
        "queue_depth",
        "queue_fill",
        "stats_age_s",
    }
)
#: The figures of a gateway's ``up/state`` that rules may name.
GATEWAY_FIGURES = frozenset(
    {
        "buffer_readings",
        "buffer_bytes",
        "backlog_readings",
        "oldest_age_s",
        "dropped_recent",
    }
)


class ServiceRule(BaseModel):
    """A threshold on a hub's or a gateway's figure, held for a duration.

    The rule raises an alert once the figure has been beyond ``above`` (or
    under ``below``) for ``for_s`` seconds, and clears it once the figure is
    back within ``clear`` (default: the threshold itself), so that a figure
    hovering at the threshold does not flap.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=rf"^{ID_PATTERN}$", description="rule id (fingerprint)")
    source: Literal["hub", "gateway"] = Field(
        description="whose figure: each hub's stats, or each gateway's state"
    )
    figure: str = Field(description="figure name (README: service rules)")
    above: float | None = Field(default=None, description="breach above this")
    below: float | None = Field(default=None, description="breach under this")
    clear: float | None = Field(
        default=None, description="back to normal past this (hysteresis)"
    )
    for_s: float = Field(default=0.0, ge=0, description="breach held this long")
    severity: Literal["info", "warning", "critical"] = "warning"

    @model_validator(mode="after")
    def _check(self) -> ServiceRule:
        names = HUB_FIGURES if self.source == "hub" else GATEWAY_FIGURES
        if self.figure not in names:
            raise ValueError(
                f"unknown {self.source} figure {self.figure!r}: expected one of "
                f"{', '.join(sorted(names))}"
            )
        if (self.above is None) == (self.below is None):
            raise ValueError(f"rule {self.id!r}: give exactly one of above, below")
        return self


def _default_rules() -> list[ServiceRule]:
    return [
        ServiceRule(id="hub-silent", source="hub", figure="stats_age_s", above=30),
        ServiceRule(
            id="hub-lag", source="hub", figure="lag_p99_s", above=120, for_s=60
        ),
        ServiceRule(
            id="store-slow", source="hub", figure="write_latency_s", above=2, for_s=60
        ),
        ServiceRule(
            id="queue-full",
            source="hub",
            figure="queue_fill",
            above=0.8,
            clear=0.5,
            for_s=30,
        ),
        ServiceRule(
            id="hub-shedding",
            source="hub",
            figure="shed_per_s",
            above=0,
            severity="critical",
        ),
        ServiceRule(
            id="hub-rejects", source="hub", figure="rejects_per_s", above=5, for_s=120
        ),
        ServiceRule(
            id="edge-backlog",
            source="gateway",
            figure="buffer_readings",
            above=100_000,
            clear=10_000,
            for_s=300,
        ),
        ServiceRule(
            id="edge-drops", source="gateway", figure="dropped_recent", above=0
        ),
    ]


class MonitorConfig(BaseModel):
    """What the monitor watches and how (``HubSettings.monitor``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(
        default="streamflow-monitor",
        pattern=rf"^{ID_PATTERN}$",
        description="MQTT client id of the monitor",
    )
    tick_s: float = Field(
        default=1.0, gt=0, description="how often silences and rules are checked"
    )

    # Device offline.
    offline_factor: float = Field(
        default=10.0,
        gt=1,
        description="a device is offline after this many usual intervals of silence",
    )
    min_silence_s: float = Field(
        default=600.0,
        ge=0,
        description="and after at least this much silence (covers the LWT delay)",
    )
    interval_quantile: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="the usual interval: this quantile of a device's recent gaps",
    )
    interval_gaps: int = Field(
        default=64, ge=2, description="recent gaps a device's interval is learned from"
    )
    min_gaps: int = Field(
        default=8,
        ge=1,
        description="gaps needed before a learned interval is used "
        "(a device's expected_interval_s is used at once)",
    )
    interval_refresh_s: float = Field(
        default=300.0,
        gt=0,
        description="how often each device's new reading times are read from "
        "the store to refresh its interval",
    )
    learn_window_s: float = Field(
        default=86_400.0,
        gt=0,
        description="how far back the reading times are read at start-up",
    )

    # Service figures.
    stats_interval_s: float = Field(
        default=5.0,
        ge=0,
        description="how often the hub publishes its figures on "
        "sf/v1/hub/{client_id}/stats (0: never)",
    )
    service_rules: list[ServiceRule] = Field(
        default_factory=_default_rules,
        description="thresholds on the hubs' and gateways' figures",
    )

    # Outputs.
    downlink: bool = Field(
        default=True,
        description="send each device's alerts to it through its gateway "
        "(sf/v1/gw/{gw}/down/dev/{dev}/alert)",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="address of the Prometheus endpoint"
    )
    metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="port of the Prometheus endpoint /metrics (0: none)",
    )
