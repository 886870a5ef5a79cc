"""Broker credentials: the $7$ hash against mosquitto_passwd, the ACL rules, stores."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.security.broker_acl import (
    Access,
    allowed,
    filter_within,
    mosquitto_acl,
    mosquitto_passwords,
    rules_for,
)
from hub.security.broker_creds import (
    BrokerCredential,
    PrincipalKind,
    issue,
    mosquitto_hash,
    username_for,
    verify_secret,
)
from hub.storage.sqlite import SQLiteStore
from protocol.topics import matches
from tests.services import missing_service


def mosquitto_passwd() -> str:
    """Debian's mosquitto_passwd, or skip."""
    found = shutil.which("mosquitto_passwd")
    if found is None:
        missing_service("mosquitto_passwd (apt-get install mosquitto)")
    assert found is not None
    return found


def test_mosquitto_passwd_hash_is_verified_and_reproduced(tmp_path):
    """A line mosquitto_passwd writes verifies here; its salt gives the same text."""
    path = tmp_path / "passwd"
    subprocess.run(
        [mosquitto_passwd(), "-c", "-b", str(path), "gw-01", "s3cret-Ω"], check=True
    )
    username, stored = path.read_text().strip().split(":", 1)
    _, tag, iterations, salt_b64, _key = stored.split("$")

    import base64

    again = mosquitto_hash(
        "s3cret-Ω", salt=base64.b64decode(salt_b64), iterations=int(iterations)
    )
    assert (username, tag, again) == ("gw-01", "7", stored)
    assert verify_secret(stored, "s3cret-Ω")
    assert not verify_secret(stored, "s3cret-O")


def test_hash_shape_is_mosquittos_default():
    """$7$, 101 iterations, a 12-byte salt and a 64-byte key, base64."""
    import base64

    _, tag, iterations, salt, key = mosquitto_hash("x").split("$")
    assert (tag, iterations) == ("7", "101")
    assert (len(base64.b64decode(salt)), len(base64.b64decode(key))) == (12, 64)


@given(st.text(max_size=40), st.text(max_size=40))
def test_hash_round_trip(secret, other):
    """A secret verifies against its hash; any other string does not."""
    stored = mosquitto_hash(secret)
    assert verify_secret(stored, secret)
    assert verify_secret(stored, other) == (other == secret)


@given(st.text(max_size=80))
def test_malformed_hashes_answer_false(stored):
    """Nothing stored in the column makes verification raise."""
    assert verify_secret(stored, "secret") is False
    assert verify_secret(None, "secret") is False
    assert verify_secret("$7$101$!!$AAAA", "secret") is False
    assert verify_secret("$7$0$AAAA$AAAA", "secret") is False


def test_usernames():
    """The id for gateways and devices, svc@name for services; bad ones refused."""
    assert username_for(PrincipalKind.GATEWAY, "gw-01") == "gw-01"
    assert username_for(PrincipalKind.DEVICE, "mote.7") == "mote.7"
    assert username_for(PrincipalKind.SERVICE, "hub") == "svc@hub"
    for kind, ident in [
        (PrincipalKind.GATEWAY, "gw/+"),
        (PrincipalKind.DEVICE, ""),
        (PrincipalKind.SERVICE, "erp"),
    ]:
        with pytest.raises(ValueError, match=r"invalid|unknown service"):
            username_for(kind, ident)


def cred(kind: PrincipalKind, ident: str, revoked: int | None = None) -> Any:
    return BrokerCredential(
        username_for(kind, ident), kind, ident, "$7$101$AA==$AA==", revoked_us=revoked
    )


GW = cred(PrincipalKind.GATEWAY, "gw-a")
DEV = cred(PrincipalKind.DEVICE, "dev-1")
HUB = cred(PrincipalKind.SERVICE, "hub")


@pytest.mark.parametrize(
    ("who", "access", "topic", "ok"),
    [
        (GW, Access.WRITE, "sf/v1/gw/gw-a/up/batch", True),
        (GW, Access.WRITE, "sf/v1/gw/gw-a/up/state", True),
        (GW, Access.WRITE, "sf/v1/gw/gw-b/up/batch", False),
        (GW, Access.WRITE, "sf/v1/gw/gw-a/down/ack", False),
        (GW, Access.WRITE, "sf/v1/dev/gw-a/up/telemetry", False),
        (GW, Access.READ, "sf/v1/gw/gw-a/down/ack", True),
        (GW, Access.READ, "sf/v1/gw/gw-a/down/dev/+/+", True),
        (GW, Access.READ, "sf/v1/gw/gw-a/down/#", True),
        (GW, Access.READ, "sf/v1/gw/+/down/#", False),
        (GW, Access.READ, "sf/v1/gw/gw-b/down/ack", False),
        (GW, Access.READ, "sf/v1/gw/gw-a/#", False),
        (GW, Access.READ, "sf/v1/gw/gw-a/up/batch", False),
        (DEV, Access.WRITE, "sf/v1/dev/dev-1/up/telemetry", True),
        (DEV, Access.WRITE, "sf/v1/dev/dev-2/up/telemetry", False),
        (DEV, Access.WRITE, "sf/v1/gw/dev-1/up/batch", False),
        (DEV, Access.READ, "sf/v1/dev/dev-1/up/telemetry", False),
        (HUB, Access.READ, "sf/v1/#", True),
        (HUB, Access.READ, "tele/+/SENSOR", True),
        (HUB, Access.READ, "zigbee2mqtt/+", False),
        (HUB, Access.WRITE, "sf/v1/gw/gw-a/down/ack", True),
        (HUB, Access.WRITE, "tele/x/SENSOR", False),
    ],
)
def test_rules(who, access, topic, ok):
    """The ACL table of hub/security/broker_acl.py, case by case."""
    rules = rules_for(who, ["tele/+/SENSOR", "sf/v1/dev/+/up/telemetry"])
    assert allowed(rules, access, topic) is ok


