"""HTTP ingest: ``POST /v1/ingest`` takes one batch envelope, as MQTT does.

For devices and systems that cannot speak MQTT. The body is the protocol v1
batch envelope (JSON, optionally gzip or zstd, recognised by its magic
bytes as on MQTT; ``Content-Encoding`` may say so but is not needed). It
goes through the hub's own decoder (:class:`hub._decode.MessageDecoder`):
the same limits, validation, rejects and dead letters. It is written with
:meth:`Store.write`, in one transaction with its ``(gateway, seq)``
idempotency key, and the answer is the ack the gateway would get on
``sf/v1/gw/{gw}/down/ack``: a batch sent twice is stored once and acked the
same both times.

Answers: 200 with the ack (readings rejected one by one are listed in it,
each with its reason and field path); 413 ``payload_too_large`` over
``max_payload_bytes``; 415 for an unknown ``Content-Encoding``; 422 with
the reject reason as ``code`` and the field path for a body that is no
envelope (kept as a dead letter); 403 ``device_not_allowed`` when a
``device`` client sends for another id; 503 ``store_unavailable`` with
``Retry-After`` when the store fails (resend: nothing was stored).

Who may send what: the scope ``ingest``. A client of role ``device`` is one
device sending as its own gateway: the envelope's ``gw`` and every series'
and log record's ``dev`` must be its client id. Others (``integration``,
``admin``) send for any gateway and device.

Processors: the API process runs none. Readings ingested here are stored,
counted and acked, and the monitor sees their devices alive, but the
processors (rollups, thresholds, anomaly, quality) do not see them; so they
raise no threshold events, and their minutes have no rollups (aggregates of
them are served from the raw readings, see :mod:`hub.api.data`).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hub import const
from hub._decode import MessageDecoder
from hub._routing import ReceivedMessage, Route, RouteKind
from hub.acks import build_acks
from hub.api.errors import ApiError, error_body
from hub.api.schemas_v1 import IngestAckOut
from hub.config import HubSettings
from hub.security.deps import Principal, require
from hub.security.roles import Role, Scope
from hub.storage.base import DeadLetter, IngestItem, Store
from protocol.batch import Limits
from protocol.errors import DecodeError
from protocol.ratelimit import WarningLimiter
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

router = APIRouter(tags=["ingest"])

#: The topic dead letters of HTTP ingest are kept under.
INGEST_TOPIC = "http:/v1/ingest"
#: Encodings a client may name; the body's magic bytes decide in the end.
_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "zstd"})
_RETRY_AFTER_S = "5"

IngestPrincipal = Annotated[Principal, Depends(require(Scope.INGEST))]


class _RequestDecoder(MessageDecoder):
    """The hub's decoder, remembering why a body failed (one per request)."""

    failure: DecodeError | None = None

    def dead_letter(
        self, msg: ReceivedMessage, exc: DecodeError, device: str | None = None
    ) -> DeadLetter:
        """The dead letter of a failed body; keeps ``exc`` for the 422."""
        self.failure = exc
        return super().dead_letter(msg, exc, device)


def install(app: FastAPI, settings: HubSettings) -> None:
    """Add the route, with the limits of ``settings``."""
    app.state.ingest_limits = Limits(
        max_payload_bytes=settings.max_payload_bytes,
        max_inflated_bytes=settings.max_inflated_bytes,
        max_future_skew_s=settings.max_future_skew_s,
    )
    app.state.ingest_limiter = WarningLimiter(interval_s=const.WARNING_INTERVAL_S)
    app.include_router(router)


_EXAMPLE_BODY = {
    "v": 1,
    "gw": "gw-05",
    "seq": 42,
    "sent": 1796020387500000,
    "series": [
        {
            "dev": "dev-e05",
            "metric": "temp",
            "unit": "C",
            "ts": [1796020327500000, 1796020387500000],
            "values": [21.5, 21.7],
        }
    ],
}


