"""Browser tests of the page: Debian's chromium driven by Playwright.

The page is served by a real uvicorn server on 127.0.0.1 over a real store
(a SQLite file, or TimescaleDB through ``pg_dsn``) seeded through the store's
own methods. Playwright's own browser download is never used
(``playwright install`` needs the network): Debian's ``chromium`` package is
(``scripts/setup-services`` installs it).

Auth is on, as in a deployment: the page is signed in to through its form
(:func:`sign_in`) as one of :data:`USERS`. ``open_site`` serves it with auth
off, the one mode that needs no sign-in.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from hub.api import create_app
from hub.config import HubSettings
from hub.security.passwords import Passwords
from hub.security.roles import Role
from hub.security.store import UserRecord
from hub.storage import IngestItem, open_store
from hub.storage.base import AlertRecord, DeviceInfo, Store
from protocol.readings import SeriesBlock
from protocol.validate import now_us
from tests.auth_settings import FAST_PASSWORDS, with_access_ttl
from tests.services import missing_service
from tests.web.server import CuttableProxy, serve

if TYPE_CHECKING:
    from playwright.sync_api import Page

MIN = 60_000_000
#: Minutes of the chart's device that have readings (one bucket each).
CHART_MINUTES = 40
#: The users of the auth-on sites: name -> (role, password).
USERS = {
    "ada": (Role.OPERATOR, "ada-password-12"),
    "vic": (Role.VIEWER, "vic-password-12"),
}
#: Bound on anything the page shows after a change (load, stream, click).
WAIT_MS = 10_000
#: The access token lifetime of ``short_site``: below the settings' floor of
#: 10 s (set past validation) so that a test sees it expire in seconds.
SHORT_TTL_S = 2
# Chromium logs every 4xx/5xx answer and every broken connection as a
# console error; the tests record those as responses and failed requests
# instead (Browsing.failed) and assert which they expect.
_NETWORK_CONSOLE = "Failed to load resource: "


def chromium_path() -> str:
    """Debian's chromium, or skip (fail under STREAMFLOW_REQUIRE_SERVICES=1)."""
    path = os.environ.get("STREAMFLOW_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        missing_service("chromium (apt-get install chromium)")
    return str(path)


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the session."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("playwright (pip install playwright)")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=executable, headless=True, args=args
        )
        yield launched
        launched.close()


@dataclass
class Site:
    """A served app over a seeded store."""

    url: str
    store: Store
    #: The seeded alerts, by id.
    alerts: dict[str, AlertRecord] = field(default_factory=dict)
    #: The proxy between browser and server, if any (``cut_site``).
    proxy: CuttableProxy | None = None


def seed(store: Store) -> dict[str, AlertRecord]:
    """Two devices with readings, one without, and three alerts."""
    now = now_us()
    minute = now - now % MIN
    # One bucket per minute of the last CHART_MINUTES minutes (ending two
    # minutes ago, so the page's window holds them all), two readings in
    # every third minute: points count buckets, not readings.
    ts = []
    for k in range(CHART_MINUTES + 1, 1, -1):
        ts.append(minute - k * MIN + 5_000_000)
        if k % 3 == 0:
            ts.append(minute - k * MIN + 35_000_000)
    temp = SeriesBlock(
        "dev-a",
        "temp",
        "C",
        ts,
        [20.0 + (i % 7) for i in range(len(ts))],
        [0] * len(ts),
    )
    hum = SeriesBlock("dev-b", "humidity", "%", [minute - MIN], [55.0], [0])
    store.write([IngestItem("gw-1", 1, [temp, hum], now, devices={"dev-a", "dev-b"})])
    store.upsert_device(DeviceInfo(id="dev-off", name="cellar"))

    records = [
        AlertRecord(
            id="al-crit",
            fingerprint="device/dev-a/threshold/temp:above_max",
            kind="threshold",
            severity="critical",
            summary="dev-a temp 27 C above 26 C",
            opened_us=now - 30 * MIN,
            device="dev-a",
            metric="temp",
        ),
        AlertRecord(
            id="al-warn",
            fingerprint="device/dev-b/offline/",
            kind="offline",
            severity="warning",
            summary="dev-b silent for 5 min",
            opened_us=now - 20 * MIN,
            device="dev-b",
        ),
        AlertRecord(
            id="al-past",
            fingerprint="device/dev-a/impossible/temp:below_range",
            kind="impossible",
            severity="info",
            summary="dev-a temp below range yesterday",
            opened_us=now - 24 * 60 * MIN,
            device="dev-a",
            past=True,
        ),
    ]
    for record in records:
        assert store.open_alert(record, "monitor")
    return {r.id: r for r in records}


def settings_for(tmp_path, auth: bool = True, access_ttl_s: int | None = None):
    """Settings of a test site: fast stream poll, cheap argon2, no leeway."""
    settings = HubSettings(
        data_dir=tmp_path,
        api_stream_poll_s=0.05,
        # No clock skew allowance: an expired token is refused at once.
        auth={"enabled": auth, **FAST_PASSWORDS, "leeway_s": 0},
    )
    if access_ttl_s is None:
        return settings
    return with_access_ttl(settings, access_ttl_s)


