"""The AuthStore contract, on SQLite and on TimescaleDB."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from hub.security.roles import Role
from hub.security.store import (
    AuditQuery,
    AuditRecord,
    ClientRecord,
    RotateOutcome,
    TokenFamily,
    UserRecord,
)

S = 1_000_000
T0 = 1_800_000_000 * S


def test_user_crud(store):
    """Create, read, list, update and delete users; names are unique."""
    assert store.create_user(UserRecord("bo", Role.VIEWER, "h1")) is True
    assert store.create_user(UserRecord("al", Role.ADMIN, "h2")) is True
    assert store.create_user(UserRecord("bo", Role.ADMIN, "h3")) is False

    updated = store.update_user("bo", role=Role.OPERATOR, disabled=True)

    assert [u.name for u in store.list_users()] == ["al", "bo"]
    assert (updated.role, updated.password_hash, updated.disabled) == (
        Role.OPERATOR,
        "h1",
        True,
    )
    assert store.get_user("bo") == updated
    assert store.update_user("nobody", role=Role.ADMIN) is None
    assert store.delete_user("bo") is True
    assert store.delete_user("bo") is False
    assert store.get_user("bo") is None


def test_client_round_trip_with_networks(store):
    """A client's roles and networks come back as given."""
    client = ClientRecord(
        id="erp",
        secret_hash="f" * 64,
        roles=(Role.INTEGRATION, Role.DEVICE),
        name="the ERP",
        allow_networks=(ip_network("127.0.0.2/32"), ip_network("2001:db8::/32")),
        deny_networks=(ip_network("10.0.0.0/8"),),
    )

    assert store.create_client(client) is True
    assert store.create_client(client) is False
    got = store.get_client("erp")

    assert (got.roles, got.allow_networks, got.deny_networks) == (
        client.roles,
        client.allow_networks,
        client.deny_networks,
    )
    assert (got.name, got.secret_hash, got.disabled) == ("the ERP", "f" * 64, False)
    assert got.created_us > 0


def test_client_replace_and_delete(store):
    """replace_client overwrites the fields; delete removes the client."""
    store.create_client(ClientRecord("erp", "a" * 64))
    changed = ClientRecord("erp", "b" * 64, (Role.DEVICE,), disabled=True)

    assert store.replace_client(changed) is True
    got = store.get_client("erp")
    assert (got.secret_hash, got.roles, got.disabled) == (
        "b" * 64,
        (Role.DEVICE,),
        True,
    )
    assert store.replace_client(ClientRecord("nope", "c" * 64)) is False
    assert [c.id for c in store.list_clients()] == ["erp"]
    assert store.delete_client("erp") is True
    assert store.get_client("erp") is None


def _family(store, fid="f1", subject="ada"):
    family = TokenFamily(fid, subject, "read", "web", T0)
    store.create_family(family, f"{fid}-t1", T0 + 60 * S)
    return family


def test_rotation_spends_token_once(store):
    """A token rotates once; its successor rotates next."""
    _family(store)

    first = store.rotate_refresh("f1-t1", "f1-t2", T0 + 120 * S, T0 + S)
    second = store.rotate_refresh("f1-t2", "f1-t3", T0 + 180 * S, T0 + 2 * S)

    assert first.outcome is RotateOutcome.ROTATED
    assert (first.family.id, first.family.subject, first.family.client) == (
        "f1",
        "ada",
        "web",
    )
    assert second.outcome is RotateOutcome.ROTATED


def test_reuse_revokes_the_family(store):
    """Spending a rotated token again revokes the family and its newest token."""
    _family(store)
    store.rotate_refresh("f1-t1", "f1-t2", T0 + 120 * S, T0 + S)

    reuse = store.rotate_refresh("f1-t1", "f1-x", T0 + 120 * S, T0 + 2 * S)
    after = store.rotate_refresh("f1-t2", "f1-t3", T0 + 120 * S, T0 + 3 * S)

    assert reuse.outcome is RotateOutcome.REUSED
    assert reuse.family.revoked_reason == "reuse"
    assert reuse.family.revoked_us == T0 + 2 * S
    assert after.outcome is RotateOutcome.REVOKED


def test_expired_and_unknown_tokens(store):
    """A token past its expiry and a token never issued do not rotate."""
    _family(store)

    assert (
        store.rotate_refresh("f1-t1", "x", T0, T0 + 61 * S).outcome
        is RotateOutcome.EXPIRED
    )
    assert store.rotate_refresh("nope", "y", T0, T0).outcome is RotateOutcome.UNKNOWN


def test_revoke_family_and_subject(store):
    """revoke_family revokes once; revoke_subject every open family of a user."""
    _family(store, "f1")
    _family(store, "f2")
    _family(store, "f3", subject="bo")

    assert store.revoke_family("f1", "logout", T0) is True
    assert store.revoke_family("f1", "logout", T0) is False
    assert store.revoke_subject("ada", "user_deleted", T0) == 1
    assert store.get_family("f2").revoked_reason == "user_deleted"
    assert store.get_family("f3").revoked_us is None
    assert store.family_of("f3-t1").id == "f3"
    assert store.family_of("nope") is None


def _record(i: int, **kw) -> AuditRecord:
    fields = {
        "time_us": T0 + i * S,
        "kind": "request",
        "request_id": f"r{i}",
        "actor": "ada" if i % 2 else None,
        "role": "viewer" if i % 2 else None,
        "address": "127.0.0.2",
        "method": "GET",
        "path": "/v1/devices" if i % 3 else "/v1/auth/token",
        "status": 200 if i % 2 else 401,
        "duration_ms": 1.5,
        "detail": {"n": i},
    }
    fields.update(kw)
    return AuditRecord(**fields)


def test_audit_round_trip(store):
    """Records come back as written, oldest first, with ids."""
    records = [_record(i) for i in range(3)]
    store.record_audit(records)

    got = store.list_audit(AuditQuery(), 10)

    assert [r.request_id for r in got] == ["r0", "r1", "r2"]
    assert [(r.actor, r.status, r.path, r.detail) for r in got] == [
        (r.actor, r.status, r.path, r.detail) for r in records
    ]
    assert got[1].address == "127.0.0.2"
    assert got[1].time_us == T0 + S
    assert all(r.id is not None for r in got)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (AuditQuery(actor="ada"), ["r1", "r3", "r5"]),
        (AuditQuery(status=401), ["r0", "r2", "r4"]),
        (AuditQuery(path_prefix="/v1/auth/"), ["r0", "r3"]),
        (AuditQuery(from_us=T0 + 2 * S, to_us=T0 + 4 * S), ["r2", "r3"]),
        (AuditQuery(kind="sign_in_failed"), []),
    ],
)
def test_audit_filters(store, query, expected):
    """Each filter narrows the records it names."""
    store.record_audit([_record(i) for i in range(6)])

    assert [r.request_id for r in store.list_audit(query, 100)] == expected


def test_audit_cursor_pages_through_equal_times(store):
    """Paging by (time, id) loses and repeats nothing, even at equal times."""
    store.record_audit([_record(i, time_us=T0) for i in range(7)])
    seen: list[str] = []
    after = None
    while True:
        page = store.list_audit(AuditQuery(after=after), 3)
        if not page:
            break
        seen += [r.request_id for r in page]
        after = (page[-1].time_us, page[-1].id)

    assert sorted(seen) == sorted(f"r{i}" for i in range(7))
    assert len(seen) == 7
