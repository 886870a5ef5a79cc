"""Passwords (argon2id) and client secrets."""

from __future__ import annotations

from hub.security.passwords import (
    Passwords,
    hash_secret,
    new_client_secret,
    secret_matches,
)

FAST = Passwords(time_cost=1, memory_kib=1024)


def test_password_verifies():
    """The right password matches its hash; a wrong one does not."""
    stored = FAST.hash("correct horse")

    assert stored.startswith("$argon2id$")
    assert FAST.verify(stored, "correct horse") is True
    assert FAST.verify(stored, "correct hors") is False


def test_unknown_user_never_verifies():
    """No stored hash (no such user) answers False for any password."""
    assert FAST.verify(None, "") is False
    assert FAST.verify(None, "anything") is False


def test_malformed_hash_does_not_raise():
    """A broken stored hash answers False."""
    assert FAST.verify("not-a-hash", "x") is False


def test_rehash_when_parameters_change():
    """A hash made with other parameters needs rehashing; its own does not."""
    old = Passwords(time_cost=1, memory_kib=1024).hash("pw")
    stronger = Passwords(time_cost=2, memory_kib=2048)

    assert stronger.needs_rehash(old) is True
    assert stronger.verify(old, "pw") is True  # still signs in, then rehashed
    assert stronger.needs_rehash(stronger.hash("pw")) is False


def test_client_secret_hash_matches_only_itself():
    """A client secret matches its SHA-256 hash and no other secret's."""
    secret = new_client_secret()
    stored = hash_secret(secret)

    assert len(secret) >= 43  # 256 bits, URL-safe base64
    assert secret_matches(stored, secret) is True
    assert secret_matches(stored, new_client_secret()) is False
    assert secret_matches(None, secret) is False
