"""One HTTP_GET/SSL_GET url on its own socket, driven by loop callbacks: the path of
every check that the shared :class:`hafast.check.http_fetch.Fetcher` cannot take
(TLS, bindto/bind_port/bind_if/fwmark) and of ``genhash``.

An :class:`Exchange` is a non-blocking socket driven by
``loop.add_writer``/``add_reader`` and plain callbacks (no Task, no transport, no
coroutine per check); TLS is an ``ssl.SSLObject`` over memory BIOs on the same
socket.  It sends the request bytes it is given and feeds every chunk read to its
:class:`hafast.check.http_parse.ResponseParser` at once, so memory stays bounded by
one read buffer per thread (256 KiB) plus the parser's header.  The failure reasons
and details are the ones the Fetcher's endings repeat (:func:`connect_detail`).

Example::

    exchange = Exchange(loop, Target("10.0.0.1", 80), build_request("/", "10.0.0.1", 80),
                        ResponseParser(), print)
    exchange.begin()                     # later: print("", "") once the reply ended
"""

from __future__ import annotations

import errno
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from hafast.check import tcp
from hafast.check.api import Target
from hafast.check.http_parse import ResponseParser

__all__ = ["READ_SIZE", "Exchange", "Finish", "connect_detail", "open_socket"]

READ_SIZE = 256 * 1024  # as uvloop's read buffer: a 1 MiB body in 4 reads
# The same socket options, RST close and errno -> reason table as TCP_CHECK.
_LINGER_RST = tcp.LINGER_RST
_CONNECT_REASONS = tcp.REASONS

# One read buffer per thread (a worker runs one loop; tests and tools may run a
# loop on a second thread): a callback consumes what it read before it returns,
# but recv_into releases the GIL, so two threads must not share one buffer.
_local = threading.local()


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(READ_SIZE))
    return view


def open_socket(target: Target) -> socket.socket:
    """A non-blocking TCP socket with bindto/bind_port/bind_if/fwmark applied."""
    return tcp.open_socket(target, socket.SOCK_STREAM)


def connect_detail(err: int) -> str:
    """The detail of a failed connect, as both HTTP paths word it.

    >>> connect_detail(errno.ECONNREFUSED)
    'connect: ECONNREFUSED'
    """
    return f"connect: {errno.errorcode.get(err, str(err))}"


# ``finish(reason, detail)``: reason "" means the reply ended at EOF.
Finish = Callable[[str, str], None]


