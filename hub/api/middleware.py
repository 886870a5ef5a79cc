"""ASGI middlewares of the API's errors: NUL characters refused, 500s answered.

Both answer in the API's one error shape (:mod:`hub.api.errors`), which
installs them.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.errors import INTERNAL_ERROR, error_body, log_unexpected

#: JSON bodies up to this size are read ahead for NUL characters; larger
#: ones (bulk ingest) stream on unchecked, their routes validate them.
NUL_SCAN_MAX_BYTES = 1 << 20
_NUL_MESSAGE = "must not hold a NUL character"


class NulFilterMiddleware:
    """Refuse NUL characters in a path, a query or a JSON body with a 422.

    No route means a NUL, and PostgreSQL cannot store one in text (the
    driver raises, which was a 500): refused here, once for every route,
    naming the parameter or the body field. The path is recorded with the
    NUL escaped (``%00``): the audit log, outside, keeps what it can store.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 422."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            scope["path"] = scope["path"].replace("\x00", "%00")
            await _refuse(send, "path")
            return
        field = _nul_in_query(scope.get("query_string", b""))
        if field is not None:
            await _refuse(send, field)
            return
        if _is_json(scope):
            messages, body = await _read_ahead(receive)
            field = _nul_in_json(body) if b"\\u0000" in body else None
            if field is not None:
                await _refuse(send, field)
                return
            receive = _replay(messages, receive)
        await self.app(scope, receive, send)


def _nul_in_query(query: bytes) -> str | None:
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "%00")
    return None


def _is_json(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return bool(media == b"application/json" or media.endswith(b"+json"))
    return False


async def _read_ahead(receive: Receive) -> tuple[list[Message], bytes]:
    """The first messages of the body; their bytes if that is the whole body."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, b""
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > NUL_SCAN_MAX_BYTES:
            return messages, b""
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _nul_in_json(body: bytes) -> str | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the route answers the bad JSON itself
    return _nul_at(doc, [])


def _nul_at(value: object, at: list[str]) -> str | None:
    if isinstance(value, str):
        return (".".join(at) or "body") if "\x00" in value else None
    items: list[tuple[str, object]] = []
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    for key, item in items:
        if "\x00" in key:
            return ".".join([*at, key.replace("\x00", "%00")])
        found = _nul_at(item, [*at, key])
        if found is not None:
            return found
    return None


async def _refuse(send: Send, field: str) -> None:
    body = error_body("invalid_parameter", f"{field}: {_NUL_MESSAGE}", field)
    await _send_json(send, 422, body)


async def _send_json(send: Send, status: int, doc: dict[str, object]) -> None:
    body = orjson.dumps(doc)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class UnexpectedErrorMiddleware:
    """Answer an exception that escaped a route with ``internal_error``.

    Starlette's handler of ``Exception`` answers too, but then raises again,
    and uvicorn closes the connection: a client's next request on it fails
    (connection reset). Caught here, inside, the connection stays usable;
    the handler remains for errors of the middleware outside this one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; answer 500 if it raised before answering."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # half an answer is out: nothing to mend
                raise
            log_unexpected(scope["method"], scope["path"], exc)
            await _send_json(send, 500, INTERNAL_ERROR)
