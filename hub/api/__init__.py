"""The REST API: :func:`create_app` builds it over a store.

``create_app`` loads on first use, so that importing :mod:`hub.api.errors`
(as :mod:`hub.security` does) does not build the whole application first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from hub.api.app import create_app

        return create_app
    raise AttributeError(f"module 'hub.api' has no attribute {name!r}")
