"""The hub's settings: environment (``STREAMFLOW_*``), an optional TOML file.

Precedence, highest first: values passed in code (the CLI's options), the
environment, the TOML file named by ``--config`` or ``STREAMFLOW_CONFIG``, the
defaults. Nested values use ``__`` in the environment
(``STREAMFLOW_TLS__CA_FILE``); lists are JSON (``STREAMFLOW_ADAPTERS``).
Every setting is listed in the README (section "Configuration").
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceError

from hub import const
from hub._errors import ConfigError
from hub.alerts.config import AlertsConfig
from hub.alerts.email import EmailSettings
from hub.alerts.webhook import WebhookSettings
from hub.monitor.config import MonitorConfig
from hub.processors.config import ProcessorsConfig
from hub.security.config import AuthConfig
from protocol import topics
from protocol.const import (
    DEFAULT_MAX_FUTURE_SKEW_S,
    DEFAULT_MAX_INFLATED_BYTES,
    DEFAULT_MAX_PAYLOAD_BYTES,
    ID_PATTERN,
)

ENV_PREFIX = "STREAMFLOW_"
CONFIG_ENV = "STREAMFLOW_CONFIG"

_MQTT_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}
_ID_RE = re.compile(rf"^{ID_PATTERN}$")
# libpq key/value strings and URL query strings may carry a password too.
_PASSWORD_RE = re.compile(r"(password\s*=\s*)('[^']*'|[^\s&]+)", re.IGNORECASE)
# The TOML file of the settings being built; a context variable because
# pydantic-settings asks the class, not the instance, for its sources.
_TOML_FILE: ContextVar[Path | None] = ContextVar("_TOML_FILE", default=None)
# pydantic-settings names the field of a value it cannot decode (a list given
# as JSON in the environment) only in its message.
_SOURCE_ERROR_RE = re.compile(r'field "(?P<field>\w+)" from source "(?P<source>\w+)"')


class AdapterRoute(BaseModel):
    """One sensor convention the hub reads straight from its broker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str = Field(
        description="adapter name: json, tasmota, zigbee2mqtt",
        pattern=r"^[a-z0-9_]{1,32}$",
    )
    filter: str = Field(
        description="MQTT subscription filter of the convention's data topics",
        examples=["tele/+/SENSOR", "zigbee2mqtt/+"],
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="options of the adapter, e.g. {prefix = 'tasmota'} for "
        "tasmota or {base_topic = 'z2m'} for zigbee2mqtt",
    )

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, value: str) -> str:
        return topics.check_filter(value)


