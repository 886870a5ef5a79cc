"""Webhook delivery against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hub.alerts.dispatch import Dispatcher
from hub.alerts.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    HttpDeliveryError,
    WebhookChannel,
    WebhookSettings,
    delivery_id,
    retry_after_seconds,
    sign,
    verify_signature,
)
from tests.hub.alerts._notices import alert_notice, digest_notice, make_alert
from tests.services import free_port, wait_for

SECRET = "whsec-test-0123456789"


@dataclass(frozen=True)
class Request:
    path: str
    headers: Message  # case-insensitive, as HTTP header names are
    body: bytes


class Receiver:
    """An HTTP server that records POSTs and answers with scripted statuses."""

    def __init__(self, *answers: int | tuple[int, dict[str, str]]) -> None:
        self.requests: list[Request] = []
        self._answers = deque(answers)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, extra = receiver._record(Request(self.path, self.headers, body))
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the next poll.
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        )
        self.thread.start()

    def _record(self, request: Request) -> tuple[int, dict[str, str]]:
        with self._lock:
            self.requests.append(request)
            answer = self._answers.popleft() if self._answers else 200
        return answer if isinstance(answer, tuple) else (answer, {})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/streamflow"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    """Start receivers with scripted answers; close them at the end."""
    started: list[Receiver] = []

    def start(*answers) -> Receiver:
        r = Receiver(*answers)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


@pytest.fixture
def channel():
    """Make webhook channels; close their HTTP clients at the end."""
    made: list[WebhookChannel] = []

    def make(url: str, **values) -> WebhookChannel:
        base = {"name": "ops", "url": url, "secret": SECRET, "timeout_s": 5}
        base.update(values)
        c = WebhookChannel(WebhookSettings(**base))
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_webhook_posts_notice_json_signed(receiver, channel):
    """The body is the notice's JSON, signed, with event and delivery headers."""
    r = receiver()
    notice = alert_notice()
    hook = channel(r.url, headers={"Authorization": "Bearer abc"})
    hook.send(notice)

    [got] = r.requests
    assert got.path == "/hooks/streamflow"
    assert orjson.loads(got.body) == notice.json()
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Authorization"] == "Bearer abc"
    assert got.headers[EVENT_HEADER] == "alert.opened"
    assert got.headers[DELIVERY_HEADER] == delivery_id(notice)
    assert verify_signature(SECRET, got.headers[SIGNATURE_HEADER], got.body)


def test_webhook_signature_tampered_old_or_wrong_secret_fails(receiver, channel):
    """A changed body, an old timestamp or another secret fails verification."""
    r = receiver()
    channel(r.url).send(alert_notice())
    [got] = r.requests
    header = got.headers[SIGNATURE_HEADER]
    t = int(header.split(",")[0].removeprefix("t="))

    assert verify_signature(SECRET, header, got.body, now=t + 300)
    assert not verify_signature(SECRET, header, got.body + b" ")
    assert not verify_signature(SECRET, header, got.body, now=t + 301)
    assert not verify_signature(SECRET, header, got.body, now=t - 301)
    assert not verify_signature("another-secret", header, got.body)


@given(secret=st.text(min_size=1), body=st.binary(), t=st.integers(0, 2**40))
def test_verify_signature_round_trips(secret, body, t):
    """Any body signed with any secret verifies at its own time."""
    assert verify_signature(secret, sign(secret, body, t), body, now=t)


@given(
    secret=st.text(min_size=1),
    body=st.binary(min_size=1),
    data=st.data(),
)
def test_verify_signature_single_byte_change_fails(secret, body, data):
    """Changing any one byte of the body makes the signature fail."""
    header = sign(secret, body, 1_000)
    index = data.draw(st.integers(0, len(body) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]))
    changed = body[:index] + bytes([new]) + body[index + 1 :]
    assert not verify_signature(secret, header, changed, now=1_000)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "t=1000",
        "v1=00",
        "t=abc,v1=00",
        "t=1000,v1=",
        "t=-5,v1=00",
        "t=²,v1=00",
        "t=1000,v1=é",
        "garbage",
    ],
)
def test_verify_signature_malformed_header_false(header):
    """A malformed header is refused without raising."""
    assert verify_signature(SECRET, header, b"{}", now=1_000) is False


@given(header=st.text(), body=st.binary(max_size=64))
def test_verify_signature_never_raises(header, body):
    """Any header text, however odd, gives False rather than an exception."""
    assert verify_signature(SECRET, header, body, now=1_000) is False


def test_verify_signature_any_of_several_v1():
    """During a secret rotation, one matching v1 among several is enough."""
    good = sign(SECRET, b"{}", 1_000).split(",")[1]
    header = f"t=1000,v1={'0' * 64},{good}"
    assert verify_signature(SECRET, header, b"{}", now=1_000)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (408, True),
        (429, True),
        (500, True),
        (503, True),
        (400, False),
        (401, False),
        (404, False),
        (410, False),
        (301, False),
    ],
)
def test_webhook_status_maps_retryable(receiver, channel, status, retryable):
    """408, 429 and 5xx are retryable; other statuses are permanent."""
    r = receiver(status)
    with pytest.raises(HttpDeliveryError, match=f"answered {status}") as info:
        channel(r.url).send(alert_notice())
    assert (info.value.retryable, info.value.status_code) == (retryable, status)


