"""The monitor's Prometheus metrics, served on ``monitor.metrics_host:metrics_port``.

One registry of its own (not prometheus_client's global one), so that two
monitors in one test process do not collide. What it exposes:

- ``streamflow_alerts_active{kind,severity,state}``: open and acknowledged
  alerts; ``streamflow_alert_changes_total{change}``: every state change;
- ``streamflow_devices_offline``, ``streamflow_gateways_offline``;
- the hubs' figures (``streamflow_hub_*{hub}``) and the gateways' buffers
  (``streamflow_gateway_*{gateway}``), as last received;
- the monitor's own counters: messages by topic kind, bad messages, signals
  handed to the lifecycle, publishes, and the duration of its checks.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client import (
    Counter as PromCounter,
)

from hub.storage.base import AlertRecord

#: Hub figures exposed as gauges: (figure, metric name, help).
_HUB_GAUGES = (
    ("readings_per_s", "streamflow_hub_readings_per_second", "new readings stored"),
    ("rejects_per_s", "streamflow_hub_rejects_per_second", "readings rejected"),
    ("shed_per_s", "streamflow_hub_shed_per_second", "messages shed, queue full"),
    ("lag_p50_s", "streamflow_hub_lag_p50_seconds", "reading time to commit, p50"),
    ("lag_p99_s", "streamflow_hub_lag_p99_seconds", "reading time to commit, p99"),
    ("write_latency_s", "streamflow_hub_write_latency_seconds", "store write, mean"),
    ("queue_depth", "streamflow_hub_queue_depth", "messages waiting for the writer"),
)
#: Gateway figures exposed as gauges.
_GATEWAY_GAUGES = (
    ("buffer_readings", "streamflow_gateway_buffer_readings", "readings buffered"),
    ("buffer_bytes", "streamflow_gateway_buffer_bytes", "bytes of the buffer"),
    ("dropped_recent", "streamflow_gateway_dropped_recent", "dropped, last 5 min"),
)


class MonitorMetrics:
    """The monitor's gauges and counters in a registry of their own."""

    def __init__(self) -> None:
        """Create the metrics (nothing is served until :meth:`serve`)."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.alerts_active = Gauge(
            "streamflow_alerts_active",
            "Active alerts",
            ["kind", "severity", "state"],
            registry=r,
        )
        self.alert_changes = PromCounter(
            "streamflow_alert_changes", "Alert state changes", ["change"], registry=r
        )
        self.devices_offline = Gauge(
            "streamflow_devices_offline", "Devices with an offline alert", registry=r
        )
        self.gateways_offline = Gauge(
            "streamflow_gateways_offline", "Gateways reported offline", registry=r
        )
        self.messages = PromCounter(
            "streamflow_monitor_messages", "Messages received", ["kind"], registry=r
        )
        self.bad_messages = PromCounter(
            "streamflow_monitor_bad_messages",
            "Messages skipped as unreadable",
            ["kind"],
            registry=r,
        )
        self.signals = PromCounter(
            "streamflow_monitor_signals",
            "Signals handed to the alert lifecycle",
            ["kind", "state"],
            registry=r,
        )
        self.publishes = PromCounter(
            "streamflow_monitor_publishes",
            "Alert messages published",
            ["topic"],
            registry=r,
        )
        self.check_seconds = Histogram(
            "streamflow_monitor_check_seconds",
            "Duration of one check of silences and rules",
            registry=r,
        )
        self._hub = {
            figure: Gauge(name, help_, ["hub"], registry=r)
            for figure, name, help_ in _HUB_GAUGES
        }
        self._gateway = {
            figure: Gauge(name, help_, ["gateway"], registry=r)
            for figure, name, help_ in _GATEWAY_GAUGES
        }
        self._alerts: dict[str, tuple[str, str, str]] = {}
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- updates

    def load_alerts(self, alerts: Iterable[AlertRecord]) -> None:
        """Set the alert gauges from the active alerts (at start-up)."""
        with self._lock:
            self._alerts = {a.id: (a.kind, a.severity, a.state) for a in alerts}
            self._publish_alerts()

    def alert_changed(self, alert: AlertRecord, change: str) -> None:
        """Count a state change and update the alert gauges."""
        self.alert_changes.labels(change).inc()
        with self._lock:
            if alert.active:
                self._alerts[alert.id] = (alert.kind, alert.severity, alert.state)
            else:
                self._alerts.pop(alert.id, None)
            self._publish_alerts()

    def _publish_alerts(self) -> None:
        counts = Counter(self._alerts.values())
        self.alerts_active.clear()
        for (kind, severity, state), n in counts.items():
            self.alerts_active.labels(kind, severity, state).set(n)

    def hub_figures(self, hub: str, figures: Mapping[str, object]) -> None:
        """Set a hub's gauges from its stats (a missing figure is left out)."""
        for figure, gauge in self._hub.items():
            value = figures.get(figure)
            if isinstance(value, int | float):
                gauge.labels(hub).set(value)

    def gateway_figures(self, gateway: str, figures: Mapping[str, float]) -> None:
        """Set a gateway's gauges from its state's figures."""
        for figure, gauge in self._gateway.items():
            if figure in figures:
                gauge.labels(gateway).set(figures[figure])

    # ---------------------------------------------------------------- serving

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` from a thread; return the port.

        Raises:
            OSError: the port is taken.
        """
        self._server, self._thread = start_http_server(
            port, addr=host, registry=self.registry
        )
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
