"""Payload codec: bytes on the wire to JSON documents and back.

Decoding goes in this order, each step with its own reject reason: size
(``payload_too_large``, before anything else is done), emptiness, compression
recognised by magic bytes (gzip, zstd), UTF-8, then JSON. A compressed body
is inflated only up to its limit, so that a small bomb never allocates more
than that. A UTF-8 byte order mark before the JSON text is skipped (RFC 8259
section 8.1 lets a parser ignore it; Windows tools write one). A JSON text
that fails only because of bare ``nan``/``inf`` tokens (firmware that prints
``printf("%f")`` into JSON, case C01) is read again with those tokens as
marked strings, so that each such field becomes a ``non_finite_value`` reject
of its own and the rest of the message is kept.
"""

from __future__ import annotations

import io
import re
import zlib
from typing import Any, Literal

import orjson

from protocol.const import (
    DEFAULT_MAX_INFLATED_BYTES,
    DEFAULT_MAX_PAYLOAD_BYTES,
    GZIP_MAGIC,
    ZSTD_MAGIC,
    RejectReason,
)
from protocol.errors import DecodeError
from protocol.validate import NON_FINITE_MARK

Compression = Literal["none", "gzip", "zstd"]

# A string literal (with escapes) or a bare non-finite token; strings are
# matched first so that "nan" inside a string is left alone.
# "%+f" prints a sign on both.
_TOKEN_RE = re.compile(
    rb'"(?:[^"\\]|\\.)*"'
    rb"|(?<![\w.])[-+]?(?:nan|NaN|NAN|inf|Inf|INF|Infinity|infinity)(?![\w.])"
)
_BOM = b"\xef\xbb\xbf"


def read_payload(
    payload: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    max_inflated: int = DEFAULT_MAX_INFLATED_BYTES,
) -> Any:
    """Decode a payload into a JSON document.

    Args:
        payload: the raw bytes as received.
        max_bytes: the largest payload accepted, inclusive.
        max_inflated: the largest size a compressed body may inflate to.

    Returns:
        The decoded JSON value (any JSON type; callers check the shape).

    Raises:
        DecodeError: with the reason of the first step that failed.
    """
    if len(payload) > max_bytes:
        raise DecodeError(
            RejectReason.PAYLOAD_TOO_LARGE, "", f"{len(payload)} bytes > {max_bytes}"
        )
    if not payload:
        raise DecodeError(RejectReason.EMPTY_PAYLOAD)
    body = inflate(payload, max_inflated)
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _read_tolerant(body, exc)


def inflate(payload: bytes, max_inflated: int = DEFAULT_MAX_INFLATED_BYTES) -> bytes:
    """Decompress a gzip or zstd body, recognised by its magic bytes.

    Bodies without a known magic are returned as they are.

    Raises:
        DecodeError: ``bad_compression`` for a corrupt or too large body,
            ``unsupported_compression`` for zstd where the library is missing.
    """
    if payload.startswith(GZIP_MAGIC):
        return _inflate_gzip(payload, max_inflated)
    if payload.startswith(ZSTD_MAGIC):
        return _inflate_zstd(payload, max_inflated)
    return payload


def _inflate_gzip(payload: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        body = inflater.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise DecodeError(RejectReason.BAD_COMPRESSION, "", f"gzip: {exc}") from exc
    if len(body) > limit:
        raise DecodeError(
            RejectReason.BAD_COMPRESSION, "", f"inflates past {limit} bytes"
        )
    if not inflater.eof:
        raise DecodeError(RejectReason.BAD_COMPRESSION, "", "gzip: truncated body")
    return body


def _inflate_zstd(payload: bytes, limit: int) -> bytes:
    try:
        import zstandard
    except ImportError:  # a gateway install has no zstandard
        raise DecodeError(RejectReason.UNSUPPORTED_COMPRESSION, "", "zstd") from None
    # Bounded first: a one-shot decompress allocates whatever size the frame
    # header claims, and decompressobj inflates a bomb whole before we can
    # look at its size. The stream reader stops at limit + 1 bytes.
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload))
        body: bytes = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise DecodeError(RejectReason.BAD_COMPRESSION, "", f"zstd: {exc}") from exc
    if len(body) > limit:
        raise DecodeError(
            RejectReason.BAD_COMPRESSION, "", f"inflates past {limit} bytes"
        )
    # The reader returns a truncated frame's prefix without an error; a
    # second pass, now known to stay under the limit, tells whether the frame
    # ended.
    inflater = zstandard.ZstdDecompressor().decompressobj()
    try:
        inflater.decompress(payload)
    except zstandard.ZstdError as exc:
        raise DecodeError(RejectReason.BAD_COMPRESSION, "", f"zstd: {exc}") from exc
    if not inflater.eof:
        raise DecodeError(RejectReason.BAD_COMPRESSION, "", "zstd: truncated body")
    return body


def _read_tolerant(body: bytes, first: orjson.JSONDecodeError) -> Any:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"invalid byte 0x{body[exc.start]:02x} at offset {exc.start}"
        raise DecodeError(RejectReason.INVALID_UTF8, "", detail) from None
    patched = _TOKEN_RE.sub(_mark_non_finite, body)
    if patched != body:
        try:
            return orjson.loads(patched)
        except orjson.JSONDecodeError:
            pass
    raise DecodeError(
        RejectReason.INVALID_JSON, "", f"{first.msg} at offset {first.pos}"
    ) from None


def _mark_non_finite(match: re.Match[bytes]) -> bytes:
    token = match.group(0)
    if token.startswith(b'"'):
        return token
    return orjson.dumps(NON_FINITE_MARK + token.decode("ascii"))


def dumps(doc: Any) -> bytes:
    """Encode a JSON document (pydantic models must be dumped first)."""
    return orjson.dumps(doc)


def compress(body: bytes, compression: Compression) -> bytes:
    """Compress an encoded body for the wire."""
    if compression == "gzip":
        import gzip

        return gzip.compress(body, compresslevel=6, mtime=0)
    if compression == "zstd":
        import zstandard

        out: bytes = zstandard.ZstdCompressor(level=3).compress(body)
        return out
    return body
