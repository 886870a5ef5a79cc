"""A gateway installs only the base dependencies: the agent imports no more."""

from __future__ import annotations

import subprocess
import sys

HUB_ONLY = (
    "numpy",
    "fastapi",
    "psycopg",
    "amqtt",
    "zstandard",
    "rich",
    "uvicorn",
    "hub",
)


def test_imports_only_base_dependencies():
    """Importing the agent and its CLI loads none of the hub's packages."""
    code = (
        "import sys, edge_agent, edge_agent.cli, edge_agent.agent;"
        f"print([m for m in {HUB_ONLY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
