"""Fixtures of the simulator tests: a collecting subscriber, small data files."""

from __future__ import annotations

import gzip
import itertools

import pytest

from simulators.datasets import SHIPPED_DATA
from tests.simulators.helpers import Subscriber

FIRST_SLICE = SHIPPED_DATA / "intel_lab_2004-03-04_0000-0800.txt.gz"


@pytest.fixture
def subscribe():
    """Make subscribers on a broker; all are closed after the test."""
    made: list[Subscriber] = []

    def make(broker, topic_filter: str) -> Subscriber:
        sub = Subscriber(broker.host, broker.port, topic_filter)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


@pytest.fixture
def intel_head(tmp_path):
    """The first 300 lines (about 10 minutes) of the shipped slice, gzipped."""
    with gzip.open(FIRST_SLICE, "rt") as src:
        lines = list(itertools.islice(src, 300))
    path = tmp_path / "intel_head.txt.gz"
    path.write_bytes(gzip.compress("".join(lines).encode(), mtime=0))
    return path
