"""Real MQTT brokers on loopback: amqtt (as StreamFlow embeds it) and Mosquitto."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import free_port, missing_service, wait_port


class BrokerProcess:
    """A broker in its own process, which a test may stop, kill and restart."""

    def __init__(self, kind: str, port: int, workdir: Path) -> None:
        self.kind = kind
        self.port = port
        self.host = "127.0.0.1"
        self.url = f"mqtt://{self.host}:{port}"
        self._workdir = workdir
        #: Where the broker writes its log (appended to across restarts).
        self.log_path = workdir / f"{kind}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        if self.kind == "amqtt":
            return [sys.executable, "-m", "hub.broker", "--port", str(self.port)]
        conf = self._workdir / "mosquitto.conf"
        # As root, Mosquitto drops to its own user, which cannot write the
        # test's private folder: its persistence would fail unnoticed.
        as_root = "user root\n" if os.geteuid() == 0 else ""
        # The site configuration's limits (deploy/mosquitto), on a test port,
        # with persistence so that a restart keeps sessions and queued messages.
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self._workdir}/\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            "message_size_limit 0\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n" + as_root
        )
        return [mosquitto_binary(), "-c", str(conf)]

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self._command(), stdout=log, stderr=log)
        wait_port(self.port, timeout=15)

    def stop(self) -> None:
        """Stop the broker cleanly."""
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)

    def kill(self) -> None:
        """Kill the broker with SIGKILL."""
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()


def mosquitto_binary() -> str:
    """The Mosquitto binary named by STREAMFLOW_TEST_MOSQUITTO or found on PATH."""
    named = os.environ.get("STREAMFLOW_TEST_MOSQUITTO")
    found = named or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).exists() and not shutil.which(found):
        missing_service("mosquitto binary (scripts/setup-services installs it)")
    return found


def _start(kind: str, tmp_path_factory) -> Iterator[BrokerProcess]:
    if kind == "mosquitto":
        mosquitto_binary()
    broker = BrokerProcess(kind, free_port(), tmp_path_factory.mktemp(kind))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def amqtt_broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    """A fresh embedded (amqtt) broker for one test."""
    yield from _start("amqtt", tmp_path_factory)


@pytest.fixture
def mosquitto_broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    """A fresh Mosquitto broker for one test."""
    yield from _start("mosquitto", tmp_path_factory)


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker(request, tmp_path_factory) -> Iterator[BrokerProcess]:
    """Each test using this runs once on amqtt and once on Mosquitto."""
    yield from _start(request.param, tmp_path_factory)
