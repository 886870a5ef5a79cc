"""The offline detector on the shipped Intel lab slices, in event time.

Each slice is played through the detector with the default settings, every
reading an arrival at its reading time, the detector asked every 10 s (what
``python -m hub.monitor._replay`` prints). The result is the motes the data's
provenance names as silent (simulators/data/PROVENANCE.md): motes 2, 6, 33
and 41 in the night of 4 March, motes 24 and 33 on the morning of 5 March
(and mote 33's 11 minutes before that); none in the evening slice, where
mote 8's glitch is a data-quality event, not a silence. The motes that only
lose a few readings (the radio drops one gap in ten) never go offline.
"""

from __future__ import annotations

import pytest

from hub.monitor._replay import replay_file
from hub.monitor.config import MonitorConfig
from simulators.datasets import SHIPPED_DATA

#: (state, mote, local time PST, silence in s) for the defaults.
EXPECTED = {
    "intel_lab_2004-03-04_0000-0800.txt.gz": [
        ("raised", "mote-41", "01:43:40", 610),
        ("cleared", "mote-41", "01:44:30", 659),
        ("raised", "mote-33", "02:36:20", 621),
        ("cleared", "mote-33", "02:40:00", 839),
        ("raised", "mote-6", "03:27:10", 612),
        ("cleared", "mote-6", "03:29:00", 720),
        ("raised", "mote-2", "06:09:00", 603),
        ("cleared", "mote-2", "06:12:10", 786),
        ("raised", "mote-41", "06:18:00", 601),
        ("cleared", "mote-41", "06:18:30", 628),
    ],
    "intel_lab_2004-03-05_0630-0845.txt.gz": [
        ("raised", "mote-33", "07:02:50", 673),
        ("cleared", "mote-33", "07:03:10", 683),
        ("raised", "mote-24", "07:19:20", 980),
        ("cleared", "mote-24", "07:27:40", 1472),
        ("raised", "mote-24", "07:43:50", 978),
        ("cleared", "mote-24", "08:08:10", 2430),
        ("raised", "mote-33", "08:08:50", 946),
        ("cleared", "mote-33", "08:10:10", 1021),
    ],
    "intel_lab_2004-03-06_2245-2345.txt.gz": [],
}


def _local(at_us: int) -> str:
    from datetime import datetime

    from simulators.datasets import zone

    return datetime.fromtimestamp(at_us / 1e6, zone("America/Los_Angeles")).strftime(
        "%H:%M:%S"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_slice_offline_motes_for_defaults(name):
    """Exactly the silent motes go offline, at these times, and come back."""
    changes = replay_file(SHIPPED_DATA / name, MonitorConfig())

    got = [(c.state, c.device, _local(c.at_us), round(c.silence_s)) for c in changes]

    assert got == EXPECTED[name]


def test_defaults_are_the_measured_ones():
    """The test above holds for these defaults: change both together."""
    c = MonitorConfig()

    assert (c.offline_factor, c.min_silence_s, c.interval_quantile) == (10, 600, 0.5)
    assert (c.interval_gaps, c.min_gaps) == (64, 8)
