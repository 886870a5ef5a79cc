"""The naive pipeline: one paho subscriber that INSERTs each message as it comes.

``python -m benchmarks.naive --mqtt-url URL --db URL --count N`` subscribes to
the plain-sensor telemetry topics (QoS 1, a persistent session), and for
every message (one reading each) runs one ``INSERT`` in autocommit on its
network thread, with the series id looked up in a dict (inserted on first
sight). It is the baseline of scenario 1: what a first attempt at the job
looks like. It prints ``ready`` once subscribed, and, once it has stored ``N`` readings,
one JSON line: the wall-clock times of the first message and of the last
INSERT and its CPU seconds between them; then it waits for stdin to close.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import click
import orjson
import psycopg
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion

from protocol import topics
from protocol.validate import now_us

_LOGGER = logging.getLogger(__name__)


class NaiveSubscriber:
    """Inserts each reading of each message with its own INSERT.

    Args:
        db: the store's DSN (the StreamFlow schema).
        count: stop once this many readings are stored.
    """

    def __init__(self, db: str, count: int) -> None:
        self.conn = psycopg.connect(db, autocommit=True)
        self.count = count
        self.inserted = 0
        self.first_us: int | None = None
        self.last_us = 0
        self.cpu_first = 0.0
        self.cpu_last = 0.0
        self.done = threading.Event()
        self._series: dict[tuple[str, str], int] = {}

    def series_id(self, device: str, metric: str) -> int:
        """The series id, inserted on first sight."""
        sid = self._series.get((device, metric))
        if sid is None:
            self.conn.execute(
                "INSERT INTO series (device, metric) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (device, metric),
            )
            row = self.conn.execute(
                "SELECT id FROM series WHERE device = %s AND metric = %s",
                (device, metric),
            ).fetchone()
            if row is None:
                raise RuntimeError(f"series {device}/{metric} not found")
            sid = self._series[(device, metric)] = int(row[0])
        return sid

    def on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        """Insert the message's readings, one INSERT each."""
        if self.first_us is None:
            self.first_us = now_us()
            self.cpu_first = time.process_time()
        device = topics.parse(msg.topic).device or ""
        doc = orjson.loads(msg.payload)
        ts = datetime.fromtimestamp(doc.pop("ts") / 1e6, UTC)
        for metric, value in doc.items():
            self.conn.execute(
                "INSERT INTO readings (ts, series_id, value) VALUES (%s, %s, %s)",
                (ts, self.series_id(device, metric), float(value)),
            )
            self.inserted += 1
        self.last_us = now_us()
        self.cpu_last = time.process_time()
        if self.inserted >= self.count:
            self.done.set()


@click.command()
@click.option("--mqtt-url", required=True)
@click.option("--db", required=True)
@click.option("--count", type=int, required=True)
@click.option("--timeout", "timeout_s", type=float, default=300.0)
def main(mqtt_url: str, db: str, count: int, timeout_s: float) -> None:
    """Store COUNT readings the naive way; print the times as one JSON line."""
    from urllib.parse import urlsplit

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sub = NaiveSubscriber(db, count)
    client = Client(
        CallbackAPIVersion.VERSION2, client_id="sf-bench-naive", clean_session=False
    )
    client.on_message = sub.on_message
    ready = threading.Event()
    client.on_subscribe = lambda *args: ready.set()
    parts = urlsplit(mqtt_url)
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.subscribe(topics.TELEMETRY_FILTER, qos=1)
    client.loop_start()
    if not ready.wait(10):
        raise click.ClickException("no SUBACK from the broker in 10 s")
    print("ready", flush=True)
    finished = sub.done.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    doc = {
        "first_us": sub.first_us,
        "last_us": sub.last_us,
        "inserted": sub.inserted,
        "cpu_s": sub.cpu_last - sub.cpu_first,
    }
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    sys.stdout.flush()
    # Stay until stdin closes, so that the benchmark can read this process's
    # memory with psutil as it reads the hub's.
    sys.stdin.readline()
    sys.exit(0 if finished else 1)


if __name__ == "__main__":
    main()
