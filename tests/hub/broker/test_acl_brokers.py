"""Logins and topic ACLs on real brokers: amqtt (embedded) and Mosquitto.

Each test runs on both. MQTT 3.1.1 has no way to refuse a PUBLISH: both
brokers acknowledge an unauthorised one and drop it, so the tests assert on
what a privileged subscriber (the hub's service login) receives. Each
forbidden message is published *before* an allowed one on the same
connection; QoS 1 keeps their order, so once the allowed one has arrived a
forbidden one that got through would have arrived too.
"""

from __future__ import annotations

import pytest

from hub.security.broker_creds import PrincipalKind, issue
from protocol.validate import now_us
from tests.hub.broker.conftest import CACHE_S, AuthBroker, Mqtt
from tests.services import wait_for


def provision(broker: AuthBroker, kind: PrincipalKind, ident: str) -> tuple[str, str]:
    """Issue a credential in the broker's registry: (username, secret)."""
    made = issue(broker.store, kind, ident)
    assert made is not None
    return made[0].username, made[1]


@pytest.fixture
def principals(auth_broker):
    """gw-a, gw-b, dev-1 and the hub's service login, then the broker started."""
    out = {
        "gw-a": provision(auth_broker, PrincipalKind.GATEWAY, "gw-a"),
        "gw-b": provision(auth_broker, PrincipalKind.GATEWAY, "gw-b"),
        "dev-1": provision(auth_broker, PrincipalKind.DEVICE, "dev-1"),
        "hub": provision(auth_broker, PrincipalKind.SERVICE, "hub"),
    }
    auth_broker.start()
    return out


def login(broker: AuthBroker, creds: tuple[str, str]) -> Mqtt:
    """A connected client (asserting the login was accepted)."""
    client = Mqtt(broker, *creds)
    assert client.connect(), f"login of {creds[0]} refused"
    return client


def refused(broker: AuthBroker, username: str | None, password: str | None) -> bool:
    """Whether the broker refuses this login (closing an accepted one)."""
    client = Mqtt(broker, username, password)
    if client.connect():
        client.close()
        return False
    return True


def wait_topics(client: Mqtt, topic: str) -> set[str]:
    """Wait until ``topic`` arrived; every topic received by then."""
    wait_for(
        lambda: any(t == topic for t, _ in client.received()),
        timeout=10,
        what=f"{topic} to arrive",
    )
    return {t for t, _ in client.received()}


def test_gateway_cannot_publish_as_another(auth_broker, principals):
    """gw-a's publishes under gw-b's uplink never reach a subscriber; its own do."""
    hub = login(auth_broker, principals["hub"])
    gw_a = login(auth_broker, principals["gw-a"])
    try:
        assert hub.subscribe("sf/v1/#") == 1
        gw_a.publish("sf/v1/gw/gw-b/up/batch", b"forged batch")
        gw_a.publish("sf/v1/gw/gw-b/up/state", b"forged state")
        gw_a.publish("sf/v1/dev/dev-1/up/telemetry", b"forged telemetry")
        gw_a.publish("sf/v1/gw/gw-a/down/ack", b"forged ack")
        gw_a.publish("sf/v1/gw/gw-a/up/batch", b"own batch")

        topics = wait_topics(hub, "sf/v1/gw/gw-a/up/batch")

        assert topics == {"sf/v1/gw/gw-a/up/batch"}
        assert hub.received() == [("sf/v1/gw/gw-a/up/batch", b"own batch")]
    finally:
        gw_a.close()
        hub.close()


def test_gateway_cannot_read_another_gateways_downlink(auth_broker, principals):
    """gw-a gets its own downlink only, whatever filter it subscribes with."""
    hub = login(auth_broker, principals["hub"])
    gw_a = login(auth_broker, principals["gw-a"])
    try:
        granted_other = gw_a.subscribe("sf/v1/gw/gw-b/down/#")
        granted_wide = gw_a.subscribe("sf/v1/gw/+/down/#")
        assert gw_a.subscribe("sf/v1/gw/gw-a/down/#") == 1
        hub.publish("sf/v1/gw/gw-b/down/ack", b"ack of gw-b")
        hub.publish("sf/v1/gw/gw-b/down/dev/m-1/alert", b"alert for gw-b")
        hub.publish("sf/v1/gw/gw-a/down/ack", b"ack of gw-a")

        topics = wait_topics(gw_a, "sf/v1/gw/gw-a/down/ack")

        assert topics == {"sf/v1/gw/gw-a/down/ack"}
        if auth_broker.kind == "amqtt":
            # amqtt refuses a filter wider than the ACL (SUBACK 0x80);
            # Mosquitto 2.0 grants it and checks each message it would
            # deliver (what arrived is asserted above, on both).
            assert (granted_other, granted_wide) == (128, 128)
    finally:
        gw_a.close()
        hub.close()


