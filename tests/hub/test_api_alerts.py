"""The alert routes over real stores (SQLite and TimescaleDB), and the live stream.

The stream tests run a real uvicorn server on 127.0.0.1 and read it with
httpx streaming, as a browser's EventSource would.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from hub.api import alerts as alerts_api
from hub.api import create_app, live
from hub.config import HubSettings
from hub.storage import open_store
from tests.auth_settings import FAST_PASSWORDS
from tests.hub._alerts import MIN, T0, alert, open_alerts
from tests.services import free_port, wait_for, wait_port
from tests.web.server import serve, sse_events

OPERATOR_PASSWORD = "password-of-the-alert-api-tests"


@pytest.fixture(params=["sqlite", pytest.param("timescaledb", marks=pytest.mark.db)])
def store(request, tmp_path):
    """A migrated, empty store of each kind, closed afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/alerts.db"
    else:
        url = request.getfixturevalue("pg_dsn")
    opened = open_store(url)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def settings(tmp_path):
    # A short poll keeps the stream tests quick; the default is 0.1 s. Roles
    # on these routes are the security tests' business: auth is off here.
    return HubSettings(
        data_dir=tmp_path, api_stream_poll_s=0.02, auth={"enabled": False}
    )


@pytest.fixture
def client(store, settings):
    with TestClient(create_app(store, settings)) as c:
        yield c


@pytest.fixture
def operator_client(store, tmp_path, monkeypatch):
    """Auth on, signed in as the first admin ``admin``: the history names them."""
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", OPERATOR_PASSWORD)
    settings = HubSettings(data_dir=tmp_path, auth=FAST_PASSWORDS)
    with TestClient(create_app(store, settings)) as c:
        resp = c.post(
            "/v1/auth/token",
            data={
                "grant_type": "password",
                "username": "admin",
                "password": OPERATOR_PASSWORD,
            },
        )
        assert resp.status_code == 200, resp.text
        c.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        yield c


@pytest.fixture
def seeded(store):
    """Six alerts of mixed kinds, severities, devices and states."""
    open_alerts(
        store,
        alert("a1", T0 + 1 * MIN, severity="info"),
        alert("a2", T0 + 2 * MIN, severity="critical", device="dev-2"),
        alert("a3", T0 + 3 * MIN, kind="offline"),
        alert("a4", T0 + 4 * MIN, severity="critical"),
        alert("a5", T0 + 5 * MIN, device="dev-2", kind="offline"),
        alert("a6", T0 + 6 * MIN),
    )
    ack = ("open",)
    assert store.transition_alert("a2", "acknowledged", "ann", T0 + 10 * MIN, ack)
    assert store.transition_alert(
        "a3", "resolved", "monitor", T0 + 11 * MIN, ("open", "acknowledged")
    )
    return store


def ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [a["id"] for a in resp.json()["alerts"]]


# -- GET /v1/alerts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["a6", "a5", "a4", "a3", "a2", "a1"]),
        ({"state": "open"}, ["a6", "a5", "a4", "a1"]),
        ({"state": "acknowledged"}, ["a2"]),
        ({"state": "resolved"}, ["a3"]),
        ({"severity": "critical"}, ["a4", "a2"]),
        ({"device": "dev-2"}, ["a5", "a2"]),
        ({"kind": "offline"}, ["a5", "a3"]),
        ({"kind": "offline", "state": "open"}, ["a5"]),
        (
            {"from": "2026-11-30T00:00:00Z", "to": "2026-11-30T00:00:00Z"},
            [],
        ),
    ],
)
def test_list_alerts_filters(client, seeded, params, expected):
    """Each filter narrows the list; the order stays newest first."""
    assert ids(client.get("/v1/alerts", params=params)) == expected


def test_list_alerts_window_bounds_opened_time(client, seeded):
    """from is inclusive and to exclusive, on the time the alert opened."""
    resp = client.get(
        "/v1/alerts",
        params={"from": _iso(T0 + 2 * MIN), "to": _iso(T0 + 5 * MIN)},
    )

    assert ids(resp) == ["a4", "a3", "a2"]


def _iso(ts_us: int) -> str:
    from hub.alerts.notice import iso_us

    text = iso_us(ts_us)
    assert text is not None
    return text


