"""Exceptions of the hub's service layer (settings, service, ``up``).

HubError
 ├── ConfigError        the settings or the config file are invalid
 ├── BrokerUnreachable  the MQTT broker cannot be reached or refused the hub
 ├── StoreUnreachable   the store URL cannot be opened
 └── PortInUse          a port a server needs is already taken

Messages never contain a password: URLs go through
:func:`hub.config.redact_url` first.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of the errors the hub's entry points report in one line."""


class ConfigError(HubError):
    """A setting or the config file is invalid."""


class BrokerUnreachable(HubError):
    """The MQTT broker cannot be reached, or it refused the connection.

    Attributes:
        url: the broker URL, without its password.
    """

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"cannot connect to the MQTT broker at {url}: {detail}")


class StoreUnreachable(HubError):
    """The store named by a URL cannot be opened.

    Attributes:
        url: the store URL, without its password.
    """

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"cannot open the store at {url}: {detail}")


class PortInUse(HubError):
    """A port a server is to listen on is already taken.

    Attributes:
        host: the address.
        port: the port.
        option: the command-line option that changes it.
    """

    def __init__(self, host: str, port: int, option: str) -> None:
        self.host = host
        self.port = port
        self.option = option
        super().__init__(
            f"port {port} on {host} is already in use: stop what listens there "
            f"or choose another port with {option}"
        )