_LEVEL = st.sampled_from(["a", "b", "sf", "+"])


@st.composite
def filters(draw) -> str:
    levels = draw(st.lists(_LEVEL, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


_TOPIC_LEVELS = st.lists(st.sampled_from(["a", "b", "sf", "c"]), min_size=1, max_size=6)


@given(filters(), filters(), _TOPIC_LEVELS)
def test_filter_within_means_every_match_is_covered(inner, outer, levels):
    """If inner is within outer, each topic inner matches, outer matches."""
    topic = "/".join(levels)
    if filter_within(inner, outer) and matches(inner, topic):
        assert matches(outer, topic)
    assert filter_within(inner, inner)


def test_mosquitto_files():
    """User blocks for the active credentials only; passwords as user:hash."""
    gone = cred(PrincipalKind.GATEWAY, "gw-old", revoked=5)
    creds = [DEV, GW, gone, HUB]

    assert mosquitto_passwords(creds) == (
        "dev-1:$7$101$AA==$AA==\ngw-a:$7$101$AA==$AA==\nsvc@hub:$7$101$AA==$AA==\n"
    )
    acl = mosquitto_acl(creds, ["tele/+/SENSOR"])
    body = [line for line in acl.splitlines() if line and not line.startswith("#")]
    assert body == [
        "user dev-1",
        "topic write sf/v1/dev/dev-1/up/telemetry",
        "user gw-a",
        "topic write sf/v1/gw/gw-a/up/#",
        "topic read sf/v1/gw/gw-a/down/#",
        "user svc@hub",
        "topic readwrite sf/v1/#",
        "topic read tele/+/SENSOR",
    ]
    assert "pattern" not in acl
    assert "gw-old" not in acl


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store(request, tmp_path):
    """A migrated store of each kind."""
    if request.param == "sqlite":
        opened: Any = SQLiteStore(tmp_path / "store.db")
    else:
        from hub.storage.timescale import TimescaleStore

        opened = TimescaleStore(request.getfixturevalue("pg_dsn"))
    opened.migrate()
    yield opened
    opened.close()


def issued(store: Any, kind: PrincipalKind, ident: str) -> tuple[Any, str]:
    made = issue(store, kind, ident)
    assert made is not None
    return made


def test_store_issue_rotate_revoke(store):
    """Rotation replaces the hash and keeps created; revoke marks; reissue clears."""
    first, secret1 = issued(store, PrincipalKind.GATEWAY, "gw-a")
    second, secret2 = issued(store, PrincipalKind.GATEWAY, "gw-a")
    issue(store, PrincipalKind.SERVICE, "hub")

    stored = store.get_broker_credential("gw-a")
    assert stored == second
    assert (stored.created_us, stored.active) == (first.created_us, True)
    assert stored.rotated_us > first.rotated_us
    assert verify_secret(stored.secret_hash, secret2)
    assert not verify_secret(stored.secret_hash, secret1)

    assert issue(store, PrincipalKind.DEVICE, "gw-a") is None  # another kind
    assert store.get_broker_credential("gw-a").kind is PrincipalKind.GATEWAY

    assert store.revoke_broker_credential("gw-a", 1_800_000_000_000_000)
    assert not store.revoke_broker_credential("gw-a", 1_800_000_000_000_001)
    assert not store.revoke_broker_credential("nobody", 1)
    assert store.get_broker_credential("gw-a").revoked_us == 1_800_000_000_000_000

    kinds = [(c.username, c.active) for c in store.list_broker_credentials()]
    assert kinds == [("gw-a", False), ("svc@hub", True)]
    only = store.list_broker_credentials(PrincipalKind.SERVICE)
    assert [c.username for c in only] == ["svc@hub"]

    _, secret3 = issued(store, PrincipalKind.GATEWAY, "gw-a")
    again = store.get_broker_credential("gw-a")
    assert again.active
    assert verify_secret(again.secret_hash, secret3)
    assert store.get_broker_credential("gw-b") is None