def test_list_alerts_body_is_alert_json(client, seeded):
    """An alert in a page has every field of alert_json, times in RFC 3339."""
    body = client.get("/v1/alerts", params={"state": "acknowledged"}).json()

    assert body["next_cursor"] is None
    assert body["alerts"] == [
        {
            "id": "a2",
            "fingerprint": "device/dev-2/threshold/a2",
            "kind": "threshold",
            "severity": "critical",
            "state": "acknowledged",
            "summary": "summary of a2",
            "device": "dev-2",
            "gateway": None,
            "metric": None,
            "past": False,
            "opened": _iso(T0 + 2 * MIN),
            "last_seen": _iso(T0 + 2 * MIN),
            "updated": _iso(T0 + 10 * MIN),
            "resolved": None,
            "occurrences": 1,
            "flapping": False,
            "group": None,
            "details": {},
        }
    ]


def test_list_alerts_cursor_pages_through_all(client, store):
    """Pages of 3 cover 8 alerts (two opened at the same µs) once each, in order."""
    records = [alert(f"p{i}", T0 + i * MIN) for i in range(7)]
    records.append(alert("p3b", T0 + 3 * MIN))
    open_alerts(store, *records)

    seen: list[list[str]] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        resp = client.get("/v1/alerts", params=params)
        seen.append(ids(resp))
        cursor = resp.json()["next_cursor"]
        if cursor is None:
            break

    assert seen == [["p6", "p5", "p4"], ["p3b", "p3", "p2"], ["p1", "p0"]]


def test_list_alerts_full_last_page_has_no_cursor(client, store):
    """A last page that is exactly full says it is the last."""
    open_alerts(store, *(alert(f"q{i}", T0 + i * MIN) for i in range(4)))

    first = client.get("/v1/alerts", params={"limit": 2}).json()
    second = client.get(
        "/v1/alerts", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()

    assert [a["id"] for a in second["alerts"]] == ["q1", "q0"]
    assert second["next_cursor"] is None


def test_list_alerts_cursor_with_filter(client, seeded):
    """The cursor pages through a filtered list."""
    first = client.get("/v1/alerts", params={"state": "open", "limit": 3}).json()
    rest = client.get(
        "/v1/alerts",
        params={"state": "open", "limit": 3, "cursor": first["next_cursor"]},
    )

    assert [a["id"] for a in first["alerts"]] == ["a6", "a5", "a4"]
    assert ids(rest) == ["a1"]


def test_cursor_round_trip():
    """A cursor is url-safe base64 of (opened_us, id) and decodes back."""
    cursor = alerts_api.encode_cursor(alert("x/y+z", T0))

    assert set(cursor) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert alerts_api.decode_cursor(cursor) == (T0, "x/y+z")


@given(
    opened_us=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    alert_id=st.text(max_size=200),
)
def test_cursor_round_trips_any_alert(opened_us, alert_id):
    """Every (opened_us, id) survives the cursor, and the cursor is url-safe."""
    cursor = alerts_api.encode_cursor(alert(alert_id, opened_us))

    assert alerts_api.decode_cursor(cursor) == (opened_us, alert_id)
    assert cursor == quote(cursor, safe="")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"state": "closed"}, "state"),
        ({"severity": "urgent"}, "severity"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-30T01:00:00Z", "to": "2026-11-30T00:00:00Z"}, "to"),
        ({"cursor": "not base64!"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'{"a": 1}').decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'["1", "a"]').decode()}, "cursor"),
    ],
)
def test_list_alerts_bad_parameter_is_422(client, params, field):
    """A bad filter or cursor is a 422 naming the parameter."""
    resp = client.get("/v1/alerts", params=params)

    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "invalid_parameter"
    assert resp.json()["error"]["field"] == field


# -- GET /v1/alerts/{id}, ack, resolve ------------------------------------------


def test_get_alert_has_history(client, seeded):
    """One alert comes with its history, oldest first."""
    body = client.get("/v1/alerts/a2").json()

    assert body["state"] == "acknowledged"
    assert [(h["from_state"], h["to_state"], h["actor"]) for h in body["history"]] == [
        (None, "open", "monitor"),
        ("open", "acknowledged", "ann"),
    ]
    assert body["history"][1]["at"] == _iso(T0 + 10 * MIN)
    assert body["history"][0]["seq"] < body["history"][1]["seq"]


