"""Device logs end to end: edge agent -> broker -> hub -> TimescaleDB, as processes.

``streamflow-edge --input FILE`` reads log records (some malformed) and
readings as JSON lines, buffers them and sends them in batches to the hub's
broker; ``streamflow hub`` counts them per minute and level in TimescaleDB in
the batch's own transaction. The test then checks, from outside:

- the counts in the store are exactly those of the good lines;
- the malformed lines were rejected at the edge with their reasons (its
  ``up/state``), and malformed records a gateway sends anyway are rejected
  by the hub with the field named, in the ack and in the device's accounting;
- every batch published again (a gateway's resend) is acked and counted once;
- the burst of errors in the data raised one ``log_burst`` event.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.storage.timescale import TimescaleStore
from protocol import topics
from protocol.logs import LEVEL_NUMBERS, LEVELS
from protocol.models import BatchAck, GatewayState
from protocol.validate import now_us
from tests.e2e.harness import Service, _child_env, _command
from tests.services import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.db]

GW = "gw-logs"
MINUTE = 60_000_000
DEVICES = ("dev-1", "dev-2", "dev-3")
N_GOOD = 240


class Tap:
    """A client on the hub's broker that records batches, acks and states."""

    def __init__(self, host: str, port: int) -> None:
        self.batches: dict[int, bytes] = {}
        self.acked: Counter[int] = Counter()
        self.rejected: list[tuple[int, str, str, str]] = []
        self.state: GatewayState | None = None
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sf-test-tap-{uuid.uuid4().hex[:8]}"
        )

        def on_connect(client, userdata, flags, reason_code, properties):
            client.subscribe(
                [
                    (f"sf/v1/gw/{GW}/up/batch", 1),
                    (f"sf/v1/gw/{GW}/up/state", 1),
                    (topics.ack(GW), 1),
                ]
            )

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        assert ready.wait(10), "tap did not subscribe"

    def _on_message(self, client, userdata, message):
        payload = bytes(message.payload)
        with self._lock:
            if message.topic.endswith("/up/batch"):
                self.batches.setdefault(orjson.loads(payload)["seq"], payload)
            elif message.topic.endswith("/up/state") and payload:
                self.state = GatewayState.model_validate_json(payload)
            elif message.topic.endswith("/down/ack"):
                ack = BatchAck.model_validate_json(payload)
                for lo, hi in ack.seqs:
                    for seq in range(lo, hi + 1):
                        self.acked[seq] += 1
                self.rejected += [
                    (r.seq, r.dev, r.field, r.reason) for r in ack.rejected
                ]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def acks(self) -> Counter[int]:
        with self._lock:
            return Counter(self.acked)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _lines(base_us: int) -> tuple[list[bytes], Counter[tuple[str, int, str]], dict]:
    """The input file's lines, the expected counts and the expected edge rejects.

    Good records: 240 over three devices and five minutes, every level, with
    15 errors of dev-1 in minute 2 (a burst over the default 10 a minute).
    """
    lines: list[bytes] = []
    expected: Counter[tuple[str, int, str]] = Counter()
    aliases = {"warning": "WARN", "error": "err", "critical": "fatal"}
    for i in range(N_GOOD - 15):
        dev = DEVICES[i % 3]
        level = LEVELS[i % 4]  # debug..error, critical below
        if level == "error" and dev == "dev-1":
            level = "info"  # dev-1's errors are the burst's only
        minute = (i * 5) // (N_GOOD - 15)
        ts = base_us + minute * MINUTE + (i % 50) * 1_000_000
        word = aliases.get(level, level) if i % 2 else level
        doc = {"dev": dev, "ts": ts, "level": word, "msg": f"line {i}"}
        if i % 7 == 0:
            doc["src"] = "fw"
        lines.append(orjson.dumps(doc))
        expected[(dev, minute, level)] += 1
    for j in range(15):
        ts = base_us + 2 * MINUTE + j * 3_000_000
        lines.append(
            orjson.dumps(
                {
                    "dev": "dev-1",
                    "ts": ts,
                    "level": "critical" if j == 0 else "error",
                    "msg": "i2c timeout " + "x" * 2000,
                }  # cut at 1024
            )
        )
        expected[("dev-1", 2, "critical" if j == 0 else "error")] += 1
    bad = [
        {"dev": "dev-1", "ts": base_us, "level": "loud", "msg": "x"},
        {"dev": "dev-1", "ts": base_us, "level": 40, "msg": "x"},
        {"dev": "dev-2", "ts": base_us, "level": "info", "msg": 12},
        {"dev": "dev-2", "ts": base_us + 3_600_000_000, "level": "info", "msg": "x"},
        {"dev": "bad id", "ts": base_us, "level": "info", "msg": "x"},
        {"log": {"dev": "dev-3", "ts": "yesterday", "level": "info", "msg": "x"}},
    ]
    lines += [orjson.dumps(doc) for doc in bad]
    lines.append(b'{"dev": "dev-3", "level": "info", "msg": "unterminated')
    # Readings on the same input go their own way.
    lines.append(
        orjson.dumps({"dev": "dev-1", "metric": "t", "ts": base_us, "value": 21.5})
    )
    rejects = {
        "bad_log_level": 2,
        "bad_log_message": 1,
        "future_timestamp": 1,
        "bad_device_id": 1,
        "bad_timestamp": 1,
        "invalid_json": 1,
    }
    return lines, expected, rejects


