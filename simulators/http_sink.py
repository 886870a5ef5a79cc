"""A sink that POSTs batch envelopes to the API's ``/v1/ingest``.

What a gateway without a broker does: readings are grouped into batch
envelopes (:class:`protocol.models.BatchEnvelope`), one gateway id per
simulated gateway, and each envelope is POSTed through
:class:`hub.client.StreamFlowClient`, which signs in, refreshes the token
before it expires and retries once on a 401.

Each gateway's seq starts at the clock in µs, as the edge agent's buffer
does, so that a later run never reuses a seq of an earlier one: ``(gw,
seq)`` is the hub's idempotency key, and a reused seq would be acked
without being stored. An envelope is encoded once; a retry after a lost
answer or a 503 resends the same bytes, which the hub stores once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from hub.client import AuthError, StreamFlowClient
from protocol.const import PROTOCOL_VERSION
from protocol.models import BatchAck, in_ranges
from protocol.readings import Reading
from protocol.validate import now_us
from simulators.errors import SinkError
from simulators.sinks import assign_gateway

_LOGGER = logging.getLogger(__name__)

INGEST_PATH: Final = "/v1/ingest"
#: The most readings in one envelope (the hub's max_payload_bytes is 256 KiB
#: by default; 500 readings of the Intel data encode to about 30 KB).
DEFAULT_MAX_READINGS: Final = 500
#: Attempts of one POST (the first and the retries of the same envelope).
DEFAULT_ATTEMPTS: Final = 5
#: Statuses after which the same envelope is sent again: nothing was stored
#: (503 store_unavailable) or we were asked to slow down.
_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Envelope:
    """One encoded batch envelope: its bytes never change once made."""

    gw: str
    seq: int
    payload: bytes
    readings: int


@dataclass(slots=True)
class IngestCounts:
    """What the API answered, in readings (envelopes in ``envelopes``).

    Attributes:
        envelopes: envelopes the API acked.
        acked: readings of acked envelopes that were not rejected.
        rejected: readings the API rejected (per reading, or a whole envelope
            refused with 422), and non-finite values, which JSON cannot
            carry (the sink leaves them out).
        stored: readings the API says it stored (``X-Stored-Readings``).
        duplicates: readings it already held (``X-Duplicate-Readings``).
        retries: POSTs sent again.
    """

    envelopes: int = 0
    acked: int = 0
    rejected: int = 0
    stored: int = 0
    duplicates: int = 0
    retries: int = 0

    def line(self) -> str:
        """One summary line with the counts."""
        return (
            f"http ingest: envelopes={self.envelopes} acked={self.acked}"
            f" rejected={self.rejected} stored={self.stored}"
            f" duplicates={self.duplicates} retries={self.retries}"
        )


def encode_envelope(
    gw: str, seq: int, readings: list[Reading], sent_us: int | None = None
) -> Envelope:
    """Encode readings as one batch envelope, one series per (dev, metric, unit).

    Args:
        gw: the gateway id.
        seq: the envelope's seq.
        readings: the readings, in time order.
        sent_us: the send time written into it (default: now).
    """
    series: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in readings:
        doc = series.get((r.device, r.metric, r.unit))
        if doc is None:
            doc = series[(r.device, r.metric, r.unit)] = {
                "dev": r.device,
                "metric": r.metric,
                "unit": r.unit,
                "ts": [],
                "values": [],
                "flags": [],
            }
        doc["ts"].append(r.ts_us)
        doc["values"].append(r.value)
        doc["flags"].append(r.flags)
    body = {
        "v": PROTOCOL_VERSION,
        "gw": gw,
        "seq": seq,
        "sent": sent_us if sent_us is not None else now_us(),
        "late": False,
        "series": list(series.values()),
    }
    return Envelope(gw, seq, orjson.dumps(body), len(readings))


class _Retryable(Exception):
    """A POST to send again: no answer, or a status that stored nothing."""


class HttpIngestSink:
    """POSTs readings as batch envelopes to ``/v1/ingest``.

    Devices are spread over the gateways round-robin on first sight, as
    :class:`simulators.gateways.EdgeGatewaySink` does; fill
    :attr:`assignment` first to place them yourself.

    Args:
        gateways: the simulated gateway ids.
        client: the API client (signs in and refreshes); closed by
            :meth:`close`.
        max_readings: the most readings in one envelope.
        attempts: tries of one envelope before the run fails.
        backoff_s: the first wait between two tries (doubling, up to 5 s).

    Raises:
        ValueError: no gateway, or ``max_readings`` or ``attempts`` below 1.
    """

    def __init__(
        self,
        gateways: list[str],
        client: StreamFlowClient,
        max_readings: int = DEFAULT_MAX_READINGS,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_s: float = 0.2,
    ) -> None:
        if not gateways:
            raise ValueError("expected at least one gateway")
        if max_readings < 1 or attempts < 1:
            raise ValueError("max_readings and attempts must be 1 or more")
        self.gateways = list(gateways)
        self.client = client
        self.max_readings = max_readings
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.assignment: dict[str, str] = {}
        self.counts = IngestCounts()

        # Seqs: the clock in µs at the start, then one up per envelope.
        self._next_seq: dict[str, int] = {}
        #: Readings handed to send() and not yet acked or rejected.
        self._unconfirmed = 0

    def gateway_of(self, device: str) -> str:
        """The gateway a device is assigned to (round-robin on first sight)."""
        return assign_gateway(self.assignment, self.gateways, device)

    def start(self) -> None:
        """Sign in (``GET /v1/auth/me``) and pick each gateway's first seq.

        Raises:
            SinkError: the API does not answer, or refuses the credentials.
        """
        try:
            resp = self.client.get("/v1/auth/me")
        except AuthError as exc:
            self.client.close()  # replay and simulate close only started sinks
            raise SinkError(str(exc)) from exc
        except httpx.TransportError as exc:
            self.client.close()
            raise SinkError(
                f"cannot reach the API at {self.client.http.base_url}: {exc}"
            ) from exc
        if resp.status_code != 200:
            self.client.close()
            raise SinkError(f"the API answered /v1/auth/me with {_error(resp)}")
        first = now_us()
        self._next_seq = dict.fromkeys(self.gateways, first)
        _LOGGER.info(
            "http ingest started api=%s user=%s gateways=%d first_seq=%d",
            self.client.http.base_url,
            resp.json().get("name"),
            len(self.gateways),
            first,
        )

    def send(self, readings: list[Reading]) -> None:
        """POST the readings, per gateway, in envelopes of ``max_readings``.

        Raises:
            SinkError: an envelope was refused (401, 403, 413, ...) or went
                unanswered ``attempts`` times.
        """
        per_gateway: dict[str, list[Reading]] = {}
        for r in readings:
            per_gateway.setdefault(self.gateway_of(r.device), []).append(r)
        self._unconfirmed += len(readings)
        for gw, rows in per_gateway.items():
            # JSON has no NaN: orjson would write null, which the hub skips
            # without a reject, so the counts would call it acked.
            finite = [r for r in rows if math.isfinite(r.value)]
            if len(finite) < len(rows):
                _LOGGER.warning(
                    "non-finite values left out gw=%s readings=%d",
                    gw,
                    len(rows) - len(finite),
                )
                self._count(len(rows) - len(finite), rejected=len(rows) - len(finite))
                per_gateway[gw] = finite
        for gw, rows in per_gateway.items():
            for i in range(0, len(rows), self.max_readings):
                self.post(self._envelope(gw, rows[i : i + self.max_readings]))

    def post(self, envelope: Envelope) -> BatchAck | None:
        """POST one envelope (again on a lost answer or a 503) and count it.

        Returns:
            The hub's ack, or None if it refused the body as no envelope
            (422: its readings count as rejected).

        Raises:
            SinkError: as :meth:`send`.
        """
        resp = self._post_with_retries(envelope)
        if resp.status_code == 422:
            _LOGGER.warning(
                "envelope refused gw=%s seq=%d readings=%d error=%s",
                envelope.gw,
                envelope.seq,
                envelope.readings,
                _error(resp),
            )
            self._count(envelope.readings, rejected=envelope.readings)
            return None
        if resp.status_code != 200:
            raise SinkError(
                f"the API refused envelope gw={envelope.gw} seq={envelope.seq}:"
                f" {_error(resp)}"
            )
        ack = BatchAck.model_validate_json(resp.content)
        if not in_ranges(envelope.seq, ack.seqs):
            raise SinkError(
                f"the API's ack of gw={envelope.gw} misses seq={envelope.seq}"
            )
        self.counts.envelopes += 1
        self.counts.stored += int(resp.headers.get("x-stored-readings", 0))
        self.counts.duplicates += int(resp.headers.get("x-duplicate-readings", 0))
        self._count(envelope.readings, rejected=len(ack.rejected))
        _LOGGER.debug(
            "envelope acked gw=%s seq=%d readings=%d rejected=%d",
            envelope.gw,
            envelope.seq,
            envelope.readings,
            len(ack.rejected),
        )
        return ack

    def close(self, timeout: float = 0.0) -> int:
        """Close the client; every POST was answered before send() returned.

        Returns:
            Readings handed to send() that were neither acked nor rejected
            (those of an envelope that failed).
        """
        self.client.close()
        return self._unconfirmed

    # -- internals ----------------------------------------------------------

    def _envelope(self, gw: str, rows: list[Reading]) -> Envelope:
        seq = self._next_seq.get(gw)
        if seq is None:  # send() before start(): still a seq from the clock
            seq = now_us()
        self._next_seq[gw] = seq + 1
        return encode_envelope(gw, seq, rows)

    def _count(self, readings: int, rejected: int) -> None:
        self.counts.acked += readings - rejected
        self.counts.rejected += rejected
        self._unconfirmed -= readings

    def _post_with_retries(self, envelope: Envelope) -> httpx.Response:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=5.0),
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable)),
            before_sleep=lambda state: self._before_retry(envelope, state),
        )
        try:
            return retrying(self._post_once, envelope)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise SinkError(
                f"envelope gw={envelope.gw} seq={envelope.seq} unanswered after"
                f" {self.attempts} attempts: {cause}"
            ) from cause

    def _post_once(self, envelope: Envelope) -> httpx.Response:
        # The same bytes every time: a resend is the same (gw, seq).
        try:
            resp = self.client.post(
                INGEST_PATH,
                content=envelope.payload,
                headers={"Content-Type": "application/json"},
            )
        except AuthError as exc:
            raise SinkError(str(exc)) from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code in _RETRY_STATUSES:
            raise _Retryable(_error(resp))
        return resp

    def _before_retry(self, envelope: Envelope, state: Any) -> None:
        self.counts.retries += 1
        _LOGGER.warning(
            "envelope resent gw=%s seq=%d attempt=%d error=%s",
            envelope.gw,
            envelope.seq,
            state.attempt_number + 1,
            state.outcome.exception() if state.outcome else "-",
        )


def _error(resp: httpx.Response) -> str:
    """``<status> <code>: <message>`` of an API error answer."""
    try:
        body = resp.json()
    except ValueError:
        return f"{resp.status_code} {resp.text[:200]}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{resp.status_code} {error.get('code')}: {error.get('message')}"
    return f"{resp.status_code} {str(body)[:200]}"


# -- command line (the options ``replay`` and ``simulate`` share) -------------

#: Where the API options are kept between parsing and making the sink.
_META_KEY: Final = "simulators.http_sink.api"
DEFAULT_API_URL: Final = "http://127.0.0.1:8000"


def api_options() -> list[Any]:
    """The click options of ``--via http``: the API and its sign-in.

    They are not passed to the command function: a callback keeps them in
    the click context's ``meta``, where :func:`make_http_sink` reads them.
    Secrets come from the environment too, so that they need not be on a
    command line (which ``ps`` shows everyone).
    """
    import click

    def keep(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        ctx.meta.setdefault(_META_KEY, {})[param.name] = value
        return value

    def option(name: str, env: str, text: str, **kwargs: Any) -> Any:
        return click.option(
            name,
            envvar=env,
            expose_value=False,
            callback=keep,
            help=f"{text} [env {env}]",
            **kwargs,
        )

    return [
        option(
            "--api-url",
            "STREAMFLOW_API_URL",
            "the API, for --via http",
            default=DEFAULT_API_URL,
            show_default=True,
        ),
        option("--api-username", "STREAMFLOW_API_USERNAME", "API user (--via http)"),
        option("--api-password", "STREAMFLOW_API_PASSWORD", "the API user's password"),
        option(
            "--api-client-id",
            "STREAMFLOW_API_CLIENT_ID",
            "API client, instead of a user (role device or integration)",
        ),
        option(
            "--api-client-secret",
            "STREAMFLOW_API_CLIENT_SECRET",
            "the API client's secret",
        ),
    ]


def make_http_sink(gateways: list[str]) -> HttpIngestSink:
    """The ``--via http`` sink of the current command's API options.

    Raises:
        click.UsageError: neither a user and password nor a client id and
            secret were given (exit status 2).
    """
    import click

    values: dict[str, Any] = click.get_current_context().meta.get(_META_KEY, {})
    try:
        client = StreamFlowClient(
            values.get("api_url") or DEFAULT_API_URL,
            username=values.get("api_username"),
            password=values.get("api_password"),
            client_id=values.get("api_client_id"),
            client_secret=values.get("api_client_secret"),
        )
    except ValueError as exc:
        raise click.UsageError(
            "--via http needs --api-username and --api-password (or"
            " STREAMFLOW_API_USERNAME and STREAMFLOW_API_PASSWORD), or"
            " --api-client-id and --api-client-secret"
        ) from exc
    return HttpIngestSink(gateways, client)
