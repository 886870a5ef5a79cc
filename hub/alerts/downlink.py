"""The device downlink: an alert's state change sent to the device it is about.

The monitor calls :func:`downlink_for` for every state change of an alert and
publishes the result with QoS 1 (:data:`DOWNLINK_QOS`) on the hub's broker.
The device's gateway relays it (:mod:`edge_agent.relay`) to the device's own
topic on its local broker, payload unchanged; a small device (an indicator
light, a display) can then act on ``body.severity`` and ``body.state``.
"""

from __future__ import annotations

import logging
from typing import Any

from hub.alerts.notice import Change, alert_json
from hub.storage.base import AlertRecord
from protocol import codec, topics
from protocol.errors import TopicError
from protocol.models import DownlinkMessage

_LOGGER = logging.getLogger(__name__)

#: The downlink kind (last topic level) of alert messages.
ALERT_KIND = "alert"
#: QoS of downlink publishes (the protocol's topic table).
DOWNLINK_QOS = 1
#: Payloads above this lose the alert's ``details``: small devices have small
#: MQTT buffers (many ESP8266/ESP32 stacks default to 1-4 KiB).
MAX_PAYLOAD_BYTES = 4096
# A summary is one line for people; a long one is cut when it alone is too big.
_SUMMARY_MAX = 256


def downlink_for(
    alert: AlertRecord, change: Change, at_us: int
) -> tuple[str, bytes] | None:
    """The topic and payload that tell an alert's device about a state change.

    Args:
        alert: the alert as it is after the change.
        change: what happened to it.
        at_us: wall time of the change, epoch µs (the message's ``ts``).

    Returns:
        ``(sf/v1/gw/{gw}/down/dev/{dev}/alert, DownlinkMessage JSON)``, whose
        body is :func:`alert_json` plus ``change``; or None when the alert
        names no device or no gateway (nothing to send it through), or names
        one outside the id grammar (logged at WARNING).
    """
    if not alert.device or not alert.gateway:
        return None
    try:
        topic = topics.downlink(alert.gateway, alert.device, ALERT_KIND)
    except TopicError as exc:
        _LOGGER.warning("alert downlink skipped alert=%s reason=%s", alert.id, exc)
        return None
    body: dict[str, Any] = {**alert_json(alert), "change": change}
    payload = _encode(alert.device, at_us, body)
    if len(payload) > MAX_PAYLOAD_BYTES:
        body = {**body, "details": {}, "truncated": True}
        payload = _encode(alert.device, at_us, body)
    if len(payload) > MAX_PAYLOAD_BYTES:
        body["summary"] = str(body["summary"])[:_SUMMARY_MAX]
        payload = _encode(alert.device, at_us, body)
    if len(payload) > MAX_PAYLOAD_BYTES:
        _LOGGER.warning(
            "alert downlink over %d bytes alert=%s bytes=%d",
            MAX_PAYLOAD_BYTES,
            alert.id,
            len(payload),
        )
    return topic, payload


def _encode(device: str, at_us: int, body: dict[str, Any]) -> bytes:
    message = DownlinkMessage(dev=device, kind=ALERT_KIND, ts=at_us, body=body)
    return codec.dumps(message.model_dump(mode="json"))