def test_device_publishes_only_its_telemetry(auth_broker, principals):
    """dev-1 reaches the hub on its own telemetry topic only, and reads nothing."""
    hub = login(auth_broker, principals["hub"])
    dev = login(auth_broker, principals["dev-1"])
    try:
        assert hub.subscribe("sf/v1/#") == 1
        dev.subscribe("sf/v1/#")
        dev.publish("sf/v1/dev/dev-2/up/telemetry", b"as dev-2")
        dev.publish("sf/v1/gw/gw-a/up/batch", b"as gw-a")
        dev.publish("sf/v1/alerts/dev-1", b"an alert")
        dev.publish("sf/v1/dev/dev-1/up/telemetry", b"own")

        topics = wait_topics(hub, "sf/v1/dev/dev-1/up/telemetry")

        assert topics == {"sf/v1/dev/dev-1/up/telemetry"}
        hub.publish("sf/v1/alerts/dev-1", b"for everyone allowed")
        wait_topics(hub, "sf/v1/alerts/dev-1")  # the hub reads its own
        assert dev.received() == []
    finally:
        dev.close()
        hub.close()


def test_wrong_unknown_and_missing_credentials_are_refused(auth_broker, principals):
    """A wrong secret, an unknown user and no user at all cannot log in."""
    username, secret = principals["gw-a"]

    assert refused(auth_broker, username, secret + "x")
    assert refused(auth_broker, username, "")
    assert refused(auth_broker, "gw-z", secret)
    assert refused(auth_broker, None, None)
    # Another principal's secret is no good either.
    assert refused(auth_broker, username, principals["gw-b"][1])
    assert not refused(auth_broker, username, secret)


def test_revoked_credential_is_refused_within_the_cache_ttl(auth_broker, principals):
    """After revocation the gateway's login is refused within seconds."""
    username, secret = principals["gw-a"]
    assert not refused(auth_broker, username, secret)

    assert auth_broker.store.revoke_broker_credential(username, now_us())
    auth_broker.sync()

    wait_for(
        lambda: refused(auth_broker, username, secret),
        timeout=CACHE_S + 5,
        what="the revoked login to be refused",
    )
    assert not refused(auth_broker, *principals["gw-b"])


def test_rotation_refuses_the_old_secret(auth_broker, principals):
    """A new secret for gw-a works at once; the old one is refused within the TTL."""
    username, old = principals["gw-a"]
    _, new = provision(auth_broker, PrincipalKind.GATEWAY, "gw-a")
    auth_broker.sync()

    wait_for(
        lambda: refused(auth_broker, username, old),
        timeout=CACHE_S + 5,
        what="the old secret to be refused",
    )
    wait_for(
        lambda: not refused(auth_broker, username, new),
        timeout=CACHE_S + 5,
        what="the new secret to be accepted",
    )


def test_connected_revoked_gateway_loses_its_topics(auth_broker, principals):
    """A gateway still connected when revoked gets nothing through any more.

    amqtt checks every publish against the current credential (cache TTL);
    Mosquitto re-applies its files to connected clients on reload.
    """
    hub = login(auth_broker, principals["hub"])
    gw_a = login(auth_broker, principals["gw-a"])
    try:
        assert hub.subscribe("sf/v1/gw/+/up/#") == 1
        gw_a.publish("sf/v1/gw/gw-a/up/batch", b"before")
        wait_topics(hub, "sf/v1/gw/gw-a/up/batch")
        assert auth_broker.store.revoke_broker_credential("gw-a", now_us())
        auth_broker.sync()

        def dropped() -> bool:
            before = len(hub.received())
            gw_a.try_publish("sf/v1/gw/gw-a/up/batch", b"after")
            hub.publish("sf/v1/gw/gw-b/up/state", b"probe")
            wait_topics(hub, "sf/v1/gw/gw-b/up/state")
            new = hub.received()[before:]
            hub.messages.clear()
            return ("sf/v1/gw/gw-a/up/batch", b"after") not in new

        wait_for(dropped, timeout=CACHE_S + 5, what="gw-a's publishes to stop")
    finally:
        gw_a.close()
        hub.close()


@pytest.mark.db
def test_amqtt_reads_credentials_from_timescaledb(tmp_path, pg_dsn):
    """With db = postgresql://…, the embedded broker checks logins there."""
    from hub.storage.timescale import TimescaleStore

    store = TimescaleStore(pg_dsn)
    store.migrate()
    broker = AuthBroker("amqtt", tmp_path, store)  # type: ignore[arg-type]
    broker.db_url = pg_dsn
    try:
        username, secret = provision(broker, PrincipalKind.GATEWAY, "gw-a")
        broker.start()

        assert not refused(broker, username, secret)
        assert refused(broker, username, secret[:-1])
        assert store.revoke_broker_credential(username, now_us())
        wait_for(
            lambda: refused(broker, username, secret),
            timeout=CACHE_S + 5,
            what="the revoked login to be refused",
        )
    finally:
        broker.stop()
        store.close()
