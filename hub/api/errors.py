"""API errors, all in one JSON shape: ``{"error": {"code": …, "message": …}}``.

A 422 also names the offending ``field``. No stack trace ever reaches a
client: unexpected errors are logged here and answered with ``internal_error``.

Codes of authentication (hub/security): 401 ``unauthenticated`` (no token)
and ``invalid_token`` (expired, forged, revoked), both with an RFC 6750
``WWW-Authenticate: Bearer`` header; 403 ``insufficient_scope`` (the role
lacks the route's scope) and ``ip_denied``; 429 ``too_many_requests`` with
``Retry-After``. The one exception to the shape: the OAuth endpoints
``/v1/auth/token`` and ``/v1/auth/revoke`` answer in RFC 6749 section 5.2's
``{"error": "invalid_grant", "error_description": …}``, which every OAuth
client library parses (:class:`OAuthError`).

The OpenAPI document names these shapes (:class:`ErrorOut`,
:class:`OAuthErrorOut`) for every error each operation can answer
(:func:`document_errors`); tests/hub/api_fuzz holds the API to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import fastapi.routing
import orjson
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LOGGER = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    429: "too_many_requests",
    422: "invalid_parameter",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    """What went wrong: a machine-readable code and a message for people."""

    code: str = Field(examples=["device_not_found"])
    message: str = Field(examples=["no device 'dev-x'"])
    field: str | None = Field(
        default=None, description="the parameter at fault (422 only)"
    )


class ErrorOut(BaseModel):
    """The body of every error but those of the OAuth endpoints."""

    error: ErrorDetail


class OAuthErrorOut(BaseModel):
    """An error of ``/v1/auth/token`` and ``/v1/auth/revoke`` (RFC 6749 5.2)."""

    error: str = Field(examples=["invalid_grant"])
    error_description: str


#: What each documented error status means, for the OpenAPI document.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "``bad_request``: the body cannot be read at all",
    401: "no token, or a bad, expired or revoked one (``WWW-Authenticate``)",
    403: "``ip_denied`` (this address may not call), or ``insufficient_scope``",
    404: "no such object (the code names it: ``device_not_found``, …)",
    409: "conflicts with the object's state (the code and message say how)",
    422: "a parameter or the body is invalid; ``field`` names it",
    429: "too many failed sign-ins (``Retry-After``)",
    500: "``internal_error``: the API's log has the details",
}


def error_responses(
    *statuses: int, model: type[BaseModel] = ErrorOut
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route or a router: these statuses, in ``model``'s shape.

    Every operation also gets the statuses it can always answer (401 and 403
    when it needs a token, 404 with path parameters, 422 with parameters,
    500) from :func:`install`; name here only the others (409, 429, …).
    """
    return {
        s: {"model": model, "description": ERROR_DESCRIPTIONS.get(s, "error")}
        for s in statuses
    }


class ApiError(Exception):
    """An error answered to the client with a status, a code and a message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        #: Response headers (WWW-Authenticate, Retry-After).
        self.headers = headers
        super().__init__(message)


class OAuthError(ApiError):
    """An error of the OAuth endpoints, answered in RFC 6749 section 5.2's shape.

    ``code`` is the RFC's ``error`` (``invalid_request``, ``invalid_client``,
    ``invalid_grant``, ``unauthorized_client``, ``unsupported_grant_type``,
    ``invalid_scope``), ``message`` its ``error_description``.
    """

    def body(self) -> dict[str, object]:
        """The RFC 6749 JSON body."""
        return {"error": self.code, "error_description": self.message}


def not_found(what: str, ident: str) -> ApiError:
    """A 404 for a device or a gateway that does not exist."""
    return ApiError(404, f"{what}_not_found", f"no {what} {ident!r}")


def invalid(field: str, message: str) -> ApiError:
    """A 422 naming the parameter at fault."""
    return ApiError(422, "invalid_parameter", f"{field}: {message}", field)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, object]:
    """The JSON body of every error."""
    error: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ApiError):
        raise exc
    if isinstance(exc, OAuthError):
        # RFC 6749 section 5.1: token answers, errors too, are never cached.
        headers = {"Cache-Control": "no-store", **(exc.headers or {})}
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.field),
        status_code=exc.status,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise exc
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ())]
    where = loc.pop(0) if loc and loc[0] in ("query", "path", "body") else None
    if err.get("type") == "json_invalid":
        loc = []  # its loc ends in the offset of the bad character
    # A body that is no object (a list, a string) is the body's fault.
    field = ".".join(loc) or ("body" if where == "body" else "request")
    message = f"{field}: {err.get('msg', 'invalid value')}"
    return JSONResponse(
        error_body("invalid_parameter", message, field), status_code=422
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    code = _HTTP_CODES.get(exc.status_code, "error")
    return JSONResponse(
        error_body(code, str(exc.detail)),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


_INTERNAL = error_body("internal_error", "internal error; see the API's log")


def _log_unexpected(method: str, path: str, exc: BaseException) -> None:
    _LOGGER.error("request failed method=%s path=%s", method, path, exc_info=exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log_unexpected(request.method, request.url.path, exc)
    return JSONResponse(_INTERNAL, status_code=500)


#: JSON bodies up to this size are read ahead for NUL characters; larger
#: ones (bulk ingest) stream on unchecked, their routes validate them.
NUL_SCAN_MAX_BYTES = 1 << 20
_NUL_MESSAGE = "must not hold a NUL character"


class NulFilterMiddleware:
    """Refuse NUL characters in a path, a query or a JSON body with a 422.

    No route means a NUL, and PostgreSQL cannot store one in text (the
    driver raises, which was a 500): refused here, once for every route,
    naming the parameter or the body field. The path is recorded with the
    NUL escaped (``%00``): the audit log, outside, keeps what it can store.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 422."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            scope["path"] = scope["path"].replace("\x00", "%00")
            await _refuse(send, "path")
            return
        field = _nul_in_query(scope.get("query_string", b""))
        if field is not None:
            await _refuse(send, field)
            return
        if _is_json(scope):
            messages, body = await _read_ahead(receive)
            field = _nul_in_json(body) if b"\\u0000" in body else None
            if field is not None:
                await _refuse(send, field)
                return
            receive = _replay(messages, receive)
        await self.app(scope, receive, send)


