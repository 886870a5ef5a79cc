"""Brokers with broker_auth on: amqtt (embedded) and Mosquitto (exported files).

Both read the credentials of one SQLite store: the amqtt broker directly
(``STREAMFLOW_BROKER_AUTH=on``), Mosquitto through the files that
``streamflow admin export-mosquitto`` writes from it, re-exported and
reloaded (SIGHUP) by :meth:`AuthBroker.sync`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from paho.mqtt.client import Client, MQTTMessage, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion

from hub.cli import cli
from hub.storage.sqlite import SQLiteStore
from tests.fix_brokers import mosquitto_binary
from tests.services import free_port, wait_for, wait_port

#: The amqtt broker's credential cache in these tests (seconds).
CACHE_S = 0.5


class AuthBroker:
    """A broker process that admits only the store's principals."""

    def __init__(self, kind: str, workdir: Path, store: SQLiteStore) -> None:
        self.kind = kind
        self.port = free_port()
        self.workdir = workdir
        self.store = store
        self.db_url = f"sqlite:///{workdir}/creds.db"
        self.log_path = workdir / f"{kind}.log"
        self.passwords = workdir / "streamflow.passwd"
        self.acl = workdir / "streamflow.acl"
        self._proc: subprocess.Popen[bytes] | None = None

    def _command(self) -> tuple[list[str], dict[str, str]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
        if self.kind == "amqtt":
            env.update(
                STREAMFLOW_BROKER_AUTH="on",
                STREAMFLOW_DB=self.db_url,
                STREAMFLOW_BROKER_AUTH_CACHE_S=str(CACHE_S),
                STREAMFLOW_DATA_DIR=str(self.workdir),
            )
            argv = [sys.executable, "-m", "hub.broker", "--port", str(self.port)]
            return argv, env
        self.export()
        conf = self.workdir / "mosquitto.conf"
        as_root = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {self.passwords}\n"
            f"acl_file {self.acl}\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n" + as_root
        )
        return [mosquitto_binary(), "-c", str(conf)], env

    def export(self) -> None:
        """Write Mosquitto's files with the CLI, as a site would."""
        result = CliRunner().invoke(
            cli,
            [
                "admin",
                "export-mosquitto",
                "--passwords",
                str(self.passwords),
                "--acl",
                str(self.acl),
            ],
            env={
                "STREAMFLOW_DB": self.db_url,
                "STREAMFLOW_DATA_DIR": str(self.workdir),
            },
        )
        assert result.exit_code == 0, result.output

    def sync(self) -> None:
        """Make a credential change reach the broker.

        Mosquitto: export again and reload (SIGHUP). amqtt reads the store
        itself; nothing to do (its cache expires within ``CACHE_S``).
        """
        if self.kind == "mosquitto":
            self.export()
            assert self._proc is not None
            self._proc.send_signal(signal.SIGHUP)

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        argv, env = self._command()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        wait_port(self.port, timeout=15)

    def stop(self) -> None:
        """Stop the broker."""
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)


class Mqtt:
    """A paho client that records what it receives and its CONNACK."""

    def __init__(self, broker: AuthBroker, username: str | None, password: str | None):
        self.messages: list[tuple[str, bytes]] = []
        self.connack: Any = None
        self.granted: list[int] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"t-{username}-{free_port()}",
            protocol=MQTTv311,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.broker = broker

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self.connack = reason

    def _on_message(self, client, userdata, message: MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def _on_subscribe(self, client, userdata, mid, reasons, properties) -> None:
        self.granted = [int(r.value) for r in reasons]
        self._subscribed.set()

    def connect(self) -> bool:
        """Connect; whether the broker accepted the login."""
        self.client.connect("127.0.0.1", self.broker.port, keepalive=30)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None, timeout=10, what="CONNACK")
        ok = not self.connack.is_failure
        if not ok:
            self.close()
        return ok

    def subscribe(self, topic_filter: str) -> int:
        """Subscribe at QoS 1; the granted QoS (128: refused)."""
        self._subscribed.clear()
        self.client.subscribe(topic_filter, qos=1)
        assert self._subscribed.wait(10), "no SUBACK"
        return self.granted[0]

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)

    def try_publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1, waiting at most 2 s; a refusal is no error here."""
        info = self.client.publish(topic, payload, qos=1)
        # Disconnected by the broker: the message is not delivered.
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(2)

    def received(self) -> list[tuple[str, bytes]]:
        """What arrived so far."""
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def creds_store(tmp_path) -> Iterator[SQLiteStore]:
    """The registry the brokers read (SQLite, migrated)."""
    store = SQLiteStore(tmp_path / "creds.db")
    store.migrate()
    yield store
    store.close()


@pytest.fixture(params=["amqtt", "mosquitto"])
def auth_broker(request, tmp_path, creds_store) -> Iterator[AuthBroker]:
    """A broker with auth on, not started (so tests provision first)."""
    if request.param == "mosquitto":
        mosquitto_binary()
    broker = AuthBroker(request.param, tmp_path, creds_store)
    yield broker
    broker.stop()
