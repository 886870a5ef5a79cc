"""The monitor: processor events, device silences and service figures -> alerts.

- :mod:`hub.monitor.offline`: devices and gateways that stopped reporting;
- :mod:`hub.monitor.service_rules`: thresholds on the hubs' and gateways'
  figures;
- :mod:`hub.monitor.figures`: the figures a hub publishes about itself;
- :mod:`hub.monitor.metrics`: the Prometheus endpoint;
- :mod:`hub.monitor.service`: the process (``streamflow monitor``).

The lifecycle (one alert per condition, flapping, storms, notices) is
:mod:`hub.alerts.lifecycle`'s.
"""

from hub.monitor.config import MonitorConfig, ServiceRule
from hub.monitor.offline import DeviceView, IntervalLearner, OfflineDetector
from hub.monitor.service_rules import ServiceRules

__all__ = [
    "DeviceView",
    "IntervalLearner",
    "MonitorConfig",
    "OfflineDetector",
    "ServiceRule",
    "ServiceRules",
]