class Exchange:
    """One url on one connection: connect, (TLS handshake), send, read to EOF.

    ``finish`` is called exactly once unless ``cancel()`` came first; after it the
    socket is closed and the loop holds no callback of ours.  Failures before
    ``begin()`` returns are reported synchronously too.
    """

    __slots__ = (
        "_in",
        "_out",
        "_pending",
        "_reading",
        "_tls",
        "_tls_ready",
        "_writing",
        "compliant",
        "fd",
        "finish",
        "got_bytes",
        "loop",
        "parser",
        "phase",
        "request",
        "session",
        "sni",
        "sock",
        "target",
        "tls_context",
    )

    def __init__(
        self,
        loop: Any,
        target: Target,
        request: bytes,
        parser: ResponseParser,
        finish: Finish,
        *,
        tls_context: ssl.SSLContext | None = None,
        sni: str | None = None,
        session: ssl.SSLSession | None = None,
        compliant: bool = False,
    ) -> None:
        self.loop = loop
        self.target = target
        self.request = request
        self.parser = parser
        self.finish = finish
        self.tls_context = tls_context
        self.sni = sni
        self.session = session
        self.compliant = compliant
        self.sock: socket.socket | None = None
        self.fd = -1
        self._tls: ssl.SSLObject | None = None
        self._tls_ready = False
        self._in: ssl.MemoryBIO | None = None
        self._out: ssl.MemoryBIO | None = None
        self._pending = b""
        self._reading = False
        self._writing = False
        self.got_bytes = False
        self.phase = "connect"  # then "tls", then "read": what a timeout interrupted

    # -- life cycle -------------------------------------------------------------

    def begin(self) -> None:
        target = self.target
        try:
            sock = open_socket(target)
        except OSError as exc:
            self.finish(_CONNECT_REASONS.get(exc.errno or 0, "socket"), f"socket: {exc}")
            return
        self.sock = sock
        self.fd = sock.fileno()
        err = sock.connect_ex((target.address, target.port or 0))
        if err == errno.EINPROGRESS:
            if self.tls_context is None:
                self._send_early()
            else:
                self._want_write(self._connected)
        elif err == 0:
            self._on_connect()
        else:
            self._fail(_CONNECT_REASONS.get(err, "connect"), connect_detail(err))

    def _send_early(self) -> None:
        """Try the request before waiting for writability: over a veth or loopback
        the handshake has usually completed inside connect() already, and then
        the connect's epoll round trip is saved.  Linux answers EAGAIN while the
        socket is still in SYN_SENT (sk_stream_wait_connect), and the connect's
        error (ECONNREFUSED, ...) once it failed."""
        sock = self.sock
        assert sock is not None
        try:
            sent = sock.send(self.request)
        except (BlockingIOError, InterruptedError):
            self._want_write(self._connected)
            return
        except OSError as exc:
            err = exc.errno or 0
            self._fail(_CONNECT_REASONS.get(err, "connect"), connect_detail(err))
            return
        self.phase = "read"
        self._want_read()
        if sent < len(self.request):
            self._pending = self.request[sent:]
            self._want_write(self._writable)

    def cancel(self) -> None:
        """Release the socket; ``finish`` will not be called."""
        self._release(rst=True)

    def _release(self, *, rst: bool = True) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        if self._reading:
            self.loop.remove_reader(self.fd)
            self._reading = False
        if self._writing:
            self.loop.remove_writer(self.fd)
            self._writing = False
        if rst:
            # Abandoned mid-way: a RST, so neither side keeps the connection around.
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            except OSError:
                pass
        sock.close()

    def _fail(self, reason: str, detail: str) -> None:
        if self.sock is None:
            return
        self._release(rst=True)
        self.finish(reason, detail)

    def _done(self) -> None:
        if self.sock is None:
            return
        tls = self._tls
        if tls is not None:
            self.session = tls.session
            if self.compliant:
                # tls_compliant: say goodbye with a close_notify (RFC 8446 §6.1).
                try:
                    tls.unwrap()
                except (ssl.SSLError, OSError):
                    pass
                self._flush_tls(final=True)
        # The server closed first (EOF) and waits in FIN_WAIT2; a RST instead of our
        # FIN spares it the TIME_WAIT that 10,000 checks a second would pile up
        # (HAProxy closes its checks the same way; keepalived sends a FIN).  Not
        # after a close_notify: a RST would discard it if still queued.
        self._release(rst=not (tls is not None and self.compliant))
        self.finish("", "")

    # -- readiness ----------------------------------------------------------------

    def _want_write(self, callback: Callable[[], None]) -> None:
        self._writing = True
        self.loop.add_writer(self.fd, self._guarded, callback)

    def _guarded(self, callback: Callable[[], None]) -> None:
        # A bug must not vanish into the loop's exception handler and leave the
        # attempt to time out: it fails the attempt, with its text.
        try:
            callback()
        except Exception as exc:
            self._fail("error", f"internal error: {exc!r}")

    def _stop_write(self) -> None:
        if self._writing:
            self._writing = False
            self.loop.remove_writer(self.fd)

    def _want_read(self) -> None:
        if not self._reading:
            self._reading = True
            self.loop.add_reader(self.fd, self._guarded, self._readable)

    def _connected(self) -> None:
        sock = self.sock
        if sock is None:
            return
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(_CONNECT_REASONS.get(err, "connect"), connect_detail(err))
            return
        self._on_connect()

    def _on_connect(self) -> None:
        ctx = self.tls_context
        self.phase = "read" if ctx is None else "tls"
        # Reader on before writer off: one epoll MOD instead of a DEL and an ADD.
        self._want_read()
        self._stop_write()
        if ctx is None:
            self._send(self.request)
            return
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        tls = ctx.wrap_bio(self._in, self._out, server_side=False, server_hostname=self.sni or None)
        if self.session is not None:
            try:
                tls.session = self.session  # resume: a full handshake costs ~1 ms of CPU
            except (ValueError, ssl.SSLError):
                pass
        self._tls = tls
        self._handshake()

    def _send(self, data: bytes) -> None:
        """Send, keeping what the socket did not take for the writer callback."""
        sock = self.sock
        if sock is None:
            return
        if self._pending:
            self._pending += data
            return
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._fail(_CONNECT_REASONS.get(exc.errno or 0, "send"), f"send: {exc}")
            return
        if sent < len(data):
            self._pending = data[sent:]
            self._want_write(self._writable)

    def _writable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        data = self._pending
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(_CONNECT_REASONS.get(exc.errno or 0, "send"), f"send: {exc}")
            return
        self._pending = data[sent:]
        if not self._pending:
            self._stop_write()

    # -- TLS --------------------------------------------------------------------------

    def _flush_tls(self, final: bool = False) -> None:
        out = self._out
        if out is not None and out.pending:
            data = out.read()
            if final:
                # Best effort on the way out: never wait for the socket.
                try:
                    if self.sock is not None:
                        self.sock.send(data)
                except OSError:
                    pass
            else:
                self._send(data)

    def _handshake(self) -> bool:
        tls = self._tls
        assert tls is not None
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return False
        except (ssl.SSLError, OSError) as exc:
            self._fail("tls", f"TLS handshake: {exc}")
            return False
        self._tls_ready = True
        self.phase = "read"
        self._flush_tls()
        tls.write(self.request)
        self._flush_tls()
        return True

    def _read_tls(self, eof: bool) -> None:
        tls = self._tls
        assert tls is not None
        parser = self.parser
        while True:
            try:
                chunk = tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify: the reply is complete
                self._done()
                return
            except ssl.SSLEOFError:
                # EOF without close_notify: keepalived takes it as the end too.
                self._done()
                return
            except (ssl.SSLError, OSError) as exc:
                self._fail("tls", f"TLS read: {exc}")
                return
            if not chunk:
                self._done()
                return
            self.got_bytes = True
            if not parser.feed(chunk):
                self._fail(parser.error, f"reply refused: {parser.error}")
                return
        self._flush_tls()
        if eof and self.sock is not None:
            self._done()

    # -- reading ------------------------------------------------------------------------

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        tls = self._tls
        view = _read_buffer()
        # Plain HTTP: read on until EAGAIN (bounded, to stay fair to other checks);
        # the server's FIN usually follows its reply at once, and seeing the EOF
        # in this callback saves an epoll round trip.
        for _ in range(1 if tls is not None else 8):
            try:
                n = sock.recv_into(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # keepalived: "Read error with" -- even after a complete reply.
                reason = "reset" if exc.errno == errno.ECONNRESET else "read"
                self._fail(reason, f"read: {exc}")
                return
            if tls is not None:
                break
            if n == 0:
                self._done()
                return
            self.got_bytes = True
            if not self.parser.feed(view[:n]):
                self._fail(self.parser.error, f"reply refused: {self.parser.error}")
                return
        else:
            return
        assert self._in is not None
        if n:
            self._in.write(view[:n])
        else:
            self._in.write_eof()
        if not self._tls_ready and not self._handshake():
            return
        if self.sock is not None:
            self._read_tls(eof=n == 0)

