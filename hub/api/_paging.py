"""Opaque cursors of the paged lists, and the headers that carry them.

A cursor is the sort key of the last item of a page, as url-safe base64 of
a JSON array; clients pass it back untouched. The lists that predate paging
(``/v1/devices``, ``…/readings``) keep a JSON array as their body, so that
existing clients go on working: the next page's cursor travels in the
``X-Next-Cursor`` header and an RFC 8288 ``Link: <…>; rel="next"``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from fastapi import Request, Response

from hub.api.errors import invalid

NEXT_CURSOR_HEADER = "X-Next-Cursor"


def encode_cursor(*key: int | str) -> str:
    """The opaque cursor of a sort key."""
    raw = orjson.dumps(list(key))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """The sort key of a cursor from :func:`encode_cursor`, checked for ``types``.

    Raises:
        ApiError: a 422 naming ``cursor`` when it is not one of ours.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise invalid("cursor", "not a cursor from a next page link") from None
    if not isinstance(key, list) or len(key) != len(types):
        raise invalid("cursor", "not a cursor from a next page link")
    # type() rather than isinstance: a JSON true must not pass for an int.
    if any(type(v) is not t for v, t in zip(key, types, strict=True)):
        raise invalid("cursor", "not a cursor from a next page link")
    return key


def set_next(request: Request, response: Response, cursor: str | None) -> None:
    """Put the next page's cursor in the headers (nothing on the last page)."""
    if cursor is None:
        return
    url = request.url.include_query_params(cursor=cursor)
    response.headers[NEXT_CURSOR_HEADER] = cursor
    response.headers["Link"] = f'<{url}>; rel="next"'
