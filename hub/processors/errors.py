"""Exceptions of the processors package.

ProcessorError
 ├── UnknownProcessor       a route names a processor that is not registered
 └── ProcessorConfigError   a processor refused its options

Both are ValueErrors too: they come from configuration, and the hub reports
them as a setting error at start-up. A processor never raises into the
ingest loop (see :mod:`hub.processors.base`).
"""

from __future__ import annotations


class ProcessorError(Exception):
    """Base of the processors' own errors."""


class UnknownProcessor(ProcessorError, ValueError):
    """No processor is registered under a name.

    Attributes:
        name: the name asked for.
        known: the names registered.
    """

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"unknown processor {name!r}: expected one of {', '.join(known)}"
        )


class ProcessorConfigError(ProcessorError, ValueError):
    """A processor refused the options of its route.

    Attributes:
        name: the processor's registry name.
    """

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        super().__init__(f"invalid options for processor {name!r}: {detail}")
