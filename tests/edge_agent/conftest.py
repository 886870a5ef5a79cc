"""Fixtures of the edge agent tests: a stand-in hub that acks, and agents.

The stand-in hub (:class:`AckResponder`) subscribes to every gateway's
batches, decodes them with :func:`protocol.decode_batch` as the hub does,
records what it got and answers with a :class:`protocol.BatchAck`. It can be
paused (it records but does not ack, as a hub whose database is down) and can
ignore the first copy of every batch (to provoke ack time-outs).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent import EdgeAgent, EdgeSettings
from protocol import BatchAck, decode_batch, topics
from protocol.validate import now_us
from tests.services import wait_for

GW = "gw-test"


@dataclass(frozen=True)
class Received:
    """One batch copy as the stand-in hub received it."""

    gw: str
    seq: int
    late: bool
    payload: bytes
    readings: tuple[tuple[str, str, int, float], ...]
    at: float


class AckResponder:
    """A stand-in hub on a real broker: decodes batches and acks them."""

    def __init__(self, host: str, port: int) -> None:
        self.received: list[Received] = []
        self.acked: dict[int, float] = {}  # seq -> monotonic time of first ack
        self.paused = False
        self.ignore_first = False
        self._held: list[Received] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sf-test-hub-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self._connected.clear()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()
        assert self._connected.wait(10), "stand-in hub did not connect"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe(topics.BATCH_FILTER, qos=1)
        self._connected.set()

    def _on_message(self, client, userdata, message):
        gw = topics.parse(message.topic).gateway
        payload = bytes(message.payload)
        batch = decode_batch(payload, now_us(), topic_gw=gw)
        assert not batch.rejects, batch.rejects
        rows = tuple(
            (b.device, b.metric, t, v)
            for b in batch.blocks
            for t, v in zip(b.ts_us, b.values, strict=True)
        )
        got = Received(gw, batch.seq, batch.late, payload, rows, time.monotonic())
        with self._lock:
            first = all(r.seq != got.seq for r in self.received)
            self.received.append(got)
            if self.paused or (self.ignore_first and first):
                if not self.ignore_first:
                    self._held.append(got)
                return
        self._ack(gw, [got.seq])

    def _ack(self, gw: str, seqs: list[int]) -> None:
        now = time.monotonic()
        with self._lock:
            for seq in seqs:
                self.acked.setdefault(seq, now)
        body = BatchAck(seqs=[(s, s) for s in seqs]).model_dump_json().encode()
        self.client.publish(topics.ack(gw), body, qos=1)

    def wait_connected(self, timeout: float = 10) -> None:
        """Wait until connected again (after a broker restart)."""
        assert self._connected.wait(timeout), "stand-in hub did not reconnect"

    def pause(self) -> None:
        """Stop acking; batches received meanwhile are held."""
        with self._lock:
            self.paused = True

    def resume(self) -> None:
        """Ack again, first the batches held while paused."""
        with self._lock:
            self.paused = False
            held, self._held = self._held, []
        by_gw: dict[str, list[int]] = {}
        for r in held:
            by_gw.setdefault(r.gw, []).append(r.seq)
        for gw, seqs in by_gw.items():
            self._ack(gw, sorted(set(seqs)))

    def copies(self) -> Counter[int]:
        """How many copies of each seq arrived."""
        with self._lock:
            return Counter(r.seq for r in self.received)

    def distinct(self) -> list[Received]:
        """The first copy of each seq, in arrival order."""
        seen: set[int] = set()
        out = []
        with self._lock:
            for r in self.received:
                if r.seq not in seen:
                    seen.add(r.seq)
                    out.append(r)
        return out

    def stored(self) -> list[tuple[str, str, int, float]]:
        """The readings a hub would store: each seq counted once."""
        return [row for r in self.distinct() for row in r.readings]

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def edge_settings(tmp_path: Path, hub_url: str, **values) -> EdgeSettings:
    """Settings for a test agent: fast timers, a buffer under tmp_path."""
    base = {
        "gateway_id": GW,
        "hub_url": hub_url,
        "data_dir": tmp_path / "edge",
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "batch_max_age_s": 0.05,
        "ack_timeout_s": 5.0,
        "stop_grace_s": 1.0,
        "state_interval_s": 30.0,
        "keepalive_s": 10,
    }
    base.update(values)
    return EdgeSettings(**base)


@pytest.fixture
def responder(broker):
    """A stand-in hub on the parametrized broker."""
    hub = AckResponder(broker.host, broker.port)
    yield hub
    hub.stop()


@pytest.fixture
def mosquitto_responder(mosquitto_broker):
    """A stand-in hub on a Mosquitto broker."""
    hub = AckResponder(mosquitto_broker.host, mosquitto_broker.port)
    yield hub
    hub.stop()


def ready(agent: EdgeAgent) -> bool:
    """Whether the agent's sessions are connected and subscribed."""
    local = agent.local
    return (
        agent.stats.connected
        and agent.uplink is not None
        and agent.uplink.session.subscribed
        and (local is None or local.session.subscribed)
    )


@pytest.fixture
def start_agent():
    """Start agents for a test and stop them at its end."""
    agents: list[EdgeAgent] = []

    def start(settings: EdgeSettings, **kwargs) -> EdgeAgent:
        agent = EdgeAgent(settings, **kwargs)
        agent.start()
        agents.append(agent)
        wait_for(lambda: ready(agent), timeout=10, what="agent connected")
        return agent

    yield start
    for agent in agents:
        agent.stop()


class Subscriber:
    """A plain subscriber that records every message on a filter."""

    def __init__(self, host: str, port: int, topic_filter: str) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sf-test-sub-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        assert self._ready.wait(10), "subscriber did not subscribe"

    def _on_message(self, client, userdata, message):
        with self._lock:
            self.messages.append(message)

    def payloads(self) -> list[bytes]:
        """The payloads received so far."""
        with self._lock:
            return [bytes(m.payload) for m in self.messages]

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe():
    """Make subscribers for a test and stop them at its end."""
    subs: list[Subscriber] = []

    def make(broker, topic_filter: str) -> Subscriber:
        sub = Subscriber(broker.host, broker.port, topic_filter)
        subs.append(sub)
        return sub

    yield make
    for sub in subs:
        sub.stop()


def spawn_agent(tmp_path: Path, *args: str, **env: str):
    """Run ``streamflow-edge`` in a subprocess (``python -m edge_agent.cli``).

    ``env`` adds STREAMFLOW_EDGE_* settings; the test's own environment's
    StreamFlow settings are left out. The log goes to ``tmp_path/agent.log``.
    """
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
    clean.update(env)
    log = (tmp_path / "agent.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", *args],
            env=clean,
            stdout=log,
            stderr=log,
        )
    finally:
        log.close()  # the child holds its own copy


def buffered_count(path: Path) -> int:
    """Readings in a buffer file, read by a second connection (WAL allows it)."""
    import sqlite3

    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute(
            "SELECT (SELECT COUNT(*) FROM pending)"
            " + (SELECT COALESCE(SUM(n), 0) FROM batches)"
        ).fetchone()
        return int(row[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        db.close()
