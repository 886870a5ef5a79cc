"""The hub's database slower than the input: backpressure, then a full drain.

The hub reaches its fresh TimescaleDB database through a delaying TCP proxy
in the test (the shared server is never touched). For :data:`SLOW_S` seconds
of the replay every chunk the hub sends to the server waits :data:`DELAY_S`
first, so each round trip of a write (BEGIN, COPY, the keys, COMMIT) takes
that much longer and one transaction takes seconds, while the replay goes on
at its speed. What must hold:

- backpressure: the hub acks a batch only once it is committed, and the
  agent keeps at most ``inflight_batches`` batches unacked, so the backlog
  grows in the agent's disk buffer, not in the hub;
- the hub's memory stays flat: its RSS while slow stays within
  :data:`RSS_GROWTH_MAX_MIB` of its RSS before;
- once the database is fast again everything drains, and the accounting is
  exact (tests.e2e.harness.assert_exact_accounting).
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e.harness import (
    DataSlice,
    Site,
    assert_exact_accounting,
    sleep_until,
)
from tests.faults.helpers import DelayProxy, rss_mib

pytestmark = [
    pytest.mark.fault,
    pytest.mark.e2e,
    pytest.mark.broker,
    pytest.mark.db,
    pytest.mark.slow,
]

#: Each chunk from the hub to the server waits this long while slow.
DELAY_S = 0.5
#: The slow spell, seconds after the replay started (it lasts 13.5 s).
SLOW_FROM_S, SLOW_S = 1.0, 8.0
DELIVERY_TIMEOUT_S = 60.0
#: Growth of the hub's RSS allowed while the database is slow. What the hub
#: holds is bounded by construction: its queue holds at most
#: ``queue_max_messages`` (256) messages, here batches of ~5 KiB and their
#: resends after each 3 s ack time-out (~1.3 MiB at most), and the one write
#: group in progress, which grows while slow up to ``write_max_readings``
#: (20,000 readings as Python objects and COPY rows, a few MiB). Measured:
#: +3.8 to +4.0 MiB. This bound is a guard against a leak while slow; the
#: proof that the backlog waits at the edge, not in the hub, is the edge
#: backlog below (the slice's whole backlog is too small to show in RSS).
RSS_GROWTH_MAX_MIB = 8.0
#: The backlog that must pile up on the edge's disk while slow: more than
#: the agent's in-flight window can hold at the replay's rate (~236/s).
EDGE_BACKLOG_MIN = 500


class Sampler:
    """Samples the hub's RSS and the edge's buffered readings every 0.2 s."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.rss: list[tuple[float, float]] = []
        self.backlog: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            at = time.monotonic()
            self.rss.append((at, rss_mib(self.site.hub.pid)))
            buf = self.site.edge_buffer()
            self.backlog.append((at, buf.pending))

    def stop(self) -> None:
        """End the sampling."""
        self._stop.set()
        self._thread.join(5)

    def between(
        self, series: list[tuple[float, float]], start: float, end: float
    ) -> list[float]:
        """The sampled values in [start, end]."""
        return [v for at, v in series if start <= at <= end]


def proxied(url: str, port: int) -> str:
    """The store URL with the server's address replaced by the proxy's."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@127.0.0.1:{port}"))


@pytest.fixture
def db_proxy(site: Site):
    """A delaying proxy in front of the site's database, closed after."""
    parts = urlsplit(site.db_url)
    proxy = DelayProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    yield proxy
    site.close()  # the hub first, so that its connections end cleanly
    proxy.close()


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("store_url", ["timescaledb"], indirect=True)
def test_slow_database_backlog_on_edge_hub_flat_then_exact(
    site: Site, intel_slice: DataSlice, db_proxy: DelayProxy, request
):
    """A slow database: hub RSS flat, backlog on the edge's disk, all drained."""
    site.hub.env["STREAMFLOW_DB"] = proxied(site.db_url, db_proxy.port)
    site.start_hub()
    site.start_edge()
    sampler = Sampler(site)
    site.start_replay(intel_slice.path)
    started = time.monotonic()
    try:
        sleep_until(started, SLOW_FROM_S)
        # The hub has written for a second: its caches and pool are warm.
        rss_before = rss_mib(site.hub.pid)
        db_proxy.delay_s = DELAY_S
        slow_from = time.monotonic()
        sleep_until(started, SLOW_FROM_S + SLOW_S)
        db_proxy.delay_s = 0.0
        slow_to = time.monotonic()
        site.wait_delivered(intel_slice, DELIVERY_TIMEOUT_S)
    finally:
        sampler.stop()
    out = site.finish()
    rss_slow = sampler.between(sampler.rss, slow_from, slow_to)
    backlog_slow = sampler.between(sampler.backlog, slow_from, slow_to)
    print(
        f"{request.node.name}: rss_before={rss_before:.1f} "
        f"rss_slow_max={max(rss_slow):.1f} backlog_max={max(backlog_slow)} "
        f"{out.figures(intel_slice)}"
    )

    assert (site.hub.runs, site.hub.kills) == (1, 0)
    # The backlog waited on the edge's disk, and the hub stayed flat.
    assert max(backlog_slow) >= EDGE_BACKLOG_MIN
    assert max(rss_slow) - rss_before <= RSS_GROWTH_MAX_MIB
    assert_exact_accounting(out, intel_slice)
