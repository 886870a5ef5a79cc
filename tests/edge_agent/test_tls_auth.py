"""The uplink over TLS with a user name and password, on a real Mosquitto."""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent import EdgeAgent
from protocol.readings import Reading
from protocol.validate import now_us
from tests.edge_agent.conftest import (
    AckResponder,
    edge_settings,
)
from tests.fix_brokers import mosquitto_binary
from tests.services import free_port, wait_for, wait_port

pytestmark = [pytest.mark.broker]

PASSWORD = "s3cret-pw-123"


@dataclass
class SecureBroker:
    plain_port: int
    tls_port: int
    ca_file: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def secure_broker(tmp_path):
    """Mosquitto with a plain listener and a TLS listener that needs a password."""
    d = tmp_path / "secure"
    d.mkdir()
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=d,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=d,
    )
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
        cwd=d,
    )
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(d / "passwd"), "gw-user", PASSWORD],
        check=True,
        capture_output=True,
    )
    plain, tls = free_port(), free_port()
    # Started as root, Mosquitto drops to its own user before reading the TLS
    # key, which then cannot read pytest's private tmp directory.
    user = "user root\n" if os.geteuid() == 0 else ""
    (d / "mosquitto.conf").write_text(
        user + "per_listener_settings true\n"
        f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {tls} 127.0.0.1\n"
        f"cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
        f"allow_anonymous false\npassword_file {d}/passwd\n"
        "log_dest stderr\n"
    )
    log = (d / "mosquitto.log").open("ab")
    proc = subprocess.Popen(
        [mosquitto_binary(), "-c", str(d / "mosquitto.conf")], stdout=log, stderr=log
    )
    log.close()
    try:
        wait_port(plain, timeout=10)
        wait_port(tls, timeout=10)
        yield SecureBroker(plain, tls, d / "ca.pem")
    finally:
        proc.terminate()
        proc.wait(10)


def test_tls_auth_uplink_delivers(tmp_path, secure_broker, start_agent):
    """With the CA, user name and password the agent delivers over TLS."""
    hub = AckResponder("127.0.0.1", secure_broker.plain_port)
    try:
        settings = edge_settings(
            tmp_path,
            f"mqtts://localhost:{secure_broker.tls_port}",
            tls_ca_file=secure_broker.ca_file,
            username="gw-user",
            password=PASSWORD,
        )
        agent = start_agent(settings)
        agent.submit([Reading("dev-1", "t", now_us() - 10, 1.5)])
        wait_for(lambda: agent.stats.acked_readings == 1, timeout=10, what="ack")
        assert len(hub.stored()) == 1
    finally:
        hub.stop()


def test_tls_auth_wrong_password_refused_not_logged(tmp_path, secure_broker, caplog):
    """A wrong password is logged as a refused connection, without the password."""
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + PASSWORD
    settings = edge_settings(
        tmp_path,
        f"mqtts://localhost:{secure_broker.tls_port}",
        tls_ca_file=secure_broker.ca_file,
        username="gw-user",
        password=wrong,
    )
    agent = EdgeAgent(settings)
    agent.start()
    try:
        wait_for(
            lambda: any("connection refused" in r.getMessage() for r in caplog.records),
            timeout=10,
            what="refusal",
        )
        assert not agent.stats.connected
    finally:
        agent.stop()
    assert all(wrong not in r.getMessage() for r in caplog.records)
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


# paho 2.2 does not close its socket when the TLS handshake fails
# (Client._ssl_wrap_socket), so the collected socket warns; only that is ignored.
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <ssl\.SSLSocket"
    ":pytest.PytestUnraisableExceptionWarning"
)
def test_tls_unknown_ca_does_not_connect(tmp_path, secure_broker, caplog):
    """Without the broker's CA the TLS handshake fails and nothing is sent."""
    caplog.set_level(logging.INFO, logger="edge_agent.client")
    settings = edge_settings(
        tmp_path,
        f"mqtts://localhost:{secure_broker.tls_port}",
        username="gw-user",
        password=PASSWORD,
    )
    agent = EdgeAgent(settings)
    agent.start()
    try:
        wait_for(
            lambda: any("cannot connect" in r.getMessage() for r in caplog.records),
            timeout=10,
            what="handshake failure",
        )
        assert not agent.stats.connected
    finally:
        agent.stop()
