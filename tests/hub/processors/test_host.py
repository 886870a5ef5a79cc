"""The processors' host: routing, failures caught, events stored and sent once."""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

import orjson
import pytest

from hub._errors import ConfigError
from hub.config import HubSettings
from hub.processors.base import Context, Output, Processor, SeriesBatch
from hub.processors.config import ProcessorRoute, ProcessorsConfig
from hub.processors.events import Event, EventState
from hub.processors.host import ProcessorHost
from hub.processors.router import Router
from hub.processors.thresholds import ThresholdProcessor, ThresholdRule, create_rule
from hub.service import HubService
from hub.storage import IngestItem, open_store
from hub.storage.base import WriteResult
from protocol.readings import SeriesBlock
from tests.hub.processors.helpers import MINUTE, SECOND, T0
from tests.services import wait_for

HOT = ThresholdRule(id="hot", condition="above", threshold=30.0)


class Boom(Processor):
    """A processor with a bug."""

    name: ClassVar[str] = "boom"

    def process(self, batch: SeriesBatch, ctx: Context) -> Output:
        raise ZeroDivisionError("division by zero")


class Gate(Processor):
    """A processor that waits until the test lets it go."""

    name: ClassVar[str] = "gate"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def process(self, batch: SeriesBatch, ctx: Context) -> Output:
        self.entered.set()
        self.release.wait(10)
        return Output()


@pytest.fixture
def store(tmp_path):
    """A migrated SQLite store with the rule ``hot`` (above 30)."""
    s = open_store(f"sqlite:///{tmp_path}/hub.db")
    s.migrate()
    create_rule(s, HOT)
    yield s
    s.close()


def _write(store, values, device="dev-1", start=T0):
    ts = [start + i * 10 * SECOND for i in range(len(values))]
    block = SeriesBlock(device, "temperature", "C", ts, list(values), [0] * len(ts))
    return store.write([IngestItem(None, None, [block], start)])


def _router(*processors: Processor) -> Router:
    return Router([(ProcessorRoute(processor=p.name), p) for p in processors])


def test_host_publishes_a_stored_event_on_its_topic(store):
    """A breach is stored and published once on sf/v1/events/threshold/{dev}."""
    sent = []
    host = ProcessorHost(
        ProcessorsConfig(), store, lambda *m: sent.append(m), clock=lambda: T0
    )
    host.start()

    new = host.process(_write(store, [20.0, 35.0]).new)
    host.stop()

    (event,) = new
    ((topic, payload, qos),) = sent
    assert (topic, qos) == ("sf/v1/events/threshold/dev-1", 1)
    assert Event.model_validate_json(payload) == event
    assert orjson.loads(payload)["id"] == event.id
    assert [r.id for r in store.list_events(device="dev-1")] == [event.id]
    assert (event.state, event.ts_us, event.past) == (
        EventState.RAISED,
        T0 + 10 * SECOND,
        False,
    )


def test_host_same_event_found_again_is_not_sent_again(store):
    """A finding already stored (a replay) is neither stored nor sent twice."""
    sent = []
    host = ProcessorHost(
        ProcessorsConfig(),
        store,
        lambda *m: sent.append(m),
        router=_router(ThresholdProcessor(rules=[HOT], load_from_store=False)),
        clock=lambda: T0,
    )
    new = _write(store, [20.0, 35.0]).new
    replay = ProcessorHost(
        ProcessorsConfig(),
        store,
        lambda *m: sent.append(m),
        router=_router(ThresholdProcessor(rules=[HOT], load_from_store=False)),
        clock=lambda: T0,
    )

    first = host.process(new)
    again = replay.process(new)

    assert (len(first), again, len(sent)) == (1, [], 1)
    assert replay.figures()["events_known"] == 1
    assert len(store.list_events()) == 1


