"""Routing: which processor instances read a series, from the configured routes."""

from __future__ import annotations

from collections.abc import Sequence

from hub.processors.base import Processor, SeriesKey
from hub.processors.config import ProcessorRoute
from hub.processors.registry import create_processor


class Router:
    """Maps a series (and its reading kind) to the processors of its routes.

    Args:
        routes: each route with its processor instance, in configuration
            order (the order processors run in).
    """

    def __init__(self, routes: Sequence[tuple[ProcessorRoute, Processor]]) -> None:
        self._routes = list(routes)
        # Series seen, and their processors: a hub sees the same few
        # thousand series over and over.
        self._cache: dict[tuple[str, SeriesKey], list[Processor]] = {}

    @classmethod
    def from_routes(cls, routes: Sequence[ProcessorRoute]) -> Router:
        """Build a processor for each route.

        Raises:
            UnknownProcessor: a route names no registered processor.
            ProcessorConfigError: a processor refused its route's options.
        """
        return cls([(r, create_processor(r.processor, r.options)) for r in routes])

    @property
    def processors(self) -> list[Processor]:
        """Every processor instance, in route order."""
        return [p for _, p in self._routes]

    def processors_for(self, key: SeriesKey, kind: str) -> list[Processor]:
        """The processors that read this series, in route order."""
        found = self._cache.get((kind, key))
        if found is None:
            found = [
                p for r, p in self._routes if r.matches(kind, key.device, key.metric)
            ]
            self._cache[(kind, key)] = found
        return found
