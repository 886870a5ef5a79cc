"""deploy/: the site Mosquitto config starts and enforces its limits; units verify."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol.readings import Reading
from simulators.errors import SinkError
from simulators.sinks import MqttSensorSink
from tests.fix_brokers import mosquitto_binary
from tests.services import free_port, missing_service, wait_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONF = DEPLOY / "mosquitto" / "streamflow.conf"
UNIT = DEPLOY / "systemd" / "streamflow-edge.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "streamflow-edge.env.example"


def _sub_once(text: str, pattern: str, repl: str) -> str:
    out, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    assert n == 1, f"expected one line matching {pattern!r} in the deploy config"
    return out


class SiteBroker:
    """Mosquitto with deploy/mosquitto/streamflow.conf on a free port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        # Mosquitto started as root drops to its own user: let it write here.
        workdir.chmod(0o777)
        self.passwd = workdir / "streamflow.passwd"
        self.acl = workdir / "streamflow.acl"
        subprocess.run(
            ["mosquitto_passwd", "-c", "-b", str(self.passwd), "sensor-1", "pw-1"],
            check=True,
            capture_output=True,
        )
        self.passwd.chmod(0o644)
        self.acl.write_text("user sensor-1\ntopic readwrite sf/v1/dev/sensor-1/#\n")
        self.acl.chmod(0o644)
        text = CONF.read_text()
        text = _sub_once(
            text, r"^listener 1883 127\.0\.0\.1$", f"listener {self.port} 127.0.0.1"
        )
        text = _sub_once(text, r"^password_file .*$", f"password_file {self.passwd}")
        text = _sub_once(text, r"^acl_file .*$", f"acl_file {self.acl}")
        text = _sub_once(
            text, r"^persistence_location .*$", f"persistence_location {workdir}/"
        )
        text = _sub_once(text, r"^log_dest syslog$", "log_dest stderr")
        self.conf = workdir / "site.conf"
        self.conf.write_text(text)
        self.log = workdir / "site.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.conf)], stdout=log, stderr=log
            )
        wait_port(self.port, timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def site_broker():
    """A running site broker with one user, sensor-1."""
    if shutil.which("mosquitto_passwd") is None:
        missing_service("mosquitto_passwd (apt-get install mosquitto)")
    # Not pytest's tmp_path: its parents are mode 0700, and Mosquitto started
    # as root drops to the mosquitto user, which could not read its files.
    with tempfile.TemporaryDirectory(prefix="sf-site-broker-") as workdir:
        broker = SiteBroker(Path(workdir))
        try:
            broker.start()
            yield broker
        finally:
            broker.stop()


class Client:
    """A paho client that records its CONNACK, disconnects and messages."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.connack = threading.Event()
        self.disconnected = threading.Event()
        self.subscribed = threading.Event()
        self.reason: Any = None
        self.messages: list[bytes] = []
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}"
        )
        if username:
            self.c.username_pw_set(username, password)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda *a: self.disconnected.set()
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_message = lambda c, u, m: self.messages.append(bytes(m.payload))
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        assert self.connack.wait(10), "no CONNACK after 10 s"

    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        self.reason = reason
        self.connack.set()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.mark.broker
def test_site_config_starts(site_broker):
    """mosquitto -c streamflow.conf loads the file and listens on loopback."""
    assert site_broker.proc.poll() is None
    assert "Config loaded from" in site_broker.log.read_text()


@pytest.mark.broker
def test_site_config_refuses_anonymous(site_broker):
    """A client without credentials is refused at CONNACK."""
    client = Client(site_broker.port, None, None)
    try:
        assert client.reason.is_failure
        assert str(client.reason) == "Not authorized"
    finally:
        client.close()


@pytest.mark.broker
def test_site_config_user_round_trip_at_hub_cap(site_broker):
    """A user from the password file gets a 256 KiB QoS 1 payload through."""
    client = Client(site_broker.port, "sensor-1", "pw-1")
    try:
        assert not client.reason.is_failure
        client.c.subscribe("sf/v1/dev/sensor-1/up/telemetry", qos=1)
        assert client.subscribed.wait(10)
        payload = b"x" * (256 * 1024)
        client.c.publish(
            "sf/v1/dev/sensor-1/up/telemetry", payload, qos=1
        ).wait_for_publish(10)
        deadline = threading.Event()
        for _ in range(100):
            if client.messages:
                break
            deadline.wait(0.05)
        assert client.messages == [payload]
    finally:
        client.close()


@pytest.mark.broker
def test_site_config_disconnects_oversized_packet(site_broker):
    """A packet above max_packet_size (260 KiB) costs the sender its connection."""
    client = Client(site_broker.port, "sensor-1", "pw-1")
    try:
        client.c.publish("sf/v1/dev/sensor-1/up/telemetry", b"x" * (300 * 1024), qos=1)
        assert client.disconnected.wait(10)
    finally:
        client.close()


def test_edge_unit_verifies(tmp_path):
    """systemd-analyze verify accepts the unit (with an ExecStart that exists)."""
    if shutil.which("systemd-analyze") is None:
        missing_service("systemd-analyze (apt-get install systemd)")
    text = _sub_once(UNIT.read_text(), r"^ExecStart=.*$", "ExecStart=/bin/true")
    unit = tmp_path / "streamflow-edge.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(
    "directive",
    [
        "DynamicUser=yes",
        "StateDirectory=streamflow-edge",
        "Restart=always",
        "EnvironmentFile=/etc/streamflow/edge.env",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "MemoryMax=256M",
        "ExecStart=/opt/streamflow/bin/streamflow-edge",
    ],
)
def test_edge_unit_hardening(directive):
    """The unit carries each hardening and lifecycle directive."""
    assert directive in UNIT.read_text().splitlines()


def test_edge_env_example_loads(monkeypatch):
    """The example environment file is valid edge agent settings."""
    from edge_agent.config import load_settings

    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("STREAMFLOW_EDGE_DATA_DIR", "/var/lib/streamflow-edge")
    settings = load_settings()
    assert settings.gateway_id == "gw-01"
    assert str(settings.hub) == "mqtts://hub.example.net:8883"
    assert settings.local_url == "mqtt://127.0.0.1:1883"
    assert os.fspath(settings.data_dir) == "/var/lib/streamflow-edge"


@pytest.mark.broker
def test_site_config_sensor_sink_with_credentials(site_broker):
    """The sensor sink logs in with a user of the password file and is acked."""
    sink = MqttSensorSink(
        f"mqtt://127.0.0.1:{site_broker.port}",
        client_id="t-cred",
        username="sensor-1",
        password="pw-1",
    )
    sink.start()
    sink.send([Reading("sensor-1", "temperature", 1_800_000_000_000_000, 21.5)])
    assert sink.close(10) == 0
    assert sink.messages_acked == 1


@pytest.mark.broker
def test_site_config_sensor_sink_wrong_password(site_broker):
    """A wrong password fails the sink's start with the broker's reason."""
    sink = MqttSensorSink(
        f"mqtt://127.0.0.1:{site_broker.port}", username="sensor-1", password="nope"
    )
    with pytest.raises(SinkError, match="Not authorized"):
        sink.start(timeout=5)
