"""Helpers of the simulator tests: a collecting sink and an MQTT subscriber."""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol.readings import Reading


class ListSink:
    """Collects what it is sent; counts its calls."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.calls = 0
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def send(self, readings: list[Reading]) -> None:
        self.calls += 1
        self.readings.extend(readings)

    def close(self, timeout: float = 30.0) -> int:
        self.closed = True
        return 0


class Subscriber:
    """A paho client that records every message on a filter."""

    def __init__(self, host: str, port: int, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-sub-{uuid.uuid4().hex[:8]}"
        )
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
        self._client.connect(host, port, 30)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("subscriber not subscribed after 10 s")

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
