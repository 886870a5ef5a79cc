"""Helpers of the monitor tests: an MQTT listener and a publisher."""

from __future__ import annotations

import os
import threading
from itertools import count
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import wait_for

_IDS = count()


class Listener:
    """A clean-session client that records every message on some filters."""

    def __init__(self, url_host: str, port: int, *filters: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._filters = filters
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sf-test-listen-{os.getpid()}-{next(_IDS)}",
            clean_session=True,
        )
        self._client.on_connect = lambda c, *a: c.subscribe([(f, 1) for f in filters])
        self._client.on_subscribe = lambda *a: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect(url_host, port, keepalive=10)
        self._client.loop_start()
        if not self._ready.wait(10):
            self.close()
            raise TimeoutError(f"listener not subscribed to {filters}")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[dict[str, Any]]:
        """The JSON payloads received on one topic so far."""
        with self._lock:
            return [orjson.loads(p) for t, p, _ in self.messages if t == topic]

    def wait(self, topic: str, n: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        """Wait until ``n`` messages arrived on ``topic``; return them."""
        got: list[dict[str, Any]] = wait_for(
            lambda: (got := self.on(topic)) and len(got) >= n and got,
            timeout=timeout,
            what=f"{n} message(s) on {topic}",
        )
        return got

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()


def publish(host: str, port: int, topic: str, payload: bytes, retain: bool = False):
    """Publish one QoS 1 message and wait for its PUBACK."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"sf-test-pub-{os.getpid()}-{next(_IDS)}",
        clean_session=True,
    )
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
