"""Users and integration clients (admin only: scope ``users:admin``).

A client's secret is generated here and shown once, in the answer that
creates it (or ``POST /v1/clients/{id}/secret``, which replaces it); only
its hash is kept. Disabling, deleting, demoting or re-passwording a user
ends their sign-ins at once; the last enabled admin cannot be removed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.api._time import format_us
from hub.api.errors import ApiError, error_responses, not_found
from hub.security.config import Network, parse_networks
from hub.security.context import SecurityContext
from hub.security.deps import Principal, require, security
from hub.security.passwords import hash_secret, new_client_secret
from hub.security.roles import Role, Scope
from hub.security.store import ClientRecord, UserRecord
from protocol.validate import now_us

router = APIRouter(tags=["users"])

_NAME = r"^[A-Za-z0-9_.@-]{1,64}$"
Admin = Annotated[Principal, Depends(require(Scope.USERS_ADMIN))]
#: 409: the name is taken, or the change would leave no enabled admin.
_CONFLICT = error_responses(409)
UserName = Annotated[str, PathParam(description="user name", examples=["ada"])]
ClientId = Annotated[str, PathParam(description="client id", examples=["erp"])]


class UserIn(BaseModel):
    """A new user."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, examples=["ada"])
    role: Role = Field(examples=["operator"])
    password: str = Field(min_length=1, max_length=1024, repr=False)


class UserPatch(BaseModel):
    """Changes to a user; fields left out stay."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    password: str | None = Field(
        default=None, min_length=1, max_length=1024, repr=False
    )
    disabled: bool | None = None


class UserOut(BaseModel):
    """A user (never the password hash)."""

    name: str
    role: Role
    disabled: bool
    created: str
    updated: str

    @classmethod
    def of(cls, u: UserRecord) -> UserOut:
        """From the store's record."""
        return cls(
            name=u.name,
            role=u.role,
            disabled=u.disabled,
            created=format_us(u.created_us),
            updated=format_us(u.updated_us),
        )


class _Networks(BaseModel):
    @field_validator(
        "allow_networks", "deny_networks", mode="before", check_fields=False
    )
    @classmethod
    def _networks(cls, value: object) -> object:
        return parse_networks(value) if isinstance(value, list) else value


class ClientIn(_Networks):
    """A new integration client."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_NAME, examples=["erp"])
    name: str = Field(default="", max_length=200, examples=["the ERP's importer"])
    roles: list[Role] = Field(default=[Role.INTEGRATION], min_length=1)
    allow_networks: list[Network] = Field(
        default_factory=list, description="may sign in and call only from these"
    )
    deny_networks: list[Network] = Field(default_factory=list)


class ClientPatch(_Networks):
    """Changes to a client; fields left out stay."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    roles: list[Role] | None = Field(default=None, min_length=1)
    allow_networks: list[Network] | None = None
    deny_networks: list[Network] | None = None
    disabled: bool | None = None


class ClientOut(BaseModel):
    """A client; ``client_secret`` only in the answer that makes one."""

    id: str
    name: str
    roles: list[Role]
    allow_networks: list[str]
    deny_networks: list[str]
    disabled: bool
    created: str
    updated: str
    client_secret: str | None = Field(
        default=None, description="shown once: store it now"
    )

    @classmethod
    def of(cls, c: ClientRecord, secret: str | None = None) -> ClientOut:
        """From the store's record."""
        return cls(
            id=c.id,
            name=c.name,
            roles=list(c.roles),
            allow_networks=[str(n) for n in c.allow_networks],
            deny_networks=[str(n) for n in c.deny_networks],
            disabled=c.disabled,
            created=format_us(c.created_us),
            updated=format_us(c.updated_us),
            client_secret=secret,
        )


def _check_password(ctx: SecurityContext, password: str) -> None:
    if len(password) < ctx.config.password_min_length:
        raise ApiError(
            422,
            "invalid_parameter",
            f"password: at least {ctx.config.password_min_length} characters",
            "password",
        )


def _keep_an_admin(ctx: SecurityContext, name: str) -> None:
    """Refuse to leave no enabled admin (nobody could manage users then)."""
    admins = [
        u for u in ctx.store.list_users() if u.role is Role.ADMIN and not u.disabled
    ]
    if [u.name for u in admins] == [name]:
        raise ApiError(409, "last_admin", f"{name!r} is the last enabled admin")


# -- users ----------------------------------------------------------------


@router.get("/v1/users", response_model=list[UserOut])
def list_users(request: Request, _: Admin) -> Any:
    """Every user, ordered by name."""
    return [UserOut.of(u) for u in security(request).store.list_users()]


@router.post("/v1/users", response_model=UserOut, status_code=201, responses=_CONFLICT)
def create_user(request: Request, body: UserIn, _: Admin) -> Any:
    """Create a user; 409 ``user_exists`` if the name is taken."""
    ctx = security(request)
    _check_password(ctx, body.password)
    record = UserRecord(body.name, body.role, ctx.passwords.hash(body.password))
    if not ctx.store.create_user(record):
        raise ApiError(409, "user_exists", f"user {body.name!r} exists")
    stored = ctx.store.get_user(body.name)
    if stored is None:  # pragma: no cover - created just above
        raise not_found("user", body.name)
    return UserOut.of(stored)


