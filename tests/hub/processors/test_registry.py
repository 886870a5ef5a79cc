"""Processors by name: built-ins, entry points, and the README's worked example."""

from __future__ import annotations

import re
import sys
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from hub.processors import registry
from hub.processors.config import ProcessorRoute, ProcessorsConfig
from hub.processors.errors import ProcessorConfigError, UnknownProcessor
from hub.processors.events import EventState
from hub.processors.host import ProcessorHost
from hub.processors.quality import QualityProcessor
from hub.storage import IngestItem, open_store
from protocol.readings import SeriesBlock
from tests.hub.processors.helpers import SECOND, T0

README = Path(__file__).parents[3] / "hub" / "processors" / "README.md"


@pytest.fixture
def site_module(monkeypatch):
    """The README's example processor as module mysite.co2, an entry point to it."""
    code = re.search(r"```python\n# mysite/co2.py\n(.*?)```", README.read_text(), re.S)
    assert code is not None, "the worked example is missing from the README"
    module = types.ModuleType("mysite.co2")
    # Our own README's code, run as the module a site would install.
    exec(compile(code.group(1), str(README), "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "mysite", types.ModuleType("mysite"))
    monkeypatch.setitem(sys.modules, "mysite.co2", module)
    ep = EntryPoint("co2_alarm", "mysite.co2:Co2Alarm", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep])
    return module


def test_available_lists_the_built_ins():
    """The four built-in processors are registered under their names."""
    assert set(registry.available()) >= {"anomaly", "quality", "rollups", "thresholds"}


def test_create_processor_passes_the_route_options():
    """A route's options are the processor's keyword arguments."""
    proc = registry.create_processor("quality", {"gap_factor": 20.0})

    assert isinstance(proc, QualityProcessor)
    assert proc.config.gap_factor == 20.0


def test_create_processor_unknown_name():
    """A name nobody registered fails, listing the known ones."""
    with pytest.raises(UnknownProcessor, match="unknown processor 'nope': expected"):
        registry.create_processor("nope")


def test_create_processor_bad_options():
    """Options the processor refuses fail with the processor's name."""
    with pytest.raises(ProcessorConfigError, match="processor 'anomaly'"):
        registry.create_processor("anomaly", {"z_raise": -1})


def test_entry_point_cannot_take_a_built_in_name(monkeypatch):
    """A plugin named like a built-in is ignored: the built-in stays."""
    ep = EntryPoint("quality", "os:getcwd", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep])

    assert registry.processor_class("quality") is QualityProcessor


def test_readme_worked_example_runs_as_a_site_processor(site_module, tmp_path):
    """The README's CO2 processor, found by entry point and routed, raises, clears."""
    store = open_store(f"sqlite:///{tmp_path}/hub.db")
    store.migrate()
    config = ProcessorsConfig(
        routes=[
            ProcessorRoute(
                processor="co2_alarm", metrics=["co2"], options={"limit": 1200}
            )
        ]
    )
    sent = []
    host = ProcessorHost(config, store, lambda *m: sent.append(m[0]), clock=lambda: T0)
    ts = [T0 + i * 10 * SECOND for i in range(4)]
    block = SeriesBlock(
        "room-1", "co2", "ppm", ts, [800.0, 1300.0, 1400.0, 900.0], [0] * 4
    )
    new = store.write([IngestItem(None, None, [block], T0)]).new

    events = host.process(new)
    store.close()

    assert "co2_alarm" in registry.available()
    assert [(e.kind, e.state, e.ts_us) for e in events] == [
        ("co2", EventState.RAISED, ts[1]),
        ("co2", EventState.CLEARED, ts[3]),
    ]
    assert sent == ["sf/v1/events/co2/room-1"] * 2