def add_users(store: Store, settings: HubSettings) -> None:
    """Create :data:`USERS` in the store."""
    passwords = Passwords.from_config(settings.auth)
    for name, (role, password) in USERS.items():
        assert store.create_user(  # type: ignore[attr-defined]
            UserRecord(name, role, passwords.hash(password))
        )


def _site(url_of_store: str, settings: HubSettings):
    store = open_store(url_of_store)
    store.migrate()
    try:
        alerts = seed(store)
        if settings.auth.enabled:
            add_users(store, settings)
        with serve(create_app(store, settings)) as url:
            yield Site(url, store, alerts)
    finally:
        store.close()


@pytest.fixture
def site(tmp_path):
    """The page over a seeded SQLite file, auth on."""
    yield from _site(f"sqlite:///{tmp_path}/web.db", settings_for(tmp_path))


@pytest.fixture
def short_site(tmp_path):
    """Like ``site``, with access tokens that live :data:`SHORT_TTL_S`."""
    settings = settings_for(tmp_path, access_ttl_s=SHORT_TTL_S)
    yield from _site(f"sqlite:///{tmp_path}/web.db", settings)


@pytest.fixture
def cut_site(short_site):
    """``short_site`` seen through a proxy whose connections a test can cut
    (``site.proxy.cut()``); ``site.url`` is the proxy's."""
    port = int(short_site.url.rsplit(":", 1)[1])
    proxy = CuttableProxy(port)
    try:
        yield Site(proxy.url, short_site.store, short_site.alerts, proxy)
    finally:
        proxy.close()


@pytest.fixture
def open_site(tmp_path):
    """The page over a seeded SQLite file with auth off (no sign-in)."""
    settings = settings_for(tmp_path, auth=False)
    yield from _site(f"sqlite:///{tmp_path}/web.db", settings)


@pytest.fixture
def pg_site(pg_dsn, tmp_path):
    """The page over a seeded TimescaleDB database, auth on."""
    yield from _site(pg_dsn, settings_for(tmp_path))


@dataclass
class Browsing:
    """A page of the browser and what it logged and asked so far."""

    page: Page
    #: Console errors and uncaught exceptions (not HTTP error statuses).
    errors: list[str]
    #: Every API request: (method, path, status), status None if it failed.
    requests: list[tuple[str, str, int | None]] = field(default_factory=list)
    #: The ``grant_type`` of each POST /v1/auth/token, in order.
    grants: list[str] = field(default_factory=list)
    #: Each request of the alert stream: (Last-Event-ID, Authorization).
    streams: list[tuple[str | None, str | None]] = field(default_factory=list)

    @property
    def failed(self) -> list[tuple[str, str, int | None]]:
        """The requests answered with 4xx or 5xx (or not at all)."""
        return [r for r in self.requests if r[2] is None or r[2] >= 400]


def _console(errors: list[str], msg) -> None:
    if msg.type == "error" and not msg.text.startswith(_NETWORK_CONSOLE):
        errors.append(msg.text)


def _record(browsing: Browsing, request, status: int | None) -> None:
    from urllib.parse import parse_qs, urlsplit

    path = urlsplit(request.url).path
    if not path.startswith("/v1/"):
        return
    browsing.requests.append((request.method, path, status))
    if path == "/v1/auth/token" and request.method == "POST":
        form = parse_qs(request.post_data or "")
        browsing.grants.append(form.get("grant_type", [""])[0])


def _record_stream(browsing: Browsing, request) -> None:
    if request.url.endswith("/v1/alerts/stream"):
        headers = request.headers
        browsing.streams.append(
            (headers.get("last-event-id"), headers.get("authorization"))
        )


def _open(browser, width: int = 1200):
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    browsing = Browsing(page, [])
    page.on("console", lambda msg: _console(browsing.errors, msg))
    page.on("pageerror", lambda exc: browsing.errors.append(f"uncaught: {exc}"))
    # A stream's response comes when its headers do; "requestfinished"
    # would wait for its end.
    page.on("response", lambda resp: _record(browsing, resp.request, resp.status))
    page.on("requestfailed", lambda req: _record(browsing, req, None))
    page.on("request", lambda req: _record_stream(browsing, req))
    return context, browsing


def pump_until(browsing: Browsing, predicate, timeout_s: float, what: str):
    """Wait for ``predicate()`` while Playwright delivers the page's events.

    The sync API hands events (responses, console) over only while the test
    calls into it, so a plain ``wait_for`` would never see them arrive.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        browsing.page.wait_for_timeout(50)


def sign_in(
    browsing: Browsing,
    site: Site,
    user: str = "ada",
    password: str | None = None,
    goto: bool = True,
) -> Page:
    """Open the page (unless open already), sign in through its form, wait
    for the alerts and the stream."""
    page = browsing.page
    if goto:
        page.goto(site.url + "/")
    page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT_MS)
    page.fill("#username", user)
    page.fill("#password", password or USERS[user][1])
    page.click("#sign-in-button")
    page.wait_for_selector("tr.alert", timeout=WAIT_MS)
    page.wait_for_selector("#live.on", timeout=WAIT_MS)
    return page


@pytest.fixture
def open_page(browser):
    """Open pages (``open_page(width)``); closed before the server stops."""
    contexts = []

    def opener(width: int = 1200) -> Browsing:
        context, browsing = _open(browser, width)
        contexts.append(context)
        return browsing

    yield opener
    for context in contexts:
        context.close()
