"""The alert lifecycle's settings: auto-resolve, flapping, storms, rate limits.

``HubSettings.alerts`` holds an :class:`AlertsConfig`; in TOML::

    [alerts]
    flap_window_s = 900
    storm_threshold = 10
    notify_rate_per_min = 30

and in the environment ``STREAMFLOW_ALERTS__FLAP_WINDOW_S=900``. The
settings shape what people are told (:class:`hub.alerts.notice.Notice`); every
state change is stored and published whatever they say.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Severities in rising order; ``min_severity_notify`` picks one of them.
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

SeverityName = Literal["info", "warning", "critical"]


class AlertsConfig(BaseModel):
    """How the monitor turns signals into alerts and notices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instant_resolve_s: float = Field(
        default=600.0,
        gt=0,
        description="an alert of an instant condition (spike, gap), which has no "
        "clear, resolves itself after this many seconds without a recurrence",
    )
    flap_window_s: float = Field(
        default=900.0,
        gt=0,
        description="window of the flapping check; a flapping alert is notified "
        "again once it kept its state this long",
    )
    flap_threshold: int = Field(
        default=4,
        ge=1,
        description="more state changes (opened, resolved, reopened) than this "
        "within flap_window_s make a condition's alert flapping: its notices "
        "are held back",
    )
    storm_window_s: float = Field(
        default=60.0,
        gt=0,
        description="window of the storm check, per group (a gateway, or 'site')",
    )
    storm_threshold: int = Field(
        default=10,
        ge=1,
        description="more alert changes than this within storm_window_s in one "
        "group make a storm: its alerts are notified together in digests",
    )
    storm_digest_s: float = Field(
        default=60.0,
        gt=0,
        description="seconds between two digests of a storm, and between two "
        "digests of what the rate limit held back",
    )
    notify_rate_per_min: float = Field(
        default=30.0,
        ge=1,
        description="notices to people per minute, at most (a token bucket of "
        "this size); what it holds back goes into the next digest",
    )
    resolve_past_immediately: bool = Field(
        default=False,
        description="resolve an alert raised from late readings as soon as it is "
        "opened, instead of waiting for its cleared event",
    )
    min_severity_notify: SeverityName = Field(
        default="warning",
        description="alerts below this severity (info, warning, critical) are "
        "stored and published but not notified to people",
    )

    @model_validator(mode="after")
    def _check_windows(self) -> AlertsConfig:
        # A digest period longer than the storm window would let a storm end
        # (no changes in the window) while its alerts still wait for a digest;
        # they would go out, but late and after the group's next single notice.
        if self.storm_digest_s > self.storm_window_s * 10:
            raise ValueError(
                f"storm_digest_s={self.storm_digest_s!r} is more than ten times "
                f"storm_window_s={self.storm_window_s!r}: storms would be "
                "notified long after they ended"
            )
        return self

    def notifies(self, severity: str) -> bool:
        """Tell whether alerts of ``severity`` are notified to people.

        An unknown severity is notified: better one notice too many than a
        critical alert of a site processor lost to a spelling.
        """
        if severity not in SEVERITIES:
            return True
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity_notify)
