"""The alert routes: list, one with its history, acknowledge, resolve, live stream.

The monitor (another process) opens, touches and resolves alerts in the
store; these routes read them and let people acknowledge and resolve them.
State changes go through :meth:`Store.transition_alert`, a compare-and-set,
so that a change by the monitor and one made here never overwrite each
other: the loser gets a 409 naming the state the alert is in.

The live stream is server-sent events fed by the app's one
:class:`hub.api.live.AlertFeed`. The page (``/``, files under ``/static/``)
is mounted here too: it is the people's view of these routes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sse_starlette import EventSourceResponse, ServerSentEvent

from hub.api.errors import ApiError, invalid, not_found
from hub.api.live import AlertChange, AlertFeed
from hub.api.routes import FromQ, StoreDep, ToQ, _window
from hub.api.schemas import (
    AlertChangeOut,
    AlertDetailOut,
    AlertNoteIn,
    AlertOut,
    AlertPageOut,
)
from hub.security.deps import current_actor, require
from hub.security.roles import Scope
from hub.storage.base import (
    ALERT_ACKNOWLEDGED,
    ALERT_OPEN,
    ALERT_RESOLVED,
    AlertRecord,
    Store,
)
from protocol.validate import now_us

router = APIRouter(tags=["alerts"])

#: The page's files; shipped as package data of ``hub.api``.
STATIC_DIR = Path(__file__).parent / "static"
#: Seconds between two heartbeat comments on an idle stream, so that proxies
#: and browsers keep the connection.
HEARTBEAT_S: float = 15.0
#: Seconds a send to a stream client may take before it is disconnected (a
#: client that stopped reading must not hold its queue and its task).
SEND_TIMEOUT_S = 30.0
#: What a browser waits before reconnecting, in ms (sent once per stream).
RETRY_MS = 2000

#: Reading alerts and changing them are two scopes (viewers read, operators act).
_READ = [Depends(require(Scope.ALERTS_READ))]
_WRITE = [Depends(require(Scope.ALERTS_WRITE))]

AlertId = Annotated[str, PathParam(description="alert id", examples=["al-7f3c2a"])]
StateName = Literal["open", "acknowledged", "resolved"]
SeverityName = Literal["info", "warning", "critical"]


#: Who makes an API change, as the alert history records it: the signed-in
#: user or client (``anonymous`` when auth is off).
ActorDep = Annotated[str, Depends(current_actor)]


def encode_cursor(alert: AlertRecord) -> str:
    """The opaque cursor after ``alert``: its ``(opened_us, id)``, url-safe."""
    raw = orjson.dumps([alert.opened_us, alert.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The ``(opened_us, id)`` of a cursor from :func:`encode_cursor`.

    Raises:
        ApiError: a 422 naming ``cursor`` when it is not one of ours.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        opened_us, alert_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise invalid("cursor", "not a cursor from next_cursor") from None
    if type(opened_us) is not int or not isinstance(alert_id, str):
        raise invalid("cursor", "not a cursor from next_cursor")
    return opened_us, alert_id


@router.get("/v1/alerts", response_model=AlertPageOut, dependencies=_READ)
def list_alerts(
    store: StoreDep,
    state: Annotated[StateName | None, Query(description="only this state")] = None,
    severity: Annotated[
        SeverityName | None, Query(description="only this severity")
    ] = None,
    device: Annotated[str | None, Query(description="only this device's")] = None,
    kind: Annotated[
        str | None, Query(description="only this kind", examples=["threshold"])
    ] = None,
    from_: FromQ = None,
    to: ToQ = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most")] = 100,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page")
    ] = None,
) -> Any:
    """Alerts newest first (by opening time); ``from``/``to`` bound that time."""
    from_us, to_us = _window(from_, to)
    before = decode_cursor(cursor) if cursor is not None else None
    # One more than asked tells whether there is a next page, so that the
    # last page says so instead of a client fetching an empty one.
    rows = store.list_alerts(
        state, severity, device, kind, from_us, to_us, limit + 1, before
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]) if len(rows) > limit else None
    return AlertPageOut(alerts=[AlertOut.of(a) for a in page], next_cursor=next_cursor)


@router.get(
    "/v1/alerts/stream",
    response_class=EventSourceResponse,
    dependencies=_READ,
    responses={
        200: {
            "description": "server-sent events: ``alert`` events whose ``id`` is "
            "the history seq and whose data is an AlertChangeOut, and a "
            f"heartbeat comment every {HEARTBEAT_S:g} s",
            "content": {
                "text/event-stream": {
                    "schema": AlertChangeOut.model_json_schema(),
                    "example": 'retry: 2000\n\nid: 42\nevent: alert\ndata: {"id":'
                    '"al-7f3c2a","state":"open",...,"change":"opened",'
                    '"actor":"monitor","at":"2026-11-30T06:33:07.612000Z"}\n\n',
                }
            },
        }
    },
)
async def alert_stream(
    request: Request,
    since: Annotated[
        int | None,
        Query(ge=0, description="send the changes after this seq first"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(description="set by a reconnecting browser; wins over since"),
    ] = None,
) -> EventSourceResponse:
    """Alert changes as they happen; resumes after ``Last-Event-ID`` or ``since``.

    With neither, only changes from now on are sent. With one, the stored
    changes after that seq come first, oldest first, then the live ones,
    each exactly once.
    """
    after_seq = since
    if last_event_id is not None and last_event_id.strip():
        after_seq = _event_id(last_event_id)
    feed: AlertFeed = request.app.state.alert_feed
    return EventSourceResponse(
        _events(feed, after_seq),
        ping=HEARTBEAT_S,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        send_timeout=SEND_TIMEOUT_S,
    )


def _event_id(text: str) -> int:
    try:
        seq = int(text.strip())
    except ValueError:
        seq = -1
    if seq < 0:
        raise invalid("Last-Event-ID", f"expected a seq from the stream, got {text!r}")
    return seq


async def _events(
    feed: AlertFeed, after_seq: int | None
) -> AsyncIterator[ServerSentEvent]:
    # Subscribe before reading the history, so that a change stored while
    # the history is read is in the queue; the seq check drops it when the
    # history had it already.
    sub = feed.subscribe()
    try:
        yield ServerSentEvent(retry=RETRY_MS)
        last = -1
        if after_seq is not None:
            last = after_seq
            async for change in feed.replay(after_seq):
                yield _sse(change)
                last = change.seq
        while True:
            queued = await sub.queue.get()
            if queued is None:
                return
            if queued.seq > last:
                yield _sse(queued)
                last = queued.seq
    finally:
        feed.unsubscribe(sub)


def _sse(change: AlertChange) -> ServerSentEvent:
    return ServerSentEvent(data=change.data, event="alert", id=str(change.seq))


@router.get("/v1/alerts/{alert_id}", response_model=AlertDetailOut, dependencies=_READ)
def get_alert(alert_id: AlertId, store: StoreDep) -> Any:
    """One alert with its history, oldest change first."""
    alert = store.get_alert(alert_id)
    if alert is None:
        raise not_found("alert", alert_id)
    return AlertDetailOut.with_history(alert, store.alert_history(alert_id))


NoteBody = Annotated[AlertNoteIn | None, Body(description="optional note")]
_CONFLICT: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such alert"},
    409: {"description": "the alert is in another state (named in the message)"},
}


@router.post(
    "/v1/alerts/{alert_id}/ack",
    response_model=AlertOut,
    responses=_CONFLICT,
    dependencies=_WRITE,
)
def acknowledge_alert(
    alert_id: AlertId, store: StoreDep, actor: ActorDep, body: NoteBody = None
) -> Any:
    """Acknowledge an open alert: someone is on it."""
    note = body.note if body is not None else ""
    alert = _transition(store, alert_id, ALERT_ACKNOWLEDGED, (ALERT_OPEN,), actor, note)
    return AlertOut.of(alert)


@router.post(
    "/v1/alerts/{alert_id}/resolve",
    response_model=AlertOut,
    responses=_CONFLICT,
    dependencies=_WRITE,
)
def resolve_alert(
    alert_id: AlertId, store: StoreDep, actor: ActorDep, body: NoteBody = None
) -> Any:
    """Resolve an open or acknowledged alert."""
    note = body.note if body is not None else ""
    alert = _transition(
        store,
        alert_id,
        ALERT_RESOLVED,
        (ALERT_OPEN, ALERT_ACKNOWLEDGED),
        actor,
        note,
    )
    return AlertOut.of(alert)


def _transition(
    store: Store,
    alert_id: str,
    to_state: str,
    from_states: tuple[str, ...],
    actor: str,
    note: str,
) -> AlertRecord:
    try:
        alert = store.transition_alert(
            alert_id, to_state, actor, now_us(), from_states, note
        )
    except LookupError:
        raise not_found("alert", alert_id) from None
    if alert is not None:
        return alert
    current = store.get_alert(alert_id)
    state = current.state if current is not None else "gone"
    raise ApiError(
        409,
        "wrong_state",
        f"alert {alert_id!r} is {state}: only an {' or '.join(from_states)} "
        f"alert can be {to_state}",
    )


def mount_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static/``."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
