"""The OAuth 2.0 grants of ``POST /v1/auth/token`` (RFC 6749) and revocation.

- ``password`` (section 4.3): people. Throttled (:mod:`hub.security.throttle`);
  answers an access token and a refresh token.
- ``client_credentials`` (section 4.4): systems, authenticated by HTTP Basic
  or by ``client_id``/``client_secret`` in the form (section 2.3.1); answers
  an access token only (section 4.4.3).
- ``refresh_token`` (section 6): spends the refresh token and answers a new
  pair; a token spent before revokes its whole family (RFC 6819 section
  5.2.2.3) and is audited as ``refresh_reused``.

Failed sign-ins are audited as ``sign_in_failed`` with the failure counts,
refused ones as ``sign_in_throttled``; neither record holds the password.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hub.api.errors import OAuthError
from hub.security.addresses import allowed
from hub.security.context import SecurityContext
from hub.security.passwords import hash_secret, secret_matches
from hub.security.roles import ROLE_SCOPES, Scope, format_scope, parse_scope, scopes_for
from hub.security.store import RotateOutcome, TokenFamily
from hub.security.throttle import Lockout
from hub.security.tokens import TokenError, new_family_id, new_refresh_token
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What the token endpoint answers (RFC 6749 section 5.1)."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None

    def body(self) -> dict[str, object]:
        """The JSON body."""
        out: dict[str, object] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh_token is not None:
            out["refresh_token"] = self.refresh_token
        return out


@dataclass(frozen=True, slots=True)
class Caller:
    """Where a token request comes from, for throttling and the audit."""

    address: str
    request_id: str


def _granted(allowed: frozenset[Scope], requested: str | None) -> frozenset[Scope]:
    """The scopes to grant: all allowed, or the subset asked for (section 3.3)."""
    try:
        asked = parse_scope(requested)
    except ValueError as exc:
        raise OAuthError(400, "invalid_scope", str(exc)) from None
    if not asked:
        return allowed
    if not asked <= allowed:
        extra = format_scope(asked - allowed)
        raise OAuthError(400, "invalid_scope", f"scope {extra!r} is not granted")
    return asked


def _throttled(ctx: SecurityContext, lock: Lockout, who: str | None, c: Caller) -> None:
    ctx.event(
        "sign_in_throttled",
        c.request_id,
        c.address,
        actor=who,
        by=lock.by,
        failures=lock.failures,
        retry_after_s=lock.retry_after_s,
    )
    raise OAuthError(
        429,
        "temporarily_unavailable",
        f"too many failed sign-ins; retry after {lock.retry_after_s} s",
        headers={"Retry-After": str(lock.retry_after_s)},
    )


def password_grant(
    ctx: SecurityContext,
    username: str,
    password: str,
    client_id: str | None,
    scope: str | None,
    caller: Caller,
) -> TokenGrant:
    """Sign a person in.

    Raises:
        OAuthError: ``invalid_grant`` for a wrong name or password or a
            disabled user; 429 when throttled; ``invalid_scope``.
    """
    now = now_us()
    lock = ctx.throttle.check(username, caller.address, now)
    if lock is not None:
        _throttled(ctx, lock, username, caller)
    user = ctx.store.get_user(username)
    ok = ctx.passwords.verify(user.password_hash if user else None, password)
    if user is None or not ok or user.disabled:
        reason = (
            "unknown_user"
            if user is None
            else "bad_password"
            if not ok
            else ("disabled")
        )
        counts = ctx.throttle.failed(username, caller.address, now)
        ctx.event(
            "sign_in_failed", caller.request_id, caller.address, actor=username,
            client=client_id, grant="password", reason=reason, **counts,
        )  # fmt: skip
        raise OAuthError(400, "invalid_grant", "wrong user name or password")
    ctx.throttle.succeeded(username)
    if ctx.passwords.needs_rehash(user.password_hash):
        ctx.store.update_user(username, password_hash=ctx.passwords.hash(password))
        _LOGGER.info("password rehashed user=%s: parameters changed", username)

    scopes = _granted(ROLE_SCOPES[user.role], scope)
    family = TokenFamily(
        new_family_id(), user.name, format_scope(scopes), client_id, now
    )
    refresh = new_refresh_token()
    ctx.store.create_family(
        family, hash_secret(refresh), now + ctx.config.refresh_ttl_s * _US
    )
    access = ctx.issuer.issue(user.name, user.role, scopes, client_id, family.id)
    return TokenGrant(access, ctx.issuer.access_ttl_s, format_scope(scopes), refresh)


def client_credentials_grant(
    ctx: SecurityContext,
    client_id: str,
    client_secret: str,
    scope: str | None,
    caller: Caller,
) -> TokenGrant:
    """Sign a system in.

    Raises:
        OAuthError: 401 ``invalid_client`` for a wrong id or secret or a
            disabled client; 403 ``access_denied`` from outside the client's
            networks; 429 when throttled; ``invalid_scope``.
    """
    now = now_us()
    lock = ctx.throttle.check(client_id, caller.address, now)
    if lock is not None:
        _throttled(ctx, lock, client_id, caller)
    client = ctx.store.get_client(client_id)
    ok = secret_matches(client.secret_hash if client else None, client_secret)
    if client is None or not ok or client.disabled:
        counts = ctx.throttle.failed(client_id, caller.address, now)
        ctx.event(
            "sign_in_failed", caller.request_id, caller.address, actor=client_id,
            client=client_id, grant="client_credentials",
            reason="unknown_client" if client is None else "bad_secret" if not ok
            else "disabled", **counts,
        )  # fmt: skip
        raise OAuthError(
            401,
            "invalid_client",
            "wrong client id or secret",
            headers={"WWW-Authenticate": 'Basic realm="streamflow"'},
        )
    if not allowed(caller.address, client.allow_networks, client.deny_networks):
        ctx.event(
            "sign_in_denied", caller.request_id, caller.address, actor=client_id,
            client=client_id, reason="ip_denied",
        )  # fmt: skip
        raise OAuthError(
            403, "access_denied", f"client may not sign in from {caller.address}"
        )
    ctx.throttle.succeeded(client_id)
    scopes = _granted(scopes_for(client.roles), scope)
    access = ctx.issuer.issue(client.id, client.roles[0], scopes, client.id)
    return TokenGrant(access, ctx.issuer.access_ttl_s, format_scope(scopes))


def refresh_grant(
    ctx: SecurityContext,
    refresh_token: str,
    client_id: str | None,
    scope: str | None,
    caller: Caller,
) -> TokenGrant:
    """Spend a refresh token for a new pair (see the module docstring).

    Raises:
        OAuthError: ``invalid_grant`` for an unknown, expired, revoked or
            reused token, or a user since deleted or disabled.
    """
    now = now_us()
    new = new_refresh_token()
    result = ctx.store.rotate_refresh(
        hash_secret(refresh_token),
        hash_secret(new),
        now + ctx.config.refresh_ttl_s * _US,
        now,
    )
    family = result.family
    if result.outcome is RotateOutcome.REUSED and family is not None:
        _LOGGER.warning(
            "refresh token reused user=%s family=%s: family revoked",
            family.subject,
            family.id,
        )
        ctx.event(
            "refresh_reused", caller.request_id, caller.address,
            actor=family.subject, client=family.client, family=family.id,
        )  # fmt: skip
    if result.outcome is not RotateOutcome.ROTATED or family is None:
        raise OAuthError(400, "invalid_grant", f"refresh token {result.outcome}")
    if client_id is not None and family.client not in (None, client_id):
        ctx.store.revoke_family(family.id, "wrong_client", now)
        raise OAuthError(400, "invalid_grant", "refresh token of another client")

    user = ctx.store.get_user(family.subject)
    if user is None or user.disabled:
        ctx.store.revoke_family(family.id, "user_gone", now)
        raise OAuthError(400, "invalid_grant", "the user can no longer sign in")
    # The role may have changed since the sign-in: never more than it grants.
    allowed_now = parse_scope(family.scope) & ROLE_SCOPES[user.role]
    scopes = _granted(allowed_now, scope)
    access = ctx.issuer.issue(user.name, user.role, scopes, family.client, family.id)
    return TokenGrant(access, ctx.issuer.access_ttl_s, format_scope(scopes), new)


def revoke(ctx: SecurityContext, token: str, reason: str = "revoked") -> bool:
    """Revoke the sign-in of a refresh or an access token (RFC 7009).

    Returns:
        Whether a family was revoked; unknown tokens are not an error
        (RFC 7009 section 2.2).
    """
    family = ctx.store.family_of(hash_secret(token))
    if family is None:
        try:
            claims = ctx.issuer.decode(token)
        except TokenError:
            return False
        if claims.sid is None:
            return False
        family_id = claims.sid
    else:
        family_id = family.id
    return ctx.store.revoke_family(family_id, reason, now_us())
