"""Settings sources: the environment's parsing, the TOML file, precedence, errors.

The agent reads its settings without pydantic-settings (it cost 5 MiB of the
gateway's memory budget). The environment must still be parsed as
pydantic-settings parsed it: the differential tests below compare the values
read with those of pydantic-settings' ``EnvSettingsSource`` (the hub still
depends on it), for the agent's own fields and for a model with nested ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from edge_agent import config as config_module
from edge_agent.config import (
    ENV_PREFIX,
    EdgeSettings,
    InputSettings,
    _env_values,
    load_settings,
)
from edge_agent.errors import SettingsError

GW = {"STREAMFLOW_EDGE_GATEWAY_ID": "gw-1"}


@pytest.fixture
def env(monkeypatch):
    """Set STREAMFLOW_EDGE_* variables for one test (the rest are cleared)."""

    def set_(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    return set_


# --- the environment, per field type ------------------------------------------


@pytest.mark.parametrize(
    ("var", "text", "field", "value"),
    [
        ("USERNAME", "edge-user", "username", "edge-user"),
        ("USERNAME", "", "username", ""),  # empty is a value, not unset
        ("KEEPALIVE_S", "45", "keepalive_s", 45),
        ("KEEPALIVE_S", " 45 ", "keepalive_s", 45),
        ("ACK_TIMEOUT_S", "0.25", "ack_timeout_s", 0.25),
        ("BACKLOG_RATE", "1e3", "backlog_rate", 1000.0),
        ("MQTT_VERSION", "5", "mqtt_version", "5"),
        ("COMPRESSION", "gzip", "compression", "gzip"),
        ("DATA_DIR", "/var/lib/edge", "data_dir", Path("/var/lib/edge")),
        ("LOCAL_CLIENT_ID", "null", "local_client_id", "null"),  # no None text
    ],
)
def test_env_scalar_values(env, var, text, field, value):
    """Each scalar type takes its text as pydantic-settings passed it on."""
    env(**GW, **{f"STREAMFLOW_EDGE_{var}": text})
    assert getattr(load_settings(), field) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("on", True),
        ("yes", True),
        ("0", False),
        ("false", False),
        ("off", False),
        ("no", False),
    ],
)
def test_env_bool_words(env, text, value):
    """A bool takes pydantic's words for true and false, in any case."""
    env(**GW, STREAMFLOW_EDGE_HUB_URL="mqtts://hub", STREAMFLOW_EDGE_TLS_INSECURE=text)
    assert load_settings().tls_insecure is value


def test_env_secret_is_read_and_hidden(env):
    """A password from the environment is a secret like one given in code."""
    env(**GW, STREAMFLOW_EDGE_PASSWORD="hunter2", STREAMFLOW_EDGE_LOCAL_PASSWORD="s3")
    s = load_settings()
    assert s.password is not None
    assert s.local_password is not None
    assert (s.password.get_secret_value(), s.local_password.get_secret_value()) == (
        "hunter2",
        "s3",
    )
    assert "hunter2" not in repr(s)


def test_env_names_in_any_case(env):
    """Variable names match without case, as with pydantic-settings."""
    env(streamflow_edge_gateway_id="gw-low", Streamflow_Edge_Keepalive_S="12")
    s = load_settings()
    assert (s.gateway_id, s.keepalive_s) == ("gw-low", 12)


def test_env_unknown_variable_ignored(env):
    """A STREAMFLOW_EDGE_ variable that names no setting is left alone."""
    env(**GW, STREAMFLOW_EDGE_NO_SUCH_SETTING="1")
    assert load_settings().gateway_id == "gw-1"


def test_env_list_as_json(env):
    """A list is JSON; its models' keys match their fields without case."""
    env(
        **GW,
        STREAMFLOW_EDGE_INPUTS='[{"adapter": "tasmota", "filter": "tele/+/SENSOR"},'
        ' {"adapter": "zigbee2mqtt", "filter": "zigbee2mqtt/+"}]',
    )
    assert [(i.adapter, i.filter) for i in load_settings().inputs] == [
        ("tasmota", "tele/+/SENSOR"),
        ("zigbee2mqtt", "zigbee2mqtt/+"),
    ]


def test_env_json_null_is_unset(env):
    """JSON null for a list leaves the default, as with pydantic-settings."""
    env(**GW, STREAMFLOW_EDGE_INPUTS="null")
    assert load_settings().inputs == [InputSettings()]


def test_env_bad_json_names_setting_and_variable(env):
    """A list that is not JSON names the setting and the variable."""
    env(**GW, STREAMFLOW_EDGE_INPUTS="[{adapter: tasmota}]")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert info.value.setting == "inputs"
    assert str(info.value) == "inputs: not valid JSON in STREAMFLOW_EDGE_INPUTS"