@router.post(
    "/v1/ingest",
    response_model=IngestAckOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "a protocol v1 batch envelope; JSON, gzip or zstd",
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": _EXAMPLE_BODY,
                },
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
    responses={
        403: {"description": "device_not_allowed: a device sends for another id"},
        413: {"description": "payload_too_large"},
        415: {"description": "unsupported_encoding"},
        422: {"description": "the body is no envelope; code is the reason"},
        503: {"description": "store_unavailable: resend later"},
    },
)
async def ingest(request: Request, principal: IngestPrincipal) -> Any:
    """Store one batch envelope; answer the gateway's ack (seqs, rejects)."""
    limits: Limits = request.app.state.ingest_limits
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in _ENCODINGS:
        raise ApiError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding[:32]!r}: expected gzip, zstd or none",
        )
    body = await _read_body(request, limits.max_payload_bytes)
    return await run_in_threadpool(
        _ingest, request.app.state.store, request, principal, body
    )


async def _read_body(request: Request, max_bytes: int) -> bytes:
    too_large = ApiError(
        413, "payload_too_large", f"the body is over {max_bytes} bytes"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    # Read in chunks and stop past the limit: a client that sends more than
    # it declared (or no length at all) never makes the API hold it all.
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def _ingest(store: Store, request: Request, principal: Principal, body: bytes) -> Any:
    decoder = _RequestDecoder(
        request.app.state.ingest_limits, request.app.state.ingest_limiter
    )
    msg = ReceivedMessage(
        topic=INGEST_TOPIC,
        payload=body,
        size=len(body),
        mid=0,
        qos=0,
        retain=False,
        received_us=now_us(),
        route=Route(RouteKind.BATCH),
    )
    decoded = decoder.decode(msg)
    if decoded.item is None:
        return _refused(store, decoder, decoded.dead_letter)
    item = decoded.item
    _check_device(principal, item)
    try:
        result = store.write([item])
    except Exception as exc:  # any store failure: nothing stored, resend
        _LOGGER.warning(
            "http ingest write failed store=%s gateway=%s seq=%s error=%s",
            store.kind,
            item.gateway,
            item.seq,
            type(exc).__name__,
        )
        raise ApiError(
            503,
            "store_unavailable",
            "the store did not answer; nothing was stored, send again",
            headers={"Retry-After": _RETRY_AFTER_S},
        ) from None
    ack = build_acks(result, [item])[item.gateway or ""]
    return JSONResponse(
        ack.model_dump(mode="json"),
        headers={
            "X-Stored-Readings": str(result.inserted),
            "X-Duplicate-Readings": str(result.duplicates),
        },
    )


def _refused(
    store: Store, decoder: _RequestDecoder, letter: DeadLetter | None
) -> JSONResponse:
    failure = decoder.failure
    if letter is not None:
        try:
            store.record_dead_letters([letter])
        except Exception as exc:  # the 422 matters more than the dead letter
            _LOGGER.warning(
                "http ingest dead letter not stored reason=%s error=%s",
                letter.reason,
                type(exc).__name__,
            )
    if failure is None:  # MessageDecoder always says why; guard regardless
        return JSONResponse(
            error_body("bad_envelope", "not a batch envelope"), status_code=422
        )
    status = 413 if failure.reason.value == "payload_too_large" else 422
    message = failure.detail or failure.reason.value
    if failure.field:
        message = f"{failure.field}: {message}"
    return JSONResponse(
        error_body(failure.reason.value, message, failure.field or "body"),
        status_code=status,
    )


def _check_device(principal: Principal, item: IngestItem) -> None:
    if principal.role is not Role.DEVICE:
        return
    own = principal.client or principal.name
    if item.gateway != own:
        raise ApiError(
            403,
            "device_not_allowed",
            f"gw: a device client sends as its own gateway {own!r}, "
            f"not {item.gateway!r}",
            "gw",
        )
    others = sorted(
        ({b.device for b in item.blocks} | item.devices | {r.device for r in item.logs})
        - {own}
    )
    if others:
        raise ApiError(
            403,
            "device_not_allowed",
            f"dev: device client {own!r} may send only its own readings, "
            f"not {others[0]!r}",
            "dev",
        )
