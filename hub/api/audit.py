"""The audit log for admins: ``GET /v1/audit`` and ``GET /v1/audit/export``.

Records come oldest first. A page ends with ``next_cursor`` when more
records match; pass it back as ``cursor`` for the next page. The export
streams every matching record as CSV or JSON lines, page by page, so that
a large log never sits in memory.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from hub.api._time import format_us, parse_rfc3339
from hub.api.errors import invalid
from hub.security.deps import Principal, require, security
from hub.security.roles import Scope
from hub.security.store import AuditQuery, AuditRecord, AuthStore

router = APIRouter(prefix="/v1/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(require(Scope.AUDIT_READ))]
_EXPORT_PAGE = 1000
_CSV_COLUMNS = [
    "id",
    "time",
    "kind",
    "request_id",
    "actor",
    "role",
    "client",
    "address",
    "method",
    "path",
    "query",
    "status",
    "duration_ms",
    "detail",
]


class AuditOut(BaseModel):
    """One audit record."""

    id: int
    time: str = Field(description="RFC 3339, UTC, µs")
    kind: str = Field(examples=["request", "sign_in_failed", "refresh_reused"])
    request_id: str
    actor: str | None
    role: str | None
    client: str | None
    address: str | None
    method: str | None
    path: str | None
    query: str | None
    status: int | None
    duration_ms: float | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, r: AuditRecord) -> AuditOut:
        """From the store's record."""
        return cls(
            id=r.id or 0,
            time=format_us(r.time_us),
            kind=r.kind,
            request_id=r.request_id,
            actor=r.actor,
            role=r.role,
            client=r.client,
            address=r.address,
            method=r.method,
            path=r.path,
            query=r.query,
            status=r.status,
            duration_ms=r.duration_ms,
            detail=r.detail,
        )


class AuditPage(BaseModel):
    """A page of audit records."""

    records: list[AuditOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page")


def _encode_cursor(r: AuditRecord) -> str:
    return base64.urlsafe_b64encode(f"{r.time_us}.{r.id}".encode()).decode()


def _decode_cursor(text: str) -> tuple[int, int]:
    try:
        time_us, rid = base64.urlsafe_b64decode(text.encode()).decode().split(".")
        return int(time_us), int(rid)
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise invalid("cursor", "not a cursor of this API") from None


def _query(
    who: Annotated[str | None, Query(description="only this user or client")] = None,
    kind: Annotated[
        str | None, Query(description="request, sign_in_failed, refresh_reused, …")
    ] = None,
    path: Annotated[str | None, Query(description="paths starting so")] = None,
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
    from_: Annotated[
        str | None, Query(alias="from", description="start, inclusive, RFC 3339")
    ] = None,
    to: Annotated[str | None, Query(description="end, exclusive, RFC 3339")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of a page")] = None,
) -> AuditQuery:
    try:
        from_us = None if from_ is None else parse_rfc3339(from_)
    except ValueError as exc:
        raise invalid("from", str(exc)) from None
    try:
        to_us = None if to is None else parse_rfc3339(to)
    except ValueError as exc:
        raise invalid("to", str(exc)) from None
    return AuditQuery(
        actor=who,
        kind=kind,
        path_prefix=path,
        status=status,
        from_us=from_us,
        to_us=to_us,
        after=None if cursor is None else _decode_cursor(cursor),
    )


Filters = Annotated[AuditQuery, Depends(_query)]


@router.get("", response_model=AuditPage)
def list_audit(
    request: Request,
    _: Auditor,
    query: Filters,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most")] = 100,
) -> Any:
    """Audit records matching the filters, oldest first, a page at a time."""
    store = security(request).store
    rows = store.list_audit(query, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(
        records=[AuditOut.of(r) for r in rows],
        next_cursor=_encode_cursor(rows[-1]) if more else None,
    )


def _pages(store: AuthStore, query: AuditQuery) -> Iterator[list[AuditRecord]]:
    after = query.after
    while True:
        page = store.list_audit(
            AuditQuery(**{**_fields(query), "after": after}), _EXPORT_PAGE
        )
        if not page:
            return
        yield page
        last = page[-1]
        after = (last.time_us, last.id or 0)


def _fields(q: AuditQuery) -> dict[str, Any]:
    return {
        "actor": q.actor,
        "kind": q.kind,
        "path_prefix": q.path_prefix,
        "status": q.status,
        "from_us": q.from_us,
        "to_us": q.to_us,
    }


def _csv(store: AuthStore, query: AuditQuery) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_CSV_COLUMNS)
    for page in _pages(store, query):
        for r in page:
            out = AuditOut.of(r).model_dump()
            out["detail"] = orjson.dumps(out["detail"]).decode()
            writer.writerow(["" if out[c] is None else out[c] for c in _CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _jsonl(store: AuthStore, query: AuditQuery) -> Iterator[bytes]:
    for page in _pages(store, query):
        yield b"".join(orjson.dumps(AuditOut.of(r).model_dump()) + b"\n" for r in page)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/jsonl": {}}}},
)
def export_audit(
    request: Request,
    _: Auditor,
    query: Filters,
    format: Annotated[
        Literal["csv", "jsonl"], Query(description="csv or jsonl (JSON lines)")
    ] = "jsonl",
) -> StreamingResponse:
    """Every matching record, oldest first, as CSV or JSON lines."""
    store = security(request).store
    if format == "csv":
        return StreamingResponse(
            _csv(store, query),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )
    return StreamingResponse(
        _jsonl(store, query),
        media_type="application/jsonl",
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )
