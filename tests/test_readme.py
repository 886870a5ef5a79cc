"""The README documents every setting of the hub and of the edge agent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge_agent.config import EdgeSettings
from hub.config import HubSettings

README = (Path(__file__).parents[1] / "README.md").read_text()


def _row(name: str, env: str) -> bool:
    return bool(re.search(rf"^\| `{name}` \| `{env}` \|", README, re.MULTILINE))


@pytest.mark.parametrize("name", sorted(EdgeSettings.model_fields))
def test_readme_lists_edge_setting(name):
    """Each EdgeSettings field has its row with its environment variable."""
    assert _row(name, f"STREAMFLOW_EDGE_{name.upper()}"), name


@pytest.mark.parametrize("name", sorted(HubSettings.model_fields))
def test_readme_lists_hub_setting(name):
    """Each HubSettings field (nested ones by their first level) has its row."""
    field = HubSettings.model_fields[name]
    nested = getattr(field.annotation, "model_fields", None)
    if nested:
        for sub in nested:
            env = f"STREAMFLOW_{name.upper()}__{sub.upper()}"
            assert _row(f"{name}.{sub}", env), f"{name}.{sub}"
    else:
        assert _row(name, f"STREAMFLOW_{name.upper()}"), name
