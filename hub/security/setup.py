"""Wire security into an application: middleware, context, the first admin.

Middleware order, outermost first: audit (resolves the client address and
the request id, records the request whatever happens inside), then the IP
filter, then the routes with their ``require`` dependencies.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TextIO

from fastapi import FastAPI

from hub.config import HubSettings
from hub.security.addresses import IPFilterMiddleware
from hub.security.audit import AuditMiddleware
from hub.security.context import SecurityContext
from hub.security.roles import Role
from hub.security.store import AuthStore, UserRecord

_LOGGER = logging.getLogger(__name__)

#: The environment variable of the first admin's password.
ADMIN_PASSWORD_ENV = "STREAMFLOW_ADMIN_PASSWORD"
ADMIN_NAME = "admin"


def install(app: FastAPI, store: AuthStore, settings: HubSettings) -> SecurityContext:
    """Add the security middleware and context to ``app``; create the first admin.

    The audit writer is stopped (after writing what is queued) when the
    application shuts down.

    Returns:
        The context, also in ``app.state.security``.
    """
    config = settings.auth
    ctx = SecurityContext.build(config, store, settings.data_dir)
    app.state.security = ctx
    app.add_middleware(
        IPFilterMiddleware,
        allow=config.allow_networks,
        deny=config.deny_networks,
        trusted=config.trusted_proxies,
    )
    app.add_middleware(
        AuditMiddleware, writer=ctx.audit, trusted=config.trusted_proxies
    )
    if config.enabled:
        ensure_admin(ctx)
    _close_on_shutdown(app, ctx)
    return ctx


def _close_on_shutdown(app: FastAPI, ctx: SecurityContext) -> None:
    # Wrap whatever lifespan the application has, so that other parts may
    # add theirs before or after this one.
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = (
        app.router.lifespan_context
    )

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            try:
                yield state
            finally:
                if ctx.audit is not None:
                    ctx.audit.close()

    app.router.lifespan_context = lifespan


def first_start(
    store: AuthStore, settings: HubSettings, out: TextIO | None = None
) -> bool:
    """:func:`ensure_admin` outside an application (``streamflow up``, the CLI).

    ``up`` runs the API as a child whose output goes to a log file; calling
    this first prints the generated password on the terminal instead.

    Returns:
        Whether the admin was created by this call.
    """
    if not settings.auth.enabled:
        return False
    ctx = SecurityContext.build(settings.auth, store, settings.data_dir)
    return ensure_admin(ctx, out=out)


def ensure_admin(
    ctx: SecurityContext,
    password: str | None = None,
    out: TextIO | None = None,
) -> bool:
    """On first start (no user at all), create the user ``admin``.

    The password is ``password``, else ``STREAMFLOW_ADMIN_PASSWORD``, else
    generated and printed once to ``out`` (stderr): it is never shown again.

    Returns:
        Whether the admin was created by this call.
    """
    if ctx.store.list_users():
        return False
    given = password or os.environ.get(ADMIN_PASSWORD_ENV)
    chosen = given or secrets.token_urlsafe(18)
    user = UserRecord(ADMIN_NAME, Role.ADMIN, ctx.passwords.hash(chosen))
    # Two API processes starting together: only the one that inserts prints.
    if not ctx.store.create_user(user):
        return False
    if password:
        _LOGGER.info("first admin created user=%s", ADMIN_NAME)
        return True
    if given:
        _LOGGER.info(
            "first admin created user=%s from %s", ADMIN_NAME, ADMIN_PASSWORD_ENV
        )
        return True
    stream = out if out is not None else sys.stderr
    print(
        f"streamflow: first start: created user {ADMIN_NAME!r} with password "
        f"{chosen} (shown only now; set {ADMIN_PASSWORD_ENV} to choose it)",
        file=stream,
        flush=True,
    )
    _LOGGER.info("first admin created user=%s with a generated password", ADMIN_NAME)
    return True
