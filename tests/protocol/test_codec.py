"""Payload decoding: size, compression, UTF-8, JSON and bare nan (protocol.codec)."""

from __future__ import annotations

import gzip

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.const import DEFAULT_MAX_INFLATED_BYTES, DEFAULT_MAX_PAYLOAD_BYTES
from protocol.const import RejectReason as R
from protocol.errors import DecodeError
from protocol.validate import NON_FINITE_MARK

LIMIT = DEFAULT_MAX_PAYLOAD_BYTES  # 262,144


def _reason(payload: bytes, **kwargs) -> tuple[R, str]:
    with pytest.raises(DecodeError) as info:
        codec.read_payload(payload, **kwargs)
    return info.value.reason, info.value.detail


def _padded(size: int) -> bytes:
    """A valid JSON object of exactly ``size`` bytes."""
    head = b'{"pad":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_read_payload_object():
    """A JSON object decodes to the same dict."""
    assert codec.read_payload(b'{"temperature": 21.5}') == {"temperature": 21.5}


def test_read_payload_exact_limit_accepted():
    """A payload of exactly the limit is read (the bound is inclusive)."""
    doc = codec.read_payload(_padded(LIMIT))
    assert len(doc["pad"]) == LIMIT - 10


def test_read_payload_over_limit_rejected():
    """One byte over the limit is payload_too_large, with the size in the detail."""
    assert _reason(_padded(LIMIT + 1)) == (
        R.PAYLOAD_TOO_LARGE,
        f"{LIMIT + 1} bytes > {LIMIT}",
    )


def test_read_payload_over_limit_checked_before_parsing():
    """Non-JSON bytes over the limit give payload_too_large, not invalid_json."""
    assert _reason(b"\xff" * (LIMIT + 1))[0] is R.PAYLOAD_TOO_LARGE


def test_read_payload_custom_limit():
    """max_bytes sets the inclusive limit."""
    assert codec.read_payload(b"[1]", max_bytes=3) == [1]
    assert _reason(b"[1] ", max_bytes=3)[0] is R.PAYLOAD_TOO_LARGE


def test_read_payload_empty():
    """A zero-length payload is empty_payload."""
    assert _reason(b"")[0] is R.EMPTY_PAYLOAD


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_round_trip(compression):
    """A compressed body, recognised by its magic bytes, decodes to the document."""
    doc = {"series": [{"dev": "d", "values": list(range(500))}]}
    body = codec.compress(codec.dumps(doc), compression)
    assert body[:2] != codec.dumps(doc)[:2]
    assert codec.read_payload(body) == doc


def test_compress_none_is_identity():
    """Compression "none" returns the body unchanged."""
    assert codec.compress(b'{"a":1}', "none") == b'{"a":1}'


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compression_bomb_rejected(compression):
    """A small body inflating past the inflate limit is bad_compression."""
    body = codec.compress(
        b"[" + b" " * (DEFAULT_MAX_INFLATED_BYTES + 10) + b"]", compression
    )
    assert len(body) < LIMIT
    assert _reason(body) == (
        R.BAD_COMPRESSION,
        f"inflates past {DEFAULT_MAX_INFLATED_BYTES} bytes",
    )


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compression_inflate_limit_inclusive(compression):
    """A body inflating to exactly max_inflated is read; one byte more is not."""
    exact = codec.compress(_padded(1000), compression)
    over = codec.compress(_padded(1001), compression)
    assert len(codec.read_payload(exact, max_inflated=1000)["pad"]) == 990
    assert _reason(over, max_inflated=1000)[0] is R.BAD_COMPRESSION


def test_zstd_bomb_without_content_size_rejected():
    """A streamed zstd frame (no size in its header) is bounded all the same."""
    inflater = zstandard.ZstdCompressor().compressobj()
    body = inflater.compress(b" " * 10_000_000) + inflater.flush()
    assert zstandard.frame_content_size(body) == -1
    assert _reason(body)[0] is R.BAD_COMPRESSION


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # mtime=0: a header stamped with the time would give each xdist
        # worker its own test id, and the run would stop at collection.
        (gzip.compress(b'{"a":1}', mtime=0)[:-4], "gzip: truncated body"),
        (zstandard.ZstdCompressor().compress(b'{"a":1}')[:-2], "zstd: truncated body"),
        (b"\x1f\x8b" + b"\x00" * 20, "gzip"),
        (b"\x28\xb5\x2f\xfd" + b"garbage", "zstd"),
    ],
)
def test_corrupt_compression_rejected(body, expected):
    """Truncated or corrupt compressed bodies are bad_compression, never partial."""
    reason, detail = _reason(body)
    assert reason is R.BAD_COMPRESSION
    assert detail.startswith(expected)


