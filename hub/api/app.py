"""The FastAPI application of the REST API (read-only for now).

The routes live in :mod:`hub.api.routes` so that the full API (auth, writes)
can grow beside them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from hub import const
from hub.api import errors
from hub.api.routes import router
from hub.config import HubSettings
from hub.metrics import IngestMetrics
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
    # TODO: authentication and roles (the secured API release); the routes are
    # read-only and bound to 127.0.0.1 by default until then.
    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        description="Devices, readings, aggregates and loss accounting of a "
        "StreamFlow hub. Times are RFC 3339; readings keep microseconds.",
    )
    app.state.store = store
    app.state.metrics = metrics
    status_path: Path = settings.data_dir / const.STATUS_FILE_NAME
    app.state.status_path = status_path
    errors.install(app)
    app.include_router(router)
    return app
