"""The simplest forwarder: subscribe locally, publish upstream, no buffer.

``python -m benchmarks.forwarder --local-url URL --upstream-url URL`` is the
baseline of scenario 5: one paho client subscribes to the plain-sensor
telemetry topics on the local broker (QoS 1, a persistent session) and
another publishes each message unchanged, QoS 1, on ``fwd/<topic>`` upstream.
paho acknowledges a local message as soon as the callback returns, whether
or not the upstream broker got it: nothing is kept on disk, and a crash or a
long outage loses what was in memory.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

import click
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion

_LOGGER = logging.getLogger(__name__)

#: What it subscribes to: protocol.topics.TELEMETRY_FILTER, spelled out here
#: because importing protocol (pydantic) would double this program's memory,
#: and the baseline is the simplest forwarder (tests check they agree).
TELEMETRY_FILTER = "sf/v1/dev/+/up/telemetry"
#: Prefix of the upstream topics.
UPSTREAM_PREFIX = "fwd/"
CLIENT_ID = "sf-bench-forwarder"


def mqtt_address(url: str) -> tuple[str, int]:
    """(host, port) of an ``mqtt://host:port`` URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


@click.command()
@click.option("--local-url", required=True)
@click.option("--upstream-url", required=True)
def main(local_url: str, upstream_url: str) -> None:
    """Forward local telemetry upstream until SIGTERM."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    upstream = Client(CallbackAPIVersion.VERSION2, client_id=f"{CLIENT_ID}-up")
    upstream.max_inflight_messages_set(100)
    upstream.connect(*mqtt_address(upstream_url))
    upstream.loop_start()

    def on_message(client: Client, userdata: Any, msg: MQTTMessage) -> None:
        upstream.publish(UPSTREAM_PREFIX + msg.topic, msg.payload, qos=1)

    local = Client(
        CallbackAPIVersion.VERSION2, client_id=CLIENT_ID, clean_session=False
    )
    local.on_message = on_message
    local.connect(*mqtt_address(local_url))
    local.subscribe(TELEMETRY_FILTER, qos=1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    local.loop_start()
    stop.wait()
    local.disconnect()
    local.loop_stop()
    upstream.disconnect()
    upstream.loop_stop()


if __name__ == "__main__":
    main()