def test_get_alert_unknown_is_404(client):
    """An unknown alert is a 404 with code alert_not_found."""
    resp = client.get("/v1/alerts/nope")

    assert resp.status_code == 404
    assert resp.json() == {
        "error": {"code": "alert_not_found", "message": "no alert 'nope'"}
    }


def test_ack_open_alert_records_actor_and_note(operator_client, seeded):
    """Acknowledging an open alert answers it acknowledged; history names who."""
    resp = operator_client.post("/v1/alerts/a1/ack", json={"note": "on my way"})

    assert resp.status_code == 200
    assert resp.json()["state"] == "acknowledged"
    assert seeded.get_alert("a1").state == "acknowledged"
    last = seeded.alert_history("a1")[-1]
    assert (last.from_state, last.to_state, last.actor, last.note) == (
        "open",
        "acknowledged",
        "admin",
        "on my way",
    )


def test_resolve_without_body(client, seeded):
    """Resolve takes no body at all; the history note is then empty."""
    resp = client.post("/v1/alerts/a2/resolve")

    assert resp.status_code == 200
    body = resp.json()
    assert (body["state"], body["resolved"] is not None) == ("resolved", True)
    last = seeded.alert_history("a2")[-1]
    assert (last.from_state, last.to_state, last.actor, last.note) == (
        "acknowledged",
        "resolved",
        "anonymous",
        "",
    )


@pytest.mark.parametrize(
    ("alert_id", "action", "message"),
    [
        (
            "a2",
            "ack",
            "alert 'a2' is acknowledged: only an open alert can be acknowledged",
        ),
        ("a3", "ack", "alert 'a3' is resolved: only an open alert can be acknowledged"),
        (
            "a3",
            "resolve",
            "alert 'a3' is resolved: only an open or acknowledged alert can be "
            "resolved",
        ),
    ],
)
def test_change_in_wrong_state_is_409(client, seeded, alert_id, action, message):
    """A change the alert's state does not allow is a 409 naming that state."""
    before = seeded.alert_history(alert_id)

    resp = client.post(f"/v1/alerts/{alert_id}/{action}", json={"note": "x"})

    assert resp.status_code == 409
    assert resp.json() == {"error": {"code": "wrong_state", "message": message}}
    assert seeded.alert_history(alert_id) == before


@pytest.mark.parametrize("action", ["ack", "resolve"])
def test_change_unknown_alert_is_404(client, action):
    """Acknowledging or resolving an unknown alert is a 404."""
    resp = client.post(f"/v1/alerts/nope/{action}")

    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "alert_not_found"


def test_change_bad_body_is_422(client, seeded):
    """A body with an unknown field is a 422, and nothing changes."""
    resp = client.post("/v1/alerts/a1/ack", json={"comment": "typo"})

    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == "comment"
    assert seeded.get_alert("a1").state == "open"


def test_actor_comes_from_current_actor(store, settings):
    """Overriding current_actor (what auth does) names who acknowledged."""
    open_alerts(store, alert("a1", T0))
    app = create_app(store, settings)
    app.dependency_overrides[alerts_api.current_actor] = lambda: "ann"
    with TestClient(app) as c:
        assert c.post("/v1/alerts/a1/ack").status_code == 200

    assert store.alert_history("a1")[-1].actor == "ann"


def test_openapi_documents_alert_routes(client):
    """OpenAPI has the alert routes, their models with examples, and the stream."""
    doc = client.get("/openapi.json").json()

    assert {
        "/v1/alerts",
        "/v1/alerts/stream",
        "/v1/alerts/{alert_id}",
        "/v1/alerts/{alert_id}/ack",
        "/v1/alerts/{alert_id}/resolve",
    } <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    for name in ("AlertOut", "AlertDetailOut", "AlertPageOut", "AlertNoteIn"):
        assert schemas[name]["examples"], name
    stream = doc["paths"]["/v1/alerts/stream"]["get"]["responses"]["200"]
    assert "text/event-stream" in stream["content"]


