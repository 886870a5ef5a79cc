"""The simplest forwarder reads the same topics the hub reads from sensors."""

from __future__ import annotations

from benchmarks.forwarder import TELEMETRY_FILTER, mqtt_address
from protocol import topics


def test_forwarder_filter_is_protocol_filter():
    """Its spelled-out filter is protocol v1's telemetry filter."""
    assert TELEMETRY_FILTER == topics.TELEMETRY_FILTER


def test_mqtt_address_host_port():
    """An mqtt:// URL gives its host and port, 1883 by default."""
    assert mqtt_address("mqtt://127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert mqtt_address("mqtt://localhost") == ("localhost", 1883)
