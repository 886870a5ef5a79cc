"""Flattening nested JSON into dotted paths (protocol.adapters._flatten)."""

from __future__ import annotations

import pytest

from protocol.adapters._flatten import MAX_DEPTH, Leaf, flatten, join


@pytest.mark.parametrize(
    ("prefix", "path", "expected"),
    [
        ("", "ts", "ts"),
        ("readings[0]", "ts", "readings[0].ts"),
        ("values", "[1]", "values[1]"),
        ("value", "", "value"),
        ("", "", ""),
    ],
)
def test_join(prefix, path, expected):
    """Paths join with a dot, list indexes without one."""
    assert join(prefix, path) == expected


def test_flatten_nested_objects_and_lists():
    """Objects give dotted paths, lists their index, in document order."""
    doc = {"Time": "t", "ENERGY": {"Power": 7, "Voltage": [230, 231]}, "x": None}
    assert list(flatten(doc)) == [
        Leaf("Time", "Time", "t"),
        Leaf("ENERGY.Power", "Power", 7),
        Leaf("ENERGY.Voltage[0]", "Voltage", 230),
        Leaf("ENERGY.Voltage[1]", "Voltage", 231),
        Leaf("x", "x", None),
    ]


def test_flatten_scalar_root():
    """A scalar root is one leaf with an empty path."""
    assert list(flatten(81.5)) == [Leaf("", "", 81.5)]


def test_flatten_empty_key_named():
    """An empty key is written "" so that the path still names it."""
    assert list(flatten({"": {"a": 1}, "b": 2})) == [
        Leaf('"".a', "a", 1, empty_key=True),
        Leaf("b", "b", 2),
    ]


def test_flatten_skip_any_depth_any_case():
    """Skipped keys are left out at every depth and in any case."""
    doc = {"Unit": "C", "a": {"unit": "V", "b": 1}, "c": [{"UNIT": "x", "d": 2}]}
    got = [leaf.path for leaf in flatten(doc, frozenset({"unit"}))]
    assert got == ["a.b", "c[0].d"]


def test_flatten_empty_containers_yield_nothing():
    """Empty objects and lists hold no leaf."""
    assert list(flatten({"a": {}, "b": []})) == []


def test_flatten_depth_bound():
    """A container below MAX_DEPTH levels is returned as one leaf, not followed."""
    doc: dict = {"k": 1}
    for _ in range(MAX_DEPTH + 3):
        doc = {"n": doc}
    (leaf,) = list(flatten(doc))
    assert leaf.path == ".".join(["n"] * MAX_DEPTH)
    assert isinstance(leaf.value, dict)
