"""Settings of the edge agent: environment, an optional TOML file, and defaults.

Sources, strongest first: values given in code or on the command line, the
environment (``STREAMFLOW_EDGE_<FIELD>``, nested fields joined with ``__``),
the TOML file (``--config FILE`` or ``STREAMFLOW_EDGE_CONFIG``), the defaults.
Every field is listed with its meaning in the README ("Configuration").
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import os
import tomllib
import types
from collections import deque
from collections.abc import Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from edge_agent.const import HUB_MAX_PAYLOAD_BYTES
from edge_agent.errors import SettingsError
from protocol import topics
from protocol.models import GatewayId
from protocol.topics import TELEMETRY_FILTER

ENV_PREFIX = "STREAMFLOW_EDGE_"
#: Environment variable naming the TOML file when ``--config`` is not given.
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
# The TOML file of the settings being loaded; a context variable rather than a
# class attribute so that two threads can load settings from different files.
_CONFIG_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "streamflow_edge_config", default=None
)

#: Nested settings are joined with this in an environment variable's name.
ENV_NESTED_DELIMITER = "__"

MqttVersion = Literal["3.1.1", "5"]
AdapterName = Literal["json", "tasmota", "zigbee2mqtt"]


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """A broker address taken from an ``mqtt://`` or ``mqtts://`` URL."""

    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerUrl:
    """Take a broker URL apart.

    Args:
        url: ``mqtt://host[:port]`` (1883 by default) or ``mqtts://host[:port]``
            (TLS, 8883 by default).

    Returns:
        The host, port and whether TLS is used.

    Raises:
        ValueError: another scheme, no host, a bad port, or credentials in
            the URL (they belong in the username and password settings, so
            that a URL can be logged).
    """
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"expected mqtt:// or mqtts://, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL: use the username/password settings")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"expected no path or query in {url!r}")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    return BrokerUrl(parts.hostname, port, parts.scheme == "mqtts")


