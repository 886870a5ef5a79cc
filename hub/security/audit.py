"""The audit log: one record per request and per security event, batched.

:class:`AuditMiddleware` records every HTTP request once, whatever its
outcome (401, 403 and 404 included): time, request id, who (the principal
the route authenticated, or the name a sign-in tried), role, client
address, method, path, status and duration. The request id comes from a
well-formed ``X-Request-ID`` or is generated, and is echoed in the answer.

Records go through :class:`AuditWriter`: a bounded queue and one thread that
writes every ``audit_flush_s`` or ``audit_batch_max`` records, so that a
request never waits for the store. When the queue is full, records are
dropped and counted (``dropped``) rather than slowing requests down.

Never recorded: headers (so no ``Authorization`` header), bodies (so no
password, client secret or token), and the query strings of ``/v1/auth/*``;
elsewhere query parameters named like a secret are masked.

TODO: retention of ``audit_log`` (and of ``sign_in_failures``, which the
throttle only reads for its window); ``streamflow admin retention`` drops
readings only so far, and how long to keep an audit trail is a site policy.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.security.addresses import STATE_ADDRESS, client_address
from hub.security.config import Network
from hub.security.store import AuditRecord, AuthStore
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)

#: Where routes leave the principal and the attempted name in scope state.
STATE_PRINCIPAL = "sf_principal"
STATE_WHO = "sf_who"
STATE_REQUEST_ID = "sf_request_id"
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SECRET_PARAM_RE = re.compile(r"token|secret|password|key|code", re.IGNORECASE)
_AUTH_PREFIX = "/v1/auth/"


def request_id_from(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` if well formed, else a new one."""
    for key, value in headers:
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID_RE.match(text):
                return text
            break
    return uuid.uuid4().hex


def safe_query(path: str, query: bytes) -> str | None:
    """The query string to record: none for ``/v1/auth/*``, secrets masked."""
    if not query or path.startswith(_AUTH_PREFIX):
        return None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    masked = [(k, "***" if _SECRET_PARAM_RE.search(k) else v) for k, v in pairs]
    return urlencode(masked)


class AuditWriter:
    """Write audit records in batches from a thread of its own.

    Args:
        store: where records go.
        queue_max: records held at most; more are dropped and counted.
        batch_max: records per transaction at most.
        flush_s: longest wait before queued records are written.
    """

    def __init__(
        self, store: AuthStore, queue_max: int, batch_max: int, flush_s: float
    ) -> None:
        self._store = store
        self._queue: queue.Queue[AuditRecord | None] = queue.Queue(queue_max)
        self._batch_max = batch_max
        self._flush_s = flush_s
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._idle = threading.Condition()
        self._pending = 0

        #: Records dropped because the queue was full or the store failed.
        self.dropped = 0
        #: Records written.
        self.written = 0

    def submit(self, record: AuditRecord) -> None:
        """Queue a record; never blocks (a full queue drops it)."""
        self._ensure_started()
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._idle:
                self._pending -= 1
                self.dropped += 1
                dropped = self.dropped
                self._idle.notify_all()
            # At the 1st, 2nd, 4th, 8th, ... drop: a flood must not flood the log.
            if dropped & (dropped - 1) == 0:
                _LOGGER.warning(
                    "audit records dropped kind=%s: queue full (%d so far)",
                    record.kind,
                    dropped,
                )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record submitted so far is written (or dropped)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and stop the thread."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="streamflow-audit", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[AuditRecord] = []
            first = self._queue.get()
            if first is None:
                break
            batch.append(first)
            deadline = time.monotonic() + self._flush_s
            while len(batch) < self._batch_max:
                left = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=max(left, 0))
                        if left > 0
                        else (self._queue.get_nowait())
                    )
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
        self._drain()

    def _drain(self) -> None:
        rest: list[AuditRecord] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rest.append(item)
        if rest:
            self._write(rest)

    def _write(self, batch: list[AuditRecord]) -> None:
        try:
            self._store.record_audit(batch)
        except Exception:  # the store is down: count and go on
            _LOGGER.exception("audit batch lost records=%d", len(batch))
            lost, written = len(batch), 0
        else:
            lost, written = 0, len(batch)
        with self._idle:
            self.dropped += lost
            self.written += written
            self._pending -= len(batch)
            self._idle.notify_all()


class AuditMiddleware:
    """Record every HTTP request once (see the module docstring).

    Also resolves the client address (for the IP filter, the throttle and the
    routes) and the request id, and echoes ``X-Request-ID``.

    Args:
        app: the application behind.
        writer: where records go.
        trusted: proxies whose X-Forwarded-For is believed.
    """

    def __init__(
        self, app: ASGIApp, writer: AuditWriter | None, trusted: Sequence[Network]
    ) -> None:
        self.app = app
        self._writer = writer
        self._trusted = list(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, then queue its record."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        at = now_us()
        state = scope.setdefault("state", {})
        request_id = state[STATE_REQUEST_ID] = request_id_from(scope["headers"])
        state[STATE_ADDRESS] = client_address(scope, self._trusted)
        status = 500  # unless the app answers: an exception escaped
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded and self._writer is not None:
                recorded = True
                self._writer.submit(
                    _request_record(scope, at, status, started, request_id)
                )

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get(
                "more_body", False
            ):
                # Queued before the last byte leaves, so that a client that
                # has its answer finds the record queued (the tests count).
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record()


def _request_record(
    scope: Scope, at: int, status: int, started: float, request_id: str
) -> AuditRecord:
    state = scope["state"]
    principal = state.get(STATE_PRINCIPAL)
    path: str = scope["path"]
    return AuditRecord(
        time_us=at,
        kind="request",
        request_id=request_id,
        actor=principal.name if principal is not None else state.get(STATE_WHO),
        role=str(principal.role) if principal is not None else None,
        client=principal.client if principal is not None else None,
        address=state.get(STATE_ADDRESS),
        method=scope["method"],
        path=path,
        query=safe_query(path, scope.get("query_string", b"")),
        status=status,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )
