"""A real uvicorn server on 127.0.0.1 in a thread, and an SSE reader for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from tests.services import free_port, wait_for


@contextmanager
def serve(app) -> Iterator[str]:
    """Serve ``app`` (lifespan included) until the block ends; yield its URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # A stream a test left open must not hold the shutdown for ever.
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: server.started or not thread.is_alive(),
            timeout=15,
            what="uvicorn to start",
        )
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "uvicorn did not stop"


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Parse server-sent events (the fields of each, comments as ``comment``)."""
    event: dict[str, str] = {}
    for line in lines:
        if line == "":
            if event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            event["comment"] = line[1:].strip()
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        event[name] = event[name] + "\n" + value if name in event else value