def test_host_failing_processor_is_caught_counted_and_others_run(store, caplog):
    """A processor that raises is logged and counted; the thresholds still fire."""
    thresholds = ThresholdProcessor(rules=[HOT], load_from_store=False)
    host = ProcessorHost(
        ProcessorsConfig(), store, router=_router(Boom(), thresholds), clock=lambda: T0
    )

    with caplog.at_level(logging.ERROR, logger="hub.processors.host"):
        new = host.process(_write(store, [35.0]).new)

    assert [e.rule for e in new] == ["hot"]
    assert host.figures()["errors"] == {"boom": 1}
    (record,) = caplog.records
    assert record.getMessage() == (
        "processor failed processor=boom device=dev-1 metric=temperature readings=1"
    )
    assert record.exc_info is not None


def test_host_old_readings_give_past_events(store):
    """Readings older than the horizon when processed raise past events."""
    host = ProcessorHost(
        ProcessorsConfig(late_horizon_s=60),
        store,
        clock=lambda: T0 + 10 * MINUTE,
    )

    new = host.process(_write(store, [35.0]).new)

    assert [(e.state, e.past) for e in new] == [(EventState.RAISED, True)]


def test_host_on_committed_queues_new_readings_for_its_thread(store):
    """A commit's new readings are processed on the host's thread; stop drains."""
    sent = []
    host = ProcessorHost(
        ProcessorsConfig(), store, lambda *m: sent.append(m), clock=lambda: T0
    )
    host.start()

    host.on_committed(_write(store, [35.0]))
    host.on_committed(WriteResult())
    drained = host.stop(5)

    assert drained is True
    assert [m[0] for m in sent] == ["sf/v1/events/threshold/dev-1"]
    assert host.figures()["batches"] == 1


def test_host_queue_bounded_in_readings_makes_the_writer_wait(store):
    """Writes of few readings pass; the one that would exceed the bound waits."""
    gate = Gate()
    host = ProcessorHost(
        ProcessorsConfig(queue_max_readings=5, queue_wait_s=10),
        store,
        router=_router(gate),
        clock=lambda: T0,
    )
    host.start()
    host.on_committed(_write(store, [1.0]))
    assert gate.entered.wait(5)  # the thread holds this one
    host.on_committed(_write(store, [1.0] * 3, start=T0 + MINUTE))  # 3 queued
    assert host.figures()["queue_readings"] == 3

    later = _write(store, [1.0] * 3, start=T0 + 2 * MINUTE)
    third = threading.Thread(target=host.on_committed, args=(later,))
    third.start()
    third.join(0.3)
    waited = third.is_alive()  # 3 + 3 > 5: the writer waits
    gate.release.set()
    third.join(5)
    drained = host.stop(5)

    assert waited is True
    assert drained is True
    figures = host.figures()
    assert (figures["readings"], figures["dropped_writes"]) == (7, 0)
    assert figures["queue_readings"] == 0


def test_host_full_queue_leaves_a_write_unprocessed_and_counts_it(store, caplog):
    """When processing falls behind beyond the wait, the write is dropped, counted."""
    gate = Gate()
    host = ProcessorHost(
        ProcessorsConfig(queue_max_batches=1, queue_wait_s=0.05),
        store,
        router=_router(gate),
        clock=lambda: T0,
    )
    host.start()
    result = _write(store, [1.0])

    host.on_committed(result)
    assert gate.entered.wait(5)
    host.on_committed(result)  # fills the queue
    with caplog.at_level(logging.ERROR, logger="hub.processors.host"):
        host.on_committed(result)  # waits 0.05 s, then is dropped
    gate.release.set()
    host.stop(5)

    assert host.figures()["dropped_writes"] == 1
    # Only the errors: what else is captured depends on the logging level
    # an earlier test in the same worker left behind.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "processors behind, write left unprocessed series=1 readings=1 queue_max=1 "
        "queue_max_readings=200000"
    ]


def test_hub_service_unknown_processor_is_a_setting_error(store, tmp_path):
    """A route naming no processor stops the hub at start-up with the setting."""
    settings = HubSettings(
        data_dir=tmp_path,
        processors=ProcessorsConfig(routes=[ProcessorRoute(processor="nope")]),
    )

    with pytest.raises(
        ConfigError, match=r"invalid setting processors\.routes: unknown"
    ):
        HubService(settings, store, adapters=[])