def _nul_in_query(query: bytes) -> str | None:
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "%00")
    return None


def _is_json(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return bool(media == b"application/json" or media.endswith(b"+json"))
    return False


async def _read_ahead(receive: Receive) -> tuple[list[Message], bytes]:
    """The first messages of the body; their bytes if that is the whole body."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, b""
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > NUL_SCAN_MAX_BYTES:
            return messages, b""
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _nul_in_json(body: bytes) -> str | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the route answers the bad JSON itself
    return _nul_at(doc, [])


def _nul_at(value: object, at: list[str]) -> str | None:
    if isinstance(value, str):
        return (".".join(at) or "body") if "\x00" in value else None
    items: list[tuple[str, object]] = []
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    for key, item in items:
        if "\x00" in key:
            return ".".join([*at, key.replace("\x00", "%00")])
        found = _nul_at(item, [*at, key])
        if found is not None:
            return found
    return None


async def _refuse(send: Send, field: str) -> None:
    body = error_body("invalid_parameter", f"{field}: {_NUL_MESSAGE}", field)
    await _send_json(send, 422, body)


async def _send_json(send: Send, status: int, doc: dict[str, object]) -> None:
    body = orjson.dumps(doc)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class UnexpectedErrorMiddleware:
    """Answer an exception that escaped a route with ``internal_error``.

    Starlette's handler of ``Exception`` answers too, but then raises again,
    and uvicorn closes the connection: a client's next request on it fails
    (connection reset). Caught here, inside, the connection stays usable;
    the handler remains for errors of the middleware outside this one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; answer 500 if it raised before answering."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # half an answer is out: nothing to mend
                raise
            _log_unexpected(scope["method"], scope["path"], exc)
            await _send_json(send, 500, _INTERNAL)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape.

    Also answers unexpected errors without closing the connection
    (:class:`UnexpectedErrorMiddleware`), refuses NUL characters
    (:class:`NulFilterMiddleware`), and documents
    the shape in the app's OpenAPI document (see :func:`document_errors`),
    for every route, those included later too.
    """
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(NulFilterMiddleware)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(generate(), app.routes)
        return app.openapi_schema or {}

    # FastAPI's own hook for a custom document: it builds it on first use,
    # when every router is included.
    app.openapi = openapi  # type: ignore[method-assign]


_REF = "#/components/schemas/"
_ERROR_MODELS: tuple[type[BaseModel], ...] = (ErrorOut, OAuthErrorOut)
BEARER_SCHEME = "bearer"


def document_errors(schema: dict[str, Any], routes: list[Any]) -> None:
    """Complete the error answers of an OpenAPI document in place.

    FastAPI documents a 422 of its own shape (``detail``), which the API never
    sends, and no other error. Here each operation gets: 403 (``ip_denied``
    can answer any request) and 500 always; 401 and the bearer scheme when
    it needs a token; 404 when it has path parameters; 422 in the one shape
    when it has parameters or a body. Any error a route declares without a
    body (``responses={409: {...}}``) gets the error shape too.
    """
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in _ERROR_MODELS:
        model_schema = model.model_json_schema(ref_template=_REF + "{model}")
        schemas.update(model_schema.pop("$defs", {}))
        schemas[model.__name__] = model_schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components.setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "an access token of POST /v1/auth/token",
    }
    for route in _api_routes(routes):
        if not route.include_in_schema:
            continue
        item = schema.get("paths", {}).get(route.path_format, {})
        for method in route.methods:
            operation = item.get(method.lower())
            if operation is not None:
                _complete(operation, route)


def _api_routes(routes: list[Any]) -> Iterator[Any]:
    # FastAPI keeps included routers as such and walks them with
    # iter_route_contexts (whose items act as the routes, router-level
    # dependencies included); older versions list the routes themselves.
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in walk(routes) if walk is not None else routes:
        if isinstance(getattr(route, "original_route", route), APIRoute):
            yield route


def _complete(operation: dict[str, Any], route: Any) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = [403, 500]
    if _needs_token(route.dependant):
        statuses.append(401)
        operation["security"] = [{BEARER_SCHEME: []}]
    if route.dependant.path_params:
        statuses.append(404)
    if "requestBody" in operation:
        statuses.append(400)  # a body that is not even text (not UTF-8)
    for status in statuses:
        responses.setdefault(str(status), {})
    for code, response in responses.items():
        if not code.isdigit() or int(code) < 400:
            continue
        content = response.get("content", {}).get("application/json", {})
        ref = content.get("schema", {}).get("$ref", "")
        if not content or ref == _REF + "HTTPValidationError":
            response["content"] = {
                "application/json": {"schema": {"$ref": _REF + "ErrorOut"}}
            }
        response["description"] = ERROR_DESCRIPTIONS.get(
            int(code), response.get("description") or "error"
        )


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _needs_token(dependant: Dependant) -> bool:
    # Imported here: hub.security.deps imports this module.
    from hub.security import deps

    def authenticates(call: Callable[..., Any]) -> bool:
        if call in (deps.authenticate, deps.current_actor):
            return True
        # require(...) makes a new closure per route.
        return getattr(call, "__qualname__", "") == "require.<locals>.dependency"

    return any(authenticates(c) for c in _calls(dependant))