class MqttTls(BaseModel):
    """TLS files for the hub's connection to its broker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = Field(
        default=None, description="CA bundle that signs the broker's certificate"
    )
    cert_file: Path | None = Field(
        default=None, description="client certificate, when the broker asks for one"
    )
    key_file: Path | None = Field(
        default=None, description="private key of the client certificate"
    )
    insecure: bool = Field(
        default=False,
        description="skip the broker host name check (tests only, never in production)",
    )

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _check_file(cls, value: Path | None) -> Path | None:
        # Checked at load, so that a typo is one line naming the setting, not
        # a traceback from the TLS library when the hub connects.
        if value is not None and not value.is_file():
            raise ValueError(f"no such file {str(value)!r}")
        if value is not None and not os.access(value, os.R_OK):
            raise ValueError(f"cannot read {str(value)!r}: permission denied")
        return value


def _default_adapters() -> list[AdapterRoute]:
    return [AdapterRoute(adapter="json", filter=topics.TELEMETRY_FILTER)]


class HubSettings(BaseSettings):
    """Everything the hub, the API and ``streamflow up`` are configured with."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    # Storage.
    data_dir: Path = Field(
        default=Path(const.DEFAULT_DATA_DIR),
        description="folder of the SQLite database and the hub's status file",
    )
    db: str = Field(
        default="",
        description="store URL: postgresql://… (TimescaleDB) or sqlite:///path; "
        "empty means sqlite:///<data_dir>/streamflow.db",
        examples=["postgresql://streamflow:secret@127.0.0.1:5432/streamflow"],
    )

    # MQTT connection.
    mqtt_url: str = Field(
        default=const.DEFAULT_MQTT_URL,
        description="broker the hub subscribes to: mqtt://host:port or "
        "mqtts://host:port (TLS); user:password@ in it is used when username "
        "and password are not set",
    )
    mqtt_version: Literal["3.1.1", "5"] = Field(
        default="3.1.1", description="MQTT protocol version: 3.1.1 or 5"
    )
    username: str | None = Field(default=None, description="broker user name")
    password: SecretStr | None = Field(default=None, description="broker password")
    tls: MqttTls = Field(default_factory=MqttTls, description="TLS files")
    client_id: str = Field(
        default=const.DEFAULT_CLIENT_ID,
        description="MQTT client id; the broker keeps the hub's session under it",
    )
    shared_group: str | None = Field(
        default=None,
        description="share the subscriptions of several hubs in this group "
        "($share/<group>/…); MQTT 5 only",
    )

    # Limits (protocol v1, case C17).
    max_payload_bytes: int = Field(
        default=DEFAULT_MAX_PAYLOAD_BYTES,
        gt=0,
        description="largest payload accepted, inclusive; larger ones are "
        "dead-lettered as payload_too_large before parsing",
    )
    max_inflated_bytes: int = Field(
        default=DEFAULT_MAX_INFLATED_BYTES,
        gt=0,
        description="largest size a compressed payload may inflate to",
    )
    max_future_skew_s: float = Field(
        default=DEFAULT_MAX_FUTURE_SKEW_S,
        ge=0,
        description="readings stamped further ahead of the hub's clock are rejected",
    )

    # Pipeline.
    queue_max_messages: int = Field(
        default=256,
        ge=1,
        description="messages held between the MQTT client and the writer",
    )
    write_max_readings: int = Field(
        default=20_000,
        ge=1,
        description="readings grouped into one store transaction, at most",
    )
    write_max_delay_s: float = Field(
        default=0.05,
        ge=0,
        description="longest wait for more messages before a group is written",
    )

    # Sensors publishing straight to the hub's broker.
    adapters: list[AdapterRoute] = Field(
        default_factory=_default_adapters,
        description="adapter and subscription filter for each sensor convention",
    )
    naive_time_zone: str = Field(
        default="UTC",
        description="IANA zone of device times sent without an offset "
        "(Tasmota's Time, cases C01 and C07)",
    )

    # Processors (hub/processors).
    processors_enabled: bool = Field(
        default=True,
        description="run the processors (rollups, thresholds, quality, anomaly) "
        "on the new readings of each commit, publish and store their events",
    )
    processors: ProcessorsConfig = Field(
        default_factory=ProcessorsConfig,
        description="which processor reads which series, the late horizon, "
        "queue and reload limits",
    )

    # Monitor and alerts (hub/monitor, hub/alerts).
    monitor: MonitorConfig = Field(
        default_factory=MonitorConfig,
        description="what the monitor watches: silences, service rules, outputs",
    )
    alerts: AlertsConfig = Field(
        default_factory=AlertsConfig,
        description="the alert lifecycle: auto-resolve, flapping, storms, limits",
    )
    email: EmailSettings | None = Field(
        default=None, description="SMTP server and recipients of alert notices"
    )
    webhooks: list[WebhookSettings] = Field(
        default_factory=list, description="webhooks alert notices are posted to"
    )

    # Security of the API (hub/security).
    auth: AuthConfig = Field(
        default_factory=AuthConfig,
        description="tokens, roles, IP allow and deny lists, throttling, audit",
    )

    # Servers.
    api_host: str = Field(
        default=const.DEFAULT_API_HOST, description="address the REST API binds to"
    )
    api_port: int = Field(
        default=const.DEFAULT_API_PORT,
        ge=0,
        le=65535,
        description="port of the REST API",
    )
    api_stream_poll_s: float = Field(
        default=0.1,
        gt=0,
        le=60,
        description="how often the API reads new alert changes for its live stream",
    )
    broker_host: str = Field(
        default=const.DEFAULT_BROKER_HOST,
        description="address the embedded broker binds to",
    )
    broker_port: int = Field(
        default=const.DEFAULT_BROKER_PORT,
        ge=0,
        le=65535,
        description="port of the embedded broker",
    )
    broker_auth: Literal["off", "on"] = Field(
        default="off",
        description="on: the embedded broker admits only clients with a broker "
        "credential in the store and keeps each to its topics; off: it admits "
        "every client (it listens on loopback by default)",
    )
    broker_auth_cache_s: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="seconds the embedded broker trusts a credential it looked "
        "up: rotation and revocation take effect within this time",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="level of the hub's log"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read code, then the environment, then the TOML file, if any."""
        toml_file = _TOML_FILE.get()
        if toml_file is None:
            return init_settings, env_settings
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_file)
        return init_settings, env_settings, toml

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in _MQTT_SCHEMES or not parts.hostname:
            raise ValueError("expected mqtt://host:port or mqtts://host:port")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("port must be a number from 0 to 65535") from None
        return value

    @field_validator("client_id")
    @classmethod
    def _check_client_id(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(f"expected {ID_PATTERN}")
        return value

    @field_validator("shared_group")
    @classmethod
    def _check_group(cls, value: str | None) -> str | None:
        if value is not None and not _ID_RE.match(value):
            raise ValueError(f"expected {ID_PATTERN}")
        return value

    @field_validator("naive_time_zone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as UTC") from None
        return value

    @field_validator("db")
    @classmethod
    def _check_db(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://", "sqlite:")):
            raise ValueError("expected postgresql://… or sqlite:///path")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> HubSettings:
        if self.shared_group and self.mqtt_version != "5":
            raise ValueError("shared_group needs mqtt_version 5 (shared subscriptions)")
        if not self.db:
            self.db = f"sqlite:///{self.data_dir}/{const.SQLITE_FILE_NAME}"
        return self

    @property
    def mqtt_host(self) -> str:
        """The broker's host name from ``mqtt_url``."""
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        """The broker's port from ``mqtt_url`` (1883, or 8883 with TLS)."""
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if self.mqtt_tls else 1883)

    @property
    def mqtt_tls(self) -> bool:
        """Whether the broker connection uses TLS."""
        return _MQTT_SCHEMES[urlsplit(self.mqtt_url).scheme] or bool(self.tls.ca_file)

    @property
    def mqtt_username(self) -> str | None:
        """``username``, else the user name in ``mqtt_url``."""
        return self.username or urlsplit(self.mqtt_url).username

    @property
    def mqtt_password(self) -> str | None:
        """``password``, else the password in ``mqtt_url``."""
        if self.password is not None:
            return self.password.get_secret_value()
        return urlsplit(self.mqtt_url).password

    @property
    def zone(self) -> ZoneInfo:
        """``naive_time_zone`` as a zone object."""
        return ZoneInfo(self.naive_time_zone)

    @property
    def sqlite(self) -> bool:
        """Whether the store is the embedded SQLite one."""
        return self.db.startswith("sqlite:")


