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
(:func:`hub.api.openapi_errors.document_errors`); tests/hub/api_fuzz holds the
API to it. The middlewares that refuse NUL characters and answer escaped
exceptions are in :mod:`hub.api.middleware`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

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


#: The body of every unexpected error: nothing of the cause reaches a client.
INTERNAL_ERROR = error_body("internal_error", "internal error; see the API's log")


def log_unexpected(method: str, path: str, exc: BaseException) -> None:
    _LOGGER.error("request failed method=%s path=%s", method, path, exc_info=exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log_unexpected(request.method, request.url.path, exc)
    return JSONResponse(INTERNAL_ERROR, status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape.

    Also answers unexpected errors without closing the connection
    (:class:`UnexpectedErrorMiddleware`), refuses NUL characters
    (:class:`NulFilterMiddleware`), and documents
    the shape in the app's OpenAPI document (see :func:`document_errors`),
    for every route, those included later too.
    """
    from hub.api.middleware import NulFilterMiddleware, UnexpectedErrorMiddleware
    from hub.api.openapi_errors import document_errors

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
