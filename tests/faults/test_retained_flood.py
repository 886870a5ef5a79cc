"""Thousands of retained messages, delivered again on every reconnect.

A broker sends every retained message matching a filter to each SUBSCRIBE
(MQTT 3.1.1 §3.3.1.3), and the hub and the edge agent subscribe again on
every connect; so a broker full of retained messages floods them each time
they reconnect. Retained here, before anything subscribes:

- on the hub's broker: 2,000 valid plain-sensor readings (fixed times, so a
  second copy is a duplicate), 500 messages that are not JSON and 500 JSON
  values that are not objects, on ``sf/v1/dev/+/up/telemetry``;
- on the gateway's local broker: 1,000 valid readings and 500 non-JSON
  messages on the agent's input filter.

The hub's broker is restarted twice and the local broker once, each after the
previous flood was taken in full, so the hub takes its flood three times and
the agent its flood twice. Then: the hub ran once and never shed; the store
holds each valid reading once (the copies counted as duplicates); each
delivery of a bad message is one reject of its reason, at the hub and at the
edge; and the hub's RSS after the second and third floods is within
:data:`RSS_GROWTH_MAX_MIB` of what it was after the first.
"""

from __future__ import annotations

import time

import pytest

from protocol import topics
from tests.e2e.harness import Site
from tests.faults.helpers import Publisher, finish_without_replay, rss_mib
from tests.services import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.broker, pytest.mark.slow]