def test_webhook_retry_after_on_exception(receiver, channel):
    """A 429's Retry-After is exposed on the exception in seconds."""
    r = receiver((429, {"Retry-After": "7"}))
    with pytest.raises(HttpDeliveryError) as info:
        channel(r.url).send(alert_notice())
    assert info.value.retry_after_s == 7.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (formatdate(1_000_030, usegmt=True), 30.0),
        (formatdate(999_000, usegmt=True), 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_seconds(value, seconds):
    """Retry-After as seconds or an HTTP date, relative to now."""
    assert retry_after_seconds(value, now=1_000_000) == seconds


def test_webhook_unreachable_retryable_without_url(channel):
    """A refused connection is retryable, and the URL's path is not shown."""
    hook = channel(f"http://127.0.0.1:{free_port()}/hooks/T0KEN-42")
    with pytest.raises(HttpDeliveryError, match="unreachable") as info:
        hook.send(alert_notice())
    assert info.value.retryable is True
    assert info.value.status_code is None
    assert "T0KEN-42" not in str(info.value)


def test_webhook_503_twice_then_200_via_dispatcher(receiver, channel):
    """Two 503s are retried; the third attempt delivers the same delivery id."""
    r = receiver(503, 503, 200)
    notice = alert_notice()
    dispatcher = Dispatcher(
        [channel(r.url)], backoff_initial_s=0.01, backoff_max_s=0.05
    )
    dispatcher.start()
    dispatcher.submit(notice)
    wait_for(lambda: dispatcher.stats()["webhook:ops"]["sent"], what="delivered")
    assert dispatcher.stop(5)

    assert len(r.requests) == 3
    assert {q.headers[DELIVERY_HEADER] for q in r.requests} == {delivery_id(notice)}
    assert all(
        verify_signature(SECRET, q.headers[SIGNATURE_HEADER], q.body)
        for q in r.requests
    )
    stats = dispatcher.stats()["webhook:ops"]
    assert stats == {
        "sent": 1,
        "failed": 0,
        "retried": 2,
        "dropped": 0,
        "skipped": 0,
        "queued": 0,
    }


def test_webhook_400_not_retried_via_dispatcher(receiver, channel):
    """A 400 is given up after one attempt."""
    r = receiver(400, 200)
    dispatcher = Dispatcher(
        [channel(r.url)], backoff_initial_s=0.01, backoff_max_s=0.05
    )
    dispatcher.start()
    dispatcher.submit(alert_notice())
    wait_for(lambda: dispatcher.stats()["webhook:ops"]["failed"], what="given up")
    assert dispatcher.stop(5)

    assert len(r.requests) == 1
    stats = dispatcher.stats()["webhook:ops"]
    assert (stats["sent"], stats["failed"], stats["retried"]) == (0, 1, 0)


def test_webhook_min_severity_filters(receiver, channel):
    """Alerts below min_severity are left out; a notice with none is skipped."""
    r = receiver()
    hook = channel(r.url, min_severity="critical")
    low = alert_notice(make_alert(1, severity="warning"))
    mixed = digest_notice(3, alerts=(make_alert(1, severity="warning"), make_alert(2)))

    assert not hook.accepts(low)
    assert hook.accepts(mixed)
    hook.send(low)
    hook.send(mixed)
    [got] = r.requests
    assert [a["id"] for a in orjson.loads(got.body)["alerts"]] == ["alert-2"]


def test_webhook_dispatcher_counts_skipped(receiver, channel):
    """The dispatcher does not queue a notice the webhook does not take."""
    r = receiver()
    dispatcher = Dispatcher([channel(r.url, min_severity="critical")])
    dispatcher.submit(alert_notice(make_alert(1, severity="info")))
    assert dispatcher.stats()["webhook:ops"]["skipped"] == 1
    assert dispatcher.stats()["webhook:ops"]["queued"] == 0
    assert dispatcher.stop(1)


@pytest.mark.parametrize(
    "values",
    [
        {"url": "ftp://example.org/x"},
        {"url": "not a url"},
        {"secret": ""},
        {"name": "has space"},
        {"min_severity": "fatal"},
    ],
)
def test_webhook_settings_bad(values):
    """A bad url, empty secret, name or severity fails at load."""
    base = {"name": "ops", "url": "https://example.org/h", "secret": "s"}
    with pytest.raises(ValidationError):
        WebhookSettings(**{**base, **values})


def test_webhook_settings_bad_url_hides_path():
    """The error for a bad URL does not repeat its path (it may be a token)."""
    with pytest.raises(ValidationError) as info:
        WebhookSettings(name="x", url="gopher://host/T0KEN-42", secret="s")
    assert "T0KEN-42" not in str(info.value)


def test_webhook_secret_not_in_repr():
    """The secret is hidden in the settings' repr and dump."""
    configured = WebhookSettings(name="x", url="https://h/", secret=SECRET)
    assert SECRET not in repr(configured)
    assert SECRET not in str(configured.model_dump())


def test_sign_uses_current_time(receiver, channel):
    """The signed time is the send time, within the default tolerance."""
    r = receiver()
    channel(r.url).send(alert_notice())
    t = int(r.requests[0].headers[SIGNATURE_HEADER].split(",")[0][2:])
    assert abs(t - time.time()) < 300
