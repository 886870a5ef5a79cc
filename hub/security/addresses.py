"""Client addresses and IP access control.

The client address is the TCP peer, unless the peer is one of
``auth.trusted_proxies``: then ``X-Forwarded-For`` is read from the right
(each proxy appends the address it received from), skipping trusted
proxies, and the first address that is not one is the client. Addresses to
its left were written by the client itself and prove nothing (RFC 7239
section 8.1 makes the same point for ``Forwarded``).

:class:`IPFilterMiddleware` refuses, before any route runs, a client in
``auth.deny_networks`` or, when ``auth.allow_networks`` is not empty, one
outside it. Per-client lists are checked after authentication
(:func:`hub.security.deps.require`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.api.errors import error_body
from hub.security.config import Network

_LOGGER = logging.getLogger(__name__)

Address = IPv4Address | IPv6Address
#: Where the resolved client address is kept in the ASGI scope's state.
STATE_ADDRESS = "sf_client_address"


def parse_address(text: str) -> Address | None:
    """An address from a peer or a header entry, or None if it is not one.

    IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) become IPv4, so that one
    network list serves dual-stack sockets; ``[v6]:port`` and ``v4:port``
    forms (some proxies write them) lose the port.
    """
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        addr = ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def in_networks(addr: Address, networks: Iterable[Network]) -> bool:
    """Whether ``addr`` lies in any of ``networks``."""
    return any(addr.version == n.version and addr in n for n in networks)


def forwarded_client(
    peer: Address, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> Address:
    """The client address from the peer and its X-Forwarded-For headers.

    Args:
        peer: the TCP peer.
        forwarded_for: every X-Forwarded-For header value, in order.
        trusted: the proxies whose header is believed.

    Returns:
        ``peer`` if it is not trusted; else the right-most address of the
        header that is not a trusted proxy. An entry that is no address
        stops the walk: the hop that wrote it is the client then. All
        trusted: the left-most address.
    """
    if not in_networks(peer, trusted):
        return peer
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        addr = parse_address(hop)
        if addr is None:
            return client
        client = addr
        if not in_networks(addr, trusted):
            return addr
    return client


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The client address of a request (see the module docstring), as text."""
    peer_info = scope.get("client")
    peer = parse_address(peer_info[0]) if peer_info else None
    if peer is None:  # a test transport or a Unix socket: no address
        return peer_info[0] if peer_info else "unknown"
    if not trusted:
        return str(peer)
    values = [
        v.decode("latin-1")
        for k, v in scope.get("headers", ())
        if k == b"x-forwarded-for"
    ]
    return str(forwarded_client(peer, values, trusted))


def allowed(address: str, allow: Sequence[Network], deny: Sequence[Network]) -> bool:
    """Whether ``address`` passes a deny list and, if not empty, an allow list.

    An address that cannot be parsed passes only when both lists are empty.
    """
    if not allow and not deny:
        return True
    addr = parse_address(address)
    if addr is None:
        return False
    if in_networks(addr, deny):
        return False
    return not allow or in_networks(addr, allow)


class IPFilterMiddleware:
    """Refuse clients by the global allow and deny lists (403 ``ip_denied``).

    Args:
        app: the application behind.
        allow: networks that may call; empty: any.
        deny: networks refused.
        trusted: proxies whose X-Forwarded-For is believed.
    """

    def __init__(
        self,
        app: ASGIApp,
        allow: Sequence[Network],
        deny: Sequence[Network],
        trusted: Sequence[Network],
    ) -> None:
        self.app = app
        self._allow = list(allow)
        self._deny = list(deny)
        self._trusted = list(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 403."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        address = state.get(STATE_ADDRESS)
        if address is None:
            address = state[STATE_ADDRESS] = client_address(scope, self._trusted)
        if allowed(address, self._allow, self._deny):
            await self.app(scope, receive, send)
            return
        _LOGGER.info(
            "request refused address=%s path=%s: ip_denied", address, scope["path"]
        )
        body = orjson.dumps(
            error_body("ip_denied", f"address {address} may not call this API")
        )
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
