"""The amqtt plugin of ``broker_auth = on``: logins and topic ACLs from the store.

One plugin does both (amqtt 0.12 calls ``authenticate`` of every
``BaseAuthPlugin`` at CONNECT and ``topic_filtering`` of every
``BaseTopicPlugin`` at PUBLISH, SUBSCRIBE and before delivering each
message, ``Action.RECEIVE``), so that both share one cache of credentials.

The broker process opens the store named by the settings' ``db`` and only
reads it (``get_broker_credential``). A credential looked up is kept for
``broker_auth_cache_s`` seconds: a rotation or a revocation takes effect
within that time, for new logins *and* for clients already connected (every
topic check compares the session's password with the current hash), without
a store query per message. A store that cannot be read refuses, never
admits.

The rules are :func:`hub.security.broker_acl.rules_for`, the same that
``streamflow admin export-mosquitto`` writes for Mosquitto. An unauthorised
PUBLISH is dropped silently (MQTT 3.1.1 has no way to refuse one; amqtt
still acknowledges it), an unauthorised SUBSCRIBE gets the failure return
code 0x80.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from hub.security.broker_acl import Access, allowed, rules_for
from hub.security.broker_creds import BrokerCredential, verify_secret

_LOGGER = logging.getLogger(__name__)

_ACCESS = {
    Action.PUBLISH: Access.WRITE,
    Action.SUBSCRIBE: Access.READ,
    Action.RECEIVE: Access.READ,
}


@functools.lru_cache(maxsize=4096)
def _matches(secret_hash: str, password: str) -> bool:
    # Topic checks run for every message; PBKDF2 once per (hash, password).
    return verify_secret(secret_hash, password)


class _Credentials:
    """Credentials by user name, read from the store, kept ``ttl_s`` seconds."""

    def __init__(self, db: str, ttl_s: float) -> None:
        self._db = db
        self._ttl_s = ttl_s
        self._store: Any = None
        self._cache: dict[str, tuple[float, BrokerCredential | None]] = {}

    def _read(self, username: str) -> BrokerCredential | None:
        if self._store is None:
            from hub.storage import open_store

            self._store = open_store(self._db)
        cred: BrokerCredential | None = self._store.get_broker_credential(username)
        return cred

    async def get(self, username: str) -> BrokerCredential | None:
        """The credential of ``username`` (None: unknown or unreadable)."""
        now = time.monotonic()
        hit = self._cache.get(username)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            cred = await asyncio.to_thread(self._read, username)
        except Exception as exc:  # any store error refuses
            _LOGGER.warning("credential lookup failed user=%s error=%s", username, exc)
            return None
        self._cache[username] = (now + self._ttl_s, cred)
        return cred

    def close(self) -> None:
        """Close the store, if it was opened."""
        if self._store is not None:
            self._store.close()
            self._store = None


class StoreAclPlugin(BaseAuthPlugin, BaseTopicPlugin):  # type: ignore[misc]  # untyped
    """Admit the principals of the store and keep each to its topics."""

    @dataclass
    class Config:
        """Where the credentials are and how long a lookup is kept."""

        #: Store URL (the settings' ``db``).
        db: str = ""
        #: Seconds a credential looked up is trusted.
        cache_ttl_s: float = 2.0
        #: Filters services may read beyond sf/v1/# (the adapters').
        service_reads: list[str] = field(default_factory=list)

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        config: StoreAclPlugin.Config = self.context.config
        if not config.db:
            raise ValueError("StoreAclPlugin needs the store URL (db)")
        self._creds = _Credentials(config.db, config.cache_ttl_s)
        self._service_reads = tuple(config.service_reads)

    async def _current(self, session: Session | None) -> BrokerCredential | None:
        """The session's credential if its password still matches it."""
        if session is None or not session.username or session.password is None:
            return None
        cred = await self._creds.get(session.username)
        if cred is None or not cred.active:
            return None
        return cred if _matches(cred.secret_hash, session.password) else None

    async def authenticate(self, *, session: Session) -> bool:
        """Admit a client whose user name and secret match an active credential."""
        cred = await self._current(session)
        if cred is None:
            _LOGGER.info(
                "login refused client_id=%s user=%s",
                session.client_id,
                session.username,
            )
            return False
        # Not anonymous: amqtt queues QoS 1 messages only for such sessions
        # (hub/_amqtt_auth.py).
        session.is_anonymous = False
        return True

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        """Whether the session's principal may do ``action`` on ``topic``."""
        access = _ACCESS.get(action) if action is not None else None
        if topic is None or access is None:
            return False
        cred = await self._current(session)
        if cred is None:
            return False
        ok = allowed(rules_for(cred, self._service_reads), access, topic)
        if not ok:
            _LOGGER.info(
                "topic refused user=%s action=%s topic=%s", cred.username, action, topic
            )
        return ok

    async def close(self) -> None:
        """Close the store at broker shutdown."""
        await asyncio.to_thread(self._creds.close)
