"""Sensor adapters: existing conventions' topics and payloads mapped to readings.

``json`` (:mod:`protocol.adapters.plain`), ``tasmota``
(:mod:`protocol.adapters.tasmota`) and ``zigbee2mqtt``
(:mod:`protocol.adapters.zigbee2mqtt`); each module's docstring states its
rules, and :mod:`protocol.adapters._message` the rules they share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from protocol.adapters.base import AdaptedMessage, Adapter
from protocol.adapters.plain import PlainJsonAdapter
from protocol.adapters.tasmota import TasmotaAdapter
from protocol.adapters.zigbee2mqtt import Zigbee2MqttAdapter

_FACTORIES: Final[dict[str, Callable[..., Adapter]]] = {
    PlainJsonAdapter.name: PlainJsonAdapter,
    TasmotaAdapter.name: TasmotaAdapter,
    Zigbee2MqttAdapter.name: Zigbee2MqttAdapter,
}

#: The adapter names accepted in configuration.
ADAPTERS: Final = tuple(_FACTORIES)


def get_adapter(name: str, **options: Any) -> Adapter:
    """Create the adapter configured under ``name``.

    Args:
        name: ``json``, ``tasmota`` or ``zigbee2mqtt``.
        **options: passed to the adapter's constructor (``naive_tz`` for
            ``tasmota`` and ``json``, ``base_topic`` for ``zigbee2mqtt``).

    Raises:
        ValueError: the name is unknown (the message lists the known ones), or
            an option is invalid.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        known = ", ".join(ADAPTERS)
        raise ValueError(f"unknown adapter {name!r}: expected one of {known}")
    try:
        return factory(**options)
    except TypeError as exc:  # an option the adapter does not take
        raise ValueError(f"invalid options for adapter {name!r}: {exc}") from None


__all__ = [
    "ADAPTERS",
    "AdaptedMessage",
    "Adapter",
    "PlainJsonAdapter",
    "TasmotaAdapter",
    "Zigbee2MqttAdapter",
    "get_adapter",
]
