"""Every route of the app, with every role and with bad tokens: exact outcomes.

``EXPECTED`` names, for each route, who may call it. A route of the app that
is missing from the table fails ``test_every_route_is_in_the_table``: a new
route must declare its roles here. A role is *allowed* when the answer is
neither 401 nor 403 (a 404 or 422 for the made-up ids and empty bodies is
fine); *denied* is exactly 403 ``insufficient_scope``. Every non-public route
answers exactly 401 with an RFC 6750 challenge to no token and to expired,
forged, ``alg: none`` and wrong-key tokens.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import jwt
import orjson
import pytest
from starlette.routing import Mount, Route

from hub.api import create_app
from hub.security.passwords import hash_secret
from hub.security.roles import Role
from hub.security.store import ClientRecord
from hub.storage.sqlite import SQLiteStore
from tests.hub.security.conftest import PASSWORD, Api, serve, settings_for

PUBLIC = "public"
ALL = frozenset(Role)
READERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.INTEGRATION})
ALERT_READERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER})
ALERT_WRITERS = frozenset({Role.ADMIN, Role.OPERATOR})
ADMIN = frozenset({Role.ADMIN})
#: Registry writes and rule changes (scopes devices:write, rules:write).
CONFIGURERS = frozenset({Role.ADMIN, Role.OPERATOR})
INGESTERS = frozenset({Role.ADMIN, Role.DEVICE, Role.INTEGRATION})
SCRAPERS = frozenset({Role.ADMIN, Role.INTEGRATION})

EXPECTED: dict[tuple[str, str], Any] = {
    # Health, docs and the page itself (its data comes from the API).
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    # Data.
    ("GET", "/v1/devices"): READERS,
    ("GET", "/v1/devices/{device_id}"): READERS,
    ("GET", "/v1/devices/{device_id}/readings"): READERS,
    ("GET", "/v1/devices/{device_id}/latest"): READERS,
    ("GET", "/v1/devices/{device_id}/aggregate"): READERS,
    ("GET", "/v1/devices/{device_id}/accounting"): READERS,
    ("GET", "/v1/devices/{device_id}/logs"): READERS,
    ("GET", "/v1/devices/{device_id}/logs/counts"): READERS,
    ("GET", "/v1/gateways"): READERS,
    ("GET", "/v1/gateways/{gateway_id}"): READERS,
    ("GET", "/v1/gateways/{gateway_id}/accounting"): READERS,
    # v1 resources (hub/api/devices.py, data.py, ingest.py, rules.py, ops.py).
    ("POST", "/v1/devices"): CONFIGURERS,
    ("PATCH", "/v1/devices/{device_id}"): CONFIGURERS,
    ("DELETE", "/v1/devices/{device_id}"): CONFIGURERS,
    ("POST", "/v1/gateways"): CONFIGURERS,
    ("DELETE", "/v1/gateways/{gateway_id}"): CONFIGURERS,
    ("GET", "/v1/devices/{device_id}/buckets"): READERS,
    ("GET", "/v1/devices/{device_id}/stats"): READERS,
    ("GET", "/v1/stats"): READERS,
    ("POST", "/v1/ingest"): INGESTERS,
    ("GET", "/v1/rules"): READERS,
    ("GET", "/v1/rules/{rule_id}"): READERS,
    ("POST", "/v1/rules"): CONFIGURERS,
    ("PUT", "/v1/rules/{rule_id}"): CONFIGURERS,
    ("DELETE", "/v1/rules/{rule_id}"): CONFIGURERS,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): SCRAPERS,
    # Alerts.
    ("GET", "/v1/alerts"): ALERT_READERS,
    ("GET", "/v1/alerts/stream"): ALERT_READERS,
    ("GET", "/v1/alerts/{alert_id}"): ALERT_READERS,
    ("POST", "/v1/alerts/{alert_id}/ack"): ALERT_WRITERS,
    ("POST", "/v1/alerts/{alert_id}/resolve"): ALERT_WRITERS,
    # OAuth.
    ("POST", "/v1/auth/token"): PUBLIC,
    ("POST", "/v1/auth/revoke"): PUBLIC,
    ("POST", "/v1/auth/logout"): ALL,
    ("GET", "/v1/auth/me"): ALL,
    # Users, clients, audit.
    ("GET", "/v1/users"): ADMIN,
    ("POST", "/v1/users"): ADMIN,
    ("GET", "/v1/users/{name}"): ADMIN,
    ("PATCH", "/v1/users/{name}"): ADMIN,
    ("DELETE", "/v1/users/{name}"): ADMIN,
    ("GET", "/v1/clients"): ADMIN,
    ("POST", "/v1/clients"): ADMIN,
    ("GET", "/v1/clients/{client_id}"): ADMIN,
    ("PATCH", "/v1/clients/{client_id}"): ADMIN,
    ("POST", "/v1/clients/{client_id}/secret"): ADMIN,
    ("DELETE", "/v1/clients/{client_id}"): ADMIN,
    ("GET", "/v1/audit"): ADMIN,
    ("GET", "/v1/audit/export"): ADMIN,
    # Broker credentials (hub/api/credentials.py).
    ("GET", "/v1/broker/credentials"): ADMIN,
    ("POST", "/v1/gateways/{gateway_id}/credentials"): ADMIN,
    ("GET", "/v1/gateways/{gateway_id}/credentials"): ADMIN,
    ("DELETE", "/v1/gateways/{gateway_id}/credentials"): ADMIN,
    ("POST", "/v1/devices/{device_id}/credentials"): ADMIN,
    ("GET", "/v1/devices/{device_id}/credentials"): ADMIN,
    ("DELETE", "/v1/devices/{device_id}/credentials"): ADMIN,
}
#: People sign in with passwords; devices and integrations are clients.
PEOPLE = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)


def app_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route and mount of the app (HEAD left out).

    FastAPI keeps an included router as one entry of ``app.routes`` that
    holds the router (``original_router``) and the prefix it was included
    with; walk into those. The OpenAPI paths must all be among the result,
    which guards the walk against FastAPI changing how it keeps them.
    """
    out = set(_walk(app.routes, ""))
    documented = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
    }
    assert documented <= out, sorted(documented - out)
    return out


