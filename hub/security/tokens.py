"""Access tokens (signed JWTs, PyJWT) and refresh tokens (opaque).

An access token is an HS256 JWT with the claims ``sub`` (user name or client
id), ``role``, ``scope`` (space-separated, RFC 8693 section 4.2), ``client``
(the OAuth client it was issued to, if any), ``sid`` (the refresh token
family, so that sign-out ends it at once), ``iat``, ``exp``, ``jti`` and
``typ`` (``access``). Decoding names the one algorithm allowed, so that a
token signed with ``none``, RS256 or any other algorithm is refused
(RFC 8725 section 3.1), and a small leeway absorbs clock skew.

A refresh token is ``secrets.token_urlsafe`` and only its SHA-256 is stored,
with a family id; see :mod:`hub.security.store` for rotation.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

from hub.security.config import MIN_SECRET_BYTES, AuthConfig
from hub.security.roles import Role, Scope, format_scope, parse_scope

_LOGGER = logging.getLogger(__name__)

ALGORITHM = "HS256"
ACCESS_TYP = "access"
#: The file in data_dir that keeps the generated key.
SECRET_FILE_NAME = "jwt_secret"
_REQUIRED = ["sub", "role", "scope", "iat", "exp", "jti", "typ"]


class TokenError(Exception):
    """An access token that cannot be trusted; the message says why."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says."""

    sub: str
    role: Role
    scopes: frozenset[Scope]
    client: str | None
    sid: str | None
    iat: int
    exp: int
    jti: str


def load_key(config: AuthConfig, data_dir: Path) -> bytes:
    """The HS256 key: ``jwt_secret``, else the one kept in ``data_dir``.

    The file is created once with mode 0600 (``O_EXCL``, so that two API
    processes starting together end up with the same key).

    Raises:
        OSError: the file cannot be created or read.
        ValueError: the file holds a key shorter than 32 bytes.
    """
    if config.jwt_secret is not None:
        return config.jwt_secret.get_secret_value().encode()
    path = data_dir / SECRET_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    _LOGGER.info("jwt key generated path=%s", path)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    # The other process may still be writing it: wait briefly for 64 digits.
    for _ in range(50):
        key = path.read_bytes().strip()
        if len(key) >= MIN_SECRET_BYTES:
            break
        time.sleep(0.01)
    else:
        raise ValueError(f"{str(path)!r} holds no key of {MIN_SECRET_BYTES}+ bytes")
    if path.stat().st_mode & 0o077:
        _LOGGER.warning("jwt key readable by others path=%s: chmod 600 it", path)
    return key


class TokenIssuer:
    """Sign and check access tokens with one key.

    Args:
        key: the HS256 key.
        access_ttl_s: lifetime of the tokens issued.
        leeway_s: clock skew tolerated on ``exp`` and ``iat``.
    """

    def __init__(self, key: bytes, access_ttl_s: int, leeway_s: float) -> None:
        self._key = key
        self.access_ttl_s = access_ttl_s
        self._leeway = leeway_s

    def issue(
        self,
        sub: str,
        role: Role,
        scopes: frozenset[Scope],
        client: str | None = None,
        sid: str | None = None,
        now: float | None = None,
    ) -> str:
        """A signed access token for ``sub``."""
        iat = int(time.time() if now is None else now)
        claims: dict[str, object] = {
            "sub": sub,
            "role": str(role),
            "scope": format_scope(scopes),
            "client": client,
            "sid": sid,
            "iat": iat,
            "exp": iat + self.access_ttl_s,
            "jti": uuid.uuid4().hex,
            "typ": ACCESS_TYP,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def decode(self, token: str) -> AccessClaims:
        """Check a token's signature, algorithm, times and claims.

        Raises:
            TokenError: the token is malformed, signed with another key or
                algorithm, expired, or lacks a claim.
        """
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                leeway=self._leeway,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError("token algorithm not allowed") from None
        except jwt.InvalidSignatureError:
            raise TokenError("token signature invalid") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"token invalid: {exc}") from None
        return _claims(claims)


def _claims(claims: dict[str, object]) -> AccessClaims:
    if claims.get("typ") != ACCESS_TYP:
        raise TokenError("not an access token")
    try:
        role = Role(str(claims["role"]))
        scopes = parse_scope(str(claims["scope"]))
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise TypeError("iat and exp must be integers")
    except (ValueError, TypeError) as exc:
        raise TokenError(f"token invalid: {exc}") from None
    client, sid = claims.get("client"), claims.get("sid")
    return AccessClaims(
        sub=str(claims["sub"]),
        role=role,
        scopes=scopes,
        client=client if isinstance(client, str) else None,
        sid=sid if isinstance(sid, str) else None,
        iat=iat,
        exp=exp,
        jti=str(claims["jti"]),
    )


def new_refresh_token() -> str:
    """An opaque refresh token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_family_id() -> str:
    """The id of a new refresh token family (one sign-in)."""
    return uuid.uuid4().hex
