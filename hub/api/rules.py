"""Threshold rule routes: list, read, create, replace, delete.

Rules live in the store's ``rules`` table (kind ``threshold``) and are
validated by the processor's own model,
:class:`hub.processors.thresholds.ThresholdRule`, so that the API never
stores a rule the processor would refuse. The hub's threshold processor
reloads them every few seconds: a change here takes effect there without a
restart. Reading rules needs ``read``; changing them ``rules:write``
(operators and admins).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from fastapi import Path as PathParam
from pydantic import ValidationError

from hub.api.errors import ApiError, invalid, not_found
from hub.api.routes import StoreDep
from hub.api.schemas_v1 import RULE_EXAMPLE, RuleOut
from hub.processors.thresholds import RULE_KIND, ThresholdRule
from hub.security.deps import require
from hub.security.roles import Scope
from hub.storage.base import RuleRecord, Store

_LOGGER = logging.getLogger(__name__)

router = APIRouter(tags=["rules"])

_READ = [Depends(require(Scope.READ))]
_WRITE = [Depends(require(Scope.RULES_WRITE))]

RuleId = Annotated[str, PathParam(description="rule id", examples=["battery-hot"])]
RuleBody = Annotated[
    ThresholdRule,
    Body(
        openapi_examples={
            "above": {"summary": "above for two minutes", "value": RULE_EXAMPLE},
            "outside": {
                "summary": "outside a band",
                "value": {
                    "id": "soc-band",
                    "condition": "outside",
                    "low": 20.0,
                    "high": 95.0,
                    "selector": {"metrics": ["state_of_charge"]},
                },
            },
        }
    ),
]


def _threshold(store: Store, rule_id: str) -> RuleRecord:
    record = store.get_rule(rule_id)
    if record is None or record.kind != RULE_KIND:
        raise not_found("rule", rule_id)
    return record


def _out(record: RuleRecord) -> RuleOut:
    try:
        return RuleOut.of(record)
    except ValidationError:
        # Written by an older version or by hand: say so, do not 500.
        raise ApiError(
            409, "rule_invalid", f"stored rule {record.id!r} is not a valid rule"
        ) from None


@router.get("/v1/rules", response_model=list[RuleOut], dependencies=_READ)
def list_rules(store: StoreDep) -> Any:
    """Every threshold rule, ordered by id (stored rules that are invalid left out)."""
    out = []
    for record in store.list_rules(RULE_KIND):
        try:
            out.append(RuleOut.of(record))
        except ValidationError:
            _LOGGER.warning("stored rule is invalid, not listed rule=%s", record.id)
    return out


@router.get("/v1/rules/{rule_id}", response_model=RuleOut, dependencies=_READ)
def get_rule(rule_id: RuleId, store: StoreDep) -> Any:
    """One threshold rule."""
    return _out(_threshold(store, rule_id))


@router.post(
    "/v1/rules",
    response_model=RuleOut,
    status_code=201,
    dependencies=_WRITE,
    responses={409: {"description": "rule_exists"}},
)
def create_rule(body: RuleBody, store: StoreDep) -> Any:
    """Create a threshold rule."""
    try:
        record = store.create_rule(body.to_record())
    except ValueError:
        raise ApiError(409, "rule_exists", f"rule {body.id!r} exists") from None
    return _out(record)


@router.put("/v1/rules/{rule_id}", response_model=RuleOut, dependencies=_WRITE)
def replace_rule(rule_id: RuleId, body: RuleBody, store: StoreDep) -> Any:
    """Replace a threshold rule whole (its ``id`` must be the path's)."""
    if body.id != rule_id:
        raise invalid("id", f"the body's id {body.id!r} is not the path's {rule_id!r}")
    _threshold(store, rule_id)
    return _out(store.create_rule(body.to_record(), replace=True))


@router.delete("/v1/rules/{rule_id}", status_code=204, dependencies=_WRITE)
def delete_rule(rule_id: RuleId, store: StoreDep) -> Response:
    """Delete a threshold rule."""
    _threshold(store, rule_id)
    store.delete_rule(rule_id)
    return Response(status_code=204)