def _walk(routes, prefix: str):
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from _walk(router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            yield ("GET", prefix + route.path)
        elif isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    yield (method, prefix + route.path)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """A served API over SQLite with one signed-in principal of each role."""
    tmp = tmp_path_factory.mktemp("matrix")
    store = SQLiteStore(tmp / "store.db")
    store.migrate()
    app = create_app(store, settings_for(tmp))
    api = Api("", app, store)
    for role in PEOPLE:
        api.add_user(f"u-{role}", role)
    secrets: dict[Role, str] = {}
    for role in (Role.DEVICE, Role.INTEGRATION):
        secrets[role] = f"secret-of-{role}-" + "x" * 20
        store.create_client(
            ClientRecord(f"c-{role}", hash_secret(secrets[role]), (role,))
        )
    with serve(app) as url:
        api.url = url
        yield api, secrets
    store.close()


def _token(api: Api, role: Role, secrets: dict[Role, str]) -> str:
    with api.http() as http:
        if role in PEOPLE:
            data = {
                "grant_type": "password",
                "username": f"u-{role}",
                "password": PASSWORD,
            }
            r = http.post("/v1/auth/token", data=data)
        else:
            r = http.post(
                "/v1/auth/token",
                data={"grant_type": "client_credentials"},
                auth=(f"c-{role}", secrets[role]),
            )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def _call(api: Api, method: str, path: str, headers: dict[str, str]):
    url = re.sub(r"\{[^}]+\}", "x-1", path)
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PATCH") and not path.startswith("/v1/auth/"):
        kwargs["json"] = {}
    with api.http() as http, http.stream(method, url, **kwargs) as r:
        # Status and headers only: /v1/alerts/stream never ends by itself.
        if r.status_code in (401, 403):
            r.read()
            return r.status_code, r.headers, r.json()
        return r.status_code, r.headers, None


def test_every_route_is_in_the_table(matrix):
    """The table and the app's routes name the same (method, path) pairs."""
    api, _ = matrix

    routes = app_routes(api.app)

    assert sorted(routes - set(EXPECTED)) == [], "routes without declared roles"
    assert sorted(set(EXPECTED) - routes) == [], "table rows without a route"


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_route_by_role(matrix, method, path):
    """Each role is allowed or denied (403) exactly as the table says."""
    api, secrets = matrix
    allowed = EXPECTED[(method, path)]
    if (method, path) not in app_routes(api.app):
        pytest.fail(f"{method} {path} is in the table but not in the app")

    outcome = {}
    for role in Role:
        token = _token(api, role, secrets)
        status, _headers, body = _call(api, method, path, _bearer(token))
        outcome[role] = (
            "allowed" if status not in (401, 403) else (status, body["error"]["code"])
        )

    expected = {
        role: "allowed"
        if allowed == PUBLIC or role in allowed
        else (403, "insufficient_scope")
        for role in Role
    }
    assert outcome == expected


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def bad_tokens(api: Api, secrets: dict[Role, str]) -> dict[str, str]:
    """Tokens that must all be refused, by name."""
    good = _token(api, Role.ADMIN, secrets)
    claims = _claims(good)
    header, _body, sig = good.split(".")
    forged_claims = {**_claims(_token(api, Role.VIEWER, secrets)), "role": "admin"}
    forged_claims["scope"] = claims["scope"]
    expired = api.ctx.issuer.issue(
        "u-admin",
        Role.ADMIN,
        frozenset(api.ctx.issuer.decode(good).scopes),
        sid=claims["sid"],
        now=time.time() - 3600,
    )
    return {
        "expired": expired,
        "forged": f"{header}.{_b64(orjson.dumps(forged_claims))}.{sig}",
        "alg_none": f"{_b64(orjson.dumps({'alg': 'none', 'typ': 'JWT'}))}."
        f"{_b64(orjson.dumps(claims))}.",
        "wrong_key": jwt.encode(claims, b"w" * 64, algorithm="HS256"),
        "garbage": "not-a-jwt",
    }


@pytest.mark.parametrize(
    ("method", "path"), sorted(k for k, v in EXPECTED.items() if v != PUBLIC)
)
def test_route_refuses_bad_tokens(matrix, method, path):
    """No token: 401 ``unauthenticated``; bad tokens: 401 ``invalid_token``."""
    api, secrets = matrix
    if (method, path) not in app_routes(api.app):
        pytest.fail(f"{method} {path} is in the table but not in the app")
    outcomes = {}

    status, headers, body = _call(api, method, path, {})
    outcomes["none"] = (status, body["error"]["code"], headers["www-authenticate"])
    for name, token in bad_tokens(api, secrets).items():
        status, headers, body = _call(api, method, path, _bearer(token))
        challenge = headers.get("www-authenticate", "")
        outcomes[name] = (status, body["error"]["code"], challenge.split(",")[:2])

    invalid = (
        401,
        "invalid_token",
        ['Bearer realm="streamflow"', ' error="invalid_token"'],
    )
    assert outcomes == {
        "none": (401, "unauthenticated", 'Bearer realm="streamflow"'),
        "expired": invalid,
        "forged": invalid,
        "alg_none": invalid,
        "wrong_key": invalid,
        "garbage": invalid,
    }


@pytest.mark.parametrize(
    ("method", "path"), sorted(k for k, v in EXPECTED.items() if v == PUBLIC)
)
def test_public_route_needs_no_token(matrix, method, path):
    """Public routes answer without a token (neither 401 nor 403)."""
    api, _ = matrix

    status, _headers, _body = _call(api, method, path, {})

    assert status not in (401, 403)
