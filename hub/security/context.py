"""Everything the security routes and dependencies share, in one object.

:func:`hub.security.setup.install` builds one :class:`SecurityContext` per
application and keeps it in ``app.state.security``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.security.audit import AuditWriter
from hub.security.config import AuthConfig
from hub.security.passwords import Passwords
from hub.security.store import AuditRecord, AuthStore
from hub.security.throttle import Throttle
from hub.security.tokens import TokenIssuer, load_key
from protocol.validate import now_us


@dataclass(slots=True)
class SecurityContext:
    """The settings, the store and the helpers of authentication."""

    config: AuthConfig
    store: AuthStore
    issuer: TokenIssuer
    passwords: Passwords
    throttle: Throttle
    audit: AuditWriter | None

    @classmethod
    def build(
        cls, config: AuthConfig, store: AuthStore, data_dir: Path
    ) -> SecurityContext:
        """The context of one application.

        Raises:
            OSError: the generated JWT key cannot be created or read.
        """
        # Auth off: tokens are never checked, and any issued die with the
        # process (a key of its own, never the real one).
        key = load_key(config, data_dir) if config.enabled else secrets.token_bytes(32)
        issuer = TokenIssuer(key, config.access_ttl_s, config.leeway_s)
        audit = (
            AuditWriter(
                store,
                config.audit_queue_max,
                config.audit_batch_max,
                config.audit_flush_s,
            )
            if config.enabled
            else None
        )
        return cls(
            config=config,
            store=store,
            issuer=issuer,
            passwords=Passwords.from_config(config),
            throttle=Throttle(store, config),
            audit=audit,
        )

    def event(
        self,
        kind: str,
        request_id: str,
        address: str | None,
        actor: str | None = None,
        client: str | None = None,
        **detail: Any,
    ) -> None:
        """Record a security event (a failed sign-in, a reused token, ...)."""
        if self.audit is None:
            return
        self.audit.submit(
            AuditRecord(
                time_us=now_us(),
                kind=kind,
                request_id=request_id,
                actor=actor,
                client=client,
                address=address,
                path="/v1/auth/token",
                detail=detail,
            )
        )
