"""The network between edge agent and hub broker cut twice mid-replay.

A :class:`~tests.faults.helpers.CuttableProxy` sits between the agent and
the hub's broker (the agent's ``hub_url`` points at it). The first cut resets
every connection (RST) and refuses new ones for a seeded 2-3.5 s; the second
is a black hole: nothing is forwarded and nobody is told, so the agent has to
find out by its own keepalive (5 s here: a ping, then 5 s more without an
answer), and its reconnects are accepted and then never answered. What makes
the accounting exact: a batch leaves the agent's disk only when the hub's ack
for it arrives, and batches without an ack are sent again on reconnect or
after the ack time-out; the hub's (gateway, seq) key skips the copies.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.harness import (
    DataSlice,
    Site,
    assert_exact_accounting,
    fault_seed,
    fault_times,
    sleep_until,
)
from tests.faults.helpers import CuttableProxy
from tests.services import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.broker, pytest.mark.slow]

SEED = fault_seed(20040308)
DELIVERY_TIMEOUT_S = 30.0
#: The least keepalive the agent takes: a dead link is seen in 10 s at most.
KEEPALIVE_S = 5
#: Bound of the wait for the agent to notice the black hole by itself.
HOLE_NOTICE_TIMEOUT_S = 4 * KEEPALIVE_S

_CONNECTED = re.compile(rb"uplink connected url=\S+ ")
_DISCONNECTED = re.compile(rb"uplink disconnected url=\S+ reason=")
_CANNOT = re.compile(rb"uplink cannot connect url=\S+ ")


@pytest.fixture
def proxy(site: Site) -> Iterator[CuttableProxy]:
    """A cuttable proxy to the hub broker; the site's agent goes through it."""
    created = CuttableProxy((site.hub_broker.host, site.hub_broker.port))
    at = site.edge.argv.index("--hub-url")
    site.edge.argv[at + 1] = created.url
    site.edge.env["STREAMFLOW_EDGE_KEEPALIVE_S"] = str(KEEPALIVE_S)
    yield created
    # The site (fixture set up first) is closed after this: stop the agent
    # before its connections go, so that it does not log a last reconnect.
    site.edge.stop()
    created.close()


def _count(pattern: re.Pattern[bytes], log: bytes) -> int:
    return len(pattern.findall(log))


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_network_cut_twice_stores_exact_readings(
    site: Site, proxy: CuttableProxy, intel_slice: DataSlice, request
):
    """A refusing cut and a black hole at seeded instants lose nothing."""
    cuts = fault_times(SEED, 2, first_s=1.5, last_s=12.0, gap_s=4.5)
    refuse_s = round(random.Random(SEED).uniform(2.0, 3.5), 2)
    site.start(intel_slice.path)
    started = time.monotonic()

    # Cut 1: every connection reset, every connect refused.
    sleep_until(started, cuts[0])
    before = site.edge.run_log()
    proxy.cut("refuse")
    time.sleep(refuse_s)
    during_refuse = site.edge.run_log()[len(before) :]
    proxy.restore()
    wait_for(
        lambda: _count(_CONNECTED, site.edge.run_log()) >= 2,
        timeout=10,
        what="the agent's reconnect after the refusing cut",
    )

    # Cut 2: a black hole. Held until the agent dropped the silent session by
    # its keepalive and a reconnect of it went into the hole too.
    sleep_until(started, cuts[1])
    hole_at = time.monotonic()
    before = site.edge.run_log()
    proxy.cut("blackhole")
    wait_for(
        lambda: (
            proxy.stats["hole_client_closed"] >= 1 and proxy.stats["holed_new"] >= 1
        ),
        timeout=HOLE_NOTICE_TIMEOUT_S,
        what="the agent to notice the black hole by its keepalive",
    )
    hole_s = round(time.monotonic() - hole_at, 2)
    during_hole = site.edge.run_log()[len(before) :]
    proxy.restore()

    site.wait_delivered(intel_slice, DELIVERY_TIMEOUT_S)
    log = site.edge.all_logs()
    out = site.finish()
    print(
        f"{request.node.name}: seed={SEED} cuts_at_s={cuts} refuse_s={refuse_s}"
        f" hole_s={hole_s} proxy={dict(proxy.stats)} {out.figures(intel_slice)}"
    )

    # The refusing cut: the reset was seen at once, the connects refused.
    assert _count(_DISCONNECTED, during_refuse) == 1
    assert _count(_CANNOT, during_refuse) >= 1
    assert _count(_CONNECTED, during_refuse) == 0
    # The black hole: nothing was reset or refused, yet the agent dropped the
    # session (its keepalive) and got no answer to its reconnect.
    assert _count(_DISCONNECTED, during_hole) == 1
    assert b"reason=Keep alive timeout" in during_hole  # paho's words
    assert _count(_CONNECTED, during_hole) == 0
    assert hole_s >= KEEPALIVE_S
    # One run of the agent, connected three times: start and after each cut.
    assert (site.hub.runs, site.edge.runs) == (1, 1)
    assert _count(_CONNECTED, log) == 3
    assert _count(_DISCONNECTED, log) == 2
    assert_exact_accounting(out, intel_slice)


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1 (one thread per connection)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)
    thread.join(5)
    listener.close()


def test_proxy_resets_refuses_and_blackholes(echo_port: int):
    """The proxy's cuts are what the fault test claims: RST, refused, silence."""
    proxy = CuttableProxy(("127.0.0.1", echo_port))
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as c:
            c.sendall(b"ping")
            assert c.recv(16) == b"ping"
            proxy.cut("refuse")
            # A reset, not an orderly end of stream (b"").
            with pytest.raises(ConnectionResetError):
                c.recv(16)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()
        proxy.restore()

        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as c:
            c.sendall(b"ping")
            assert c.recv(16) == b"ping"
            proxy.cut("blackhole")
            c.sendall(b"lost")
            c.settimeout(0.5)
            with pytest.raises(TimeoutError):
                c.recv(16)  # silence: no data, no end, no reset
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as n:
                n.sendall(b"lost too")
                n.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    n.recv(16)
                assert proxy.stats["holed_new"] == 1
                proxy.restore()
                n.settimeout(2)
                with pytest.raises(ConnectionResetError):
                    n.recv(16)
            c.settimeout(2)
            with pytest.raises(ConnectionResetError):
                c.recv(16)

        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as c:
            c.sendall(b"back")
            assert c.recv(16) == b"back"
        assert proxy.stats["reset"] == 3
    finally:
        proxy.close()
