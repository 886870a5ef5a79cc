"""Helpers of the fault tests that publish their own readings (no replay).

They publish what they need with :class:`Publisher`, so that what is expected
is known exactly, and read the outcome with :func:`finish_without_replay`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil

from tests.e2e.harness import Outcome, ReplaySummary, Row, Site, edge_resends
from tests.fix_brokers import BrokerProcess

REPO_ROOT = Path(__file__).resolve().parents[2]


class Publisher:
    """A QoS 1 MQTT client of the test: publishes and waits for each PUBACK.

    Args:
        broker: the broker to publish to.
        client_id: its client id (a fresh one by default).
    """

    def __init__(self, broker: BrokerProcess, client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"sf-fault-pub-{uuid.uuid4().hex[:8]}",
            clean_session=True,
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        self._infos: list[Any] = []

    def publish(
        self,
        topic: str,
        payload: bytes | dict[str, Any],
        retain: bool = False,
        qos: int = 1,
    ) -> None:
        """Publish one message (a dict is sent as JSON)."""
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self._infos.append(self.client.publish(topic, body, qos=qos, retain=retain))

    def wait(self, timeout: float = 30.0) -> None:
        """Wait until every message published so far was PUBACKed."""
        for info in self._infos:
            info.wait_for_publish(timeout)
        assert all(info.is_published() for info in self._infos)
        self._infos.clear()

    def close(self) -> None:
        """Wait for the PUBACKs, then disconnect."""
        try:
            self.wait()
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def finish_without_replay(site: Site, sent: int) -> Outcome:
    """Stop edge agent and hub cleanly and read what they left, as
    :meth:`Site.finish` does, for a test that published ``sent`` readings
    itself instead of running ``streamflow replay``."""
    assert site.edge.stop() == 0, "edge agent failed to stop cleanly"
    site.sample_hub()
    assert site.hub.stop() == 0, "hub failed to stop cleanly"
    store = site.store
    rows: list[Row] = []
    for device in store.list_devices():
        readings = store.readings(device.id, limit=10_000_000)
        rows.extend((r.device, r.metric, r.ts_us, r.value) for r in readings)
    accounting = store.accounting("gateway", site.gateway)
    return Outcome(
        rows=sorted(rows),
        total=store.count_readings(),
        edge=site.edge_buffer(),
        replay=ReplaySummary("end", sent, sent, {}, 0),
        hub_rejects=dict(accounting.rejected),
        hub_dropped=dict(accounting.dropped),
        hub_received=accounting.received,
        hub_duplicates=accounting.duplicates,
        edge_resent=edge_resends(site.edge.all_logs()),
        hub_counters=dict(site.hub_counters),
    )


def skew_edge_clock(site: Site, offset_s: float) -> None:
    """Make the site's edge agent run with its wall clock ``offset_s`` off."""
    at = site.edge.argv.index("--gateway-id")
    site.edge.argv = [
        sys.executable,
        "-m",
        "tests.faults.skewed_edge",
        f"{offset_s:g}",
        *site.edge.argv[at:],
    ]
    path = site.edge.env.get("PYTHONPATH")
    site.edge.env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), path) if p
    )


def rss_mib(pid: int | None) -> float:
    """The resident set size of a process, MiB."""
    assert pid is not None
    return psutil.Process(pid).memory_info().rss / 2**20


