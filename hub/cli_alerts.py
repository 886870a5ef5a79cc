"""``streamflow alerts``: list, acknowledge and resolve alerts through the API.

The commands talk to a running API (``--api-url``) through
:class:`hub.client.StreamFlowClient`, signed in as a user (or a client), so
that the store's history names who acknowledged or resolved an alert, and
the role decides who may. Secrets come from the environment as well as the
options (``STREAMFLOW_API_PASSWORD``), to keep them off the command line.

Errors are one line on stderr: exit status 2 for what the user fixes in
the command (an API that does not answer, a refused sign-in, a role without
the right), 1 for a refused change (no such alert, a state that does not
allow it) or an API failure.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, Final, NoReturn
from urllib.parse import quote

import click
import httpx

from hub.client import AuthError, StreamFlowClient

DEFAULT_API_URL: Final = "http://127.0.0.1:8000"
#: Exit status of an error the user fixes in the command (as hub.cli).
EXIT_USER_ERROR: Final = 2
#: Exit status of a change the API refused, or of its failure.
EXIT_REFUSED: Final = 1

_STATES: Final = ("open", "acknowledged", "resolved")
_SEVERITIES: Final = ("info", "warning", "critical")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"streamflow: error: {message}", err=True)
    sys.exit(code)


def _api_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every alerts command takes: the API and its sign-in."""
    options = [
        click.option(
            "--api-url",
            envvar="STREAMFLOW_API_URL",
            default=DEFAULT_API_URL,
            show_default=True,
            help="The API [env STREAMFLOW_API_URL].",
        ),
        click.option(
            "--username",
            envvar="STREAMFLOW_API_USERNAME",
            help="Sign in as this user [env STREAMFLOW_API_USERNAME].",
        ),
        click.option(
            "--password",
            envvar="STREAMFLOW_API_PASSWORD",
            help="The user's password [env STREAMFLOW_API_PASSWORD; asked if "
            "missing on a terminal].",
        ),
        click.option(
            "--client-id",
            envvar="STREAMFLOW_API_CLIENT_ID",
            help="Sign in as this client instead [env STREAMFLOW_API_CLIENT_ID].",
        ),
        click.option(
            "--client-secret",
            envvar="STREAMFLOW_API_CLIENT_SECRET",
            help="The client's secret [env STREAMFLOW_API_CLIENT_SECRET].",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _connect(
    api_url: str,
    username: str | None,
    password: str | None,
    client_id: str | None,
    client_secret: str | None,
) -> StreamFlowClient:
    """A client of the options; asks for a missing password on a terminal."""
    if username is not None and password is None and sys.stdin.isatty():
        password = click.prompt(f"password of {username}", hide_input=True)
    try:
        return StreamFlowClient(
            api_url,
            username=username,
            password=password,
            client_id=client_id,
            client_secret=client_secret,
        )
    except ValueError:
        _fail(
            "sign in with --username and --password (or STREAMFLOW_API_USERNAME"
            " and STREAMFLOW_API_PASSWORD), or --client-id and --client-secret",
            EXIT_USER_ERROR,
        )


def _call(
    api: StreamFlowClient, method: str, path: str, **kwargs: Any
) -> dict[str, Any]:
    """Send one request; its JSON body, or one line and the exit status."""
    try:
        resp = api.request(method, path, **kwargs)
    except AuthError as exc:
        if exc.status in (400, 401):
            _fail(
                f"sign-in refused: wrong user name or password ({exc.error})",
                EXIT_USER_ERROR,
            )
        _fail(str(exc), EXIT_USER_ERROR)
    except httpx.TransportError as exc:
        _fail(f"cannot reach the API at {api.http.base_url}: {exc}", EXIT_USER_ERROR)
    if resp.status_code < 300:
        body: dict[str, Any] = resp.json()
        return body
    code, message = _error_of(resp)
    if resp.status_code == 401:
        _fail(f"not signed in (401 {code}): {message}", EXIT_USER_ERROR)
    if resp.status_code == 403:
        _fail(f"{_who(api)} may not do this (403 {code}): {message}", EXIT_USER_ERROR)
    _fail(f"{message} ({resp.status_code} {code})", EXIT_REFUSED)


def _error_of(resp: httpx.Response) -> tuple[str, str]:
    try:
        error = resp.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        return str(error.get("code")), str(error.get("message"))
    return "error", resp.text[:200] or resp.reason_phrase


def _who(api: StreamFlowClient) -> str:
    """``user 'vic' (role viewer)``: whom a 403 refused, as the API sees them."""
    try:
        me = api.get("/v1/auth/me").json()
        return f"{me['kind']} {me['name']!r} (role {me['role']})"
    except (httpx.HTTPError, ValueError, KeyError, AuthError):
        return "this sign-in"


def _closing(fn: Callable[..., None]) -> Callable[..., None]:
    """Build the client of the API options, pass it as ``api``, close it."""

    @functools.wraps(fn)
    def wrapper(
        api_url: str,
        username: str | None,
        password: str | None,
        client_id: str | None,
        client_secret: str | None,
        **kwargs: Any,
    ) -> None:
        with _connect(api_url, username, password, client_id, client_secret) as api:
            fn(api, **kwargs)

    return wrapper


@click.group("alerts")
def alerts() -> None:
    """List, acknowledge and resolve alerts through the API."""


@alerts.command("list")
@click.option("--state", type=click.Choice(_STATES), help="Only this state.")
@click.option("--severity", type=click.Choice(_SEVERITIES), help="Only this severity.")
@click.option("--device", help="Only this device's alerts.")
@click.option("--kind", help="Only this kind (threshold, offline, ...).")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="At most this many, newest first.",
)
@_api_options
@_closing
def list_alerts(
    api: StreamFlowClient,
    state: str | None,
    severity: str | None,
    device: str | None,
    kind: str | None,
    limit: int,
) -> None:
    """List alerts, newest first, as a table."""
    from rich.console import Console
    from rich.table import Table

    params = {"state": state, "severity": severity, "device": device, "kind": kind}
    query: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    page = _call(api, "GET", "/v1/alerts", params={**query, "limit": limit})
    table = Table("id", "state", "severity", "kind", "device", "opened", "summary")
    # The id is what ack and resolve take: never cut it short.
    table.columns[0].no_wrap = True
    table.columns[0].overflow = "fold"
    for a in page["alerts"]:
        table.add_row(
            a["id"],
            a["state"],
            a["severity"],
            a["kind"],
            a["device"] or a["gateway"] or "-",
            a["opened"],
            a["summary"],
        )
    Console(soft_wrap=False).print(table)
    more = " (more: raise --limit)" if page.get("next_cursor") else ""
    click.echo(f"{len(page['alerts'])} alert(s){more}")


def _change(api: StreamFlowClient, alert_id: str, action: str, note: str) -> None:
    """POST an alert's ``ack`` or ``resolve``; print its new state."""
    path = f"/v1/alerts/{quote(alert_id, safe='')}/{action}"
    alert = _call(api, "POST", path, json={"note": note})
    click.echo(f"alert {alert['id']} {alert['state']}")


@alerts.command("ack")
@click.argument("alert_id")
@click.option("--note", default="", help="Why, or what is being done.")
@_api_options
@_closing
def ack(api: StreamFlowClient, alert_id: str, note: str) -> None:
    """Acknowledge an open alert: someone is on it."""
    _change(api, alert_id, "ack", note)


@alerts.command("resolve")
@click.argument("alert_id")
@click.option("--note", default="", help="What was done.")
@_api_options
@_closing
def resolve(api: StreamFlowClient, alert_id: str, note: str) -> None:
    """Resolve an open or acknowledged alert."""
    _change(api, alert_id, "resolve", note)
