"""A real uvicorn server on 127.0.0.1 in a thread, a proxy, an SSE reader."""

from __future__ import annotations

import contextlib
import socket
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


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 whose open connections a test can cut.

    The browser talks to the server through it; :meth:`cut` drops every
    connection open at that moment (a Wi-Fi drop, a restarted NAT), while
    new ones still get through.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._start(self._accept, "proxy-accept")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._open.update((client, upstream))
            self._start(self._pump, "proxy-up", client, upstream)
            self._start(self._pump, "proxy-down", upstream, client)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(src)
            self._drop(dst)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            if sock not in self._open:
                return
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        """Drop every connection open now."""
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            self._drop(sock)

    def close(self) -> None:
        """Stop accepting, drop every connection, join the threads."""
        with self._lock:
            self._closed = True
        # shutdown, not close, is what wakes a thread blocked in accept().
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._threads[0].join(5)
        self._listener.close()
        self.cut()
        for thread in self._threads:
            thread.join(5)
