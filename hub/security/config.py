"""Settings of authentication, IP access control and the audit log.

Nested in :class:`hub.config.HubSettings` as ``auth``: in the environment
``STREAMFLOW_AUTH__ACCESS_TTL_S=300``, lists as JSON
(``STREAMFLOW_AUTH__ALLOW_NETWORKS='["10.0.0.0/8"]'``), in TOML an
``[auth]`` table.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

Network = IPv4Network | IPv6Network

#: RFC 7518 section 3.2: an HS256 key must be at least as long as the hash.
MIN_SECRET_BYTES = 32


def parse_networks(values: list[str] | list[Network]) -> list[Network]:
    """Networks from strings such as ``10.0.0.0/8``, ``::1`` or ``127.0.0.2``.

    Raises:
        ValueError: a value is not an address or a network (host bits set
            count as an error, since ``10.0.0.1/8`` is most likely a typo).
    """
    out: list[Network] = []
    for value in values:
        if isinstance(value, IPv4Network | IPv6Network):
            out.append(value)
            continue
        try:
            out.append(ip_network(str(value).strip()))
        except ValueError:
            raise ValueError(
                f"expected a network such as 10.0.0.0/8 or an address, got {value!r}"
            ) from None
    return out


class AuthConfig(BaseModel):
    """Who may call the API, from where, and what is recorded about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="check tokens and roles on every route but /healthz and keep "
        "the audit log; false opens every route to anyone (tests only)",
    )

    # Tokens.
    access_ttl_s: int = Field(
        default=300, ge=10, le=86_400, description="lifetime of an access token"
    )
    refresh_ttl_s: int = Field(
        default=7 * 86_400,
        ge=60,
        description="lifetime of a refresh token (each use gives a new one)",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 key of the access tokens, at least 32 bytes; unset: "
        "generated once into <data_dir>/jwt_secret (mode 0600). Set it when "
        "several API processes share a database",
    )
    leeway_s: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="clock skew tolerated when checking exp and iat",
    )

    # Passwords (argon2id).
    password_time_cost: int = Field(
        default=3, ge=1, description="argon2 passes; a change rehashes at sign-in"
    )
    password_memory_kib: int = Field(
        default=65_536, ge=8, description="argon2 memory in KiB (64 MiB)"
    )
    password_min_length: int = Field(
        default=12, ge=1, description="shortest password accepted for a user"
    )

    # IP access control.
    allow_networks: list[Network] = Field(
        default_factory=list,
        description="networks that may call the API; empty: any",
        examples=[["10.0.0.0/8", "127.0.0.0/8"]],
    )
    deny_networks: list[Network] = Field(
        default_factory=list,
        description="networks refused even when allowed",
    )
    trusted_proxies: list[Network] = Field(
        default_factory=list,
        description="peers whose X-Forwarded-For is believed; the client is the "
        "right-most address in it that is not one of these",
    )

    # Throttling of failed sign-ins.
    throttle_max_failures: int = Field(
        default=5,
        ge=1,
        description="failed sign-ins of one user or client within the window "
        "before it is locked out",
    )
    throttle_max_failures_address: int = Field(
        default=20,
        ge=1,
        description="failed sign-ins from one client address within the window "
        "before it is locked out",
    )
    throttle_window_s: float = Field(
        default=900.0, gt=0, description="window in which failures count"
    )
    throttle_lockout_s: float = Field(
        default=60.0,
        gt=0,
        description="first lock-out after the last failure; doubles with each "
        "further failure, up to the window",
    )

    # Audit log.
    audit_queue_max: int = Field(
        default=10_000,
        ge=1,
        description="audit records held for the writer; beyond, they are dropped "
        "and counted rather than slow requests down",
    )
    audit_batch_max: int = Field(
        default=500, ge=1, description="audit records written in one transaction"
    )
    audit_flush_s: float = Field(
        default=0.5, gt=0, description="longest wait before queued records are written"
    )

    @field_validator(
        "allow_networks", "deny_networks", "trusted_proxies", mode="before"
    )
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):  # one network, not a JSON list
            value = [value]
        if isinstance(value, list):
            return parse_networks(value)
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < (
            MIN_SECRET_BYTES
        ):
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        return value
