"""The FastAPI application of the REST API (read-only for now).

The routes live in :mod:`hub.api.routes` so that the full API (auth, writes)
can grow beside them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from hub import const
from hub.api import (
    alerts,
    audit,
    auth,
    data,
    devices,
    errors,
    ingest,
    live,
    ops,
    rules,
    users,
)
from hub.api.credentials import router as credentials_router
from hub.api.logs import router as logs_router
from hub.api.routes import router
from hub.config import HubSettings
from hub.metrics import IngestMetrics
from hub.security.setup import install as install_security
from hub.storage.base import Store

API_TITLE = "StreamFlow"
API_VERSION = "0.1.0"


def create_app(
    store: Store,
    settings: HubSettings,
    metrics: IngestMetrics | None = None,
) -> FastAPI:
    """Build the API over an open store.

    Args:
        store: the store to read from (the caller opens and closes it).
        settings: the hub's settings (the status file's folder).
        metrics: the hub's counters when the hub runs in the same process;
            otherwise /healthz reads the hub's status file in ``data_dir``.

    Returns:
        The application, to be served by uvicorn.
    """
    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        description="Devices, readings, aggregates, loss accounting and alerts "
        "of a StreamFlow hub. Times are RFC 3339; readings keep microseconds.",
        lifespan=live.lifespan,
    )
    app.state.store = store
    app.state.metrics = metrics
    status_path: Path = settings.data_dir / const.STATUS_FILE_NAME
    app.state.status_path = status_path
    errors.install(app)
    # The store is both a Store and an AuthStore (hub/storage/_*_auth.py).
    install_security(app, store, settings)  # type: ignore[arg-type]
    app.include_router(router)
    # The v1 resources: registry writes, data, HTTP ingest, rules, ops.
    app.include_router(devices.router)
    app.include_router(data.router)
    ingest.install(app, settings)
    app.include_router(rules.router)
    ops.install(app)
    app.include_router(logs_router)
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(audit.router)
    app.include_router(credentials_router)
    app.state.alert_feed = live.AlertFeed(store, settings.api_stream_poll_s)
    app.include_router(alerts.router)
    alerts.mount_page(app)
    return app
