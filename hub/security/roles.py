"""Roles and the scopes each grants: the one table of who may do what.

Routes ask for a scope (:func:`hub.security.deps.require`), never for a
role, so that a role's rights change here and nowhere else. An access token
carries the scopes of its role (narrowed by the ``scope`` asked for at the
token endpoint, RFC 6749 section 3.3).

| role | scopes |
| --- | --- |
| admin | every scope |
| operator | read, alerts:read, alerts:write, devices:write, rules:write |
| viewer | read, alerts:read |
| device | ingest |
| integration | read, ingest, metrics |
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    """Who a user or an integration client is."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
    DEVICE = "device"
    INTEGRATION = "integration"


class Scope(StrEnum):
    """What an access token allows."""

    #: Devices, readings, aggregates, gateways and the loss accounting.
    READ = "read"
    #: Alerts and their history.
    ALERTS_READ = "alerts:read"
    #: Acknowledge, silence and resolve alerts; edit alert rules.
    ALERTS_WRITE = "alerts:write"
    #: Send readings over HTTP.
    INGEST = "ingest"
    #: Users and integration clients.
    USERS_ADMIN = "users:admin"
    #: The audit log and its export.
    AUDIT_READ = "audit:read"
    #: Register, change and delete devices and gateways.
    DEVICES_WRITE = "devices:write"
    #: Create, change and delete processor rules (reading them is ``read``).
    RULES_WRITE = "rules:write"
    #: Scrape ``/metrics`` (Prometheus, as a client asking for this scope).
    METRICS = "metrics"


ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset(Scope),
    Role.OPERATOR: frozenset(
        {
            Scope.READ,
            Scope.ALERTS_READ,
            Scope.ALERTS_WRITE,
            Scope.DEVICES_WRITE,
            Scope.RULES_WRITE,
        }
    ),
    Role.VIEWER: frozenset({Scope.READ, Scope.ALERTS_READ}),
    Role.DEVICE: frozenset({Scope.INGEST}),
    Role.INTEGRATION: frozenset({Scope.READ, Scope.INGEST, Scope.METRICS}),
}


def scopes_for(roles: Iterable[Role]) -> frozenset[Scope]:
    """Every scope that any of ``roles`` grants."""
    out: set[Scope] = set()
    for role in roles:
        out |= ROLE_SCOPES[role]
    return frozenset(out)


def parse_scope(text: str | None) -> frozenset[Scope]:
    """The scopes of an RFC 6749 ``scope`` parameter (space-separated).

    Raises:
        ValueError: a name is not a known scope.
    """
    out: set[Scope] = set()
    for name in (text or "").split():
        try:
            out.add(Scope(name))
        except ValueError:
            raise ValueError(f"unknown scope {name!r}") from None
    return frozenset(out)


def format_scope(scopes: Iterable[Scope]) -> str:
    """Scopes as one space-separated string, sorted, for tokens and answers."""
    return " ".join(sorted(str(s) for s in scopes))
