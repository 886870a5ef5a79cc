"""Operations routes: ``GET /readyz`` and ``GET /metrics`` (Prometheus).

``/readyz`` tells a load balancer or an orchestrator whether this API
process can serve: the store answers, its schema has every migration this
version ships, and (only when :func:`install` is given one) a broker
accepts TCP connections. The API itself needs no broker (HTTP ingest
writes through the store), so by default the broker is not a check. It is
public like ``/healthz`` and answers 200 ``ready`` or 503 ``unavailable``
with the reason of each failed check.

``/metrics`` is the Prometheus text exposition of the API's own registry:
requests by method, route template and status, their durations, the audit
writer's queue, and the store's figures (read at scrape time). It needs a
token with the scope ``metrics``: Prometheus signs in as a client with
``oauth2`` (client credentials, ``scopes: [metrics]``), refreshing by
itself. ``auth.allow_networks`` applies as to every route.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.schemas_v1 import ReadyOut
from hub.security.context import SecurityContext
from hub.security.deps import require
from hub.security.roles import Scope as AuthScope
from hub.storage._migrations import MigrationKind, load_migrations, pending
from hub.storage.base import Store

router = APIRouter(tags=["health"])

#: Seconds a readiness check of the broker may take.
BROKER_TIMEOUT_S = 1.0
#: The label of requests that matched no route (bounded cardinality).
UNMATCHED = "unmatched"
_MIGRATION_DIRS: dict[str, MigrationKind] = {
    "sqlite": "sqlite",
    "timescaledb": "timescale",
}


class ApiMetrics:
    """The API's request metrics, in a registry of its own (one per app)."""

    def __init__(self, app: FastAPI) -> None:
        """Create the metrics of ``app`` and the collector of its figures."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "streamflow_api_requests",
            "API requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "streamflow_api_request_duration_seconds",
            "Time to answer an API request (to its first response byte)",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(_FiguresCollector(app))


class _FiguresCollector(Collector):
    """The audit queue and the store's figures, read at each scrape."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        ctx: SecurityContext | None = getattr(self._app.state, "security", None)
        audit = ctx.audit if ctx is not None else None
        if audit is not None:
            # TODO: the writer has no public figure of its queue; read the
            # pending count until it gets one.
            yield _gauge(
                "streamflow_api_audit_pending", "Audit records queued", audit._pending
            )
            yield _gauge(
                "streamflow_api_audit_written", "Audit records written", audit.written
            )
            yield _gauge(
                "streamflow_api_audit_dropped", "Audit records dropped", audit.dropped
            )
        store: Store = self._app.state.store
        try:
            figures = store.stats()
        except Exception:  # a scrape must answer while the store is down
            yield _gauge("streamflow_api_store_up", "Whether the store answers", 0)
            return
        yield _gauge("streamflow_api_store_up", "Whether the store answers", 1)
        for name in ("readings", "series", "devices", "gateways", "dead_letters"):
            if isinstance(figures.get(name), int):
                yield _gauge(
                    f"streamflow_store_{name}", f"Store figure {name}", figures[name]
                )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status.

    The route template (``/v1/devices/{device_id}``), never the path, is the
    label: ids in labels would grow the registry without bound.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self._observe(scope, status, started)
            await send(message)

        try:
            await self._app(scope, receive, send_status)
        except Exception:
            self._observe(scope, status, started)
            raise

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        method = str(scope.get("method", ""))
        self._metrics.requests.labels(method, template, str(status)).inc()
        self._metrics.duration.labels(method, template).observe(
            time.perf_counter() - started
        )


def install(app: FastAPI, broker: tuple[str, int] | None = None) -> None:
    """Add the routes, the request metrics and, if given, the broker check."""
    metrics = ApiMetrics(app)
    app.state.api_metrics = metrics
    app.state.ready_broker = broker
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.include_router(router)


def _check_store(store: Store) -> dict[str, str]:
    try:
        done = set(store.schema_versions())
    except Exception as exc:  # any failure means: not ready
        return {"store": f"unreachable ({type(exc).__name__})"}
    checks = {"store": "ok"}
    folder = _MIGRATION_DIRS.get(store.kind)
    if folder is None:
        checks["migrations"] = f"unknown store kind {store.kind!r}"
        return checks
    missing = [m.version for m in pending(load_migrations(folder), done)]
    checks["migrations"] = "ok" if not missing else f"pending: {missing}"
    return checks


def _check_broker(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=BROKER_TIMEOUT_S):
            return "ok"
    except OSError as exc:
        return f"unreachable ({host}:{port}: {exc.strerror or type(exc).__name__})"


def _readiness(store: Store, broker: tuple[str, int] | None) -> dict[str, str]:
    checks = _check_store(store)
    if broker is not None:
        checks["broker"] = _check_broker(*broker)
    return checks


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "a check failed"}},
)
async def readyz(request: Request) -> Any:
    """Whether this process can serve: store, migrations, broker if configured."""
    checks = await run_in_threadpool(
        _readiness, request.app.state.store, request.app.state.ready_broker
    )
    ready = all(v == "ok" for v in checks.values())
    body = ReadyOut(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    dependencies=[Depends(require(AuthScope.METRICS))],
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {
                "text/plain": {
                    "example": "# HELP streamflow_api_requests_total API requests"
                    ' answered\nstreamflow_api_requests_total{method="GET",'
                    'route="/v1/devices",status="200"} 12.0\n'
                }
            },
        }
    },
)
async def metrics(request: Request) -> Response:
    """The API's metrics for Prometheus (scope ``metrics``)."""
    api_metrics: ApiMetrics = request.app.state.api_metrics
    payload = await run_in_threadpool(generate_latest, api_metrics.registry)
    return Response(payload, media_type=CONTENT_TYPE_LATEST)