def test_page_and_static_files_served(client):
    """/ is the page; its script and style are under /static/."""
    page = client.get("/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js"' in page.text
    for name in ("app.js", "api.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


# -- the live stream --------------------------------------------------------------


def read_alert_events(lines, n: int) -> list[dict[str, str]]:
    """The next ``n`` alert events (skipping retry and heartbeats)."""
    got = []
    for event in sse_events(lines):
        if event.get("event") == "alert":
            got.append(event)
            if len(got) == n:
                return got
    raise AssertionError(f"stream ended after {len(got)} of {n} events")


def summary(event: dict[str, str]) -> tuple[int, str, str, str]:
    data = orjson.loads(event["data"])
    return int(event["id"]), data["id"], data["change"], data["actor"]


def history(store) -> list[tuple[int, str, str]]:
    return [(t.seq, a.id, t.to_state) for t, a in store.alert_changes(0)]


@pytest.fixture
def server(store, settings):
    with serve(create_app(store, settings)) as url:
        yield url


def http() -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(10.0))


def test_stream_resume_sends_missed_then_live(store, server):
    """Last-Event-ID gives exactly the changes after it, in order, then live ones."""
    open_alerts(store, alert("s1", T0), alert("s2", T0 + MIN))
    assert store.transition_alert("s1", "acknowledged", "ann", T0 + 2 * MIN, ("open",))
    seqs = [seq for seq, _, _ in history(store)]

    with (
        http() as c,
        c.stream(
            "GET",
            f"{server}/v1/alerts/stream",
            headers={"Last-Event-ID": str(seqs[0])},
        ) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.iter_lines()
        missed = read_alert_events(lines, 2)

        open_alerts(store, alert("s3", T0 + 3 * MIN))
        assert store.transition_alert(
            "s2", "resolved", "monitor", T0 + 4 * MIN, ("open", "acknowledged")
        )
        live_events = read_alert_events(lines, 2)

    new = [seq for seq, _, _ in history(store)][3:]
    assert [summary(e) for e in missed] == [
        (seqs[1], "s2", "opened", "monitor"),
        (seqs[2], "s1", "acknowledged", "ann"),
    ]
    assert [summary(e) for e in live_events] == [
        (new[0], "s3", "opened", "monitor"),
        (new[1], "s2", "resolved", "monitor"),
    ]


def test_stream_event_data_is_alert_json_with_change(store, server):
    """An event's data is the alert's JSON plus change, actor and at."""
    open_alerts(store, alert("s1", T0, metric="temp"))
    ((seq, _, _),) = history(store)

    with (
        http() as c,
        c.stream("GET", f"{server}/v1/alerts/stream", params={"since": 0}) as resp,
    ):
        (event,) = read_alert_events(resp.iter_lines(), 1)

    data = orjson.loads(event["data"])
    transition = store.alert_history("s1")[0]
    assert event["id"] == str(seq)
    assert data == {
        "id": "s1",
        "fingerprint": "device/dev-1/threshold/s1",
        "kind": "threshold",
        "severity": "warning",
        "state": "open",
        "summary": "summary of s1",
        "device": "dev-1",
        "gateway": None,
        "metric": "temp",
        "past": False,
        "opened": _iso(T0),
        "last_seen": data["last_seen"],
        "updated": data["updated"],
        "resolved": None,
        "occurrences": 1,
        "flapping": False,
        "group": None,
        "details": {},
        "change": "opened",
        "actor": "monitor",
        "at": _iso(transition.at_us),
    }


def test_stream_since_param_resumes(store, server):
    """since= resumes like Last-Event-ID; the header wins over it."""
    open_alerts(store, alert("s1", T0), alert("s2", T0 + MIN), alert("s3", T0 + MIN))
    seqs = [seq for seq, _, _ in history(store)]

    with http() as c:
        with c.stream(
            "GET", f"{server}/v1/alerts/stream", params={"since": seqs[0]}
        ) as resp:
            by_since = read_alert_events(resp.iter_lines(), 2)
        with c.stream(
            "GET",
            f"{server}/v1/alerts/stream",
            params={"since": 0},
            headers={"Last-Event-ID": str(seqs[1])},
        ) as resp:
            by_header = read_alert_events(resp.iter_lines(), 1)

    assert [e["id"] for e in by_since] == [str(seqs[1]), str(seqs[2])]
    assert [e["id"] for e in by_header] == [str(seqs[2])]


def test_stream_without_resume_sends_only_new(store, server):
    """A client with no Last-Event-ID gets only changes made after it connected."""
    open_alerts(store, alert("old", T0))

    with (
        http() as c,
        c.stream("GET", f"{server}/v1/alerts/stream") as resp,
    ):
        lines = resp.iter_lines()
        # The retry line is the first thing sent, once subscribed.
        assert next(sse_events(lines)) == {"retry": "2000"}
        open_alerts(store, alert("new", T0 + MIN))
        (event,) = read_alert_events(lines, 1)

    assert summary(event)[1:] == ("new", "opened", "monitor")


def test_stream_fans_out_to_every_client(store, server):
    """Two clients each get the same change, with the same id."""
    with (
        http() as c,
        c.stream("GET", f"{server}/v1/alerts/stream") as one,
        c.stream("GET", f"{server}/v1/alerts/stream") as two,
    ):
        lines_one, lines_two = one.iter_lines(), two.iter_lines()
        assert next(sse_events(lines_one)) == {"retry": "2000"}
        assert next(sse_events(lines_two)) == {"retry": "2000"}
        open_alerts(store, alert("f1", T0))
        (a,) = read_alert_events(lines_one, 1)
        (b,) = read_alert_events(lines_two, 1)

    assert (a["id"], a["data"]) == (b["id"], b["data"])


def test_stream_heartbeat_comment(store, settings, monkeypatch):
    """An idle stream sends heartbeat comments."""
    monkeypatch.setattr(alerts_api, "HEARTBEAT_S", 0.2)

    with (
        serve(create_app(store, settings)) as url,
        http() as c,
        c.stream("GET", f"{url}/v1/alerts/stream") as resp,
    ):
        beat = next(e for e in sse_events(resp.iter_lines()) if "comment" in e)

    assert beat == {"comment": "heartbeat"}


@pytest.mark.parametrize("value", ["abc", "-3"])
def test_stream_bad_last_event_id_is_422(client, value):
    """A Last-Event-ID that is no seq is a 422 naming the header."""
    resp = client.get("/v1/alerts/stream", headers={"Last-Event-ID": value})

    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == "Last-Event-ID"


# -- the feed (one module, no server) -----------------------------------------------


def run_async(make_coro):
    """Run a coroutine on a loop of its own, in a thread of its own.

    A thread, because a session that also runs the browser tests has
    Playwright's loop running on the main thread, and asyncio.run refuses
    to start another there.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result(timeout=20)


def test_feed_disconnects_slow_client(monkeypatch, caplog):
    """A client whose queue is full is cut off: its queue holds only the end mark."""
    monkeypatch.setattr(live, "CLIENT_QUEUE_SIZE", 3)

    async def scenario():
        feed = live.AlertFeed(store=None, poll_s=1.0)  # no poller started
        slow, fast = feed.subscribe(), feed.subscribe()
        for seq in range(1, 5):
            feed._publish(live.AlertChange(seq, "{}"))
            if seq < 4:
                assert (await fast.queue.get()).seq == seq
        return feed, slow, fast

    feed, slow, fast = run_async(scenario)

    assert slow.overflowed
    assert (slow.queue.qsize(), slow.queue.get_nowait()) == (1, None)
    assert fast.queue.get_nowait().seq == 4
    assert feed.subscribers == 1
    assert "too slow" in caplog.text


def test_feed_survives_store_errors(monkeypatch, caplog):
    """A failing store is logged and the poller keeps running until stopped."""

    class Down:
        calls = 0
        failed_thrice: asyncio.Event

        def alert_changes(self, after_seq, limit):
            Down.calls += 1
            if Down.calls == 3:
                loop.call_soon_threadsafe(self.failed_thrice.set)
            raise RuntimeError("store down")

        def listen_alert_changes(self, wake, stop):
            return False  # as SQLite: the feed polls

    monkeypatch.setattr(live, "_RETRY_S", 0.01)
    loop = None

    async def scenario():
        nonlocal loop
        loop = asyncio.get_running_loop()
        down = Down()
        down.failed_thrice = asyncio.Event()
        feed = live.AlertFeed(down, poll_s=0.01)
        feed.start()
        await down.failed_thrice.wait()
        await feed.stop()

    run_async(lambda: asyncio.wait_for(scenario(), 10))

    assert Down.calls >= 3
    assert "alert feed cannot read the store" in caplog.text


@pytest.mark.parametrize(
    ("from_state", "to_state", "change"),
    [
        (None, "open", "opened"),
        ("open", "acknowledged", "acknowledged"),
        ("acknowledged", "resolved", "resolved"),
        ("open", "resolved", "resolved"),
        ("resolved", "open", "reopened"),
    ],
)
def test_change_name(from_state, to_state, change):
    """A history entry's change is named as notices name it."""
    from hub.storage.base import AlertTransition

    t = AlertTransition(1, "a", T0, from_state, to_state, "monitor")
    assert live.change_name(t) == change


def test_api_process_stops_cleanly_with_stream_open(tmp_path):
    """SIGTERM ends `python -m hub.api` with a stream open, promptly, no warning."""
    port = free_port()
    env = {
        **os.environ,
        "STREAMFLOW_DATA_DIR": str(tmp_path),
        "STREAMFLOW_API_PORT": str(port),
        "STREAMFLOW_AUTH__ENABLED": "false",
        "PYTHONWARNINGS": "error",
    }
    log_path = tmp_path / "api.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.api"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_port(port, timeout=30)
        with (
            http() as c,
            c.stream("GET", f"http://127.0.0.1:{port}/v1/alerts/stream") as resp,
        ):
            assert next(sse_events(resp.iter_lines())) == {"retry": "2000"}
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    log_text = log_path.read_text()
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert code in (0, -signal.SIGTERM), log_text
    assert "Application shutdown complete" in log_text
    for bad in ("Warning", "Traceback", "ERROR"):
        assert bad not in log_text, log_text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/alerts"),
        ("GET", "/v1/alerts/stream"),
        ("GET", "/v1/alerts/a1"),
        ("POST", "/v1/alerts/a1/ack"),
        ("POST", "/v1/alerts/a1/resolve"),
    ],
)
def test_alert_routes_need_a_token(store, tmp_path, method, path):
    """With auth on (the default), every alert route refuses a request with no token."""
    open_alerts(store, alert("a1", T0))
    settings = HubSettings(data_dir=tmp_path, auth=FAST_PASSWORDS)
    with TestClient(create_app(store, settings)) as c:
        resp = c.request(method, path)

    assert resp.status_code == 401
    assert store.get_alert("a1").state == "open"


