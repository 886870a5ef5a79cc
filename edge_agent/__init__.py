"""StreamFlow edge agent: local inputs, a disk buffer, the uplink and the relay.

A gateway installs only the base dependencies (paho-mqtt, pydantic, orjson,
click); nothing here imports the hub.
"""

from edge_agent.agent import EdgeAgent
from edge_agent.buffer import AckResult, AddResult, Buffer
from edge_agent.config import EdgeSettings, InputSettings, load_settings
from edge_agent.errors import (
    AgentStoppedError,
    BufferOpenError,
    BufferWriteError,
    EdgeError,
    SettingsError,
)
from edge_agent.state import agent_version
from edge_agent.worker import AgentStats

__version__ = agent_version()

__all__ = [
    "AckResult",
    "AddResult",
    "AgentStats",
    "AgentStoppedError",
    "Buffer",
    "BufferOpenError",
    "BufferWriteError",
    "EdgeAgent",
    "EdgeError",
    "EdgeSettings",
    "InputSettings",
    "SettingsError",
    "__version__",
    "load_settings",
]
