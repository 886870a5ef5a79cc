"""The role and scope table."""

from __future__ import annotations

import pytest

from hub.security.roles import (
    ROLE_SCOPES,
    Role,
    Scope,
    format_scope,
    parse_scope,
    scopes_for,
)


def test_every_role_has_scopes():
    """Each role is in the table; admin has every scope."""
    assert set(ROLE_SCOPES) == set(Role)
    assert ROLE_SCOPES[Role.ADMIN] == frozenset(Scope)


@pytest.mark.parametrize(
    ("role", "scope", "granted"),
    [
        (Role.VIEWER, Scope.READ, True),
        (Role.VIEWER, Scope.ALERTS_WRITE, False),
        (Role.OPERATOR, Scope.ALERTS_WRITE, True),
        (Role.OPERATOR, Scope.USERS_ADMIN, False),
        (Role.DEVICE, Scope.READ, False),
        (Role.DEVICE, Scope.INGEST, True),
        (Role.INTEGRATION, Scope.READ, True),
        (Role.INTEGRATION, Scope.AUDIT_READ, False),
    ],
)
def test_role_grants(role, scope, granted):
    """Spot checks of the table that the README repeats."""
    assert (scope in ROLE_SCOPES[role]) is granted


def test_scopes_of_several_roles_are_their_union():
    """A client with two roles gets both roles' scopes."""
    assert scopes_for([Role.DEVICE, Role.VIEWER]) == {
        Scope.INGEST,
        Scope.READ,
        Scope.ALERTS_READ,
    }


def test_scope_text_round_trip():
    """A scope string parses back to the same set."""
    scopes = frozenset({Scope.READ, Scope.ALERTS_READ})

    assert format_scope(scopes) == "alerts:read read"
    assert parse_scope(format_scope(scopes)) == scopes
    assert parse_scope("") == frozenset()


def test_unknown_scope_refused():
    """A scope name not in the table raises, naming it."""
    with pytest.raises(ValueError, match="'root'"):
        parse_scope("read root")
