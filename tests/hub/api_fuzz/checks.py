"""A check of every answer: no traceback, no exception class name in a body.

A schemathesis check (``(ctx, response, case)``, raising AssertionError),
used by the fuzz run and by the broken-store test alike.
"""

from __future__ import annotations

import builtins
import re
import sqlite3
from typing import Any

import psycopg

_MARKERS = ("Traceback (most recent call last)", 'File "/', "sqlite3.", "psycopg.")


def _classes(module: Any) -> set[str]:
    return {
        n
        for n, v in vars(module).items()
        if isinstance(v, type) and issubclass(v, BaseException)
    }


def _exception_names() -> set[str]:
    python = {n for n in _classes(builtins) if n.endswith(("Error", "Exception"))}
    drivers = _classes(sqlite3) | _classes(psycopg) | _classes(psycopg.errors)
    ours = {
        "ValidationError",
        "RequestValidationError",
        "HTTPException",
        "ApiError",
        "OAuthError",
        "TokenError",
    }
    # "Warning" alone is a word of the alerts' severities, not a leak.
    return (python | drivers | ours) - {"Warning"}


#: A word that is an exception class name of Python, the drivers or pydantic.
EXCEPTION_NAME = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, _exception_names()))) + r")\b"
)


def leaks(text: str) -> list[str]:
    """What in ``text`` gives an exception away: traceback lines, class names."""
    found = [m for m in _MARKERS if m in text]
    return found + sorted(set(EXCEPTION_NAME.findall(text)))


def no_traceback(ctx: Any, response: Any, case: Any) -> bool | None:
    """Fail when the body shows a traceback or an exception class name."""
    found = leaks(response.text if hasattr(response, "text") else str(response))
    if found:
        raise AssertionError(f"the body gives an exception away: {found}")
    return None