@pytest.mark.parametrize(
    ("payload", "offset", "byte"),
    [
        (b'{"a":"\xff"}', 6, 0xFF),
        (b'{"a":"\xc0\xaf"}', 6, 0xC0),  # overlong "/"
        (b'{"a":"\xed\xa0\x80"}', 6, 0xED),  # UTF-16 surrogate
        (b'{"a":"\xe2\x82"}', 6, 0xE2),  # truncated sequence
        (b'{"Switch1\xf4\x02\x00', 9, 0xF4),  # C09 shape
    ],
)
def test_invalid_utf8_rejected_with_offset(payload, offset, byte):
    """Invalid UTF-8 is invalid_utf8 with the first bad byte and its offset."""
    assert _reason(payload) == (
        R.INVALID_UTF8,
        f"invalid byte 0x{byte:02x} at offset {offset}",
    )


@pytest.mark.parametrize(
    "payload", [b"{", b'{"a":}', b"{'a': 1}", b'{"a":1,}', b"nan nan", b"\x00"]
)
def test_invalid_json_rejected(payload):
    """Text that is not JSON is invalid_json, with an offset in the detail."""
    reason, detail = _reason(payload)
    assert reason is R.INVALID_JSON
    assert " at offset " in detail


def test_utf8_bom_skipped():
    """A UTF-8 byte order mark before the JSON text is ignored (RFC 8259 8.1)."""
    assert codec.read_payload(b'\xef\xbb\xbf{"a":1}') == {"a": 1}


@pytest.mark.parametrize(
    "token",
    [
        *(b"nan", b"NaN", b"NAN", b"-nan", b"+nan", b"inf", b"-inf", b"+inf"),
        *(b"Inf", b"INF", b"Infinity", b"-Infinity", b"infinity"),
    ],
)
def test_bare_non_finite_token_marked(token):
    """Every bare non-finite token becomes a marked string; the rest is kept (C01)."""
    doc = codec.read_payload(b'{"t":' + token + b',"h":48.0}')
    assert doc == {"t": NON_FINITE_MARK + token.decode(), "h": 48.0}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"[nan, 1, -inf]", [NON_FINITE_MARK + "nan", 1, NON_FINITE_MARK + "-inf"]),
        (b'{"a":{"b":\n\tnan\n}}', {"a": {"b": NON_FINITE_MARK + "nan"}}),
        (b'{"s":"nan","v":nan}', {"s": "nan", "v": NON_FINITE_MARK + "nan"}),
        (b'{"s":"a\\" nan","v":NaN}', {"s": 'a" nan', "v": NON_FINITE_MARK + "NaN"}),
        (b'{"banana":1,"v":nan}', {"banana": 1, "v": NON_FINITE_MARK + "nan"}),
    ],
)
def test_bare_tokens_outside_strings_only(payload, expected):
    """Only tokens outside string literals are marked, strings stay as sent."""
    assert codec.read_payload(payload) == expected


@pytest.mark.parametrize("payload", [b"{nanx: 1}", b'{"a": nan,}', b'{"a": 1nan}'])
def test_bare_tokens_in_broken_json_rejected(payload):
    """Marking tokens does not rescue JSON that is broken in other ways."""
    assert _reason(payload)[0] is R.INVALID_JSON


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_read_payload_arbitrary_bytes_raises_only_decode_error(payload):
    """On any bytes read_payload returns a document or raises DecodeError only."""
    try:
        doc, error = codec.read_payload(payload), None
    except DecodeError as exc:
        doc, error = None, exc
    if error is not None:
        assert isinstance(error.reason, R)
    else:
        assert orjson.loads(orjson.dumps(doc)) == doc
