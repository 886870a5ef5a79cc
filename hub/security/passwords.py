"""Password hashing with argon2id (argon2-cffi), and client secrets.

Parameters come from the settings; a stored hash made with other parameters
is replaced at the next successful sign-in (:meth:`Passwords.needs_rehash`),
so that raising the cost reaches every account without a reset.

Client secrets are generated here with 256 bits of randomness, so that a
plain SHA-256 of them cannot be reversed by guessing and costs nothing per
request; people's passwords are guessable and get argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hub.security.config import AuthConfig


class Passwords:
    """Hash and check people's passwords.

    Args:
        time_cost: argon2 passes.
        memory_kib: argon2 memory in KiB.
    """

    def __init__(self, time_cost: int = 3, memory_kib: int = 65_536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # Checked against when a user does not exist, so that an unknown name
        # takes as long as a wrong password and does not reveal itself.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def from_config(cls, config: AuthConfig) -> Passwords:
        """The hasher the settings describe."""
        return cls(config.password_time_cost, config.password_memory_kib)

    def hash(self, password: str) -> str:
        """An argon2id hash of ``password`` in PHC string form."""
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches the hash ``stored``.

        ``stored`` None (no such user) spends the same time and answers False.
        A malformed hash answers False rather than raising.
        """
        try:
            return self._hasher.verify(stored or self._dummy, password) and (
                stored is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than these."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True


def new_client_secret() -> str:
    """A client secret: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 of a generated secret or token, hex (see the module docstring)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(stored_hash: str | None, secret: str) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``, in constant time."""
    given = hash_secret(secret)
    return hmac.compare_digest(stored_hash or "", given) and stored_hash is not None
