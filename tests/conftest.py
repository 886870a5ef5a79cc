"""Shared fixtures: real brokers and a real TimescaleDB for each test.

Conventions (tests/services.md): ``STREAMFLOW_TEST_DSN`` names the server,
``STREAMFLOW_TEST_MOSQUITTO`` the broker binary; with
``STREAMFLOW_REQUIRE_SERVICES=1`` (the README's test command and CI) a missing
service fails the test instead of skipping it.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fix_brokers", "tests.fix_db"]


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch):
    """Keep a developer's own STREAMFLOW_ settings out of the tests."""
    import os

    for key in list(os.environ):
        if (
            key.startswith(("STREAMFLOW_", "STREAMFLOW_EDGE_"))
            and not key.startswith("STREAMFLOW_TEST_")
            and key != "STREAMFLOW_REQUIRE_SERVICES"
        ):
            monkeypatch.delenv(key)
