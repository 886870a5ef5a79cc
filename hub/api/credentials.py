"""Broker credentials of gateways and devices (admin only: scope ``users:admin``).

``POST`` makes a principal's credential, or rotates it (the old secret stops
working within the broker's ``broker_auth_cache_s``); the answer holds the
secret, shown this once; only its hash is kept. ``DELETE`` revokes it;
``GET`` shows its metadata, never the secret or its hash. Credentials need
no registered gateway or device: a gateway is provisioned before its first
connection. A gateway and a device cannot share an id (it is the broker user
name): 409 ``credential_conflict``.

The scope is ``users:admin``, the one of the other credentials (users and
integration clients).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from hub.api._time import format_us
from hub.api.errors import ApiError, error_responses
from hub.security.broker_creds import (
    BrokerCredential,
    BrokerCredStore,
    PrincipalKind,
    issue,
    username_for,
)
from hub.security.deps import Principal, require
from hub.security.roles import Scope
from protocol.validate import now_us

router = APIRouter(tags=["broker credentials"])

Admin = Annotated[Principal, Depends(require(Scope.USERS_ADMIN))]
GatewayId = Annotated[str, PathParam(description="gateway id", examples=["gw-01"])]
DeviceId = Annotated[str, PathParam(description="device id", examples=["mote-1"])]


class CredentialOut(BaseModel):
    """A broker credential; ``secret`` only in the answer that makes one."""

    username: str = Field(description="the broker user name")
    kind: PrincipalKind
    id: str = Field(description="the gateway's or device's id")
    active: bool = Field(description="false once revoked")
    created: str
    rotated: str = Field(description="when the current secret was issued")
    revoked: str | None = None
    secret: str | None = Field(default=None, description="shown once: store it now")

    @classmethod
    def of(cls, c: BrokerCredential, secret: str | None = None) -> CredentialOut:
        """From the store's record."""
        return cls(
            username=c.username,
            kind=c.kind,
            id=c.ident,
            active=c.active,
            created=format_us(c.created_us),
            rotated=format_us(c.rotated_us),
            revoked=None if c.revoked_us is None else format_us(c.revoked_us),
            secret=secret,
        )


def _store(request: Request) -> BrokerCredStore:
    store: BrokerCredStore = request.app.state.store
    return store


def _not_found(kind: PrincipalKind, ident: str, what: str = "") -> ApiError:
    return ApiError(
        404, "credential_not_found", f"no {what}broker credential of {kind} {ident!r}"
    )


def _username(kind: PrincipalKind, ident: str) -> str:
    try:
        return username_for(kind, ident)
    except ValueError as exc:
        raise ApiError(422, "invalid_parameter", str(exc), f"{kind}_id") from None


def _issue(request: Request, kind: PrincipalKind, ident: str) -> CredentialOut:
    _username(kind, ident)
    made = issue(_store(request), kind, ident)
    if made is None:
        raise ApiError(
            409,
            "credential_conflict",
            f"broker user {ident!r} belongs to a principal of another kind",
        )
    return CredentialOut.of(*made)


def _get(request: Request, kind: PrincipalKind, ident: str) -> CredentialOut:
    cred = _store(request).get_broker_credential(_username(kind, ident))
    if cred is None or cred.kind is not kind:
        raise _not_found(kind, ident)
    return CredentialOut.of(cred)


def _revoke(request: Request, kind: PrincipalKind, ident: str) -> Response:
    store = _store(request)
    cred = store.get_broker_credential(_username(kind, ident))
    if cred is None or cred.kind is not kind or not cred.active:
        raise _not_found(kind, ident, "active ")
    if not store.revoke_broker_credential(cred.username, now_us()):
        raise _not_found(kind, ident, "active ")  # revoked meanwhile
    return Response(status_code=204)


@router.get("/v1/broker/credentials", response_model=list[CredentialOut])
def list_credentials(request: Request, _: Admin) -> Any:
    """Every broker credential (services too), ordered by user name, no secrets."""
    return [CredentialOut.of(c) for c in _store(request).list_broker_credentials()]


@router.post(
    "/v1/gateways/{gateway_id}/credentials",
    response_model=CredentialOut,
    status_code=201,
    responses=error_responses(409),
)
def issue_gateway(request: Request, gateway_id: GatewayId, _: Admin) -> Any:
    """Make or rotate a gateway's broker credential; the secret is shown once."""
    return _issue(request, PrincipalKind.GATEWAY, gateway_id)


@router.get("/v1/gateways/{gateway_id}/credentials", response_model=CredentialOut)
def get_gateway(request: Request, gateway_id: GatewayId, _: Admin) -> Any:
    """A gateway's broker credential (no secret)."""
    return _get(request, PrincipalKind.GATEWAY, gateway_id)


@router.delete(
    "/v1/gateways/{gateway_id}/credentials",
    status_code=204,
    response_class=Response,
)
def revoke_gateway(request: Request, gateway_id: GatewayId, _: Admin) -> Response:
    """Revoke a gateway's broker credential."""
    return _revoke(request, PrincipalKind.GATEWAY, gateway_id)


@router.post(
    "/v1/devices/{device_id}/credentials",
    response_model=CredentialOut,
    status_code=201,
    responses=error_responses(409),
)
def issue_device(request: Request, device_id: DeviceId, _: Admin) -> Any:
    """Make or rotate a device's broker credential; the secret is shown once."""
    return _issue(request, PrincipalKind.DEVICE, device_id)


@router.get("/v1/devices/{device_id}/credentials", response_model=CredentialOut)
def get_device(request: Request, device_id: DeviceId, _: Admin) -> Any:
    """A device's broker credential (no secret)."""
    return _get(request, PrincipalKind.DEVICE, device_id)


@router.delete(
    "/v1/devices/{device_id}/credentials",
    status_code=204,
    response_class=Response,
)
def revoke_device(request: Request, device_id: DeviceId, _: Admin) -> Response:
    """Revoke a device's broker credential."""
    return _revoke(request, PrincipalKind.DEVICE, device_id)
