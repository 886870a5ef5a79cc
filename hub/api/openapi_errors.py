"""The API's errors in its OpenAPI document, for every operation.

:func:`document_errors` adds to each operation the errors it can answer, in
the shapes :class:`hub.api.errors.ErrorOut` and
:class:`hub.api.errors.OAuthErrorOut`; tests/hub/api_fuzz holds the API to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from hub.api.errors import ERROR_DESCRIPTIONS, ErrorOut, OAuthErrorOut

_REF = "#/components/schemas/"
_ERROR_MODELS: tuple[type[BaseModel], ...] = (ErrorOut, OAuthErrorOut)
BEARER_SCHEME = "bearer"


def document_errors(schema: dict[str, Any], routes: list[Any]) -> None:
    """Complete the error answers of an OpenAPI document in place.

    FastAPI documents a 422 of its own shape (``detail``), which the API never
    sends, and no other error. Here each operation gets: 403 (``ip_denied``
    can answer any request) and 500 always; 401 and the bearer scheme when
    it needs a token; 404 when it has path parameters; 422 in the one shape
    when it has parameters or a body. Any error a route declares without a
    body (``responses={409: {...}}``) gets the error shape too.
    """
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in _ERROR_MODELS:
        model_schema = model.model_json_schema(ref_template=_REF + "{model}")
        schemas.update(model_schema.pop("$defs", {}))
        schemas[model.__name__] = model_schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components.setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "an access token of POST /v1/auth/token",
    }
    for route in _api_routes(routes):
        if not route.include_in_schema:
            continue
        item = schema.get("paths", {}).get(route.path_format, {})
        for method in route.methods:
            operation = item.get(method.lower())
            if operation is not None:
                _complete(operation, route)


def _api_routes(routes: list[Any]) -> Iterator[Any]:
    # FastAPI keeps included routers as such and walks them with
    # iter_route_contexts (whose items act as the routes, router-level
    # dependencies included); older versions list the routes themselves.
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in walk(routes) if walk is not None else routes:
        if isinstance(getattr(route, "original_route", route), APIRoute):
            yield route


def _complete(operation: dict[str, Any], route: Any) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = [403, 500]
    if _needs_token(route.dependant):
        statuses.append(401)
        operation["security"] = [{BEARER_SCHEME: []}]
    if route.dependant.path_params:
        statuses.append(404)
    if "requestBody" in operation:
        statuses.append(400)  # a body that is not even text (not UTF-8)
    for status in statuses:
        responses.setdefault(str(status), {})
    for code, response in responses.items():
        if not code.isdigit() or int(code) < 400:
            continue
        content = response.get("content", {}).get("application/json", {})
        ref = content.get("schema", {}).get("$ref", "")
        if not content or ref == _REF + "HTTPValidationError":
            response["content"] = {
                "application/json": {"schema": {"$ref": _REF + "ErrorOut"}}
            }
        response["description"] = ERROR_DESCRIPTIONS.get(
            int(code), response.get("description") or "error"
        )


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _needs_token(dependant: Dependant) -> bool:
    # Imported here: hub.security.deps imports this module.
    from hub.security import deps

    def authenticates(call: Callable[..., Any]) -> bool:
        if call in (deps.authenticate, deps.current_actor):
            return True
        # require(...) makes a new closure per route.
        return getattr(call, "__qualname__", "") == "require.<locals>.dependency"

    return any(authenticates(c) for c in _calls(dependant))
