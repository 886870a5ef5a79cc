"""The adapter registry (protocol.adapters)."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest

from protocol.adapters import (
    ADAPTERS,
    PlainJsonAdapter,
    TasmotaAdapter,
    Zigbee2MqttAdapter,
    get_adapter,
)


def test_adapters_names():
    """The registry offers exactly the three configured names, in order."""
    assert ADAPTERS == ("json", "tasmota", "zigbee2mqtt")


@pytest.mark.parametrize(
    ("name", "cls", "filters"),
    [
        ("json", PlainJsonAdapter, ["sf/v1/dev/+/up/telemetry"]),
        ("tasmota", TasmotaAdapter, ["tele/+/SENSOR", "tele/+/STATE"]),
        ("zigbee2mqtt", Zigbee2MqttAdapter, ["zigbee2mqtt/#"]),
    ],
)
def test_get_adapter_known(name, cls, filters):
    """Each name gives its adapter, with its name and default filters."""
    adapter = get_adapter(name)
    assert type(adapter) is cls
    assert adapter.name == name
    assert adapter.default_filters() == filters


def test_get_adapter_options():
    """Keyword options reach the adapter's constructor."""
    adapter = get_adapter("zigbee2mqtt", base_topic="z2m")
    assert adapter.default_filters() == ["z2m/#"]


def test_get_adapter_naive_tz_option():
    """The tasmota adapter takes the devices' zone as naive_tz."""
    adapter = get_adapter("tasmota", naive_tz=ZoneInfo("Europe/Berlin"))
    assert isinstance(adapter, TasmotaAdapter)
    assert get_adapter("tasmota", naive_tz=UTC).name == "tasmota"


def test_get_adapter_unknown_names_known():
    """An unknown name raises ValueError naming it and every known adapter."""
    with pytest.raises(ValueError, match="unknown adapter") as info:
        get_adapter("homie")
    assert str(info.value) == (
        "unknown adapter 'homie': expected one of json, tasmota, zigbee2mqtt"
    )


def test_get_adapter_bad_option():
    """An option the adapter does not take raises ValueError naming the adapter."""
    with pytest.raises(ValueError, match="invalid options for adapter 'json'"):
        get_adapter("json", base_topic="x")


@pytest.mark.parametrize("base_topic", ["", "z2m/", "z2m/#", "z+"])
def test_zigbee2mqtt_bad_base_topic(base_topic):
    """A base topic that is not a topic name fails early with its repr."""
    with pytest.raises(ValueError, match="invalid zigbee2mqtt base topic") as info:
        Zigbee2MqttAdapter(base_topic)
    assert repr(base_topic) in str(info.value)


@pytest.mark.parametrize("prefix", ["", "a/b", "+", "#"])
def test_tasmota_bad_prefix(prefix):
    """A Tasmota prefix must be one topic level without wildcards."""
    with pytest.raises(ValueError, match="invalid tasmota prefix") as info:
        TasmotaAdapter(prefix=prefix)
    assert repr(prefix) in str(info.value)
