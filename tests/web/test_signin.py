"""Signing in to the page: the form, tokens and their refresh, sign-out, errors."""

from __future__ import annotations

import httpx
import pytest

from hub.security.store import AuditQuery
from protocol.validate import now_us
from tests.services import wait_for
from tests.web.conftest import SHORT_TTL_S, USERS, WAIT_MS, pump_until, sign_in
from tests.web.test_page import new_alert

pytestmark = pytest.mark.e2e

_REFRESH_KEY = "streamflow.refresh_token"


def refresh_token(page) -> str | None:
    """The refresh token the page keeps in sessionStorage."""
    token: str | None = page.evaluate(f"() => sessionStorage.getItem({_REFRESH_KEY!r})")
    return token


def test_sign_in_form_then_alerts_and_who(site, open_page):
    """Before sign-in only the form shows; after it the alerts and the user."""
    browsing = open_page()
    page = browsing.page
    page.goto(site.url + "/")
    page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT_MS)
    assert page.locator("#app").is_hidden()
    assert page.get_by_label("User name").is_visible()
    assert page.get_by_label("Password").get_attribute("type") == "password"

    page = sign_in(browsing, site, goto=False)

    assert page.locator("#sign-in").is_hidden()
    assert page.locator("#who").inner_text() == "ada (operator)"
    assert page.locator("tr.alert").count() == 3
    assert browsing.grants == ["password"]
    # The one refusal is the page asking whether it needs a sign-in at all.
    assert browsing.failed == [("GET", "/v1/auth/me", 401)]
    assert refresh_token(page)
    assert browsing.errors == []


def test_wrong_password_shows_error_and_stays_on_form(site, open_page):
    """A wrong password says so in the page; nothing else is requested."""
    browsing = open_page()
    page = browsing.page
    page.goto(site.url + "/")
    page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT_MS)
    page.fill("#username", "ada")
    page.fill("#password", "not-the-password")
    page.click("#sign-in-button")

    message = page.locator("#sign-in-message")
    message.wait_for(state="visible", timeout=WAIT_MS)
    assert message.inner_text() == "Cannot sign in: Wrong user name or password."
    assert page.locator("#app").is_hidden()
    assert page.locator("#password").input_value() == ""
    assert browsing.failed == [
        ("GET", "/v1/auth/me", 401),
        ("POST", "/v1/auth/token", 400),
    ]
    assert not any(path.startswith("/v1/alerts") for _m, path, _s in browsing.requests)
    assert refresh_token(page) is None
    assert browsing.errors == []


def test_live_alert_and_acknowledge_as_user(site, open_page):
    """Signed in, a live alert arrives and acknowledging it records the user."""
    browsing = open_page()
    page = sign_in(browsing, site)

    assert site.store.open_alert(new_alert("al-signed"), "monitor")
    page.wait_for_selector('tr.alert[data-id="al-signed"]', timeout=WAIT_MS)
    page.get_by_role(
        "button",
        name="Acknowledge alert: al-signed raised while the page was open (dev-b)",
    ).click()

    wait_for(
        lambda: site.store.get_alert("al-signed").state == "acknowledged",
        timeout=WAIT_MS / 1000,
        what="al-signed acknowledged in the store",
    )
    last = site.store.alert_history("al-signed")[-1]
    assert (last.to_state, last.actor) == ("acknowledged", "ada")
    assert browsing.errors == []


def test_viewer_acknowledge_shows_role_error(site, open_page):
    """A viewer's Acknowledge is refused (403): the page says the role may not."""
    browsing = open_page()
    page = sign_in(browsing, site, user="vic")

    page.get_by_role(
        "button", name="Acknowledge alert: dev-a temp 27 C above 26 C (dev-a)"
    ).click()

    message = page.locator("#message")
    message.wait_for(state="visible", timeout=WAIT_MS)
    assert message.inner_text() == "Your role (viewer) may not acknowledge alerts."
    assert site.store.get_alert("al-crit").state == "open"
    assert ("POST", "/v1/alerts/al-crit/ack", 403) in browsing.failed
    assert browsing.errors == []


