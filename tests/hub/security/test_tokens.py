"""Access tokens: round trip, and every kind of untrustworthy token refused."""

from __future__ import annotations

import base64
import os
import stat
import time

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from hub.security.config import AuthConfig
from hub.security.deps import unauthenticated
from hub.security.roles import Role, Scope
from hub.security.tokens import (
    SECRET_FILE_NAME,
    TokenError,
    TokenIssuer,
    load_key,
)

KEY = b"k" * 64  # long enough for HS512 too (RFC 7518 section 3.2)
ISSUER = TokenIssuer(KEY, access_ttl_s=300, leeway_s=5)

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=64
)


@given(
    sub=names,
    role=st.sampled_from(list(Role)),
    scopes=st.frozensets(st.sampled_from(list(Scope))),
    client=st.none() | names,
    sid=st.none() | st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
)
def test_token_round_trip(sub, role, scopes, client, sid):
    """What is issued decodes to the same subject, role, scopes, client, sid."""
    claims = ISSUER.decode(ISSUER.issue(sub, role, scopes, client, sid))

    assert (claims.sub, claims.role, claims.scopes) == (sub, role, scopes)
    assert (claims.client, claims.sid) == (client, sid)
    assert claims.exp - claims.iat == 300
    assert len(claims.jti) == 32


def _parts(token: str) -> list[str]:
    return token.split(".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> dict:
    body = _parts(token)[1]
    return orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


@given(index=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_tampered_token_refused(index, flip):
    """Changing any byte of a token's header or claims makes it invalid."""
    token = ISSUER.issue("ada", Role.VIEWER, frozenset({Scope.READ}), sid="s" * 32)
    header, body, sig = _parts(token)
    signed = (header + "." + body).encode()
    i = index % len(signed)
    if signed[i : i + 1] == b".":
        i = (i + 1) % len(signed)
    changed = bytearray(signed)
    changed[i] = (changed[i] + flip) % 256 or 1
    forged = changed.decode("latin-1") + "." + sig

    with pytest.raises(TokenError):
        ISSUER.decode(forged)


def test_claims_changed_and_resigned_with_other_key_refused():
    """A token made admin and signed with another key: signature invalid."""
    claims = _payload(ISSUER.issue("ada", Role.VIEWER, frozenset({Scope.READ})))
    claims.update(role="admin", scope="users:admin")
    forged = jwt.encode(claims, b"x" * 64, algorithm="HS256")

    with pytest.raises(TokenError, match="signature invalid"):
        ISSUER.decode(forged)


def test_alg_none_refused():
    """An unsigned token (alg none) is refused, even with valid claims."""
    claims = _payload(ISSUER.issue("ada", Role.ADMIN, frozenset(Scope), sid="s"))
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    unsigned = f"{header}.{_b64(orjson.dumps(claims))}."

    with pytest.raises(TokenError, match="algorithm not allowed"):
        ISSUER.decode(unsigned)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_alg_with_right_key_refused(alg):
    """The right key with another HMAC algorithm is refused too."""
    claims = _payload(ISSUER.issue("ada", Role.ADMIN, frozenset(Scope), sid="s"))
    token = jwt.encode(claims, KEY, algorithm=alg)

    with pytest.raises(TokenError, match="algorithm not allowed"):
        ISSUER.decode(token)


def test_rs256_token_refused():
    """A token signed with RS256 (the key confusion attack) is refused."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    claims = _payload(ISSUER.issue("ada", Role.ADMIN, frozenset(Scope), sid="s"))

    with pytest.raises(TokenError, match="algorithm not allowed"):
        ISSUER.decode(jwt.encode(claims, pem, algorithm="RS256"))


def test_expired_token_refused_after_leeway():
    """A token past exp plus the leeway is refused as expired."""
    token = ISSUER.issue("ada", Role.VIEWER, frozenset(), now=time.time() - 306)

    with pytest.raises(TokenError, match="expired"):
        ISSUER.decode(token)


def test_token_within_leeway_accepted():
    """A token a little past exp (clock skew) still passes."""
    token = ISSUER.issue("ada", Role.VIEWER, frozenset(), now=time.time() - 302)

    assert ISSUER.decode(token).sub == "ada"


@pytest.mark.parametrize(
    "change",
    [
        {"typ": "refresh"},
        {"role": "root"},
        {"scope": "read everything"},
        {"iat": "yesterday"},
    ],
)
def test_bad_claims_refused(change):
    """Right signature, wrong claims: refused."""
    claims = _payload(ISSUER.issue("ada", Role.VIEWER, frozenset({Scope.READ})))
    claims.update(change)

    with pytest.raises(TokenError):
        ISSUER.decode(jwt.encode(claims, KEY, algorithm="HS256"))


@pytest.mark.parametrize("missing", ["sub", "exp", "jti", "typ", "role"])
def test_missing_claim_refused(missing):
    """A token without a required claim is refused."""
    claims = _payload(ISSUER.issue("ada", Role.VIEWER, frozenset({Scope.READ})))
    del claims[missing]

    with pytest.raises(TokenError):
        ISSUER.decode(jwt.encode(claims, KEY, algorithm="HS256"))


def test_key_generated_once_with_mode_0600(tmp_path):
    """Without jwt_secret, one key is made in data_dir, 0600, and reused."""
    first = load_key(AuthConfig(), tmp_path)
    second = load_key(AuthConfig(), tmp_path)

    path = tmp_path / SECRET_FILE_NAME
    assert first == second
    assert len(first) == 64
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_configured_secret_wins(tmp_path):
    """jwt_secret is the key, and no file is written."""
    key = load_key(AuthConfig(jwt_secret="s" * 40), tmp_path)

    assert key == b"s" * 40
    assert not (tmp_path / SECRET_FILE_NAME).exists()


def test_short_secret_refused():
    """A jwt_secret under 32 bytes fails at load, naming the rule."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AuthConfig(jwt_secret="short")


def test_challenge_description_is_header_safe():
    """Quotes, backslashes and non-ASCII never reach WWW-Authenticate."""
    header = unauthenticated('bad "token" \\ é\n').headers["WWW-Authenticate"]

    assert header == (
        'Bearer realm="streamflow", error="invalid_token", '
        'error_description="bad token  "'
    )