def test_env_list_not_by_index(env):
    """``__`` splits tables, not lists: an indexed variable is refused."""
    env(**GW, STREAMFLOW_EDGE_INPUTS__0__ADAPTER="tasmota")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert info.value.setting == "inputs"
    assert "valid list" in str(info.value)


@pytest.mark.parametrize(
    ("var", "text", "setting"),
    [
        ("KEEPALIVE_S", "abc", "keepalive_s"),
        ("KEEPALIVE_S", "4", "keepalive_s"),
        ("ACK_TIMEOUT_S", "soon", "ack_timeout_s"),
        ("MQTT_VERSION", "4", "mqtt_version"),
        ("BUFFER_FULL_POLICY", "drop_all", "buffer_full_policy"),
        ("INPUTS", '[{"adapter": "homie"}]', "inputs.0.adapter"),
        ("HUB_URL", "http://hub", "hub_url"),
    ],
)
def test_env_bad_value_names_setting(env, var, text, setting):
    """A bad value from the environment raises SettingsError naming the setting."""
    env(**GW, **{f"STREAMFLOW_EDGE_{var}": text})
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert info.value.setting == setting


def test_settings_class_reads_environment(env):
    """EdgeSettings(...) itself reads the environment, as a BaseSettings did."""
    env(STREAMFLOW_EDGE_GATEWAY_ID="gw-env", STREAMFLOW_EDGE_KEEPALIVE_S="12")
    s = EdgeSettings(keepalive_s=20)
    assert (s.gateway_id, s.keepalive_s) == ("gw-env", 20)
    assert s.model_fields_set == {"gateway_id", "keepalive_s"}


# --- the TOML file and precedence -------------------------------------------------


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_precedence_code_env_file_default(tmp_path, env):
    """Code beats the environment, which beats the file, which beats defaults."""
    path = _toml(
        tmp_path,
        'gateway_id = "gw-file"\nkeepalive_s = 10\nack_timeout_s = 3.0\n'
        "backlog_rate = 50.0\n",
    )
    env(STREAMFLOW_EDGE_KEEPALIVE_S="15", STREAMFLOW_EDGE_ACK_TIMEOUT_S="2.0")
    s = load_settings(path, ack_timeout_s=1.0)
    assert (s.gateway_id, s.keepalive_s, s.ack_timeout_s, s.backlog_rate) == (
        "gw-file",
        15,
        1.0,
        50.0,
    )
    assert s.batch_max_readings == 1000  # the default


def test_env_list_replaces_file_list(tmp_path, env):
    """A list from the environment replaces the file's; lists do not merge."""
    path = _toml(
        tmp_path,
        'gateway_id = "g"\n[[inputs]]\nadapter = "json"\n'
        '[[inputs]]\nadapter = "zigbee2mqtt"\nfilter = "zigbee2mqtt/+"\n',
    )
    env(STREAMFLOW_EDGE_INPUTS='[{"adapter": "tasmota", "filter": "tele/+/SENSOR"}]')
    assert [i.adapter for i in load_settings(path).inputs] == ["tasmota"]


def test_none_in_code_leaves_lower_sources(tmp_path, env):
    """load_settings leaves out None values (unset CLI options)."""
    path = _toml(tmp_path, 'gateway_id = "gw-file"\nhub_url = "mqtt://hub:1884"\n')
    env(STREAMFLOW_EDGE_LOCAL_URL="mqtt://127.0.0.1:1883")
    s = load_settings(path, gateway_id=None, hub_url=None, local_url=None)
    assert (s.gateway_id, s.hub_url, s.local_url) == (
        "gw-file",
        "mqtt://hub:1884",
        "mqtt://127.0.0.1:1883",
    )


def test_config_argument_beats_config_variable(tmp_path, env):
    """--config wins over STREAMFLOW_EDGE_CONFIG."""
    named = _toml(tmp_path, 'gateway_id = "gw-arg"\n')
    other = tmp_path / "other.toml"
    other.write_text('gateway_id = "gw-var"\n')
    env(STREAMFLOW_EDGE_CONFIG=str(other))
    assert load_settings(named).gateway_id == "gw-arg"
    assert load_settings().gateway_id == "gw-var"


def test_file_keys_in_any_case(tmp_path):
    """Top-level keys of the file match without case, as with pydantic-settings."""
    path = _toml(tmp_path, 'GATEWAY_ID = "gw-up"\nKeepalive_S = 11\n')
    s = load_settings(path)
    assert (s.gateway_id, s.keepalive_s) == ("gw-up", 11)


def test_code_names_in_any_case():
    """Names given in code match without case too."""
    assert load_settings(GATEWAY_ID="gw-up").gateway_id == "gw-up"


