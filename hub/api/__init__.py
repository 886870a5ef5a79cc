"""The REST API: :func:`create_app` builds it over a store."""

from hub.api.app import create_app

__all__ = ["create_app"]
