"""The OAuth 2.0 routes: token, revoke, logout, me.

``POST /v1/auth/token`` and ``POST /v1/auth/revoke`` take
``application/x-www-form-urlencoded`` bodies (RFC 6749 section 4.3.2, RFC
7009 section 2.1) and answer errors in RFC 6749's shape; the grants
themselves live in :mod:`hub.security.grants`. The password checks (argon2,
tens of milliseconds) run in the thread pool, never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from hub.api._time import format_us
from hub.api.errors import (
    ERROR_DESCRIPTIONS,
    OAuthError,
    OAuthErrorOut,
    error_responses,
)
from hub.security.addresses import STATE_ADDRESS
from hub.security.audit import STATE_REQUEST_ID, STATE_WHO
from hub.security.deps import Principal, authenticate, security
from hub.security.grants import (
    Caller,
    TokenGrant,
    client_credentials_grant,
    password_grant,
    refresh_grant,
    revoke,
)
from protocol.validate import now_us

router = APIRouter(prefix="/v1/auth", tags=["auth"])

_FORM = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_GRANTS = ("password", "client_credentials", "refresh_token")

#: The form bodies, for the OpenAPI document (the routes read the form
#: themselves, to answer its errors in RFC 6749's shape).
_TOKEN_FORM = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": list(_GRANTS)},
        "username": {"type": "string", "description": "grant_type=password"},
        "password": {"type": "string", "description": "grant_type=password"},
        "client_id": {"type": "string"},
        "client_secret": {
            "type": "string",
            "description": "grant_type=client_credentials, or HTTP Basic",
        },
        "refresh_token": {
            "type": "string",
            "description": "grant_type=refresh_token",
        },
        "scope": {"type": "string", "examples": ["read alerts:read"]},
    },
}
_REVOKE_FORM = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": {"type": "string", "description": "a refresh or access token"},
        "token_type_hint": {
            "type": "string",
            "enum": ["refresh_token", "access_token"],
        },
    },
}


def _form_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {_FORM: {"schema": schema}},
        }
    }


_OAUTH_ERRORS = error_responses(400, model=OAuthErrorOut)
_TOKEN_ERRORS = {
    **error_responses(400, 401, 429, model=OAuthErrorOut),
    403: {
        # access_denied (a client outside its networks) is RFC 6749's shape,
        # ip_denied (the API's lists, before any route) the API's own.
        "description": ERROR_DESCRIPTIONS[403],
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/OAuthErrorOut"},
                        {"$ref": "#/components/schemas/ErrorOut"},
                    ]
                }
            }
        },
    },
}


class TokenOut(BaseModel):
    """An access token, and a refresh token for people (RFC 6749 section 5.1)."""

    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(description="seconds the access token lives")
    scope: str = Field(examples=["alerts:read read"])
    refresh_token: str | None = Field(
        default=None, description="spend it once at grant_type=refresh_token"
    )


class MeOut(BaseModel):
    """Who the token belongs to."""

    name: str
    role: str
    kind: str = Field(description="user, client or anonymous")
    scopes: list[str]
    client: str | None
    expires_at: str | None = Field(description="RFC 3339, when the token expires")


async def _form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != _FORM:
        raise OAuthError(400, "invalid_request", f"expected a body of {_FORM}")
    return await request.form()


def _field(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    # RFC 6749 section 3.2: parameters must not be repeated.
    if len(values) > 1:
        raise OAuthError(400, "invalid_request", f"{name} given more than once")
    value = values[0] if values else None
    if isinstance(value, str) and "\x00" in value:
        # No name, secret or token holds one; PostgreSQL cannot look it up.
        raise OAuthError(400, "invalid_request", f"{name} holds a NUL character")
    return value if isinstance(value, str) and value != "" else None


def _required(form: FormData, name: str) -> str:
    value = _field(form, name)
    if value is None:
        raise OAuthError(400, "invalid_request", f"missing {name}")
    return value


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(
            400, "invalid_request", "malformed Basic credentials"
        ) from None
    user, sep, secret = decoded.partition(":")
    if not sep or "\x00" in decoded:
        raise OAuthError(400, "invalid_request", "malformed Basic credentials")
    # RFC 6749 section 2.3.1: both parts are form-urlencoded first.
    return unquote(user.replace("+", " ")), unquote(secret.replace("+", " "))


def _client_credentials(request: Request, form: FormData) -> tuple[str, str]:
    basic = _basic(request)
    in_form = _field(form, "client_secret")
    if basic is not None and in_form is not None:
        raise OAuthError(400, "invalid_request", "client credentials given twice")
    if basic is not None:
        return basic
    return _required(form, "client_id"), _required(form, "client_secret")


def _caller(request: Request) -> Caller:
    state = request.state
    return Caller(
        address=getattr(state, STATE_ADDRESS, "unknown"),
        request_id=getattr(state, STATE_REQUEST_ID, ""),
    )


@router.post(
    "/token",
    response_model=TokenOut,
    responses=_TOKEN_ERRORS,
    openapi_extra=_form_body(_TOKEN_FORM),
)
async def token(request: Request) -> Any:
    """Issue tokens: ``grant_type`` password, client_credentials or refresh_token."""
    ctx = security(request)
    form = await _form(request)
    grant_type = _required(form, "grant_type")
    scope = _field(form, "scope")
    caller = _caller(request)
    grant: TokenGrant
    if grant_type == "password":
        username = _required(form, "username")
        setattr(request.state, STATE_WHO, username)
        password = _required(form, "password")
        grant = await run_in_threadpool(
            password_grant,
            ctx,
            username,
            password,
            _field(form, "client_id"),
            scope,
            caller,
        )
    elif grant_type == "client_credentials":
        client_id, secret = _client_credentials(request, form)
        setattr(request.state, STATE_WHO, client_id)
        grant = await run_in_threadpool(
            client_credentials_grant, ctx, client_id, secret, scope, caller
        )
    elif grant_type == "refresh_token":
        grant = await run_in_threadpool(
            refresh_grant,
            ctx,
            _required(form, "refresh_token"),
            _field(form, "client_id"),
            scope,
            caller,
        )
    else:
        raise OAuthError(
            400,
            "unsupported_grant_type",
            f"grant_type {grant_type!r}: expected one of {', '.join(_GRANTS)}",
        )
    return JSONResponse(grant.body(), headers=_NO_STORE)


@router.post(
    "/revoke",
    status_code=200,
    response_class=Response,
    responses=_OAUTH_ERRORS,
    openapi_extra=_form_body(_REVOKE_FORM),
)
async def revoke_token(request: Request) -> Response:
    """Revoke a refresh or access token's sign-in (RFC 7009); 200 even if unknown."""
    ctx = security(request)
    form = await _form(request)
    await run_in_threadpool(revoke, ctx, _required(form, "token"))
    return Response(status_code=200, headers=_NO_STORE)


@router.post("/logout", status_code=204, response_class=Response)
def logout(
    request: Request, principal: Annotated[Principal, Depends(authenticate)]
) -> Response:
    """Sign out: revoke the sign-in (refresh token family) of the bearer token."""
    ctx = security(request)
    if principal.sid is not None:
        ctx.store.revoke_family(principal.sid, "logout", now_us())
    return Response(status_code=204)


@router.get("/me", response_model=MeOut)
def me(principal: Annotated[Principal, Depends(authenticate)]) -> Any:
    """Who the bearer token belongs to, its role and scopes."""
    return MeOut(
        name=principal.name,
        role=str(principal.role),
        kind=principal.kind,
        scopes=sorted(str(s) for s in principal.scopes),
        client=principal.client,
        expires_at=None
        if principal.expires_at is None
        else format_us(principal.expires_at * 1_000_000),
    )