def test_file_read_only_by_load_settings(tmp_path, env):
    """EdgeSettings(...) alone does not read STREAMFLOW_EDGE_CONFIG's file."""
    env(STREAMFLOW_EDGE_CONFIG=str(_toml(tmp_path, 'gateway_id = "gw-file"\n')))
    with pytest.raises(ValueError, match="gateway_id"):
        EdgeSettings()


@pytest.mark.parametrize(
    ("text", "setting", "message"),
    [
        ('gateway_id = "g"\nmqtt_version = 4\n', "mqtt_version", "'3.1.1' or '5'"),
        ('gateway_id = "g"\nkeepalive_s = "x"\n', "keepalive_s", "valid integer"),
        ('gateway_id = "g"\n[inputs]\nadapter = "json"\n', "inputs", "valid list"),
        ('gateway_id = "g"\n[[inputs]]\nadapter = "x"\n', "inputs.0.adapter", "json"),
    ],
)
def test_file_bad_value_names_setting(tmp_path, text, setting, message):
    """A bad value in the file raises SettingsError naming the setting."""
    with pytest.raises(SettingsError) as info:
        load_settings(_toml(tmp_path, text))
    assert info.value.setting == setting
    assert message in str(info.value)


def test_unknown_setting_in_code_is_not_blamed_on_file(tmp_path):
    """An unknown name given in code is "unknown setting", without the file."""
    path = _toml(tmp_path, 'gateway_id = "g"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(path, batch_max_reading=5)
    assert str(info.value) == "batch_max_reading: unknown setting"


def test_file_error_before_environment_error(tmp_path, env):
    """A TOML syntax error is reported before a bad list in the environment."""
    env(**GW, STREAMFLOW_EDGE_INPUTS="not json")
    with pytest.raises(SettingsError) as info:
        load_settings(_toml(tmp_path, "gateway_id = \n"))
    assert info.value.setting == "config"
    assert "cannot read" in str(info.value)


def test_unreadable_file_names_config(tmp_path, monkeypatch):
    """A file that cannot be read is a SettingsError naming 'config'."""
    path = _toml(tmp_path, 'gateway_id = "g"\n')

    def denied(_path):
        # As a file of mode 000 for anyone but root (the tests run as root).
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(config_module, "_read_toml", denied)
    with pytest.raises(SettingsError, match=r"cannot read .*Permission denied") as info:
        load_settings(path)
    assert info.value.setting == "config"


# --- no pydantic-settings on the agent's path -------------------------------------


def test_agent_does_not_import_pydantic_settings():
    """The agent and its CLI run without importing pydantic_settings."""
    code = (
        "import sys, edge_agent, edge_agent.cli;"
        "from edge_agent.config import load_settings;"
        "load_settings(gateway_id='g');"
        "print(sorted(m for m in sys.modules if m.startswith"
        "(('pydantic_settings', 'dotenv'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# --- differential: the same values as pydantic-settings' EnvSettingsSource ---------


def _reference(model: type[BaseModel], prefix: str) -> Any:
    """A pydantic-settings class with ``model``'s fields and the agent's options."""
    import pydantic_settings  # the hub extra; the tests install it

    namespace: dict[str, Any] = {
        "__annotations__": {n: f.annotation for n, f in model.model_fields.items()},
        "model_config": pydantic_settings.SettingsConfigDict(
            env_prefix=prefix, env_nested_delimiter="__", extra="forbid"
        ),
        **model.model_fields,
    }
    return type(
        f"{model.__name__}Reference", (pydantic_settings.BaseSettings,), namespace
    )


def _both(
    model: type[BaseModel], prefix: str, environ: dict[str, str]
) -> tuple[Any, Any]:
    """What pydantic-settings and the agent read from ``environ``, or the field."""
    from pydantic_settings import EnvSettingsSource
    from pydantic_settings import SettingsError as ReferenceError

    reference = _reference(model, prefix)
    with mock.patch.dict(os.environ, environ, clear=True):
        try:
            want: Any = EnvSettingsSource(reference)()
        except ReferenceError as exc:  # 'error parsing value for field "x" ...'
            want = ("error", str(exc).split('"')[1])
        try:
            got: Any = _env_values(model, os.environ, prefix)
        except SettingsError as exc:
            got = ("error", exc.setting)
    return want, got


class _Leaf(BaseModel):
    level: int = 0
    Name: str = ""


class _Sub(BaseModel):
    port: int = 0
    tags: list[str] = []
    leaf: _Leaf = _Leaf()
    extra: dict[str, int] = {}
    maybe: list[int] | str = ""


class _Sample(BaseModel):
    """Every kind of field the environment parser distinguishes."""

    text: str | None = None
    count: int = 0
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    secret: SecretStr | None = None
    items: list[_Sub] = []
    sub: _Sub = _Sub()
    opt_sub: _Sub | None = None
    table: dict[str, _Sub] = {}
    anything: dict[str, Any] = {}
    either: list[int] | int = 0


_SAMPLE_VARS = [
    "T_TEXT",
    "T_COUNT",
    "T_FLAG",
    "T_MODE",
    "T_SECRET",
    "T_ITEMS",
    "T_ITEMS__0__PORT",
    "T_ITEMS__PORT",
    "T_SUB",
    "T_SUB__PORT",
    "T_SUB__TAGS",
    "T_SUB__LEAF",
    "T_SUB__LEAF__LEVEL",
    "T_SUB__LEAF__NAME",
    "T_SUB__EXTRA__K",
    "T_SUB__MAYBE",
    "T_SUB__T_PORT",
    "T_SUB__PORT__X",
    "T_OPT_SUB__PORT",
    "T_TABLE__X__PORT",
    "T_TABLE__Y",
    "T_ANYTHING__A__B",
    "T_ANYTHING__C",
    "T_EITHER",
    "T_OTHER",
]
_EDGE_VARS = [f"{ENV_PREFIX}{name.upper()}" for name in EdgeSettings.model_fields] + [
    "STREAMFLOW_EDGE_INPUTS__0__ADAPTER",
    "STREAMFLOW_EDGE_INPUTS__ADAPTER",
    "STREAMFLOW_EDGE_CONFIG",
]

# Values of every shape a variable can hold: words, numbers, JSON, broken JSON.
_texts = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "5",
            "-3",
            "1e3",
            "NaN",
            "true",
            "off",
            "null",
            "a",
            "[]",
            "{}",
            "[1, 2]",
            '["x"]',
            '{"port": 2}',
            '{"PORT": 2, "LEAF": {"name": "n"}}',
            '[{"port": 1}, {"adapter": "tasmota"}]',
            '{"leaf": 3}',
            "[1,",
            "{'a': 1}",
            "mqtt://hub:1883",
        ]
    ),
    st.text(max_size=12),
)