class InputSettings(BaseModel):
    """One local subscription and the sensor convention its messages follow."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: AdapterName = Field(
        default="json",
        description="the payload convention: json, tasmota or zigbee2mqtt",
    )
    filter: str = Field(
        default=TELEMETRY_FILTER,
        description="the MQTT topic filter subscribed to on the local broker",
    )

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, value: str) -> str:
        return topics.check_filter(value)


class EdgeSettings(BaseModel):
    """Everything the edge agent is configured with.

    Constructing it reads the environment too, as pydantic-settings'
    ``BaseSettings`` does (see ``__init__``); ``load_settings`` adds the file.
    """

    # validate_default: defaults go through the validators, as in BaseSettings.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def __init__(self, **values: Any) -> None:
        """Validate ``values`` over the environment and the TOML file being loaded.

        Args:
            **values: settings given in code; they win over the environment
                (``STREAMFLOW_EDGE_<FIELD>``), which wins over the TOML file
                that ``load_settings`` is reading, if any.

        Raises:
            SettingsError: a list or nested value in the environment is not
                valid JSON.
            ValidationError: a setting is missing or bad.
            ValueError: the TOML file is not valid TOML.
            OSError: the TOML file cannot be read.
        """
        # The file is read first, so that its errors come before the
        # environment's, as with pydantic-settings; its top-level keys, like
        # names given in code, match fields in any case.
        path = _CONFIG_FILE.get()
        in_file = _read_toml(path) if path is not None else {}
        in_env = _env_values(type(self), os.environ, ENV_PREFIX)
        given = _by_field_name(type(self), values)
        super().__init__(
            **_merge_sources(given, in_env, _by_field_name(type(self), in_file))
        )

    # Identity and the hub's broker.
    gateway_id: GatewayId = Field(
        description="this gateway's id, [A-Za-z0-9_.-]{1,64}; part of every topic"
    )
    client_id: str | None = Field(
        default=None,
        description="MQTT client id on the hub broker; default sf-edge-<gateway_id>",
    )
    hub_url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="the hub's broker, mqtt://host:port or mqtts://host:port (TLS)",
    )
    mqtt_version: MqttVersion = Field(
        default="3.1.1", description="MQTT protocol version to the hub: 3.1.1 or 5"
    )
    username: str | None = Field(
        default=None, description="user name on the hub broker"
    )
    password: SecretStr | None = Field(
        default=None, description="password on the hub broker (never logged)"
    )
    tls_ca_file: Path | None = Field(
        default=None,
        description="CA bundle to verify the hub broker; default the system's",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="client certificate for mutual TLS (PEM)"
    )
    tls_key_file: Path | None = Field(
        default=None, description="private key of the client certificate (PEM)"
    )
    tls_insecure: bool = Field(
        default=False,
        description="skip the broker host name check (test set-ups only)",
    )
    session_expiry_s: int = Field(
        default=86_400,
        ge=0,
        description="MQTT 5 session expiry asked of both brokers, seconds",
    )
    keepalive_s: int = Field(
        default=30, ge=5, le=65_535, description="MQTT keepalive, seconds"
    )
    reconnect_min_s: float = Field(
        default=0.5, gt=0, description="first reconnect delay, seconds"
    )
    reconnect_max_s: float = Field(
        default=30.0,
        gt=0,
        description="longest reconnect delay; delays double up to it, with jitter",
    )

    # The gateway's local broker and what is read from it.
    local_url: str | None = Field(
        default=None,
        description="the gateway's local broker; unset: no local input or relay",
    )
    local_mqtt_version: MqttVersion = Field(
        default="3.1.1", description="MQTT protocol version to the local broker"
    )
    local_username: str | None = Field(
        default=None, description="user name on the local broker"
    )
    local_password: SecretStr | None = Field(
        default=None, description="password on the local broker (never logged)"
    )
    local_client_id: str | None = Field(
        default=None,
        description="fixed client id on the local broker (its persistent session); "
        "default sf-edge-<gateway_id>-local",
    )
    inputs: list[InputSettings] = Field(
        default_factory=lambda: [InputSettings()],
        description="local subscriptions: adapter and topic filter each",
    )
    downlink_topic: str = Field(
        default="sf/v1/dev/{dev}/down/{kind}",
        description="local topic a downlink is relayed to; {dev} and {kind} "
        "are replaced",
    )

    # The disk buffer.
    data_dir: Path = Field(
        default=Path("edge-data"), description="directory of the disk buffer"
    )
    buffer_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=64 * 1024,
        description="size bound of the buffered readings and batches, bytes",
    )
    buffer_full_policy: Literal["drop_oldest", "drop_newest"] = Field(
        default="drop_oldest",
        description="when full: drop the oldest readings, or refuse new ones",
    )
    buffer_synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="SQLite synchronous mode; full: a commit survives power loss",
    )

    # Batches and their delivery.
    batch_max_readings: int = Field(
        default=1000, ge=1, le=100_000, description="readings in a batch at most"
    )
    batch_max_bytes: int = Field(
        default=128 * 1024,
        ge=4096,
        le=HUB_MAX_PAYLOAD_BYTES,
        description="bytes of a batch on the wire at most (the hub takes 256 KiB)",
    )
    batch_max_age_s: float = Field(
        default=0.5,
        ge=0,
        description="a live reading waits this long at most for its batch, seconds",
    )
    send_when_idle: bool = Field(
        default=True,
        description="when no batch awaits the hub's ack, send live readings at "
        "once instead of waiting for batch_max_age_s: low latency on a quiet "
        "uplink, and batches still grow under load, while acks are awaited",
    )
    compression: Literal["none", "gzip"] = Field(
        default="none", description="batch body compression: none or gzip"
    )
    inflight_batches: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="batches sent and awaiting the hub's ack at most",
    )
    ack_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="a batch without a hub ack is sent again after this, seconds",
    )
    late_after_s: float = Field(
        default=10.0,
        ge=0,
        description="readings buffered longer than this are backlog, sent late",
    )
    backlog_rate: float = Field(
        default=20_000.0, gt=0, description="backlog readings sent per second at most"
    )
    max_future_skew_s: float = Field(
        default=300.0,
        ge=0,
        description="readings stamped further ahead of this clock are rejected",
    )

    # State and shutdown.
    state_interval_s: float = Field(
        default=30.0, gt=0, description="period of the retained state, seconds"
    )
    stop_grace_s: float = Field(
        default=5.0, ge=0, description="on stop, wait this long for the hub's acks"
    )

    @field_validator("mqtt_version", "local_mqtt_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # TOML reads mqtt_version = 5 as a number; "5" is what is meant.
        return "5" if value == 5 and not isinstance(value, bool) else value

    @field_validator("hub_url")
    @classmethod
    def _check_hub_url(cls, value: str) -> str:
        parse_broker_url(value)
        return value

    @field_validator("local_url")
    @classmethod
    def _check_local_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_broker_url(value)
        return value

    @field_validator("client_id", "local_client_id")
    @classmethod
    def _check_client_id(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= len(value.encode()) <= 65_535:
            raise ValueError("expected 1 to 65535 bytes")
        return value

    @field_validator("downlink_topic")
    @classmethod
    def _check_downlink_topic(cls, value: str) -> str:
        try:
            sample = value.format(dev="dev", kind="kind")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"expected only {{dev}} and {{kind}} fields in {value!r}: {exc}"
            ) from None
        topics.check_topic_name(sample)
        return value

    @field_validator("inputs")
    @classmethod
    def _check_inputs(cls, value: list[InputSettings]) -> list[InputSettings]:
        if not value:
            raise ValueError("expected at least one input")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> EdgeSettings:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s: must not exceed reconnect_max_s")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_key_file: tls_cert_file and tls_key_file go together")
        uses_tls = self.tls_ca_file or self.tls_cert_file or self.tls_insecure
        if uses_tls and not self.hub.tls:
            raise ValueError("hub_url: tls_* settings need an mqtts:// hub_url")
        if self.buffer_max_bytes < 2 * self.batch_max_bytes:
            raise ValueError("buffer_max_bytes: must be at least 2 * batch_max_bytes")
        return self

    @property
    def hub(self) -> BrokerUrl:
        """The hub broker's address."""
        return parse_broker_url(self.hub_url)

    @property
    def local(self) -> BrokerUrl | None:
        """The local broker's address, if one is configured."""
        return parse_broker_url(self.local_url) if self.local_url else None

    @property
    def uplink_client_id(self) -> str:
        """The client id on the hub broker."""
        return self.client_id or f"sf-edge-{self.gateway_id}"

    @property
    def local_session_id(self) -> str:
        """The fixed client id of the persistent session on the local broker."""
        return self.local_client_id or f"sf-edge-{self.gateway_id}-local"

    @property
    def buffer_path(self) -> Path:
        """The SQLite file of the disk buffer."""
        return self.data_dir / "buffer.sqlite"


