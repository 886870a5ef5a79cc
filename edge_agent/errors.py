"""Exceptions of the edge agent.

EdgeError
 ├── SettingsError       a setting is missing or has a bad value
 ├── BufferOpenError     the disk buffer cannot be opened or belongs elsewhere
 ├── BufferWriteError    the disk buffer could not commit a write
 └── AgentStoppedError   the agent is not running (submit after stop)
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error raised by the edge agent."""


class SettingsError(EdgeError, ValueError):
    """A setting is missing or has a bad value.

    Attributes:
        setting: the setting's name (``hub_url``, ``inputs.0.adapter``).
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class BufferOpenError(EdgeError):
    """The disk buffer cannot be opened, or it belongs to another gateway."""


class BufferWriteError(EdgeError):
    """The disk buffer could not commit a write; nothing of it was kept."""


class AgentStoppedError(EdgeError):
    """The agent is not running, so readings cannot be buffered."""