def _environments(names: list[str]) -> st.SearchStrategy[dict[str, str]]:
    # Each name in upper, lower or its own case: names match without case.
    name = st.sampled_from(names).flatmap(
        lambda n: st.sampled_from([n, n.lower(), n.title()])
    )
    return st.dictionaries(name, _texts.filter(lambda t: "\x00" not in t), max_size=6)


@settings(max_examples=300, deadline=None)
@given(environ=_environments(_SAMPLE_VARS))
def test_env_parsing_matches_pydantic_settings_nested(environ):
    """For nested models, tables and unions, the values read are the same."""
    want, got = _both(_Sample, "T_", environ)
    assert got == want


@settings(max_examples=300, deadline=None)
@given(environ=_environments(_EDGE_VARS))
def test_env_parsing_matches_pydantic_settings_edge(environ):
    """For the agent's own fields, the values read are the same."""
    want, got = _both(EdgeSettings, ENV_PREFIX, environ)
    assert got == want


@settings(max_examples=100, deadline=None)
@given(
    keepalive=st.integers(5, 65_535),
    rate=st.floats(min_value=1e-6, max_value=1e9, allow_nan=False),
    insecure=st.booleans(),
)
def test_env_numbers_round_trip(keepalive, rate, insecure):
    """Any int, float or bool written to the environment is read back."""
    environ = {
        **GW,
        "STREAMFLOW_EDGE_HUB_URL": "mqtts://hub",
        "STREAMFLOW_EDGE_KEEPALIVE_S": str(keepalive),
        "STREAMFLOW_EDGE_BACKLOG_RATE": repr(rate),
        "STREAMFLOW_EDGE_TLS_INSECURE": str(insecure),
    }
    with mock.patch.dict(os.environ, environ, clear=True):
        s = load_settings()
    assert (s.keepalive_s, s.backlog_rate, s.tls_insecure) == (
        keepalive,
        rate,
        insecure,
    )


def test_toml_mqtt_version_5_as_a_number_means_5(tmp_path, env):
    """``mqtt_version = 5`` (a TOML integer) is taken as "5"; 4 is still refused."""
    five = load_settings(_toml(tmp_path, 'gateway_id = "g"\nmqtt_version = 5\n'))
    assert (five.mqtt_version, five.local_mqtt_version) == ("5", "3.1.1")

    with pytest.raises(SettingsError) as info:
        load_settings(_toml(tmp_path, 'gateway_id = "g"\nmqtt_version = 4\n'))
    assert info.value.setting == "mqtt_version"


def test_a_directory_as_config_is_named_not_a_file(tmp_path, env):
    """STREAMFLOW_EDGE_CONFIG naming a directory says so, not 'no such file'."""
    with pytest.raises(SettingsError, match="not a file") as info:
        load_settings(tmp_path)
    assert info.value.setting == "config"