HUB_VALID, HUB_NOT_JSON, HUB_NOT_OBJECT = 2000, 500, 500
HUB_FLOOD = HUB_VALID + HUB_NOT_JSON + HUB_NOT_OBJECT
EDGE_VALID, EDGE_NOT_JSON = 1000, 500
EDGE_FLOOD = EDGE_VALID + EDGE_NOT_JSON
HUB_FLOODS, EDGE_FLOODS = 3, 2
#: A fixed time for the flood's readings (an hour ago, in ms), so that each
#: redelivered copy is the same (series, ts) again.
T0_MS = (time.time_ns() // 1_000_000) - 3_600_000
#: Growth of the hub's RSS allowed from after its first flood to after its
#: third. The queue between the MQTT client and the writer holds at most
#: ``queue_max_messages`` (256) messages, here of under 100 bytes, and a
#: write group is freed after its commit; what a flood leaves behind is the
#: store's series and device caches and the log limiter's keys, filled by
#: the first flood. Anything kept per message would grow with the 6,000
#: messages of the next two floods: 6 MiB at 1 KiB each. Measured: +0.1 to
#: +0.8 MiB from flood 1 to flood 3, +4.3 MiB once (allocator slack).
RSS_GROWTH_MAX_MIB = 8.0
FLOOD_TIMEOUT_S = 40.0


def retain_floods(site: Site) -> None:
    """Publish the retained messages on both brokers."""
    hub = Publisher(site.hub_broker)
    try:
        for i in range(HUB_VALID):
            hub.publish(
                topics.telemetry(f"flood-h-{i:04d}"),
                {"temperature": float(i), "ts": T0_MS + i},
                retain=True,
            )
        for i in range(HUB_NOT_JSON):
            hub.publish(topics.telemetry(f"flood-nj-{i:04d}"), b"{oops", retain=True)
        for i in range(HUB_NOT_OBJECT):
            hub.publish(topics.telemetry(f"flood-no-{i:04d}"), b"[1, 2]", retain=True)
    finally:
        hub.close()
    local = Publisher(site.local)
    try:
        for i in range(EDGE_VALID):
            local.publish(
                topics.telemetry(f"flood-e-{i:04d}"),
                {"temperature": float(i), "ts": T0_MS + i},
                retain=True,
            )
        for i in range(EDGE_NOT_JSON):
            local.publish(topics.telemetry(f"flood-enj-{i:04d}"), b"{", retain=True)
    finally:
        local.close()


def hub_took(site: Site, floods: int) -> bool:
    """Whether the hub took ``floods`` floods in full, from its status file."""
    site.sample_hub()
    counters = site.hub_counters.get(site.hub.pid or -1, {})
    return (
        counters.get("messages", 0) >= floods * HUB_FLOOD
        and sum(counters.get("rejects", {}).values())
        == floods * (HUB_NOT_JSON + HUB_NOT_OBJECT)
        and counters.get("queue_depth") == 0
    )


def wait_flood_taken(site: Site, floods: int) -> None:
    """Wait until the hub took ``floods`` floods and every valid reading is in."""
    valid = HUB_VALID + EDGE_VALID
    wait_for(
        lambda: hub_took(site, floods) and site.stored_count() >= valid,
        timeout=FLOOD_TIMEOUT_S,
        interval=0.2,
        what=f"flood {floods} at the hub, {valid} readings stored",
    )

    def edge_idle() -> bool:
        buf = site.edge_buffer()
        return buf.pending == buf.batches == 0

    wait_for(edge_idle, timeout=FLOOD_TIMEOUT_S, interval=0.2, what="edge idle")


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_retained_flood_on_reconnects_counted_stored_once_memory_flat(
    site: Site, request
):
    """Three floods at the hub, two at the edge: counted, stored once, RSS flat."""
    retain_floods(site)
    site.start_hub()
    site.start_edge()
    # Besides the floods the hub takes the agent's batches and states.
    wait_flood_taken(site, 1)
    rss = [rss_mib(site.hub.pid)]

    site.local.restart()  # the agent's second flood
    site.hub_broker.restart()  # the hub's second
    wait_flood_taken(site, 2)
    rss.append(rss_mib(site.hub.pid))
    time.sleep(2.5)  # one status period: the edge's copies are counted
    site.hub_broker.restart()  # the hub's third
    wait_flood_taken(site, 3)
    rss.append(rss_mib(site.hub.pid))
    assert site.hub.running
    out = finish_without_replay(site, EDGE_FLOODS * EDGE_FLOOD)
    hub_log = site.hub.all_logs()
    counters = out.hub_counters[max(out.hub_counters)]
    print(f"{request.node.name}: rss_mib={[round(r, 1) for r in rss]} "
          f"counters={ {k: counters[k] for k in ('messages', 'rejects', 'shed')} } "
          f"dups={out.hub_duplicates}")  # fmt: skip

    # The floods were taken as many times as the clients subscribed.
    assert hub_log.count(b"subscriptions ready") == HUB_FLOODS
    assert site.edge.all_logs().count(b"local subscriptions ready") == EDGE_FLOODS
    assert (site.hub.runs, site.hub.kills, len(out.hub_counters)) == (1, 0, 1)
    assert sum(counters["shed"].values()) == 0
    # Each valid reading once, the right value at the right time.
    expected = sorted(
        [(f"flood-h-{i:04d}", "temperature", (T0_MS + i) * 1000, float(i))
         for i in range(HUB_VALID)]
        + [(f"flood-e-{i:04d}", "temperature", (T0_MS + i) * 1000, float(i))
           for i in range(EDGE_VALID)]
    )  # fmt: skip
    assert out.rows == expected
    assert out.total == HUB_VALID + EDGE_VALID
    # Every delivery of a bad message is one reject of its reason.
    assert counters["rejects"] == {
        "invalid_json": HUB_FLOODS * HUB_NOT_JSON,
        "payload_not_object": HUB_FLOODS * HUB_NOT_OBJECT,
    }
    assert out.edge.rejected == {"invalid_json": EDGE_FLOODS * EDGE_NOT_JSON}
    # The gateway's second copies are duplicates, stored once.
    assert out.hub_received == EDGE_VALID
    assert out.hub_duplicates == (EDGE_FLOODS - 1) * EDGE_VALID
    assert out.edge.acked_readings == EDGE_FLOODS * EDGE_VALID
    assert (out.edge.pending, out.edge.batches, out.edge.dropped) == (0, 0, {})
    # Memory: flat from the first flood to the third.
    assert rss[-1] - rss[0] <= RSS_GROWTH_MAX_MIB
