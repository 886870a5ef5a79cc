"""Ingest end to end with the production store: TimescaleDB through psycopg."""

from __future__ import annotations

import pytest

from hub.storage.timescale import TimescaleStore
from protocol.models import BatchAck, RejectedReading
from protocol.readings import Reading
from tests.hub.test_ingest import (
    LIMIT,
    SECOND,
    T0,
    TestGateway,
    batch,
    hub_settings,
    series,
    start_hub,
)

pytestmark = [pytest.mark.broker, pytest.mark.db]


@pytest.fixture
def pg_store(pg_dsn):
    """A migrated TimescaleDB store in a fresh database."""
    store = TimescaleStore(pg_dsn)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def pg_hub(broker, pg_store, tmp_path):
    """A hub writing to TimescaleDB, with a test gateway ``gw-p``."""
    service = start_hub(hub_settings(broker.url, tmp_path), pg_store)
    gateway = TestGateway(broker.url, "gw-p")
    yield service, gateway
    gateway.close()
    service.stop(5)


def test_timescale_batch_stored_exactly_and_acked(pg_hub, pg_store):
    """A batch lands in the hypertable exactly, µs kept, and is acked after commit."""
    _service, gateway = pg_hub
    gateway.send(
        batch(
            "gw-p",
            41,
            series("dev-p", "temp", [T0 + 507_569, T0 + SECOND], [21.25, "x"], "C"),
        )
    )

    (ack,) = gateway.wait_acks(1)
    rows = pg_store.readings("dev-p")

    assert ack == BatchAck(
        seqs=[(41, 41)],
        rejected=[
            RejectedReading(
                seq=41,
                dev="dev-p",
                metric="temp",
                index=1,
                field="series[0].values[1]",
                reason="non_numeric_string",
            )
        ],
    )
    assert rows == [Reading("dev-p", "temp", T0 + 507_569, 21.25, "C", 0)]
    assert pg_store.accounting("device", "dev-p").rejected == {"non_numeric_string": 1}


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
def test_timescale_batches_resent_stored_once(pg_hub, pg_store):
    """Seqs 1-3, then 2 and 3 again: each stored once, each send acked."""
    service, gateway = pg_hub
    payloads = {
        seq: batch("gw-p", seq, series("dev-p", "t", [T0 + seq * SECOND], [float(seq)]))
        for seq in (1, 2, 3)
    }

    for n, seq in enumerate((1, 2, 3, 2, 3), start=1):
        gateway.send(payloads[seq])
        gateway.wait_acks(n)

    assert [a.seqs for a in gateway.acks] == [
        [(1, 1)],
        [(2, 2)],
        [(3, 3)],
        [(2, 2)],
        [(3, 3)],
    ]
    assert pg_store.count_readings("dev-p") == 3
    assert service.metrics.snapshot()["duplicate_batches"] == 2


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
def test_timescale_oversized_dead_lettered(pg_hub, pg_store):
    """An oversized batch is a dead letter with no rows; the next is kept."""
    _service, gateway = pg_hub
    gateway.send(batch("gw-p", 1, series("dev-p", "t", [T0], [1.0]), pad_to=LIMIT + 1))
    gateway.send(batch("gw-p", 2, series("dev-p", "t", [T0], [2.0])))

    (ack,) = gateway.wait_acks(1)
    (letter,) = pg_store.list_dead_letters()
    assert ack.seqs == [(2, 2)]
    assert (letter.reason, letter.detail) == (
        "payload_too_large",
        "262145 bytes > 262144",
    )
    assert pg_store.readings("dev-p") == [Reading("dev-p", "t", T0, 2.0, "", 0)]
