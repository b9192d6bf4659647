"""HTTP_GET and SSL_GET: keepalived's web checks, one url after another on fresh
connections, each reply read to EOF and judged by status code and MD5 digest.

How it runs: plain HTTP (no TLS, no bindto/bind_port/bind_if/fwmark) goes through
one :class:`Fetcher` per loop: every fetch in flight waits in ONE epoll, which the
loop watches as one reader, and the socket, connect, send, reads and close run in
C (:class:`hafast._core.sockset.FetchSet`): per check no Python socket, no libuv
poll handle, no ``epoll_ctl`` pair, no reader callback; each reader wake-up hands
back what every ready fetch read (the FIN usually in the same pass) for its
parser.  The rest (TLS, bound sockets, genhash) use :class:`Exchange`: a
non-blocking socket driven by ``loop.add_writer``/``add_reader`` and plain
callbacks (no Task, no transport, no coroutine per check); TLS is an
``ssl.SSLObject`` over memory BIOs on the same socket.  The bytes on the wire and
the reading of the reply are keepalived's (see :mod:`hafast.check.http_parse`);
an HTTP library would send its own headers and read ``Content-Length``
case-insensitively, and genhash digests would no longer match.  Each chunk read
is fed to the MD5 stream at once, so memory stays bounded by one read buffer
(256 KiB: one per FetchSet, one shared by the thread's Exchanges) plus a header
of at most 4 KiB.  Measured side by side on the lab (benchmarks/test_bench_http.py,
4,096 nginx servers, 64 in flight): the plain path costs about the CPU per check
that wrk spends per request (52 µs, ~85% of it in the kernel's TCP); the Exchange
it replaced cost 67 µs, ``create_connection`` + Protocol (a Task per check) ~1.7x,
pycurl's multi interface ~3.5x (and libcurl cannot send keepalived's request byte
for byte).
Connections end with a RST (SO_LINGER 0) once the server's EOF arrived, so no
TIME_WAIT piles up on either side (HAProxy's checks do the same).

Timing: keepalived re-arms ``connect_timeout`` on every I/O step, so a server
trickling one byte per second never times out (keepalived issue #1822).  Here the
runner's single deadline covers the whole attempt: ``connect_timeout`` for each
url of the checker (``deadline_us()`` = connect_timeout x number of urls).

Example::

    spec = HttpGetCheck(urls=(Url("/health", digest="..."),), connect_timeout_us=2_000_000)
    kind = HttpGetKind(spec, Target("10.0.0.1", 80), loop)
    attempt = kind.start(print)          # later: ProbeResult(ok=True, ...)
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

from hafast._core.sockset import FetchSet
from hafast.check import tcp
from hafast.check.api import NO_ATTEMPT, Attempt, Done, ProbeKind, ProbeResult, Target
from hafast.check.http_parse import (
    DEFAULT_CAP,
    DEFAULT_STATUS,
    ResponseParser,
    build_request,
    check_reply,
    compile_regex,
)
from hafast.check.perloop import PerLoop
from hafast.config.model import HttpGetCheck, SslContext, Url

__all__ = [
    "READ_SIZE",
    "Exchange",
    "Fetcher",
    "HttpGetKind",
    "SslGetKind",
    "client_context",
    "open_socket",
]

READ_SIZE = 256 * 1024  # as uvloop's read buffer: a 1 MiB body in 4 reads
# A url with a regex keeps this much of its body to search (keepalived matches
# streaming over the whole body; a health page is far smaller).
REGEX_KEEP = 1024 * 1024
# The same socket options, RST close and errno -> reason table as TCP_CHECK.
_LINGER_RST = tcp.LINGER_RST
_CONNECT_REASONS = tcp.REASONS

# One read buffer per thread (a worker runs one loop; tests and tools may run a
# loop on a second thread): a callback consumes what it read before it returns,
# but recv_into releases the GIL, so two threads must not share one buffer.
_local = threading.local()

log = logging.getLogger("hafast.check")


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(READ_SIZE))
    return view


def open_socket(target: Target) -> socket.socket:
    """A non-blocking TCP socket with bindto/bind_port/bind_if/fwmark applied."""
    return tcp.open_socket(target, socket.SOCK_STREAM)


_CONTEXTS: dict[tuple[SslContext | None, bool], ssl.SSLContext] = {}


def client_context(conf: SslContext | None = None, *, compliant: bool = False) -> ssl.SSLContext:
    """The TLS client context for SSL_GET (cached per top-level ``SSL {}`` block).

    As keepalived: no certificate verification (a health check asks "does it
    answer", not "is it who it claims"); ``ca`` is loaded, ``certificate``/``key``
    (with ``password``) are presented when the server asks for a client
    certificate.  ``compliant`` is ``tls_compliant`` (a close_notify at the end).
    """
    key = (conf, compliant)
    ctx = _CONTEXTS.get(key)
    if ctx is not None:
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if conf is not None:
        if conf.ca:
            ctx.load_verify_locations(cafile=conf.ca)
        if conf.certificate:
            ctx.load_cert_chain(conf.certificate, conf.key or None, password=conf.password)
    _CONTEXTS[key] = ctx
    return ctx


def _connect_detail(err: int) -> str:
    return f"connect: {errno.errorcode.get(err, str(err))}"


_UP = ProbeResult(True)  # frozen: one instance serves every passing attempt


def _os_error(err: int) -> str:
    return str(OSError(err, os.strerror(err)))  # "[Errno 104] Connection reset by peer"


# FetchSet stage -> (reason, detail) of a fetch that failed there: the same words as
# Exchange's for the same failure (a counter must not change name with the path).
_ENDINGS: dict[int, Callable[[int], tuple[str, str]]] = {
    FetchSet.CONNECT: lambda err: (_CONNECT_REASONS.get(err, "connect"), _connect_detail(err)),
    FetchSet.SEND: lambda err: (_CONNECT_REASONS.get(err, "send"), f"send: {_os_error(err)}"),
    FetchSet.READ: lambda err: (
        "reset" if err == errno.ECONNRESET else "read", f"read: {_os_error(err)}"
    ),
    FetchSet.SOCKET: lambda err: (_CONNECT_REASONS.get(err, "socket"), f"socket: {_os_error(err)}"),
}
_STAGE = FetchSet.STAGE
_EOF = FetchSet.EOF


def _ending(status: int) -> tuple[str, str]:
    """(reason, detail) for a FetchSet status (or ``-start()``) other than EOF."""
    return _ENDINGS.get(status & _STAGE, _ENDINGS[FetchSet.CONNECT])(status & 0xFFFF)


_fetchers: PerLoop[Fetcher] = PerLoop()


class Fetcher:
    """One epoll on one loop for every plain HTTP_GET fetch in flight.

    The loop sees one reader (the epoll descriptor); :meth:`ready` hands each
    fetch's bytes to its attempt's parser and settles the fetches that ended, in
    one pass.  The sockets live in :class:`hafast._core.sockset.FetchSet`, which
    also holds each fetch's attempt (its ``owner``): no ``fd -> attempt`` map.
    Shared by every :class:`HttpGetKind` of the loop (``acquire``/``release``).
    """

    __slots__ = ("fetches", "loop", "users")

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.fetches = FetchSet()
        self.users = 0
        loop.add_reader(self.fetches.fileno(), self.ready)

    @classmethod
    def acquire(cls, loop: Any) -> Fetcher:
        return _fetchers.acquire(loop, lambda: cls(loop))

    def release(self) -> None:
        _fetchers.release(self)

    def close(self) -> None:
        """Close every fetch in flight (their attempts never call back) and the epoll."""
        _fetchers.forget(self)
        try:
            self.loop.remove_reader(self.fetches.fileno())
        except Exception:  # the loop was closed first: nothing left to unhook
            pass
        self.fetches.close()

    def ready(self) -> None:
        events: list[Any] = self.fetches.ready()
        # The fds of ended fetches are closed already: detach their attempts BEFORE
        # any callback runs, or a cancel from a callback would hit a fetch that
        # reused the number.  (Fetches that go on keep their fds, and an attempt
        # that a callback cancels has fd -1: its later entries are skipped.)
        for i, event in enumerate(events):
            if event[3]:
                attempt = event[1]
                if attempt.fd == event[0]:
                    attempt.fd = -1
                else:
                    events[i] = None
        for event in events:
            if event is None:
                continue
            fd, attempt, data, status = event
            if attempt.cancelled or (not status and attempt.fd != fd):
                continue
            try:
                attempt.fetched(fd, data, status)
            except Exception:  # a result consumer that raised: log it, go on
                log.exception("%s: HTTP_GET result callback raised", attempt.kind.target)


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
            self._fail(_CONNECT_REASONS.get(err, "connect"), _connect_detail(err))

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
            self._fail(_CONNECT_REASONS.get(err, "connect"), _connect_detail(err))
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
            self._fail(_CONNECT_REASONS.get(err, "connect"), _connect_detail(err))
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


class _Attempt:
    """The urls of one checker, in order, each on a new connection; the first
    failure ends the attempt (keepalived retries from the failed url).  A plain
    target's url is a fetch of the kind's :class:`Fetcher` (``fd``), any other an
    :class:`Exchange`."""

    __slots__ = ("cancelled", "done", "exchange", "fd", "fetches", "index", "kind", "parser")

    def __init__(self, kind: HttpGetKind, done: Done) -> None:
        self.kind = kind
        self.done = done
        self.index = 0
        self.exchange: Exchange | None = None
        self.fetches: FetchSet | None = None
        self.fd = -1
        self.parser: ResponseParser | None = None
        self.cancelled = False

    @property
    def live(self) -> bool:
        """A url is in flight (else the attempt ended before ``start`` returned)."""
        return self.fd >= 0 or self.exchange is not None

    def next(self) -> None:
        kind = self.kind
        index = self.index
        url = kind.urls[index]
        if isinstance(kind.regexes[index], str):
            self.exchange = None
            self.done(ProbeResult(False, "config", f"{url.path}: {kind.regexes[index]}"))
            return
        keep = REGEX_KEEP if url.regex is not None else 0
        self.parser = parser = ResponseParser(
            digest=url.digest is not None, body_cap=kind.body_cap, keep=keep
        )
        fetcher = kind.fetcher
        if fetcher is not None:
            fetches = self.fetches = fetcher.fetches
            fd = fetches.start(kind.family, kind.address, kind.port, kind.requests[index], self)
            if fd < 0:
                self.finished(*_ending(-fd))
            else:
                self.fd = fd
            return
        self.exchange = Exchange(
            kind.loop, kind.target, kind.requests[self.index], parser, self.finished,
            tls_context=kind.tls_context, sni=kind.sni[self.index], session=kind.session,
            compliant=kind.spec.tls_compliant,
        )
        self.exchange.begin()

    def fetched(self, fd: int, data: bytes | None, status: int) -> None:
        """What the Fetcher read for this attempt's fetch ``fd`` (status 0: it goes
        on; an ended fetch's fd is closed and ``self.fd`` is -1 already)."""
        if data is not None:
            parser = self.parser
            assert parser is not None
            try:
                fed = parser.feed(data)
            except Exception as exc:
                # A bug must not vanish into the loop's exception handler and leave
                # the attempt to time out: it fails the attempt, with its text.
                self._abort(fd, status, "error", f"internal error: {exc!r}")
                return
            if not fed:
                self._abort(fd, status, parser.error, f"reply refused: {parser.error}")
                return
        if not status:
            return
        if status == _EOF:
            self.finished("", "")
        else:
            self.finished(*_ending(status))

    def _abort(self, fd: int, status: int, reason: str, detail: str) -> None:
        if not status:  # the fetch is still open: close it (a RST) first
            self.fd = -1
            assert self.fetches is not None
            self.fetches.cancel(fd)
        self.finished(reason, detail)

    def finished(self, reason: str, detail: str) -> None:
        exchange = self.exchange
        kind = self.kind
        if exchange is not None and exchange.session is not None:
            kind.session = exchange.session
        url = kind.urls[self.index]
        if not reason:
            parser = self.parser
            assert parser is not None
            ranges = url.status_code or DEFAULT_STATUS
            regex = kind.regexes[self.index]
            pattern = regex if isinstance(regex, re.Pattern) else None
            reason, detail = check_reply(
                parser, ranges, url.digest, pattern,
                regex_no_match=url.regex_no_match, regex_min_offset=url.regex_min_offset,
                regex_max_offset=url.regex_max_offset,
            )
        if reason:
            self.exchange = None
            self.done(ProbeResult(False, reason, f"{url.path}: {detail}"))
            return
        self.index += 1
        if self.index == len(kind.urls):
            self.exchange = None
            self.done(_UP)
            return
        self.next()

    def cancel(self) -> None:
        self.cancelled = True
        fd = self.fd
        if fd >= 0:
            self.fd = -1
            assert self.fetches is not None
            self.fetches.cancel(fd)
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.cancel()


class HttpGetKind(ProbeKind):
    """HTTP_GET: every ``url`` must answer with an accepted status (and digest).

    ``ssl_conf`` is the top-level ``SSL {}`` block (SSL_GET only); ``body_cap``
    bounds the bytes read per reply (an endless body fails as ``body-too-large``).
    """

    __slots__ = (
        "address",
        "body_cap",
        "family",
        "fetcher",
        "plain",
        "port",
        "regexes",
        "requests",
        "session",
        "sni",
        "tls_context",
        "urls",
    )

    keyword = "HTTP_GET"
    tls: ClassVar[bool] = False
    default_port: ClassVar[int] = 80

    def __init__(
        self,
        spec: HttpGetCheck,
        target: Target,
        loop: Any,
        *,
        ssl_conf: SslContext | None = None,
        body_cap: int = DEFAULT_CAP,
    ) -> None:
        super().__init__(spec, target, loop)
        self.spec: HttpGetCheck = spec
        if target.port is None:
            target = replace(target, port=self.default_port)
            self.target = target
        self.body_cap = body_cap
        self.urls: tuple[Url, ...] = tuple(spec.urls) or (Url("/"),)
        port = target.port or self.default_port
        self.requests: list[bytes] = []
        self.sni: list[str | None] = []
        # per url: the compiled regex, None, or the error text of a bad pattern
        self.regexes: list[re.Pattern[bytes] | str | None] = []
        for url in self.urls:
            try:
                self.regexes.append(
                    compile_regex(url.regex, url.regex_options) if url.regex else None
                )
            except re.error as exc:
                self.regexes.append(f"bad regex {url.regex!r}: {exc}")
            vhost = url.virtualhost or spec.virtualhost
            request = build_request(url.path, target.address, port, spec.http_protocol, vhost)
            self.requests.append(request)
            # SNI names the virtual host (keepalived); sni_name overrides it.
            self.sni.append((spec.sni_name or vhost) if spec.enable_sni else None)
        self.tls_context = (
            client_context(ssl_conf, compliant=spec.tls_compliant) if self.tls else None
        )
        self.session: ssl.SSLSession | None = None
        # No TLS and no bind/mark/device option: the whole fetch is the Fetcher's.
        self.plain = self.tls_context is None and (
            target.bindto is None and target.bind_port is None
            and target.bind_if is None and target.fwmark is None
        )
        self.fetcher: Fetcher | None = None
        self.family = target.family
        self.address = target.address
        self.port = port

    def deadline_us(self) -> int:
        """connect_timeout for each url: the whole attempt is bounded, not each step."""
        return self.spec.connect_timeout_us * len(self.urls)

    def start(self, done: Done) -> Attempt:
        if self.plain and self.fetcher is None:
            try:
                self.fetcher = Fetcher.acquire(self.loop)
            except OSError as exc:
                done(tcp.failure(exc.errno or 0, f"epoll: {exc.strerror}"))
                return NO_ATTEMPT
        attempt = _Attempt(self, done)
        attempt.next()
        return attempt if attempt.live else NO_ATTEMPT

    def close(self) -> None:
        self.session = None
        if self.fetcher is not None:
            self.fetcher.release()
            self.fetcher = None


class SslGetKind(HttpGetKind):
    """SSL_GET: HTTP_GET over TLS; a failed handshake is a failed check (``tls``)."""

    __slots__ = ()

    keyword = "SSL_GET"
    tls = True
    default_port = 443
