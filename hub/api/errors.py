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
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
    loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")]
    field = ".".join(loc) or "request"
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


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _LOGGER.error(
        "request failed method=%s path=%s",
        request.method,
        request.url.path,
        exc_info=exc,
    )
    return JSONResponse(
        error_body("internal_error", "internal error; see the API's log"),
        status_code=500,
    )


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
