"""POST /v1/ingest over both stores: the MQTT envelope, acks, rejects, limits."""

from __future__ import annotations

import gzip
import json

import orjson
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.security.roles import Role
from protocol.validate import now_us
from tests.hub.api.conftest import bearer, build, client_token, sign_in, unique


def envelope(gw: str = "gw-1", seq: int = 1, dev: str = "dev-1", **extra):
    """A batch with two good readings and a bad one (index 2)."""
    t = now_us() - 60_000_000
    return {
        "v": 1,
        "gw": gw,
        "seq": seq,
        "sent": t,
        "series": [
            {
                "dev": dev,
                "metric": "temp",
                "unit": "C",
                "ts": [t - 2_000_000, t - 1_000_000, t],
                "values": [21.5, 21.7, "hot"],
            }
        ],
        **extra,
    }


REJECT = {
    "seq": 1,
    "dev": "dev-1",
    "metric": "temp",
    "index": 2,
    "field": "series[0].values[2]",
    "reason": "non_numeric_string",
}


def test_ingest_stores_and_acks(client):
    """A batch is stored and answered with the gateway's ack and its rejects."""
    resp = client.post("/v1/ingest", content=orjson.dumps(envelope()))

    assert resp.status_code == 200, resp.text
    assert resp.json() == {"v": 1, "seqs": [[1, 1]], "rejected": [REJECT]}
    assert resp.headers["x-stored-readings"] == "2"
    store = client.app.state.store
    assert [r.value for r in store.readings("dev-1")] == [21.5, 21.7]
    assert store.get_device("dev-1").gateway == "gw-1"


def test_ingest_same_seq_twice_stored_once(client):
    """The (gateway, seq) key: a resent batch is acked the same, stored once."""
    body = orjson.dumps(envelope())

    first = client.post("/v1/ingest", content=body)
    second = client.post("/v1/ingest", content=body)

    assert (
        first.json()
        == second.json()
        == {
            "v": 1,
            "seqs": [[1, 1]],
            "rejected": [REJECT],
        }
    )
    assert (
        first.headers["x-stored-readings"],
        second.headers["x-stored-readings"],
    ) == (
        "2",
        "0",
    )
    assert client.app.state.store.count_readings("dev-1") == 2


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_ingest_compressed_bodies(client, codec):
    """gzip and zstd bodies are recognised by their magic bytes, as on MQTT."""
    raw = orjson.dumps(envelope(seq=7))
    body = gzip.compress(raw) if codec == "gzip" else zstandard.compress(raw)

    resp = client.post("/v1/ingest", content=body, headers={"Content-Encoding": codec})

    assert resp.status_code == 200, resp.text
    assert resp.json()["seqs"] == [[7, 7]]
    assert client.app.state.store.count_readings("dev-1") == 2


def test_ingest_rejects_carry_field_paths(client):
    """Each bad reading is listed with its field path and reason; good ones kept."""
    doc = envelope()
    t = doc["sent"]
    doc["series"].append({"dev": "bad id", "metric": "x", "ts": [t], "values": [1.0]})
    doc["series"].append(
        {"dev": "dev-2", "metric": "rh", "ts": [t, t + 10**13], "values": [1.0, 2.0]}
    )
    doc["series"].append({"dev": "dev-2", "metric": "p", "ts": [t], "values": []})

    resp = client.post("/v1/ingest", content=orjson.dumps(doc))

    rejected = {(r["field"], r["reason"]) for r in resp.json()["rejected"]}
    assert rejected == {
        ("series[0].values[2]", "non_numeric_string"),
        ("series[1].dev", "bad_device_id"),
        ("series[2].ts[1]", "future_timestamp"),
        ("series[3]", "length_mismatch"),
    }
    assert client.app.state.store.count_readings("dev-2") == 1


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"", "empty_payload", "body"),
        (b"not json", "invalid_json", "body"),
        (b"[1, 2]", "payload_not_object", "body"),
        (b'{"v": 2}', "unsupported_version", "v"),
        (
            b'{"v": 1, "gw": "gw-1", "seq": -1, "sent": 0, "series": []}',
            "bad_envelope",
            "seq",
        ),
        (
            b'{"v": 1, "gw": "g w", "seq": 1, "sent": 0, "series": []}',
            "bad_envelope",
            "gw",
        ),
        (b'{"v": 1, "gw": "gw-1", "seq": 1, "sent": 0}', "bad_envelope", "series"),
        (b"\x1f\x8b\x08\x00garbage", "bad_compression", "body"),
    ],
)
def test_ingest_no_envelope_is_422_with_reason(client, body, code, field):
    """A body that is no envelope: 422, the reject reason as code, the field."""
    resp = client.post("/v1/ingest", content=body)

    assert resp.status_code == 422
    error = resp.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]
    letters = client.app.state.store.list_dead_letters(10)
    assert [(d.topic, d.reason) for d in letters] == [("http:/v1/ingest", code)]


def test_ingest_seq_past_64_bits_is_422(client):
    """A seq the store cannot keep is refused, not a 500."""
    resp = client.post("/v1/ingest", content=orjson.dumps(envelope(seq=2**63)))

    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == "seq"