def mount_tmpfs(path: Path, size_kib: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_kib`` KiB on ``path`` (root only); unmount after.

    A generator for a fixture: the caller stops what uses the folder first.
    """
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={size_kib}k,mode=0755",
            "tmpfs",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that can hold each chunk for a while.

    Runs an asyncio loop in its own thread. While :attr:`delay_s` is above
    zero, every chunk from a client is forwarded that much later, in order,
    so that each round trip of a client to the server takes that much longer
    (a database that answers slowly, without touching the server itself).

    Args:
        upstream: (host, port) of the server.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        import asyncio
        import threading

        self.upstream = upstream
        self.delay_s = 0.0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: Any = None
        self._writers: set[Any] = set()
        self._thread = threading.Thread(target=self._run, name="delay-proxy")
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("delay proxy did not start")

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    async def _serve(self, reader: Any, writer: Any) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer, slow=True),
            self._pump(up_reader, writer, slow=False),
            return_exceptions=True,
        )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pump(self, reader: Any, writer: Any, slow: bool) -> None:
        import asyncio

        try:
            while chunk := await reader.read(65536):
                if slow and self.delay_s > 0:
                    await asyncio.sleep(self.delay_s)
                writer.write(chunk)
                await writer.drain()
        finally:
            # Half-close the other way, so that the peer sees the end.
            if writer.can_write_eof():
                with contextlib.suppress(OSError):
                    writer.write_eof()

    def close(self) -> None:
        """Stop listening, close every connection, end the thread."""
        import asyncio

        async def shut() -> None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


#: SO_LINGER on, 0 s: a close sends RST at once instead of FIN.
_LINGER_ZERO = struct.pack("ii", 1, 0)


class _Link:
    """One proxied connection: the client's socket and the server's, if any."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client = client
        self.upstream = upstream
        #: In the black hole: read and drop everything, pass nothing on.
        self.holed = False
        #: Reset by a cut: the pumps end without touching the other side.
        self.dead = False
        self.pumps = 2 if upstream is not None else 1
        self.sockets = [s for s in (client, upstream) if s is not None]


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 whose network a test can cut and restore.

    Like ``tests/web/server.py``'s proxy, one thread per direction of each
    connection, but a cut is a network fault, not a polite close:

    - :meth:`cut` ``("refuse")`` resets every open connection (RST: SO_LINGER
      0) and closes the listener, so that connects are refused until
      :meth:`restore` listens again on the same port;
    - :meth:`cut` ``("blackhole")`` forwards nothing any more, either way, and
      tells neither side: open connections go silent, new ones are accepted
      and what they send is dropped. Only a keepalive or a time-out of the
      client can notice. :meth:`restore` resets every connection that was in
      the hole (their streams lost bytes, as a peer that timed out would).

    Args:
        upstream: (host, port) of the server.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = "open"
        #: accepted, reset (by a cut or a restore), holed_new (accepted in the
        #: hole), hole_client_closed (a client ended its side while in the
        #: hole: it noticed the silence by itself).
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._accepter = self._start(self._accept, "cut-proxy-accept", self._listener)

    @property
    def url(self) -> str:
        """The proxy's ``mqtt://`` URL."""
        return f"mqtt://127.0.0.1:{self.port}"

    def _start(self, target: Any, name: str, *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was shut (a refusing cut, or close)
            self.stats["accepted"] += 1
            if self.mode == "blackhole":
                link = _Link(client, None)
                link.holed = True
                self.stats["holed_new"] += 1
            else:
                try:
                    upstream = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                link = _Link(client, upstream)
            with self._lock:
                if self.mode in ("refuse", "closed"):
                    # Cut while this one was being accepted: it goes too.
                    for sock in link.sockets:
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO
                        )
                        sock.close()
                    continue
                link.holed = link.holed or self.mode == "blackhole"
                self._links.add(link)
            self._start(self._pump, "cut-proxy-up", link, client, link.upstream)
            if link.upstream is not None:
                self._start(self._pump, "cut-proxy-down", link, link.upstream, client)

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if link.holed or link.dead:
                    continue  # into the hole
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            if link.holed and not link.dead and src is link.client:
                self.stats["hole_client_closed"] += 1
            link.pumps -= 1
            last = link.pumps == 0
            if not (link.dead or link.holed):
                # A peer closed in the open: close the other side too (an
                # MQTT session needs no half-close).
                link.dead = True
                for sock in link.sockets:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            if last:
                self._links.discard(link)
        if last:
            for sock in link.sockets:
                sock.close()

    def _reset(self, link: _Link) -> None:
        """RST both sides of a link (with the lock held); its pumps end."""
        if link.dead:
            return
        link.dead = True
        self.stats["reset"] += 1
        for sock in link.sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
                # SHUT_RD wakes the pump in recv() and sends nothing; the
                # close after it, with linger 0, sends the RST.
                sock.shutdown(socket.SHUT_RD)

    def cut(self, mode: str) -> None:
        """Cut the network: ``refuse`` or ``blackhole`` (see the class)."""
        if mode not in ("refuse", "blackhole") or self.mode != "open":
            raise ValueError(f"cannot cut with mode={mode!r} while {self.mode}")
        with self._lock:
            self.mode = mode
            for link in list(self._links):
                if mode == "refuse":
                    self._reset(link)
                else:
                    link.holed = True
        if mode == "refuse":
            self._close_listener()

    def restore(self) -> None:
        """End the cut: listen again, reset what was in the hole."""
        if self.mode == "refuse":
            # SO_REUSEADDR (create_server's default): the same port again.
            self._listener = socket.create_server(("127.0.0.1", self.port))
            self._accepter = self._start(
                self._accept, "cut-proxy-accept", self._listener
            )
        with self._lock:
            self.mode = "open"
            for link in list(self._links):
                if link.holed:
                    self._reset(link)

    def _close_listener(self) -> None:
        # shutdown, not close, is what wakes a thread blocked in accept().
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._accepter.join(5)
        self._listener.close()

    def close(self) -> None:
        """Stop listening, reset every connection, join the threads."""
        if self.mode != "refuse":
            self.mode = "closed"
            self._close_listener()
        self.mode = "closed"
        with self._lock:
            for link in list(self._links):
                self._reset(link)
        for thread in self._threads:
            thread.join(5)