def _counts(store: TimescaleStore, base_us: int) -> Counter[tuple[str, int, str]]:
    got: Counter[tuple[str, int, str]] = Counter()
    for dev in DEVICES:
        for c in store.log_counts(dev, base_us - MINUTE, base_us + 10 * MINUTE):
            got[(dev, (c.start_us - base_us) // MINUTE, c.level)] += c.count
    return got


def test_logs_end_to_end_exact_counts_rejects_and_resend(
    tmp_path: Path, broker, pg_dsn
):
    """N records (some malformed) from an edge agent: counts exact, resend once."""
    # Ten minutes ago: within the processors' late horizon (15 min), so the
    # burst is live, and every record and the later bad batch in the past.
    base_us = (now_us() - 10 * MINUTE) // MINUTE * MINUTE
    lines, expected, edge_rejects = _lines(base_us)
    source = tmp_path / "input.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")

    hub = Service(
        "hub",
        [*_command("streamflow", "hub.cli"), "hub"],
        tmp_path,
        _child_env(
            {
                "STREAMFLOW_DB": pg_dsn,
                "STREAMFLOW_MQTT_URL": broker.url,
                "STREAMFLOW_DATA_DIR": str(tmp_path / "hub"),
            }
        ),
    )
    edge = Service(
        "edge",
        [
            *_command("streamflow-edge", "edge_agent.cli"),
            "--gateway-id",
            GW,
            "--hub-url",
            broker.url,
            "--data-dir",
            str(tmp_path / "edge"),
            "--input",
            str(source),
        ],
        tmp_path,
        _child_env(
            {
                "STREAMFLOW_EDGE_STATE_INTERVAL_S": "1",
                "STREAMFLOW_EDGE_BATCH_MAX_READINGS": "40",  # several batches
            }
        ),
    )
    tap = Tap(broker.host, broker.port)
    store: TimescaleStore | None = None
    try:
        hub.start()
        hub.wait_log("subscriptions ready")
        edge.start()
        assert edge.wait_exit(60) == 0, edge.run_log()[-3000:]
        store = TimescaleStore(pg_dsn)

        # 1. The counts are those of the good lines, exactly.
        wait_for(
            lambda: sum(_counts(store, base_us).values()) >= N_GOOD,
            timeout=20,
            what="counts in the store",
        )
        assert _counts(store, base_us) == expected
        seqs = sorted(tap.batches)
        assert len(seqs) >= 5
        assert all(tap.acks()[s] >= 1 for s in seqs)
        kept = store.recent_logs("dev-1", 1000)
        assert len(kept) == sum(n for (d, _, _), n in expected.items() if d == "dev-1")
        assert max(len(r.message) for r in kept) == 1024

        # 2. The malformed lines were refused at the edge, with their reasons.
        wait_for(
            lambda: tap.state is not None and tap.state.status == "offline",
            timeout=10,
            what="the edge's last state",
        )
        assert tap.state is not None
        assert tap.state.rejected == edge_rejects

        # 3. The burst of dev-1's errors in minute 2 raised one event.
        events = wait_for(
            lambda: store.list_events(device="dev-1", kind="log_burst"),
            timeout=20,
            what="log_burst event",
        )
        # Cleared too when the hub processed a later minute of dev-1 after
        # the burst (it depends on how the commits grouped the batches).
        raised = [e for e in events if e.state == "raised"]
        assert [e.state for e in events] in (["raised"], ["raised", "cleared"])
        assert base_us + 2 * MINUTE <= raised[0].ts_us < base_us + 3 * MINUTE
        assert raised[0].details["errors_per_min"] == 10

        # 4. Every batch sent again is acked again and counted once.
        before = tap.acks()
        for seq in seqs:
            tap.publish(topics.batch(GW), tap.batches[seq])
        wait_for(
            lambda: all(tap.acks()[s] > before[s] for s in seqs),
            timeout=20,
            what="acks of the resent batches",
        )
        assert _counts(store, base_us) == expected
        assert len(store.recent_logs("dev-1", 1000)) == len(kept)
        again = store.list_events(device="dev-1", kind="log_burst")
        assert [e.id for e in again] == [e.id for e in events]

        # 5. A gateway that sends malformed records anyway: the hub rejects
        # each one naming its field, keeps the rest, and counts the rejects.
        seq = max(seqs) + 1
        bad_batch = {
            "v": 1,
            "gw": GW,
            "seq": seq,
            "sent": now_us(),
            "series": [],
            "logs": [
                {
                    "dev": "dev-3",
                    "ts": base_us + 9 * MINUTE,
                    "level": "info",
                    "msg": "a",
                },
                {"dev": "dev-3", "ts": base_us + 9 * MINUTE, "level": "?", "msg": "b"},
                {"dev": "dev-3", "ts": base_us + 9 * MINUTE, "level": "info"},
                "not a record",
            ],
        }
        tap.publish(topics.batch(GW), orjson.dumps(bad_batch))
        wait_for(lambda: tap.acks()[seq], timeout=20, what="ack of the bad batch")
        assert [r for r in tap.rejected if r[0] == seq] == [
            (seq, "dev-3", "logs[1].level", "bad_log_level"),
            (seq, "dev-3", "logs[2].msg", "bad_log_message"),
            (seq, "", "logs[3]", "bad_envelope"),
        ]
        assert (
            store.log_counts("dev-3", base_us + 9 * MINUTE, base_us + 10 * MINUTE)[
                0
            ].count
            == 1
        )
        acc = store.accounting("device", "dev-3")
        assert (
            acc.rejected.get("bad_log_level"),
            acc.rejected.get("bad_log_message"),
        ) == (
            1,
            1,
        )
        assert hub.running
    finally:
        tap.stop()
        if store is not None:
            store.close()
        edge.stop()
        hub.stop()


def test_level_numbers_cover_levels():
    """The e2e data uses every level the protocol knows."""
    assert set(LEVEL_NUMBERS) == set(LEVELS)
