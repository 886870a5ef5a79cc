"""Checks that the ports a server is to listen on are free, before starting it."""

from __future__ import annotations

import socket

from hub._errors import PortInUse


def ensure_port_free(host: str, port: int, option: str) -> None:
    """Bind ``host:port`` for a moment to see that nothing listens there.

    Args:
        host: the address the server will bind.
        port: the port; 0 (any free port) is always free.
        option: the command-line option that changes the port, for the error.

    Raises:
        PortInUse: something already listens on the port.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too: a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise PortInUse(host, port, option) from None
