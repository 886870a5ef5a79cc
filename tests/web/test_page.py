"""The page in a real browser: alerts live, acknowledge, devices and the chart.

Signed in through the page's form as ``ada`` (an operator) unless a test
says otherwise; sign-in, tokens and sign-out are in ``test_signin.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from hub.storage.base import AlertRecord
from protocol.validate import now_us
from tests.services import wait_for
from tests.web.conftest import CHART_MINUTES, WAIT_MS, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e


def load(browsing, site) -> Page:
    """Sign in and wait until the seeded alerts and the stream are in."""
    return sign_in(browsing, site)


def row(page, alert_id: str):
    return page.locator(f'tr.alert[data-id="{alert_id}"]')


def test_seeded_alerts_render_newest_first(site, open_page):
    """Each seeded alert shows summary, state, device and severity, newest first."""
    browsing = open_page()
    page = load(browsing, site)

    assert page.locator("tr.alert").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    ) == ["al-warn", "al-crit", "al-past"]
    crit = row(page, "al-crit")
    assert crit.locator("td.summary").inner_text() == "dev-a temp 27 C above 26 C"
    assert crit.locator("td.state").inner_text() == "open"
    assert crit.locator("td.device").inner_text() == "dev-a"
    assert "sev-critical" in (crit.get_attribute("class") or "")
    assert "sev-warning" in (row(page, "al-warn").get_attribute("class") or "")
    # The past marker is on the late alert only.
    assert row(page, "al-past").locator(".badge.past").count() == 1
    assert page.locator(".badge.past").count() == 1
    assert browsing.errors == []


def test_opened_time_is_local_time(site, open_page):
    """The opened time is the alert's instant shown in the viewer's zone."""
    browsing = open_page()
    page = load(browsing, site)

    cell = row(page, "al-crit").locator("td.opened time")
    shown = cell.inner_text()
    expected = page.evaluate(
        "iso => new Date(iso.replace(/(\\.\\d{3})\\d+/, '$1')).toLocaleString()",
        cell.get_attribute("datetime"),
    )
    assert shown == expected
    assert shown
    assert browsing.errors == []


def test_table_has_headers_and_labelled_buttons(site, open_page):
    """Columns have header cells; each action button names its alert."""
    page = load(open_page(), site)

    headers = page.locator("#alerts thead th[scope=col]").all_inner_texts()
    assert headers == ["Severity", "State", "Device", "Summary", "Opened", "Actions"]
    labels = (
        row(page, "al-crit")
        .locator("button")
        .evaluate_all("bs => bs.map(b => b.getAttribute('aria-label'))")
    )
    assert labels == [
        "Acknowledge alert: dev-a temp 27 C above 26 C (dev-a)",
        "Resolve alert: dev-a temp 27 C above 26 C (dev-a)",
    ]


def new_alert(ident: str) -> AlertRecord:
    return AlertRecord(
        id=ident,
        fingerprint=f"device/dev-b/threshold/{ident}",
        kind="threshold",
        severity="critical",
        summary=f"{ident} raised while the page was open",
        opened_us=now_us(),
        device="dev-b",
    )


def test_alert_opened_later_appears_live(site, open_page):
    """An alert the monitor opens after the page loaded shows up without reload."""
    browsing = open_page()
    page = load(browsing, site)

    assert site.store.open_alert(new_alert("al-live"), "monitor")

    page.wait_for_selector('tr.alert[data-id="al-live"]', timeout=WAIT_MS)
    assert (
        row(page, "al-live").locator("td.summary").inner_text()
        == "al-live raised while the page was open"
    )
    # Newest first: it opened last, so it is on top.
    assert page.locator("tr.alert").first.get_attribute("data-id") == "al-live"
    assert browsing.errors == []


def test_acknowledge_changes_store_and_page(site, open_page):
    """Clicking Acknowledge acknowledges in the store, and the row says so."""
    browsing = open_page()
    page = load(browsing, site)

    page.get_by_role(
        "button", name="Acknowledge alert: dev-a temp 27 C above 26 C (dev-a)"
    ).click()

    stored = wait_for(
        lambda: site.store.get_alert("al-crit").state == "acknowledged",
        timeout=WAIT_MS / 1000,
        what="al-crit acknowledged in the store",
    )
    assert stored
    state = row(page, "al-crit").locator("td.state")
    page.wait_for_function(
        "() => document.querySelector('tr[data-id=\"al-crit\"] td.state')"
        ".textContent === 'acknowledged'",
        timeout=WAIT_MS,
    )
    assert state.inner_text() == "acknowledged"
    # Acknowledged alerts can still be resolved, not acknowledged again.
    assert row(page, "al-crit").locator("button").all_inner_texts() == ["Resolve"]
    # The history names the signed-in user, not "anonymous".
    assert site.store.alert_history("al-crit")[-1].actor == "ada"
    assert browsing.errors == []


def test_change_by_monitor_reaches_page(site, open_page):
    """A resolve made in the store (by the monitor) updates the row live."""
    browsing = open_page()
    page = load(browsing, site)

    assert site.store.transition_alert(
        "al-warn", "resolved", "monitor", now_us(), ("open", "acknowledged")
    )

    page.wait_for_function(
        "() => document.querySelector('tr[data-id=\"al-warn\"] td.state')"
        ".textContent === 'resolved'",
        timeout=WAIT_MS,
    )
    assert row(page, "al-warn").locator("button").count() == 0
    assert browsing.errors == []


def test_state_filter_shows_only_that_state(site, open_page):
    """Filtering by state shows only the alerts in it."""
    assert site.store.transition_alert(
        "al-warn", "acknowledged", "ann", now_us(), ("open",)
    )
    browsing = open_page()
    page = load(browsing, site)

    page.select_option("#state-filter", "acknowledged")

    page.wait_for_function(
        "() => document.querySelectorAll('tr.alert').length === 1",
        timeout=WAIT_MS,
    )
    assert row(page, "al-warn").locator("td.state").inner_text() == "acknowledged"
    assert browsing.errors == []


def test_devices_panel_shows_online_and_offline(site, open_page):
    """The devices panel lists every device with online or offline."""
    browsing = open_page()
    page = load(browsing, site)

    page.wait_for_selector("#devices button", timeout=WAIT_MS)
    shown = page.locator("#devices button").evaluate_all(
        "bs => bs.map(b => [b.dataset.id, b.querySelector('span:last-child')"
        ".textContent])"
    )
    assert shown == [
        ["dev-a", "online"],
        ["dev-b", "online"],
        ["dev-off", "offline"],
    ]
    assert browsing.errors == []


def test_device_chart_draws_one_point_per_bucket(site, open_page):
    """The chart of the last hour has one point per minute bucket, not per reading."""
    browsing = open_page()
    page = load(browsing, site)
    page.wait_for_selector('#devices button[data-id="dev-a"]', timeout=WAIT_MS)

    page.click('#devices button[data-id="dev-a"]')

    page.wait_for_selector("#chart svg circle.pt", timeout=WAIT_MS)
    assert page.locator("#chart svg circle.pt").count() == CHART_MINUTES
    points = page.locator("#chart svg polyline").get_attribute("points") or ""
    assert len(points.split()) == CHART_MINUTES
    assert page.locator("#metric").input_value() == "temp"
    assert site.store.count_readings("dev-a") > CHART_MINUTES
    assert browsing.errors == []


def test_page_fits_360_px(site, open_page):
    """At 360 px wide nothing overflows the viewport; the table scrolls in place."""
    browsing = open_page(width=360)
    page = load(browsing, site)
    page.click('#devices button[data-id="dev-a"]')
    page.wait_for_selector("#chart svg circle.pt", timeout=WAIT_MS)

    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360
    chart = page.locator("#chart svg").bounding_box()
    assert chart is not None
    assert chart["x"] >= 0
    assert chart["x"] + chart["width"] <= 360
    # Every action button is on screen, not behind a horizontal scroll.
    buttons = page.locator("tr.alert button")
    assert buttons.count() == 6
    for box in (b.bounding_box() for b in buttons.all()):
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 360
    assert browsing.errors == []


@pytest.mark.db
def test_timescale_live_and_acknowledge(pg_site, open_page):
    """Over TimescaleDB: a live alert appears and acknowledging it reaches the store."""
    browsing = open_page()
    page = load(browsing, pg_site)

    assert pg_site.store.open_alert(new_alert("al-pg"), "monitor")
    page.wait_for_selector('tr.alert[data-id="al-pg"]', timeout=WAIT_MS)
    page.get_by_role(
        "button", name="Acknowledge alert: al-pg raised while the page was open (dev-b)"
    ).click()

    wait_for(
        lambda: pg_site.store.get_alert("al-pg").state == "acknowledged",
        timeout=WAIT_MS / 1000,
        what="al-pg acknowledged in TimescaleDB",
    )
    assert pg_site.store.alert_history("al-pg")[-1].actor == "ada"
    page.wait_for_function(
        "() => document.querySelector('tr[data-id=\"al-pg\"] td.state')"
        ".textContent === 'acknowledged'",
        timeout=WAIT_MS,
    )
    assert browsing.errors == []


def test_no_console_errors_over_a_session(site, open_page):
    """Loading, a live change, a click and the chart log no console error."""
    browsing = open_page()
    page = load(browsing, site)
    assert site.store.open_alert(new_alert("al-quiet"), "monitor")
    page.wait_for_selector('tr.alert[data-id="al-quiet"]', timeout=WAIT_MS)
    page.click('#devices button[data-id="dev-b"]')
    page.wait_for_selector("#chart svg circle.pt", timeout=WAIT_MS)
    page.get_by_role(
        "button", name="Resolve alert: dev-b silent for 5 min (dev-b)"
    ).click()
    page.wait_for_function(
        "() => document.querySelector('tr[data-id=\"al-warn\"] td.state')"
        ".textContent === 'resolved'",
        timeout=WAIT_MS,
    )

    assert browsing.errors == []


def test_without_auth_the_page_needs_no_sign_in(open_site, open_page):
    """With auth off the page shows the alerts at once: no form, no sign-out."""
    browsing = open_page()
    page = browsing.page
    page.goto(open_site.url + "/")
    page.wait_for_selector("tr.alert", timeout=WAIT_MS)
    page.wait_for_selector("#live.on", timeout=WAIT_MS)
    page.get_by_role(
        "button", name="Acknowledge alert: dev-a temp 27 C above 26 C (dev-a)"
    ).click()

    wait_for(
        lambda: open_site.store.get_alert("al-crit").state == "acknowledged",
        timeout=WAIT_MS / 1000,
        what="al-crit acknowledged in the store",
    )
    assert page.locator("#sign-in").is_hidden()
    assert page.locator("#sign-out").is_hidden()
    assert open_site.store.alert_history("al-crit")[-1].actor == "anonymous"
    assert browsing.grants == []
    assert browsing.failed == []
    assert browsing.errors == []
