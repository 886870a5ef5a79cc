"""``--via http``: batch envelopes POSTed to a real API over a real store.

The API is uvicorn on 127.0.0.1 in a thread (tests/web/server.py) over a
SQLite store; the sink signs in through ``hub.client.StreamFlowClient``.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from click.testing import CliRunner

from hub.api import create_app
from hub.client import StreamFlowClient
from hub.config import HubSettings
from hub.storage import open_store
from protocol.readings import Reading
from protocol.validate import now_us
from simulators.cli import replay, simulate
from simulators.http_sink import HttpIngestSink, encode_envelope
from simulators.replay import ReplayOptions, replay_path
from simulators.timeline import TimestampMode
from tests.auth_settings import FAST_PASSWORDS, with_access_ttl
from tests.web.server import serve

ADMIN_PASSWORD = "admin-password-of-the-http-sink-tests"
#: Readings of the first 300 lines of the shipped slice (tests/simulators
#: conftest ``intel_head``): 4 metrics a line, less 16 lines without light.
HEAD_READINGS = 300 * 4 - 16


def _settings(tmp_path, monkeypatch, access_ttl_s: int | None = None):
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)
    settings = HubSettings(
        data_dir=tmp_path,
        auth={**FAST_PASSWORDS, "leeway_s": 0},
    )
    if access_ttl_s is None:
        return settings
    return with_access_ttl(settings, access_ttl_s)


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/http.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def api_url(store, tmp_path, monkeypatch):
    with serve(create_app(store, _settings(tmp_path, monkeypatch))) as url:
        yield url


@pytest.fixture
def short_api_url(store, tmp_path, monkeypatch):
    """Access tokens of 2 s.

    JWT times are whole seconds (``iat`` is the second it was issued in), so
    a token of 2 s lives between 1 and 2 s: one of 1 s could expire between
    a sign-in and the next request.
    """
    settings = _settings(tmp_path, monkeypatch, access_ttl_s=2)
    with serve(create_app(store, settings)) as url:
        yield url


def _admin(url: str, **kwargs) -> StreamFlowClient:
    return StreamFlowClient(url, username="admin", password=ADMIN_PASSWORD, **kwargs)


def _readings(n: int, device: str = "dev-h1") -> list[Reading]:
    t0 = 1_796_000_000_000_000
    return [
        Reading(device, "temp", t0 + i * 1_000_000, 20.0 + i, "C") for i in range(n)
    ]


def test_replay_via_http_stores_exactly_the_readings(
    api_url, store, intel_head, monkeypatch
):
    """The CLI's replay --via http: every reading read is acked and stored once."""
    monkeypatch.setenv("STREAMFLOW_API_URL", api_url)
    monkeypatch.setenv("STREAMFLOW_API_USERNAME", "admin")
    monkeypatch.setenv("STREAMFLOW_API_PASSWORD", ADMIN_PASSWORD)

    result = CliRunner().invoke(
        replay,
        [
            *("--data", str(intel_head), "--speedup", "0", "--via", "http"),
            *("--gateways", "2", "--no-progress"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert f"sent={HEAD_READINGS} " in result.output
    assert "unconfirmed=0" in result.output
    assert (
        f"acked={HEAD_READINGS} rejected=0 stored={HEAD_READINGS} duplicates=0"
        in result.output
    )
    assert store.count_readings() == HEAD_READINGS
    assert {g.id for g in store.list_gateways()} == {"replay-gw-1", "replay-gw-2"}


def test_replay_via_http_without_credentials_is_exit_2(api_url, intel_head):
    result = CliRunner().invoke(
        replay,
        ["--data", str(intel_head), "--via", "http", "--api-url", api_url],
        env={"STREAMFLOW_API_USERNAME": None, "STREAMFLOW_API_PASSWORD": None},
    )

    assert result.exit_code == 2
    assert "--via http needs --api-username and --api-password" in result.output


def test_replay_via_http_wrong_password_is_exit_2(api_url, store, intel_head):
    result = CliRunner().invoke(
        replay,
        [
            *("--data", str(intel_head), "--via", "http", "--api-url", api_url),
            *("--api-username", "admin"),
        ],
        env={"STREAMFLOW_API_PASSWORD": "not-the-password"},
    )

    assert result.exit_code == 2, result.output
    assert "sign-in refused (400 invalid_grant)" in result.output
    assert store.count_readings() == 0


def test_resent_envelope_is_stored_once(api_url, store):
    """The same envelope twice: stored once, the same ack, counted as duplicates."""
    sink = HttpIngestSink(["gw-h"], _admin(api_url))
    sink.start()
    envelope = encode_envelope("gw-h", 7, _readings(5))
    try:
        first = sink.post(envelope)
        second = sink.post(envelope)
    finally:
        sink.close()

    assert first is not None
    assert second is not None
    assert first.seqs == second.seqs == [(7, 7)]
    assert store.count_readings() == 5
    assert (sink.counts.stored, sink.counts.duplicates) == (5, 5)


class _LosesFirstAnswer(httpx.HTTPTransport):
    """A real transport that drops the answer of the first ingest POST.

    The API has stored the batch by then: a gateway that never heard the
    ack must send the same envelope again, and the hub must not store twice.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path != "/v1/ingest":
            return response
        self.bodies.append(request.content)
        if len(self.bodies) == 1:
            response.read()
            response.close()
            raise httpx.ReadError("answer lost", request=request)
        return response


def test_retry_after_lost_answer_resends_same_envelope(api_url, store):
    transport = _LosesFirstAnswer()
    sink = HttpIngestSink(["gw-h"], _admin(api_url, transport=transport), backoff_s=0)
    sink.start()
    try:
        sink.send(_readings(10))
    finally:
        unconfirmed = sink.close()

    assert len(transport.bodies) == 2
    assert transport.bodies[0] == transport.bodies[1]
    assert store.count_readings() == 10
    assert sink.counts.retries == 1
    assert (sink.counts.acked, sink.counts.stored, sink.counts.duplicates) == (
        10,
        0,
        10,
    )
    assert unconfirmed == 0


def test_seqs_never_repeat_across_runs(api_url, store):
    """A second run starts its seqs at the clock: nothing is taken as a resend."""
    for run in range(2):
        sink = HttpIngestSink(["gw-h"], _admin(api_url), max_readings=3)
        sink.start()
        try:
            sink.send(_readings(7, device=f"dev-run{run}"))
        finally:
            sink.close()
        assert (sink.counts.envelopes, sink.counts.stored) == (3, 7)

    assert store.count_readings() == 14


def test_rejected_readings_are_counted(api_url, store):
    """A reading a day ahead is rejected by the hub, a NaN left out by the sink."""
    readings = _readings(4)
    ahead = now_us() + 86_400_000_000
    readings[1] = Reading("dev-h1", "temp", ahead, 1.0, "C")
    readings[2] = Reading("dev-h1", "temp", readings[2].ts_us, float("nan"), "C")
    sink = HttpIngestSink(["gw-h"], _admin(api_url))
    sink.start()
    try:
        sink.send(readings)
    finally:
        unconfirmed = sink.close()

    assert (sink.counts.acked, sink.counts.rejected, sink.counts.stored) == (2, 2, 2)
    assert unconfirmed == 0
    assert store.count_readings() == 2


def test_token_expiring_during_replay_is_refreshed(short_api_url, store, intel_head):
    """Tokens of 2 s over a replay of about 5.5 s: refreshed, nothing lost."""
    api = _admin(short_api_url)
    sink = HttpIngestSink(["replay-gw-1"], api)
    # The slice spans 273 s of data: 5.5 s at 50x, POSTs all along.
    options = ReplayOptions(
        speedup=50, timestamps=TimestampMode.NOW, chunk=50, progress=False
    )

    summary = replay_path(intel_head, sink, "intel", options, threading.Event())

    assert summary.elapsed_s > 4.0  # the pacing, so tokens had to be renewed
    assert summary.sent == HEAD_READINGS
    assert summary.unconfirmed == 0
    assert sink.counts.acked == HEAD_READINGS
    assert store.count_readings() == HEAD_READINGS
    # The first sign-in and at least two refreshes (at 1.6 s each).
    assert api.token_requests >= 3


def test_expired_token_is_retried_once_after_401(short_api_url, store):
    """A client clock that never moves sends the expired token: 401, new token."""
    api = _admin(short_api_url, clock=lambda: 0.0)
    sink = HttpIngestSink(["gw-h"], api)
    sink.start()
    try:
        sink.send(_readings(4))
        # JWT times are whole seconds: 3.1 s is past a 2 s token for sure.
        time.sleep(3.1)
        sink.send(_readings(4, device="dev-h2"))
    finally:
        sink.close()

    assert api.token_requests == 2
    assert sink.counts.acked == 8
    assert store.count_readings() == 8


def test_simulate_via_http_count(api_url, store, monkeypatch):
    """simulate --via http --count 40: 40 readings stored, behind their gateways."""
    monkeypatch.setenv("STREAMFLOW_API_PASSWORD", ADMIN_PASSWORD)

    result = CliRunner().invoke(
        simulate,
        [
            *("--via", "http", "--api-url", api_url, "--api-username", "admin"),
            *("--gateways", "2", "--devices", "2", "--interval", "0.05"),
            *("--count", "40", "--no-progress", "--spike-rate", "0"),
            *("--stuck-rate", "0", "--dropout-rate", "0"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "acked=40 rejected=0 stored=40 duplicates=0" in result.output
    assert store.count_readings() == 40
    gateways = {d.id: d.gateway for d in store.list_devices(None)}
    assert sorted(set(gateways.values())) == ["sim-gw-1", "sim-gw-2"]


def test_simulate_load_via_http_is_usage_error(api_url):
    result = CliRunner().invoke(
        simulate, ["--via", "http", "--load", "--count", "10", "--api-url", api_url]
    )

    assert result.exit_code == 2
    assert "--load and --ramp need --via edge or mqtt" in result.output
