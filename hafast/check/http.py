"""HTTP_GET and SSL_GET: keepalived's web checks, one url after another on fresh
connections, each reply read to EOF and judged by status code and MD5 digest.

One job per module:

- here: the checker kinds, and an attempt's walk through its urls (which path a
  url takes, the verdict on each reply);
- :mod:`hafast.check.http_parse` (no I/O): the request bytes keepalived sends and
  its reading of the reply (status, ``Content-Length``, digest, regex);
- :mod:`hafast.check.http_fetch`: plain HTTP (no TLS, no
  bindto/bind_port/bind_if/fwmark), one ``Fetcher`` per loop, every fetch in one
  epoll and its syscalls in C;
- :mod:`hafast.check.http_exchange`: the rest (TLS, bound sockets, genhash), an
  ``Exchange`` per url on its own socket driven by loop callbacks;
- :mod:`hafast.check.http_tls`: SSL_GET's TLS client context.

The bytes on the wire and the reading of the reply are keepalived's on both paths;
an HTTP library would send its own headers and read ``Content-Length``
case-insensitively, and genhash digests would no longer match.  Each chunk read
is fed to the MD5 stream at once, so memory stays bounded by one read buffer
(256 KiB: one per FetchSet, one shared by the thread's Exchanges) plus a header
of at most 4 KiB.
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

import ssl
from dataclasses import replace
from typing import Any, ClassVar

from hafast._core.sockset import FetchSet
from hafast.check import tcp
from hafast.check.api import NO_ATTEMPT, Attempt, Done, ProbeKind, ProbeResult, Target
from hafast.check.http_exchange import Exchange
from hafast.check.http_fetch import Fetcher, ending
from hafast.check.http_parse import (
    DEFAULT_CAP,
    DEFAULT_STATUS,
    ResponseParser,
    build_request,
    check_reply,
)
from hafast.check.http_tls import client_context
from hafast.config.model import HttpGetCheck, SslContext, Url
from hafast.lib.pcre2 import Pattern, PcreError, RegexStream, compile_regex

__all__ = ["HttpGetKind", "SslGetKind"]

_UP = ProbeResult(True)  # frozen: one instance serves every passing attempt
_EOF = FetchSet.EOF


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
        bad = kind.bad_regex[index]
        if bad:
            self.exchange = None
            self.done(ProbeResult(False, "config", f"{url.path}: {bad}"))
            return
        pattern = kind.regexes[index]
        stream = (
            None if pattern is None
            else RegexStream(pattern, url.regex_min_offset, url.regex_max_offset)
        )
        self.parser = parser = ResponseParser(
            digest=url.digest is not None, body_cap=kind.body_cap, regex=stream
        )
        fetcher = kind.fetcher
        if fetcher is not None:
            fetches = self.fetches = fetcher.fetches
            fd = fetches.start(kind.family, kind.address, kind.port, kind.requests[index], self)
            if fd < 0:
                self.finished(*ending(-fd))
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
            self.finished(*ending(status))

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
            reason, detail = check_reply(
                parser, ranges, url.digest, regex_no_match=url.regex_no_match
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
        "bad_regex",
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
        # per url: the compiled regex (None: no regex, no work per reply) and the
        # error of one PCRE2 refused ('hafast -t' reports it; this is a last resort)
        self.regexes: list[Pattern | None] = []
        self.bad_regex: list[str] = []
        for url in self.urls:
            pattern, bad = None, ""
            if url.regex:
                try:
                    pattern = compile_regex(url.regex, url.regex_options, url.regex_stack)
                except PcreError as exc:
                    bad = f"bad regex {url.regex!r}: {exc}"
            self.regexes.append(pattern)
            self.bad_regex.append(bad)
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
        self.plain = self.tls_context is None and target.plain
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