def test_ingest_over_the_limit_is_413(store, tmp_path, monkeypatch):
    """A body over max_payload_bytes is 413 and never read whole."""
    with build(store, tmp_path, monkeypatch, max_payload_bytes=1000) as c:
        c.headers.update(bearer(sign_in(c, "admin", "admin-password-of-the-v1-tests")))
        doc = envelope()
        doc["pad"] = "x" * 1000

        resp = c.post("/v1/ingest", content=orjson.dumps(doc))
        small = c.post("/v1/ingest", content=orjson.dumps(envelope()))

    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"
    assert small.status_code == 200


def test_ingest_unknown_encoding_is_415(client):
    """A Content-Encoding we cannot read is 415."""
    resp = client.post("/v1/ingest", content=b"{}", headers={"Content-Encoding": "br"})

    assert resp.status_code == 415
    assert resp.json()["error"]["code"] == "unsupported_encoding"


def test_ingest_device_client_sends_only_its_own(client):
    """A device client's gw and devs must be its client id."""
    store = client.app.state.store
    token = client_token(client, store, "mote-3", Role.DEVICE)
    own = envelope(gw="mote-3", dev="mote-3")
    other_dev = envelope(gw="mote-3", dev="mote-4", seq=2)
    other_gw = envelope(gw="gw-1", dev="mote-3", seq=3)

    ok = client.post("/v1/ingest", content=orjson.dumps(own), headers=bearer(token))
    dev = client.post(
        "/v1/ingest", content=orjson.dumps(other_dev), headers=bearer(token)
    )
    gw = client.post(
        "/v1/ingest", content=orjson.dumps(other_gw), headers=bearer(token)
    )

    assert ok.status_code == 200
    assert (
        dev.status_code,
        dev.json()["error"]["code"],
        dev.json()["error"]["field"],
    ) == (
        403,
        "device_not_allowed",
        "dev",
    )
    assert (gw.status_code, gw.json()["error"]["field"]) == (403, "gw")
    assert store.count_readings("mote-4") == 0
    assert store.get_device("mote-4") is None


def test_ingest_integration_client_sends_for_any(client):
    """An integration client may send any gateway's and device's batches."""
    store = client.app.state.store
    token = client_token(client, store, "erp", Role.INTEGRATION)

    resp = client.post(
        "/v1/ingest", content=orjson.dumps(envelope()), headers=bearer(token)
    )

    assert resp.status_code == 200
    assert store.count_readings("dev-1") == 2


# -- property tests (SQLite: many examples) -----------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
_series = st.fixed_dictionaries(
    {
        "dev": st.sampled_from(["dev-1", "bad id", "", "d" * 65]) | st.text(max_size=5),
        "metric": st.sampled_from(["temp", "", "x\ny"]) | st.text(max_size=5),
    },
    optional={
        "unit": st.text(max_size=40) | st.integers(),
        "ts": st.lists(
            st.integers(-(2**70), 2**70)
            | st.sampled_from([1_700_000_000, "2026-11-30T06:00:00Z", "noon", None]),
            max_size=4,
        )
        | _json,
        "values": st.lists(
            st.floats() | st.text(max_size=5) | st.none() | st.booleans(), max_size=4
        )
        | _json,
        "flags": st.lists(st.integers(-(2**70), 2**70), max_size=4) | _json,
    },
)
_envelopes = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 1, 1, 2, "1", None]),
        "gw": st.sampled_from(["gw-1", "bad gw", ""]) | st.text(max_size=5),
        "seq": st.integers(-5, 2**70) | _json,
        "sent": st.integers(-(2**70), 2**70) | _json,
        "late": st.booleans() | _json,
        "series": st.lists(_series | _json, max_size=4) | _json,
        "logs": _json,
    },
)


def _check_answer(resp) -> None:
    assert resp.status_code < 500, resp.text
    body = resp.json()
    if resp.status_code == 200:
        assert set(body) == {"v", "seqs", "rejected"}
        for reject in body["rejected"]:
            assert reject["reason"], reject
    else:
        assert resp.status_code in (413, 422), resp.text
        assert body["error"]["code"], body
        assert body["error"]["message"], body


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.binary(max_size=300))
def test_ingest_arbitrary_bytes_never_5xx(sqlite_client, body):
    """Any bytes: never a 5xx; every refusal and every reject has a reason."""
    _check_answer(sqlite_client.post("/v1/ingest", content=body))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(doc=_envelopes | _json, compress=st.booleans())
def test_ingest_arbitrary_documents_never_5xx(sqlite_client, doc, compress):
    """Any JSON document, near-envelopes most: never a 5xx, reasons everywhere."""
    if isinstance(doc, dict) and doc.get("gw") == "gw-1":
        doc["gw"] = unique("gw")  # a fresh (gateway, seq) key each example
    # The stdlib writes integers of any size (orjson stops at 64 bits).
    raw = json.dumps(doc).encode()
    body = gzip.compress(raw) if compress else raw

    _check_answer(sqlite_client.post("/v1/ingest", content=body))


def test_ingest_store_down_is_503(sqlite_store, tmp_path, monkeypatch):
    """A failing store: 503 ``store_unavailable`` with Retry-After, no trace."""
    with build(sqlite_store, tmp_path, monkeypatch, auth={"enabled": False}) as c:
        sqlite_store.close()

        resp = c.post("/v1/ingest", content=orjson.dumps(envelope()))

    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "5"
    assert resp.json() == {
        "error": {
            "code": "store_unavailable",
            "message": "the store did not answer; nothing was stored, send again",
        }
    }