def test_access_token_refreshed_before_expiry(short_site, open_page):
    """With 2 s tokens the page refreshes at 4/5 of their life: a request made
    after the first token expired succeeds without a single 401."""
    browsing = open_page()
    page = sign_in(browsing, short_site)
    first = refresh_token(page)

    # Past the first token's expiry, by the refreshes the page made itself.
    pump_until(
        browsing,
        lambda: browsing.grants.count("refresh_token") >= 2,
        4 * SHORT_TTL_S,
        "two refreshes",
    )
    seen = len(browsing.requests)
    page.select_option("#state-filter", "open")
    pump_until(
        browsing,
        lambda: ("GET", "/v1/alerts", 200) in browsing.requests[seen:],
        WAIT_MS / 1000,
        "the alerts read again",
    )
    assert page.locator("tr.alert").count() == 3

    assert browsing.grants[0] == "password"
    assert set(browsing.grants[1:]) == {"refresh_token"}
    assert browsing.failed == [("GET", "/v1/auth/me", 401)]
    # The refresh token rotated, and the stored one is the newest.
    assert refresh_token(page) not in (None, first)
    assert browsing.errors == []


def test_expired_token_401_is_refreshed_and_retried(short_site, open_page):
    """With the page's timers stopped (a sleeping laptop), a request with an
    expired token gets a 401, the page refreshes once and retries it."""
    browsing = open_page()
    page = browsing.page
    # Fake timers and Date, paused: no scheduled refresh, and the page
    # believes its token is fresh while the server's clock moves on.
    page.clock.install()
    page.clock.pause_at(now_us() // 1000)
    page.goto(short_site.url + "/")
    page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT_MS)
    page.fill("#username", "ada")
    page.fill("#password", USERS["ada"][1])
    page.click("#sign-in-button")
    page.wait_for_selector("tr.alert", timeout=WAIT_MS)
    signed_in_us = now_us()
    pump_until(
        browsing,
        lambda: now_us() - signed_in_us > (SHORT_TTL_S + 1) * 1_000_000,
        SHORT_TTL_S + 3,
        "the access token to expire",
    )

    seen = len(browsing.requests)
    page.select_option("#state-filter", "open")
    pump_until(
        browsing,
        lambda: ("GET", "/v1/alerts", 200) in browsing.requests[seen:],
        WAIT_MS / 1000,
        "the alerts read again",
    )
    assert page.locator("tr.alert").count() == 3

    assert browsing.requests[seen:] == [
        ("GET", "/v1/alerts", 401),
        ("POST", "/v1/auth/token", 200),
        ("GET", "/v1/alerts", 200),
    ]
    assert browsing.grants == ["password", "refresh_token"]
    assert page.locator("#sign-in").is_hidden()
    assert browsing.errors == []


def test_reload_keeps_the_sign_in(site, open_page):
    """A reload resumes from the refresh token in sessionStorage, no form."""
    browsing = open_page()
    page = sign_in(browsing, site)
    before = refresh_token(page)

    page.reload()
    page.wait_for_selector("tr.alert", timeout=WAIT_MS)
    page.wait_for_selector("#live.on", timeout=WAIT_MS)

    assert page.locator("#sign-in").is_hidden()
    assert page.locator("#who").inner_text() == "ada (operator)"
    assert browsing.grants == ["password", "refresh_token"]
    assert refresh_token(page) not in (None, before)
    assert browsing.errors == []


def test_sign_out_returns_to_form_and_ends_sign_in(site, open_page):
    """Sign out posts /v1/auth/logout, forgets the tokens and shows the form;
    the old refresh token no longer works."""
    browsing = open_page()
    page = sign_in(browsing, site)
    spent = refresh_token(page)

    page.get_by_role("button", name="Sign out").click()

    page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT_MS)
    assert page.locator("#sign-in-message").inner_text() == "You are signed out."
    assert page.locator("#app").is_hidden()
    assert page.locator("tr.alert").count() == 0
    assert ("POST", "/v1/auth/logout", 204) in browsing.requests
    assert refresh_token(page) is None
    answer = httpx.post(
        site.url + "/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": spent},
        timeout=5,
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert browsing.errors == []


def test_refresh_refused_returns_to_form_with_message(short_site, open_page):
    """A sign-in revoked on the server (user disabled): the next refresh is
    refused and the page shows the form saying the session ended."""
    browsing = open_page()
    page = sign_in(browsing, short_site)

    assert short_site.store.revoke_subject("ada", "test", now_us()) >= 1

    page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT_MS)
    message = page.locator("#sign-in-message").inner_text()
    assert message.startswith("Your session has ended (")
    assert message.endswith("): sign in again.")
    assert page.locator("tr.alert").count() == 0
    assert refresh_token(page) is None
    assert browsing.errors == []