@contextmanager
def _config_file(path: Path | None) -> Iterator[None]:
    token = _CONFIG_FILE.set(path)
    try:
        yield
    finally:
        _CONFIG_FILE.reset(token)


def load_settings(config: Path | str | None = None, **values: Any) -> EdgeSettings:
    """Load the settings from the environment, a TOML file and ``values``.

    Args:
        config: the TOML file; when None, ``STREAMFLOW_EDGE_CONFIG`` names it,
            and without either no file is read.
        **values: settings given in code or on the command line; they win over
            the environment and the file. None values are left out.

    Returns:
        The validated settings.

    Raises:
        SettingsError: the file is missing or unreadable, or a setting is
            missing or bad; the message names the first such setting.
    """
    named = config if config is not None else os.environ.get(CONFIG_ENV) or None
    path = Path(named) if named is not None else None
    if path is not None and not path.is_file():
        what = "not a file" if path.exists() else "no such file"
        raise SettingsError("config", f"{what} {str(path)!r}")
    given = {k: v for k, v in values.items() if v is not None}
    try:
        with _config_file(path):
            return EdgeSettings(**given)
    except SettingsError:  # a bad JSON value in the environment, named already
        raise
    except ValidationError as exc:
        raise _validation_error(exc, path) from None
    except (OSError, ValueError) as exc:  # unreadable, or a TOML syntax error
        raise SettingsError("config", f"cannot read {str(path)!r}: {exc}") from None


def _validation_error(exc: ValidationError, path: Path | None) -> SettingsError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        # Only the TOML file and values in code can name a top-level key that
        # does not exist; say which, rather than pydantic's "extra inputs".
        in_file = path is not None and _in_toml(path, err["loc"])
        msg = f"unknown setting in {str(path)!r}" if in_file else "unknown setting"
    elif not loc:  # a check across fields names its setting first
        loc, _, msg = msg.partition(": ")
    return SettingsError(loc, msg)


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