def load_settings(config_file: Path | None = None, **values: Any) -> HubSettings:
    """Build the settings from code values, the environment and a TOML file.

    Args:
        config_file: the TOML file; when None, ``STREAMFLOW_CONFIG`` names it,
            and without either no file is read.
        values: settings given in code (the CLI's options); they win.

    Raises:
        ConfigError: the file is missing or unreadable, or a setting is invalid;
            the message names the setting and its environment variable.
    """
    if config_file is None and os.environ.get(CONFIG_ENV):
        config_file = Path(os.environ[CONFIG_ENV])
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {str(config_file)!r} does not exist")
    token = _TOML_FILE.set(config_file)
    try:
        return HubSettings(**values)
    except SourceError as exc:  # before ValueError, which it is
        raise ConfigError(_describe_source(exc)) from None
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_file)) from None
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"config file {str(config_file)!r}: {exc}") from None
    finally:
        _TOML_FILE.reset(token)


def _describe(exc: ValidationError, config_file: Path | None = None) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    name = ".".join(loc) or "settings"
    env = ENV_PREFIX + "__".join(p for p in loc if not p.isdigit()).upper()
    if err["type"] == "extra_forbidden":
        # A key no setting has comes from the TOML file, or nested from the
        # environment (STREAMFLOW_TLS__FOO); say which.
        if config_file is not None and _in_toml(config_file, err["loc"]):
            return f"unknown setting {name!r} in {config_file}"
        return f"unknown setting {name!r} ({env})"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"invalid setting {name} ({env}): {msg}"


def _describe_source(exc: SourceError) -> str:
    match = _SOURCE_ERROR_RE.search(str(exc))
    if match is None:
        return f"invalid settings: {exc}"
    name = match["field"]
    if match["source"] == "EnvSettingsSource":
        return f"invalid setting {name} ({ENV_PREFIX}{name.upper()}): not valid JSON"
    return f"invalid setting {name}: cannot decode the value from {match['source']}"


def _in_toml(path: Path, loc: tuple[int | str, ...]) -> bool:
    """Whether the TOML file holds the key at ``loc`` (it was read once)."""
    try:
        node: Any = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return False
    for part in loc:
        if isinstance(node, list):  # an array of tables: by index
            node = dict(enumerate(node))
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def redact_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``, for messages and logs.

    Handles URLs (``scheme://user:password@host``) and libpq key/value strings
    (``password=…``).
    """
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[1]
            user = parts.username or ""
            url = urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    return _PASSWORD_RE.sub(r"\1***", url)