def test_store_listener_wakes_on_each_committed_change(store):
    """TimescaleDB: wake after LISTEN, then per commit; SQLite: False at once."""
    woken, stop = threading.Event(), threading.Event()
    returned: list[bool] = []
    listener = threading.Thread(
        target=lambda: returned.append(store.listen_alert_changes(woken.set, stop))
    )
    listener.start()
    try:
        if store.kind == "sqlite":
            listener.join(5)
            assert returned == [False]
            return
        assert woken.wait(5)  # listening: whatever came before is read now
        woken.clear()
        open_alerts(store, alert("n1", T0))
        assert woken.wait(5)
        woken.clear()
        store.transition_alert("n1", "acknowledged", "op", T0 + MIN, ("open",))
        assert woken.wait(5)
    finally:
        stop.set()
        listener.join(5)
    assert returned == [True]


def _listening(dsn: str) -> bool:
    """Whether a session of this database is listening for alert changes."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        ).fetchone()
    return row is not None and row[0] > 0


@pytest.mark.db
def test_stream_on_timescaledb_is_woken_by_the_commit_not_the_poll(pg_dsn, tmp_path):
    """With a 60 s poll, a change still arrives: the commit's NOTIFY wakes the feed."""
    store = open_store(pg_dsn)
    store.migrate()
    settings = HubSettings(
        data_dir=tmp_path, api_stream_poll_s=60, auth={"enabled": False}
    )
    try:
        with (
            serve(create_app(store, settings)) as url,
            http() as c,
            c.stream("GET", f"{url}/v1/alerts/stream") as resp,
        ):
            lines = resp.iter_lines()
            assert next(sse_events(lines)) == {"retry": "2000"}
            # The feed reads once more when its LISTEN takes hold: open the
            # alert after that, so that only the commit's NOTIFY can wake it.
            wait_for(lambda: _listening(pg_dsn), timeout=10, what="LISTEN")
            open_alerts(store, alert("woken", T0))
            (event,) = read_alert_events(lines, 1)  # within httpx's 10 s
    finally:
        store.close()

    assert summary(event)[1:] == ("woken", "opened", "monitor")
