"""Client addresses: X-Forwarded-For and the allow and deny lists."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.security.addresses import (
    allowed,
    forwarded_client,
    in_networks,
    parse_address,
)

TRUSTED = [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]
trusted_v4 = st.integers(0, 2**24 - 1).map(lambda n: IPv4Address(0x0A000000 + n))
untrusted_v4 = (
    st.integers(0, 2**32 - 1)
    .map(IPv4Address)
    .filter(lambda a: not in_networks(a, TRUSTED))
)
any_v4 = trusted_v4 | untrusted_v4


@given(peer=untrusted_v4, hops=st.lists(any_v4, max_size=5))
def test_untrusted_peer_is_the_client(peer, hops):
    """From an untrusted peer the header is ignored, whatever it says."""
    header = ", ".join(map(str, hops))

    assert forwarded_client(peer, [header], TRUSTED) == peer


@given(
    peer=trusted_v4,
    left=st.lists(any_v4, max_size=4),
    client=untrusted_v4,
    proxies=st.lists(trusted_v4, max_size=4),
)
def test_rightmost_untrusted_hop_is_the_client(peer, left, client, proxies):
    """Behind trusted proxies, the right-most untrusted address is the client.

    Whatever the client wrote to its left (spoofed hops) changes nothing.
    """
    hops = [*left, client, *proxies]
    header = ",".join(map(str, hops))

    assert forwarded_client(peer, [header], TRUSTED) == client


@given(peer=trusted_v4, hops=st.lists(trusted_v4, min_size=1, max_size=4))
def test_all_trusted_gives_leftmost(peer, hops):
    """A chain of trusted proxies only: the left-most address."""
    assert forwarded_client(peer, [",".join(map(str, hops))], TRUSTED) == hops[0]


@given(
    peer=trusted_v4,
    hops=st.lists(any_v4, min_size=1, max_size=6),
    split=st.integers(0, 6),
)
def test_several_headers_read_as_one_list(peer, hops, split):
    """Two X-Forwarded-For headers mean the same as one joined by a comma."""
    first, second = hops[:split], hops[split:]
    one = forwarded_client(peer, [",".join(map(str, hops))], TRUSTED)
    two = forwarded_client(
        peer, [",".join(map(str, first)), ",".join(map(str, second))], TRUSTED
    )

    assert one == two


@given(garbage=st.text(max_size=30))
def test_garbage_header_never_raises(garbage):
    """Any header text yields an address: the peer or one parsed from it."""
    peer = IPv4Address("10.0.0.1")

    result = forwarded_client(peer, [garbage], TRUSTED)

    assert result == peer or str(result) in garbage or result.version in (4, 6)


@pytest.mark.parametrize(
    ("header", "client"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("198.51.100.1, 203.0.113.9", "203.0.113.9"),
        ("203.0.113.9, 10.1.1.1", "203.0.113.9"),
        ("not-an-ip, 10.1.1.1", "10.1.1.1"),
        ("203.0.113.9:4711", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("", "10.0.0.1"),
    ],
)
def test_forwarded_examples(header, client):
    """Worked examples, peer 10.0.0.1 trusted."""
    assert str(forwarded_client(ip_address("10.0.0.1"), [header], TRUSTED)) == client


def test_ipv4_mapped_ipv6_is_ipv4():
    """::ffff:127.0.0.2 counts as 127.0.0.2 for the lists."""
    assert parse_address("::ffff:127.0.0.2") == IPv4Address("127.0.0.2")


@pytest.mark.parametrize(
    ("address", "allow", "deny", "ok"),
    [
        ("127.0.0.2", [], [], True),
        ("127.0.0.2", ["127.0.0.2/32"], [], True),
        ("127.0.0.3", ["127.0.0.2/32"], [], False),
        ("127.0.0.3", [], ["127.0.0.3"], False),
        ("127.0.0.3", ["127.0.0.0/8"], ["127.0.0.3"], False),
        ("::1", ["127.0.0.0/8"], [], False),
        ("::1", ["::1"], [], True),
        ("testclient", [], [], True),
        ("testclient", ["127.0.0.0/8"], [], False),
    ],
)
def test_allowed(address, allow, deny, ok):
    """Deny wins; a non-empty allow list admits only its networks."""
    allow_n = [ip_network(n) for n in allow]
    deny_n = [ip_network(n) for n in deny]

    assert allowed(address, allow_n, deny_n) is ok
