"""Flattening of nested JSON objects into dotted field paths.

``{"DHT11": {"Temperature": 21.4}}`` becomes the leaf ``DHT11.Temperature``;
list elements get their index, ``{"Voltage": [230, 231]}`` the leaves
``Voltage[0]`` and ``Voltage[1]``. An empty key is written ``""`` so that the
path still names it. Nesting is followed to :data:`MAX_DEPTH` levels: a
container below that is returned as a leaf for the caller to reject, which
also keeps a hostile document from exhausting the recursion limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

#: Levels of objects and lists followed below the root (Tasmota uses two,
#: Zigbee2MQTT three at most).
MAX_DEPTH: Final = 8


@dataclass(frozen=True, slots=True)
class Leaf:
    """One scalar of a flattened document.

    Attributes:
        path: the dotted path from the flattened root, e.g. ``ENERGY.Power``;
            empty for a root that is itself a scalar.
        key: the last object key on the path (``Power``; ``Voltage`` for
            ``ENERGY.Voltage[1]``), which unit and text rules look at.
        value: a JSON scalar, or a container nested deeper than
            :data:`MAX_DEPTH`.
        empty_key: some key on the path is empty, so the path cannot name a
            metric.
    """

    path: str
    key: str
    value: Any
    empty_key: bool = False


def join(prefix: str, path: str) -> str:
    """Join two field paths: ``join("readings[0]", "ts") == "readings[0].ts"``."""
    if not prefix:
        return path
    if not path:
        return prefix
    if path.startswith("["):
        return prefix + path
    return f"{prefix}.{path}"


def flatten(value: Any, skip: frozenset[str] = frozenset()) -> list[Leaf]:
    """List the scalar leaves of a JSON value, depth first, in document order.

    Args:
        value: a decoded JSON value.
        skip: object keys, in lower case, whose values are left out at any
            depth (descriptive fields such as ``unit`` or ``description``).

    Returns:
        One :class:`Leaf` per scalar (``null`` included: the caller skips it).
    """
    out: list[Leaf] = []
    # A list filled by plain recursion: nested generators cost a frame switch
    # per level for every leaf, a third of an adapter's time.
    _walk(value, skip, "", "", 0, False, out)
    return out


def _walk(
    value: Any,
    skip: frozenset[str],
    path: str,
    key: str,
    depth: int,
    empty: bool,
    out: list[Leaf],
) -> None:
    if isinstance(value, dict) and depth < MAX_DEPTH:
        for k, v in value.items():
            if k.lower() in skip:
                continue
            sub = (f"{path}.{k}" if path else k) if k else join(path, '""')
            _walk(v, skip, sub, k, depth + 1, empty or not k, out)
    elif isinstance(value, list) and depth < MAX_DEPTH:
        for i, v in enumerate(value):
            _walk(v, skip, f"{path}[{i}]", key, depth + 1, empty, out)
    else:
        out.append(Leaf(path, key, value, empty))