def test_sse_parser_follows_the_event_stream_rules(site, open_page):
    """The page's parser: ids, event types, multi-line data, comments, retry,
    CRLF split across chunks, a blank line without data dispatches nothing."""
    page = open_page().page
    page.goto(site.url + "/")
    got = page.evaluate(
        """async () => {
          const { SseParser } = await import('/static/api.js');
          const out = [];
          const p = new SseParser({
            onEvent: (ev) => out.push(['event', ev.type, ev.data, ev.id]),
            onComment: (text) => out.push(['comment', text]),
            onRetry: (ms) => out.push(['retry', ms]),
          });
          for (const chunk of [
            'retry: 2000\\r', '\\n\\r\\nid: 4', '2\\nevent: alert\\ndata: {"a"',
            ':1}\\n\\n: heartbeat\\n\\ndata: one\\ndata:two\\r\\rid\\n',
            'data: x\\n\\nretry: soon\\nid: 7\\n\\n', 'event: e\\ndata\\n\\n',
          ]) p.push(chunk);
          return [out, p.lastEventId];
        }"""
    )

    assert got == [
        [
            ["retry", 2000],
            ["event", "alert", '{"a":1}', "42"],
            ["comment", "heartbeat"],
            ["event", "message", "one\ntwo", "42"],
            ["event", "message", "x", ""],
            ["event", "e", "", "7"],
        ],
        "7",
    ]


def test_failed_sign_ins_are_audited(site, open_page):
    """The page's wrong password reaches the audit log as sign_in_failed."""
    browsing = open_page()
    page = browsing.page
    page.goto(site.url + "/")
    page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT_MS)
    page.fill("#username", "ada")
    page.fill("#password", "wrong-password")
    page.click("#sign-in-button")
    page.locator("#sign-in-message").wait_for(state="visible", timeout=WAIT_MS)

    records = wait_for(
        lambda: site.store.list_audit(AuditQuery(kind="sign_in_failed"), 10),
        timeout=WAIT_MS / 1000,
        what="a sign_in_failed audit record",
    )
    assert [r.actor for r in records] == ["ada"]


def test_stream_reconnects_with_last_event_id_and_fresh_token(cut_site, open_page):
    """A dropped stream reconnects with Last-Event-ID and a token that is not
    the (expired) one it first connected with; the alert opened while it was
    down arrives."""
    browsing = open_page()
    page = sign_in(browsing, cut_site)
    assert cut_site.store.open_alert(new_alert("al-before"), "monitor")
    page.wait_for_selector('tr.alert[data-id="al-before"]', timeout=WAIT_MS)
    seq = cut_site.store.alert_history("al-before")[-1].seq
    # Past the first access token's life: the page refreshed meanwhile.
    pump_until(
        browsing,
        lambda: browsing.grants.count("refresh_token") >= 2,
        4 * SHORT_TTL_S,
        "two refreshes",
    )
    assert cut_site.proxy is not None

    cut_site.proxy.cut()
    page.wait_for_selector("#live:not(.on)", timeout=WAIT_MS)
    assert cut_site.store.open_alert(new_alert("al-while-down"), "monitor")

    page.wait_for_selector('tr.alert[data-id="al-while-down"]', timeout=WAIT_MS)
    page.wait_for_selector("#live.on", timeout=WAIT_MS)
    (first_id, first_auth), (last_id, last_auth) = (
        browsing.streams[0],
        browsing.streams[-1],
    )
    assert (first_id, last_id) == (None, str(seq))
    assert first_auth is not None
    assert last_auth is not None
    assert last_auth != first_auth
    stream = [r for r in browsing.requests if r[1] == "/v1/alerts/stream"]
    # Connected, cut (no status), connected again: never refused.
    assert stream[0] == stream[-1] == ("GET", "/v1/alerts/stream", 200)
    assert ("GET", "/v1/alerts/stream", None) in stream
    assert not [r for r in stream if r[2] is not None and r[2] != 200]
    assert browsing.errors == []
