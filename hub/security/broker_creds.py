"""MQTT broker credentials of gateways, devices and the hub's services.

A principal logs in to the broker with a user name and a generated secret:

| kind | user name | for |
| --- | --- | --- |
| ``gateway`` | the gateway's id | an edge agent |
| ``device`` | the device's id | a sensor publishing its own telemetry |
| ``service`` | ``svc@<name>``: ``svc@hub``, ``svc@monitor``, ``svc@api`` | the hub |

A service's name has ``@`` rather than ``:`` because Mosquitto's password
file cannot hold a ``:`` in a user name (``mosquitto_passwd`` refuses it),
and ``@`` is outside the id grammar, so no gateway or device can take it.

The secret (256 random bits) is shown once, when it is issued; the store keeps
only Mosquitto's ``$7$`` hash of it (PBKDF2-HMAC-SHA512,
``$7$<iterations>$<base64 salt>$<base64 key>``, the format of Mosquitto 2's
``password_file``), so that one hash serves both brokers: the embedded amqtt
broker checks it (``hub/_amqtt_acl.py``) and ``streamflow admin
export-mosquitto`` writes it unchanged into a Mosquitto password file. The
iteration count is ``mosquitto_passwd``'s default: the secret is random, not
guessable, so key stretching would only cost time at every login.

Issuing again for the same principal rotates (the old secret stops working);
revoking keeps the record, marked, until a new secret is issued.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from protocol.topics import check_id
from protocol.validate import now_us

#: PBKDF2 iterations of the hashes made here (mosquitto_passwd's default).
PBKDF2_ITERATIONS = 101
#: Salt bytes (mosquitto_passwd uses 12).
SALT_BYTES = 12
#: What a service's user name starts with.
SERVICE_PREFIX = "svc@"
#: The hub's processes that log in to the broker.
SERVICES = ("hub", "monitor", "api")
_HASH_TAG = "$7$"


class PrincipalKind(StrEnum):
    """What logs in to the broker."""

    GATEWAY = "gateway"
    DEVICE = "device"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class BrokerCredential:
    """One principal's broker login (never the secret itself)."""

    username: str
    kind: PrincipalKind
    #: The gateway or device id, or the service's name.
    ident: str
    secret_hash: str
    created_us: int = 0
    rotated_us: int = 0
    revoked_us: int | None = None

    @property
    def active(self) -> bool:
        """Whether the brokers accept it."""
        return self.revoked_us is None


class BrokerCredStore(Protocol):
    """What broker credentials need from a store (migration 0007)."""

    def put_broker_credential(self, cred: BrokerCredential) -> BrokerCredential | None:
        """Store a new credential or rotate one of the same kind.

        Rotating replaces the hash, sets ``rotated_us`` and clears a
        revocation; ``created_us`` stays.

        Returns:
            The stored record, or None when the user name belongs to a
            principal of another kind.
        """
        ...

    def get_broker_credential(self, username: str) -> BrokerCredential | None:
        """One credential, revoked or not, or None."""
        ...

    def list_broker_credentials(
        self, kind: PrincipalKind | None = None
    ) -> list[BrokerCredential]:
        """Every credential (of one kind), ordered by user name."""
        ...

    def revoke_broker_credential(self, username: str, at_us: int) -> bool:
        """Mark a credential revoked; False if unknown or revoked before."""
        ...


def username_for(kind: PrincipalKind, ident: str) -> str:
    """The broker user name of a principal.

    Raises:
        ValueError: ``ident`` is not a valid id, or not a known service.
    """
    if kind is PrincipalKind.SERVICE:
        if ident not in SERVICES:
            raise ValueError(f"unknown service {ident!r}: expected one of {SERVICES}")
        return SERVICE_PREFIX + ident
    try:
        return check_id(ident, f"{kind} id")
    except ValueError as exc:  # TopicError is a ValueError
        raise ValueError(str(exc)) from None


def new_broker_secret() -> str:
    """A broker secret: 256 random bits, URL-safe (no ``:``, no spaces)."""
    return secrets.token_urlsafe(32)


def mosquitto_hash(
    secret: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """Mosquitto 2's ``$7$`` hash of ``secret`` (PBKDF2-HMAC-SHA512)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    salt_b64 = base64.b64encode(salt).decode()
    return f"{_HASH_TAG}{iterations}${salt_b64}${base64.b64encode(key).decode()}"


def verify_secret(stored: str | None, secret: str) -> bool:
    """Whether ``secret`` matches a ``$7$`` hash, in constant time.

    A missing or malformed hash answers False rather than raising.
    """
    if not stored or not stored.startswith(_HASH_TAG):
        return False
    parts = stored[len(_HASH_TAG) :].split("$")
    if len(parts) != 3 or not parts[0].isdigit():
        return False
    iterations = int(parts[0])
    # A hash from a file could ask for any count; refuse absurd ones.
    if not 1 <= iterations <= 10_000_000:
        return False
    try:
        salt = base64.b64decode(parts[1], validate=True)
        key = base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError):
        return False
    given = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return hmac.compare_digest(given, key)


def issue(
    store: BrokerCredStore, kind: PrincipalKind, ident: str
) -> tuple[BrokerCredential, str] | None:
    """Make (or rotate) a principal's credential.

    Returns:
        The stored record and the secret (to show once), or None when the
        user name belongs to a principal of another kind.

    Raises:
        ValueError: ``ident`` is not valid for ``kind``.
    """
    username = username_for(kind, ident)
    secret = new_broker_secret()
    at = now_us()
    record = BrokerCredential(
        username, kind, ident, mosquitto_hash(secret), created_us=at, rotated_us=at
    )
    stored = store.put_broker_credential(record)
    return None if stored is None else (stored, secret)
