"""Schemathesis over the live API: no 5xx, answers as documented, all audited.

Issue 4 asks that schemathesis, run against the live API with a valid
token, finds no 5xx and no answer that breaks the schema, and that the
audit log then holds one record for every request of the run. The test
fetches the live OpenAPI document, so routes added later are fuzzed too,
and runs every operation with a fixed number of positive and negative
examples (:data:`EXAMPLES`), through the checks :data:`CHECKS`.

Left out, and why:

- operations that answer ``text/event-stream`` (``/v1/alerts/stream``):
  a stream never ends; tests/hub/test_api_alerts.py reads it.
- ``POST /v1/auth/logout`` runs with a token of its own (a second sign-in
  of the admin), not the run's: the first call ends that sign-in, every
  later one is the documented 401.
- The signed-in admin is never a path parameter: deleting, demoting or
  re-passwording them would end the run's token (their own answers, 204
  and 200, are as documented; the rest of the run would be 401s).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.hub.api_fuzz.checks import no_traceback
from tests.hub.api_fuzz.conftest import ADMIN, Live

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

#: Examples per operation and generation mode (positive, negative); set
#: STREAMFLOW_TEST_FUZZ_EXAMPLES for a longer run by hand.
EXAMPLES = int(os.environ.get("STREAMFLOW_TEST_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    no_traceback,
]
#: One example in this many gets a NUL in one of its strings.
NUL_ONE_IN = 6
LOGOUT = ("POST", "/v1/auth/logout")
#: Operations whose every call would undo the run (the signed-in admin).
_ADMIN_PARAMS = ("name",)


def _streams(operation: Any) -> bool:
    """Whether the operation answers a never-ending event stream."""
    ok = operation.definition.raw.get("responses", {}).get("200", {})
    return set(ok.get("content", {})) == {"text/event-stream"}


def _without_prefix_items(node: Any) -> Any:
    """``prefixItems`` (a tuple, OpenAPI 3.1) as ``items``, which is looser.

    Schemathesis 4.32 rewrites ``prefixItems`` into the old list form of
    ``items`` before checking a response, then refuses its own rewrite as an
    invalid schema (its issues 3842 and 4099 fixed the same for generation).
    The API's tuples are of one type (``[first, last]`` seq ranges), so
    ``items`` of that type with the length bounds checks the same.
    """
    if isinstance(node, list):
        return [_without_prefix_items(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _without_prefix_items(v) for k, v in node.items()}
    prefix = out.pop("prefixItems", None)
    if prefix is not None:
        distinct = [p for i, p in enumerate(prefix) if p not in prefix[:i]]
        out.setdefault(
            "items", distinct[0] if len(distinct) == 1 else {"anyOf": distinct}
        )
    return out


def _operations(live: Live) -> list[Any]:
    """Every operation of the live document, but the streams."""
    doc = live.http.get(f"{live.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(_without_prefix_items(doc))
    schema.config.update(base_url=live.url)
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"invalid operation: {result.err()}")
        operations.append(result.ok())
    return [op for op in operations if not _streams(op)]


def _known_ids(case: Case[Any], live: Live, data: st.DataObject) -> None:
    """Point path parameters at seeded objects most of the time."""
    params = case.path_parameters or {}
    for name in list(params):
        known = live.ids.get(name, [])
        seeded: bool = data.draw(st.booleans(), label=f"seeded {name}")
        if known and seeded:
            params[name] = data.draw(st.sampled_from(known), label=name)
        if name in _ADMIN_PARAMS and params[name] == ADMIN:
            params[name] = live.ids["name"][0]


def _nul_sometimes(case: Case[Any], data: st.DataObject) -> None:
    """Put a NUL into one string value now and then.

    The generators rarely make one; PostgreSQL cannot store one, and no
    route means one (the API refuses them with a 422).
    """
    targets: list[tuple[dict[str, Any], str]] = []
    for params in (case.path_parameters, case.query, case.body):
        if isinstance(params, dict):
            targets += [(params, k) for k, v in params.items() if isinstance(v, str)]
    if targets and data.draw(st.integers(0, NUL_ONE_IN - 1), label="nul") == 0:
        params, key = data.draw(st.sampled_from(targets), label="nul at")
        params[key] = params[key] + "\x00"


def _fuzz(live: Live, operation: Any, mode: GenerationMode, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}

    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(
        max_examples=EXAMPLES,
        # No deadline: a slow answer on a busy machine is not a failure (speed
        # is the benchmarks' business); each request's own timeout bounds it.
        deadline=None,
        database=None,
        derandomize=True,
        # No shrinking: a failure is reported as found, within the bound.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any], data: st.DataObject) -> None:
        _known_ids(case, live, data)
        _nul_sometimes(case, data)
        case.call_and_validate(
            session=live.http, headers=headers, checks=CHECKS, timeout=10
        )

    run()


def test_schemathesis_finds_nothing_and_every_request_is_audited(live: Live):
    """Every operation, positive and negative: no failed check; one record each."""
    operations = _operations(live)
    logout_token = live.sign_in()
    assert len(operations) >= 30, [op.label for op in operations]
    failures: dict[str, str] = {}
    for operation in operations:
        token = (
            logout_token
            if (operation.method.upper(), operation.path) == LOGOUT
            else live.token
        )
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(live, operation, mode, token)
            except Unsatisfiable:
                # Nothing to make invalid: no parameters and no body.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except BaseExceptionGroup as group:
                # The group's own text hides its causes (hypothesis' Flaky).
                causes = "; ".join(repr(e) for e in group.exceptions)
                text = f"{group}: {causes}"
                failures[f"{operation.label} ({mode.value})"] = text[:2000]
            except Exception as exc:  # reported below, all at once
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:2000]

    report = "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
    assert not failures, f"{len(failures)} operations failed:\n{report}"

    # The run's token still works: nothing above ended the admin's sign-in.
    assert live.http.get(f"{live.url}/v1/auth/me", headers=live.bearer).ok

    records = live.audit_requests()
    by_id = Counter(r.request_id for r in records)
    sent = live.http.sent
    assert len(sent) > 2 * EXAMPLES * len(operations) // 2
    assert {rid: n for rid, n in by_id.items() if n != 1} == {}
    assert set(by_id) == set(sent)
    assert len(records) == len(sent)
    recorded = {r.request_id: (r.method, r.path, r.status) for r in records}
    assert recorded == sent
