"""FastAPI dependencies: who is calling, and may they.

``Depends(require(Scope.READ))`` authenticates the bearer token (RFC 6750)
and checks the scope; it returns the :class:`Principal`. A token is refused
with 401 and ``WWW-Authenticate: Bearer`` when it is missing, malformed,
signed with another key or algorithm, expired, or revoked (its sign-in was
ended); a valid token without the scope gets 403 ``insufficient_scope``.
Tokens of integration clients are also checked against the client's own
network lists (403 ``ip_denied``).

With ``auth.enabled = false`` every dependency answers the anonymous admin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from hub.api.errors import ApiError
from hub.security.addresses import STATE_ADDRESS, allowed
from hub.security.audit import STATE_PRINCIPAL
from hub.security.context import SecurityContext
from hub.security.roles import ROLE_SCOPES, Role, Scope, format_scope
from hub.security.tokens import AccessClaims, TokenError

REALM = "streamflow"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for."""

    name: str
    role: Role
    scopes: frozenset[Scope]
    kind: Literal["user", "client", "anonymous"]
    client: str | None = None
    #: The sign-in (refresh token family) of a user's token.
    sid: str | None = None
    expires_at: int | None = None


ANONYMOUS = Principal(
    name="anonymous", role=Role.ADMIN, scopes=ROLE_SCOPES[Role.ADMIN], kind="anonymous"
)


def security(request: Request) -> SecurityContext:
    """The application's :class:`SecurityContext`."""
    ctx: SecurityContext = request.app.state.security
    return ctx


def unauthenticated(message: str, error: str | None = "invalid_token") -> ApiError:
    """A 401 with its RFC 6750 challenge (no ``error`` when no token came)."""
    challenge = f'Bearer realm="{REALM}"'
    if error is not None:
        # RFC 6750 section 3: error_description is printable ASCII without
        # '"' and '\\' (it sits in a quoted string of a header).
        text = "".join(c for c in message if " " <= c <= "~" and c not in '"\\')
        challenge += f', error="{error}", error_description="{text}"'
    code = "unauthenticated" if error is None else error
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


def _forbidden_scope(needed: frozenset[Scope]) -> ApiError:
    scope = format_scope(needed)
    return ApiError(
        403,
        "insufficient_scope",
        f"this route needs the scope {scope!r}",
        headers={
            "WWW-Authenticate": f'Bearer realm="{REALM}", '
            f'error="insufficient_scope", scope="{scope}"'
        },
    )


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise unauthenticated("a bearer token is required", error=None)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("expected Authorization: Bearer <token>")
    return token.strip()


def authenticate(request: Request) -> Principal:
    """The principal of the request's bearer token.

    Raises:
        ApiError: 401 for a missing or bad token, 403 ``ip_denied`` for a
            client outside its own networks.
    """
    ctx = security(request)
    if not ctx.config.enabled:
        return ANONYMOUS
    known: Principal | None = getattr(request.state, STATE_PRINCIPAL, None)
    if known is not None:
        return known
    try:
        claims = ctx.issuer.decode(_bearer(request))
    except TokenError as exc:
        raise unauthenticated(str(exc)) from None
    address: str = getattr(request.state, STATE_ADDRESS, "unknown")
    principal = _principal(ctx, claims, address)
    setattr(request.state, STATE_PRINCIPAL, principal)
    return principal


def _principal(ctx: SecurityContext, claims: AccessClaims, address: str) -> Principal:
    # One store lookup a request, so that sign-out, revocation and deleting
    # a user or a client take effect at once, not when the token expires.
    if claims.sid is not None:
        family = ctx.store.get_family(claims.sid)
        if family is None or family.revoked_us is not None:
            raise unauthenticated("token revoked")
        kind: Literal["user", "client"] = "user"
    elif claims.client is not None and claims.client == claims.sub:
        client = ctx.store.get_client(claims.client)
        if client is None or client.disabled:
            raise unauthenticated("token revoked")
        if not allowed(address, client.allow_networks, client.deny_networks):
            raise ApiError(
                403, "ip_denied", f"client {client.id!r} may not call from {address}"
            )
        kind = "client"
    else:
        raise unauthenticated("token invalid: no sign-in")
    return Principal(
        name=claims.sub,
        role=claims.role,
        scopes=claims.scopes,
        kind=kind,
        client=claims.client,
        sid=claims.sid,
        expires_at=claims.exp,
    )


def require(*scopes: Scope) -> Callable[[Request], Principal]:
    """A dependency that authenticates and demands every scope given.

    Returns:
        A FastAPI dependency returning the :class:`Principal`.
    """
    needed = frozenset(scopes)

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if not needed <= principal.scopes:
            raise _forbidden_scope(needed - principal.scopes)
        return principal

    dependency.__name__ = f"require_{'_'.join(sorted(needed)) or 'token'}"
    return dependency


def current_actor(request: Request) -> str:
    """The name of who the request acts for (a user, a client, ``anonymous``).

    For routes that record who did something (alert acknowledgements): use
    with ``require`` for the scope, or alone for any valid token.
    """
    return authenticate(request).name
