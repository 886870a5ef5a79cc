"""Helpers shared by the service fixtures: free ports, waiting, missing services."""

from __future__ import annotations

import os
import socket
import time

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Wait until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = ""):
    """Poll ``predicate`` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout} s waiting for {what or predicate}"
            )
        time.sleep(interval)


def missing_service(what: str) -> None:
    """Skip the test, or fail it where services are required (CI)."""
    if os.environ.get("STREAMFLOW_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {what}")
    pytest.skip(f"service missing: {what}")
