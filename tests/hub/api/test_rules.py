"""Threshold rule routes over both stores: round trips and errors."""

from __future__ import annotations

from typing import Any

import pytest

from hub.processors.thresholds import ThresholdRule, list_rules
from hub.security.roles import Role
from hub.storage.base import RuleRecord
from tests.hub.api.conftest import add_user, bearer

RULE = {
    "id": "battery-hot",
    "name": "battery too hot",
    "condition": "above",
    "threshold": 45.0,
    "for_s": 120.0,
    "hysteresis": 2.0,
    "severity": "critical",
    "enabled": True,
    "selector": {"devices": ["dev-*"], "metrics": ["temp"], "tags": {}},
}


def _shown(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("created", "updated")}


def test_rule_create_read_replace_delete(client):
    """A rule round-trips, and the processor's loader reads what the API stored."""
    store = client.app.state.store

    created = client.post("/v1/rules", json=RULE)
    listed = client.get("/v1/rules")
    loaded = list_rules(store)
    replaced = client.put(
        "/v1/rules/battery-hot", json={**RULE, "threshold": 50.0, "for_s": 0}
    )
    got = client.get("/v1/rules/battery-hot")
    deleted = client.delete("/v1/rules/battery-hot")

    full = {**RULE, "low": None, "high": None}
    assert created.status_code == 201
    assert _shown(created.json()) == full
    assert created.json()["created"].endswith("Z")
    assert [_shown(r) for r in listed.json()] == [full]
    assert loaded == [ThresholdRule.model_validate(RULE)]
    assert _shown(replaced.json()) == {**full, "threshold": 50.0, "for_s": 0.0}
    assert _shown(got.json()) == _shown(replaced.json())
    assert deleted.status_code == 204
    assert client.get("/v1/rules/battery-hot").json() == {
        "error": {"code": "rule_not_found", "message": "no rule 'battery-hot'"}
    }
    assert list_rules(store) == []


def test_rule_create_twice_conflicts(client):
    """A second POST of one id is 409 ``rule_exists``."""
    client.post("/v1/rules", json=RULE)

    resp = client.post("/v1/rules", json={**RULE, "threshold": 1.0})

    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "rule_exists"
    assert client.get("/v1/rules/battery-hot").json()["threshold"] == 45.0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "bad id"}, "id"),
        ({"condition": "sideways"}, "condition"),
        ({"for_s": -1}, "for_s"),
        ({"severity": "dire"}, "severity"),
        ({"selector": {"devices": ["*"], "colour": "red"}}, "selector.colour"),
        ({"threshold": None}, "body"),
    ],
)
def test_rule_invalid_names_the_field(client, change, field):
    """A rule the processor would refuse is 422 naming the field."""
    resp = client.post("/v1/rules", json={**RULE, **change})

    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == field
    assert client.get("/v1/rules").json() == []


def test_rule_replace_errors(client):
    """PUT of an unknown rule is 404; an id differing from the path's is 422."""
    client.post("/v1/rules", json=RULE)

    missing = client.put("/v1/rules/other", json={**RULE, "id": "other"})
    mismatch = client.put("/v1/rules/battery-hot", json={**RULE, "id": "other"})

    assert (missing.status_code, missing.json()["error"]["code"]) == (
        404,
        "rule_not_found",
    )
    assert (mismatch.status_code, mismatch.json()["error"]["field"]) == (422, "id")


def test_rule_of_another_kind_is_not_served(client):
    """Rules of other processors share the table but not these routes."""
    store = client.app.state.store
    store.create_rule(RuleRecord("z-score", "anomaly", {"k": 3}))

    assert client.get("/v1/rules/z-score").status_code == 404
    assert client.delete("/v1/rules/z-score").status_code == 404
    assert client.get("/v1/rules").json() == []
    assert store.get_rule("z-score") is not None


def test_rule_operator_writes_viewer_reads(client):
    """Operators may change rules; viewers only read them."""
    operator = bearer(add_user(client, "olga", Role.OPERATOR))
    viewer = bearer(add_user(client, "vic", Role.VIEWER))

    by_operator = client.post("/v1/rules", json=RULE, headers=operator)
    by_viewer = client.delete("/v1/rules/battery-hot", headers=viewer)
    read = client.get("/v1/rules/battery-hot", headers=viewer)

    assert by_operator.status_code == 201
    assert (by_viewer.status_code, by_viewer.json()["error"]["code"]) == (
        403,
        "insufficient_scope",
    )
    assert read.status_code == 200