def test_hub_service_processors_disabled_adds_no_hook(store, tmp_path):
    """processors_enabled = false: no host; only the hub's figures see commits."""
    settings = HubSettings(data_dir=tmp_path, processors_enabled=False)

    service = HubService(settings, store, adapters=[])

    assert (service.processors, service.pipeline.on_committed) == (
        None,
        [service.figures.on_committed],
    )
    assert service.status()["processors"] is None


def _rollups_host(store, every_s: float) -> ProcessorHost:
    config = ProcessorsConfig(
        routes=[ProcessorRoute(processor="rollups")], rollups_every_s=every_s
    )
    return ProcessorHost(config, store, clock=lambda: T0)


def test_host_thread_refreshes_touched_minutes_together(store):
    """Writes on the thread mark minutes; one refresh covers them, at stop here."""
    host = _rollups_host(store, every_s=3600)
    host.start()
    host.on_committed(_write(store, [1.0, 2.0]))
    host.on_committed(_write(store, [3.0], start=T0 + 20 * SECOND))
    wait_for(lambda: host.figures()["readings"] == 3, 5)
    before = store.rollups("dev-1", "temperature", T0, T0 + MINUTE)
    host.stop(5)
    after = store.rollups("dev-1", "temperature", T0, T0 + MINUTE)

    assert before == []
    assert [(r.count, r.max) for r in after] == [(3, 3.0)]
    assert host.figures()["rollup_rows"] == 1


def test_host_rollups_thread_refreshes_every_interval(store):
    """With a short interval the rollups follow the writes while the host runs."""
    host = _rollups_host(store, every_s=0.05)
    host.start()
    try:
        host.on_committed(_write(store, [1.0, 4.0]))
        rolled = wait_for(
            lambda: store.rollups("dev-1", "temperature", T0, T0 + MINUTE), 5
        )
    finally:
        host.stop(5)

    assert [(r.count, r.min, r.max, r.last) for r in rolled] == [(2, 1.0, 4.0, 4.0)]


class _CountingStore:
    """The real store, counting the warm-up reads of history."""

    def __init__(self, store):
        self._store = store
        self.history_reads: list[tuple[str, str]] = []

    def readings(self, device, metric, *args, **kwargs):
        self.history_reads.append((device, metric))
        return self._store.readings(device, metric, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_host_warms_up_only_series_the_commit_did_not_create(store):
    """A created series has no history to read; a known one is warmed up."""
    first = _write(store, [20.0], device="dev-old")
    assert first.created_series == {("dev-old", "temperature")}
    counting = _CountingStore(store)
    host = ProcessorHost(
        ProcessorsConfig(routes=[ProcessorRoute(processor="anomaly")]),
        counting,
        clock=lambda: T0 + MINUTE,
    )
    both = store.write(
        [
            IngestItem(
                None,
                None,
                [
                    SeriesBlock(d, "temperature", "C", [T0 + MINUTE], [21.0], [0])
                    for d in ("dev-old", "dev-new")
                ],
                T0,
            )
        ]
    )
    host.process(both.new, both.created_series)

    assert both.created_series == {("dev-new", "temperature")}
    assert counting.history_reads == [("dev-old", "temperature")]


def test_host_rollups_every_0_refreshes_after_each_write_without_a_thread(store):
    """rollups_every_s 0: each write's minutes are current once it is processed."""

    def rollup_threads() -> int:
        return [t.name for t in threading.enumerate()].count("streamflow-rollups")

    host = _rollups_host(store, every_s=0)
    before = rollup_threads()
    host.start()
    try:
        assert rollup_threads() == before  # none started
        host.on_committed(_write(store, [2.0, 5.0]))
        wait_for(lambda: host.figures()["rollup_rows"] == 1, 5)
        rolled = store.rollups("dev-1", "temperature", T0, T0 + MINUTE)
    finally:
        host.stop(5)

    assert [(r.count, r.max) for r in rolled] == [(2, 5.0)]
