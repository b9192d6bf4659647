"""Hostile HTTP and TLS servers for the check tests: asyncio servers on a thread
inside a namespace (the farm's server namespace: every farm address is local there),
one port per behaviour.

Used by tests/netns/test_http_check.py (the check engine in-process) and
tests/netns/test_hostile_servers.py (the whole daemon).  Every handler ends by
itself: when the client goes away, or after a bounded time whatever the client does.

Example::

    hostile = Hostile(farm.server_ns, cert, key)
    hostile.start()
    ...  # probe <any farm address>:DRIP
    hostile.stop()
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hafast.lab.netns import inside

# plain HTTP unless named *_TLS
ENDLESS, TRICKLE, GARBAGE, NO_END, NOT_TLS, SLAM, CAPTURE, SNI_TLS = range(9001, 9009)
DRIP, HUGE_HEADER, SILENT, RST_MID_BODY, STALL_TLS = range(9009, 9014)

# What RST_MID_BODY sends after its header before it resets the connection, and the
# body of every reply while ``Hostile.healthy``: a url whose digest is this body's
# fails on RST_MID_BODY only because of the reset.
BODY = b"r" * 8192
TLS_PORTS = frozenset({SNI_TLS, STALL_TLS})  # TLS when healthy
HUGE_HEADER_BYTES = 1 << 20


@dataclass
class Hostile:
    """asyncio servers on a thread inside namespace ``ns``.

    While ``healthy`` is set, every port answers 200 with :data:`BODY` instead
    (over TLS on :data:`TLS_PORTS`): a test starts healthy and turns hostile at a
    time it knows.
    """

    ns: str
    cert: str
    key: str
    loop: asyncio.AbstractEventLoop | None = None
    thread: threading.Thread | None = None
    requests: list[bytes] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    healthy: bool = False

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="hostile", daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "hostile servers did not start"

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(10)

    def _run(self) -> None:
        with inside(self.ns):
            loop = asyncio.new_event_loop()
            self.loop = loop
            servers = loop.run_until_complete(self._serve())
            self.ready.set()
            try:
                loop.run_forever()
            finally:
                for s in servers:
                    s.close()
                for task in asyncio.all_tasks(loop):
                    task.cancel()
                loop.run_until_complete(asyncio.sleep(0))
                loop.close()

    async def _serve(self) -> list[asyncio.Server]:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self.cert, self.key)

        def remember(obj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            self.sni.append(name)

        tls.sni_callback = remember
        handlers: dict[int, Callable[..., Awaitable[None]]] = {
            ENDLESS: self._endless, TRICKLE: self._trickle, GARBAGE: self._garbage,
            NO_END: self._no_end, NOT_TLS: self._not_tls, SLAM: self._slam,
            CAPTURE: self._capture,
            DRIP: functools.partial(self._trickle, period=1.0, count=300),
            HUGE_HEADER: self._huge_header, SILENT: self._silent,
            RST_MID_BODY: self._rst_mid_body, STALL_TLS: self._stall_tls,
        }
        servers = [await asyncio.start_server(self._switch(port, h, tls), "0.0.0.0", port)
                   for port, h in handlers.items()]
        servers.append(await asyncio.start_server(self._capture, "0.0.0.0", SNI_TLS, ssl=tls))
        return servers

    def _switch(self, port: int, hostile: Callable[..., Awaitable[None]],
                tls: ssl.SSLContext) -> Callable[..., Awaitable[None]]:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            if not self.healthy:
                await hostile(r, w)
                return
            try:
                if port in TLS_PORTS:
                    await w.start_tls(tls)
                await self._request(r)
                w.write(b"HTTP/1.0 200 OK\r\n\r\n" + BODY)
                await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        return handle

    @staticmethod
    async def _request(r: asyncio.StreamReader) -> bytes:
        try:
            return await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return b""

    @staticmethod
    async def _until_gone(r: asyncio.StreamReader, limit_s: float = 120) -> None:
        """Read and drop whatever comes until the client closes (or ``limit_s``)."""
        deadline = time.monotonic() + limit_s
        try:
            while time.monotonic() < deadline:
                if not await asyncio.wait_for(r.read(4096), deadline - time.monotonic()):
                    return
        except (ConnectionError, OSError, TimeoutError):
            pass

    async def _endless(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await self._request(r)
        chunk = b"x" * 65536
        try:
            w.write(b"HTTP/1.0 200 OK\r\n\r\n")
            deadline = time.monotonic() + 30  # bounded, whatever the client does
            for _ in range(16384):  # at most 1 GiB
                w.write(chunk)
                await w.drain()
                if time.monotonic() > deadline:
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def _trickle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, *,
                       period: float = 0.05, count: int = 600) -> None:
        """A valid reply, one byte every ``period`` seconds (by default ~30 s)."""
        await self._request(r)
        try:
            for b in b"HTTP/1.0 200 OK\r\n\r\n" + b"y" * count:
                w.write(bytes([b]))
                await w.drain()
                await asyncio.sleep(period)
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def _garbage(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await self._request(r)
        w.write(b"\x00\xff\xfe HTTP/9 2OO\x07 OK\r\n\x00\r\n\r\n\x80garbage")
        w.close()

    async def _no_end(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await self._request(r)
        w.write(b"HTTP/1.0 200 OK\r\nX: " + b"z" * 100_000)  # never a blank line
        w.close()

    async def _huge_header(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        """1 MiB of well-formed header lines, then the blank line and a body."""
        await self._request(r)
        line = b"X-Pad-%04d: " + b"h" * 1000 + b"\r\n"
        lines = b"".join(line % i for i in range(HUGE_HEADER_BYTES // len(line % 0)))
        try:
            w.write(b"HTTP/1.0 200 OK\r\n" + lines + b"\r\nok\n")
            await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def _silent(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        """Accept, read, never answer."""
        await self._until_gone(r)
        w.close()

    async def _rst_mid_body(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await self._request(r)
        try:
            w.write(b"HTTP/1.0 200 OK\r\n\r\n" + BODY)
            await w.drain()
            await asyncio.sleep(0.2)  # let the body arrive before the reset does
            sock = w.get_extra_info("socket")
            # SO_LINGER 0: close() sends a RST instead of a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (ConnectionError, OSError):
            pass
        w.transport.abort()

    async def _stall_tls(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        """Take the ClientHello, answer with the start of a handshake record that
        claims 16 KiB, and send nothing more: a handshake that never finishes."""
        try:
            await asyncio.wait_for(r.read(4096), 10)
            w.write(b"\x16\x03\x03\x40\x00\x02\x00\x3f\xfc\x03\x03")
            await w.drain()
        except (ConnectionError, OSError, TimeoutError):
            pass
        await self._until_gone(r)
        w.close()

    async def _not_tls(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.0 400 Bad Request\r\n\r\nthis is not TLS\r\n")
        await asyncio.sleep(0.2)
        w.close()

    async def _slam(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    async def _capture(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        req = await self._request(r)
        self.requests.append(req)
        w.write(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        try:
            await w.drain()
        except (ConnectionError, OSError):
            pass
        w.close()