# The sources, read as pydantic-settings 2.x reads them for a ``BaseSettings``
# with ``env_prefix``, ``env_nested_delimiter="__"`` and ``case_sensitive=False``
# (its ``InitSettingsSource``, ``EnvSettingsSource``, ``TomlConfigSettingsSource``):
# importing pydantic-settings cost the agent 3 MiB of its 40 MB budget at rest.
# tests/edge_agent/test_config_sources.py compares the two on random environments.
# TODO: aliases, env_parse_none_str, NoDecode and Json fields are not handled;
# no setting uses them, and pydantic-settings' handling would be copied first.


def _merge_sources(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """Merge the values of the sources, strongest first; tables merge key by key."""
    merged: dict[str, Any] = {}
    for source in sources:
        # The same fold as pydantic-settings: each weaker source is the base
        # that what was merged so far updates.
        merged = _deep_update(source, merged)
    return merged


def _deep_update(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = _deep_update(old, value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)


def _by_field_name(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values under their fields' names, matched without case."""
    names = {name.lower(): name for name in model.model_fields}
    given: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in values.items():
        name = names.get(key.lower())
        if name is None:
            extra[key] = value  # refused as an unknown setting when validated
        elif name not in given:  # of GATEWAY_ID and gateway_id, the first wins
            given[name] = value
    return given | extra


def _env_values(
    model: type[BaseModel], environ: Mapping[str, str], prefix: str
) -> dict[str, Any]:
    """The values of ``model``'s fields in ``environ``, before validation.

    A field's variable is ``<prefix><FIELD>`` in any case. A scalar's value is
    left as text for pydantic to parse in lax mode (``"1"``, ``"on"``, ``"true"``
    for a bool; ``"5"`` for an int); a list, a table or a model is JSON, and a
    table or a model may also be given key by key, ``<prefix><FIELD>__<KEY>``.

    Args:
        model: the settings model.
        environ: the environment, ``os.environ`` usually.
        prefix: the variables' common prefix, ``STREAMFLOW_EDGE_``.

    Returns:
        The values found, by field name.

    Raises:
        SettingsError: a list, table or model value is not valid JSON.
    """
    env = {key.lower(): value for key, value in environ.items()}
    found: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        var = f"{prefix}{name}".lower()
        is_complex, lenient = _field_is_complex(field)
        raw = env.get(var)
        if not is_complex:
            if raw is not None:
                found[name] = raw
            continue
        if raw is None:
            value: Any = _explode(field, env, prefix, name)
            if not value:
                continue
        else:
            try:
                value = _loads(raw)
            except ValueError:
                if not lenient:
                    msg = f"not valid JSON in {var.upper()}"
                    raise SettingsError(name, msg) from None
                value = raw  # a union with a scalar: the text may be that
            if isinstance(value, dict):
                value = _deep_update(value, _explode(field, env, prefix, name))
        if value is None:  # JSON null: as if the variable were not set
            continue
        found[name] = (
            _match_case(field.annotation, value) if isinstance(value, dict) else value
        )
    return found


def _explode(
    field: FieldInfo, env: Mapping[str, str], prefix: str, name: str
) -> dict[str, Any]:
    """The ``<PREFIX><NAME>__<KEY>[__<KEY>...]`` variables, as a nested table.

    ``env`` has lower-case names; a key's value is decoded as JSON where the
    field it names is a list, a table or a model.
    """
    ann = field.annotation
    is_dict = ann is dict or _is_subclass(get_origin(ann), dict)
    head = f"{prefix}{name}{ENV_NESTED_DELIMITER}".lower()
    tree: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(head):
            continue
        *path, last = key[len(head) :].split(ENV_NESTED_DELIMITER)
        node: Any = tree
        target: Any = field
        for part in path:
            target = _next_field(target, part, prefix)
            if isinstance(node, dict):
                node = node.setdefault(part, {})
        target = _next_field(target, last, prefix)
        value: Any = raw
        if (target or is_dict) and raw:
            value = _decode_nested(name, key, target, raw)
        if isinstance(node, dict):  # else a value, not a table, was given above
            node[last] = value
    return tree


def _decode_nested(name: str, key: str, target: Any, raw: str) -> Any:
    """Decode the value of a nested variable whose target is complex."""
    if isinstance(target, FieldInfo):
        is_complex, lenient = _field_is_complex(target)
    elif target is not None:  # a table's value type
        is_complex, lenient = _is_complex(target), True
        if not is_complex and _union_is_complex(target):
            try:
                decoded = _loads(raw)
            except ValueError:
                return raw
            return decoded if isinstance(decoded, (list, dict)) else raw
    else:  # a key of a table of any values
        is_complex, lenient = True, True
    if not is_complex:
        return raw
    try:
        return _loads(raw)
    except ValueError:
        if not lenient:
            raise SettingsError(name, f"not valid JSON in {key.upper()}") from None
        return raw


def _loads(raw: str) -> Any:
    # An environment value is no payload: it is decoded by the same parser as
    # pydantic-settings did, so that NaN or a 100-digit int still mean the same.
    return json.loads(raw)  # noqa: TID251 - not a payload, see above


def _next_field(target: Any, key: str, prefix: str) -> Any:
    """The field (or a table's value type) that ``key`` names inside ``target``.

    Returns:
        A ``FieldInfo`` of a model, a type of a table's values, or None.
    """
    if not target:
        return None
    annotation = target.annotation if isinstance(target, FieldInfo) else target
    if _is_subclass(get_origin(annotation), dict):
        args = get_args(annotation)
        return args[-1] if args else None
    for arg in get_args(annotation):  # list[Model], Model | None: look inside
        found = _next_field(arg, key, prefix)
        if found:
            return found
    if isinstance(annotation, type) and _is_subclass(annotation, BaseModel):
        for sub, info in annotation.model_fields.items():
            # pydantic-settings also takes the prefixed name at every level.
            if key in (sub.lower(), f"{prefix}{sub}".lower()):
                return info
    return None


def _match_case(annotation: Any, value: dict[str, Any]) -> dict[str, Any]:
    """Give a model's keys taken from the environment their fields' spelling."""
    model = _strip_optional(annotation)
    if not _is_subclass(model, BaseModel):
        return value
    names = {name.lower(): (name, info) for name, info in model.model_fields.items()}
    matched: dict[str, Any] = {}
    for key, item in value.items():
        if key.lower() not in names:
            matched[key] = item
            continue
        name, info = names[key.lower()]
        inner = _strip_optional(info.annotation)
        nested = _is_subclass(inner, BaseModel) and isinstance(item, dict)
        matched[name] = _match_case(inner, item) if nested else item
    return matched


def _field_is_complex(field: FieldInfo) -> tuple[bool, bool]:
    """Whether the field's value is JSON, and whether text that is not may pass.

    A union with a complex member (``list[str] | str``) takes a value that is
    not JSON as it is; a complex field alone refuses it.
    """
    if _is_complex(field.annotation):
        return True, False
    if _union_is_complex(field.annotation):
        return True, True
    return False, False


def _is_complex(annotation: Any) -> bool:
    """Whether values of the type are containers or models (given as JSON)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_complex(get_args(annotation)[0])
    return (
        _is_container(annotation)
        or _is_container(origin)
        or hasattr(origin, "__pydantic_core_schema__")
        or hasattr(origin, "__get_pydantic_core_schema__")
    )


def _is_container(annotation: Any) -> bool:
    if _is_subclass(annotation, (str, bytes)):
        return False
    containers = (BaseModel, Mapping, Sequence, Set, tuple, set, frozenset, deque)
    return _is_subclass(annotation, containers) or dataclasses.is_dataclass(annotation)


def _union_is_complex(annotation: Any) -> bool:
    if get_origin(annotation) not in (Union, types.UnionType):
        return False
    args = get_args(annotation)
    return any(_is_complex(arg) or _union_is_complex(arg) for arg in args)


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        if len(args) == 2 and type(None) in args:
            return next(arg for arg in args if arg is not type(None))
    return annotation


def _is_subclass(cls: Any, classinfo: type | tuple[type, ...]) -> bool:
    try:
        return isinstance(cls, type) and issubclass(cls, classinfo)
    except TypeError:  # list[int] is a type to isinstance, not to issubclass
        return False