@router.get("/v1/users/{name}", response_model=UserOut)
def get_user(request: Request, name: UserName, _: Admin) -> Any:
    """One user."""
    user = security(request).store.get_user(name)
    if user is None:
        raise not_found("user", name)
    return UserOut.of(user)


@router.patch("/v1/users/{name}", response_model=UserOut, responses=_CONFLICT)
def update_user(request: Request, name: UserName, body: UserPatch, _: Admin) -> Any:
    """Change a user's role, password or disabled flag; ends their sign-ins."""
    ctx = security(request)
    user = ctx.store.get_user(name)
    if user is None:
        raise not_found("user", name)
    if body.password is not None:
        _check_password(ctx, body.password)
    demoted = body.role is not None and body.role is not Role.ADMIN
    if user.role is Role.ADMIN and (demoted or body.disabled):
        _keep_an_admin(ctx, name)
    updated = ctx.store.update_user(
        name,
        role=body.role,
        password_hash=None
        if body.password is None
        else ctx.passwords.hash(body.password),
        disabled=body.disabled,
    )
    if updated is None:
        raise not_found("user", name)
    if body.role is not None or body.password is not None or body.disabled:
        ctx.store.revoke_subject(name, "user_changed", now_us())
    return UserOut.of(updated)


@router.delete(
    "/v1/users/{name}",
    status_code=204,
    response_class=Response,
    responses=_CONFLICT,
)
def delete_user(request: Request, name: UserName, _: Admin) -> Response:
    """Delete a user and end their sign-ins."""
    ctx = security(request)
    user = ctx.store.get_user(name)
    if user is None:
        raise not_found("user", name)
    if user.role is Role.ADMIN:
        _keep_an_admin(ctx, name)
    ctx.store.revoke_subject(name, "user_deleted", now_us())
    ctx.store.delete_user(name)
    return Response(status_code=204)


# -- clients --------------------------------------------------------------


@router.get("/v1/clients", response_model=list[ClientOut])
def list_clients(request: Request, _: Admin) -> Any:
    """Every integration client, ordered by id (no secrets)."""
    return [ClientOut.of(c) for c in security(request).store.list_clients()]


@router.post(
    "/v1/clients", response_model=ClientOut, status_code=201, responses=_CONFLICT
)
def create_client(request: Request, body: ClientIn, _: Admin) -> Any:
    """Create a client; the answer holds its secret, shown this once."""
    ctx = security(request)
    secret = new_client_secret()
    record = ClientRecord(
        id=body.id,
        secret_hash=hash_secret(secret),
        roles=tuple(dict.fromkeys(body.roles)),
        name=body.name,
        allow_networks=tuple(body.allow_networks),
        deny_networks=tuple(body.deny_networks),
    )
    if not ctx.store.create_client(record):
        raise ApiError(409, "client_exists", f"client {body.id!r} exists")
    stored = ctx.store.get_client(body.id)
    if stored is None:  # pragma: no cover - created just above
        raise not_found("client", body.id)
    return ClientOut.of(stored, secret)


@router.get("/v1/clients/{client_id}", response_model=ClientOut)
def get_client(request: Request, client_id: ClientId, _: Admin) -> Any:
    """One client (no secret)."""
    client = security(request).store.get_client(client_id)
    if client is None:
        raise not_found("client", client_id)
    return ClientOut.of(client)


@router.patch("/v1/clients/{client_id}", response_model=ClientOut)
def update_client(
    request: Request, client_id: ClientId, body: ClientPatch, _: Admin
) -> Any:
    """Change a client's name, roles, networks or disabled flag."""
    ctx = security(request)
    client = ctx.store.get_client(client_id)
    if client is None:
        raise not_found("client", client_id)
    changes: dict[str, Any] = {}
    if body.name is not None:
        changes["name"] = body.name
    if body.roles is not None:
        changes["roles"] = tuple(dict.fromkeys(body.roles))
    if body.allow_networks is not None:
        changes["allow_networks"] = tuple(body.allow_networks)
    if body.deny_networks is not None:
        changes["deny_networks"] = tuple(body.deny_networks)
    if body.disabled is not None:
        changes["disabled"] = body.disabled
    return _replace_client(ctx, client, changes)


@router.post("/v1/clients/{client_id}/secret", response_model=ClientOut)
def new_secret(request: Request, client_id: ClientId, _: Admin) -> Any:
    """Replace a client's secret; the answer holds the new one, shown this once."""
    ctx = security(request)
    client = ctx.store.get_client(client_id)
    if client is None:
        raise not_found("client", client_id)
    secret = new_client_secret()
    return _replace_client(ctx, client, {"secret_hash": hash_secret(secret)}, secret)


@router.delete("/v1/clients/{client_id}", status_code=204, response_class=Response)
def delete_client(request: Request, client_id: ClientId, _: Admin) -> Response:
    """Delete a client; its tokens stop working at once."""
    if not security(request).store.delete_client(client_id):
        raise not_found("client", client_id)
    return Response(status_code=204)


def _replace_client(
    ctx: SecurityContext,
    client: ClientRecord,
    changes: dict[str, Any],
    secret: str | None = None,
) -> ClientOut:
    if not ctx.store.replace_client(replace(client, **changes)):
        raise not_found("client", client.id)
    stored = ctx.store.get_client(client.id)
    if stored is None:  # pragma: no cover - deleted in between
        raise not_found("client", client.id)
    return ClientOut.of(stored, secret)
