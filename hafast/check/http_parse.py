"""HTTP_GET/SSL_GET without I/O: the request keepalived sends, and its reading of the
reply, byte for byte.

keepalived's ``check_http.c`` is not an HTTP client in the RFC 9112 sense, and a
digest made with ``genhash`` is only reproducible if we read replies the way it
does (checked against Debian's keepalived 2.2.7 ``genhash``):

- the reply ends at EOF, never at ``Content-Length`` and never by chunk framing;
- the header ends at the first ``\\r\\n\\r\\n``, which must lie within the first
  4,095 bytes (``MAX_BUFFER_LENGTH`` 4096 less the NUL it appends), else the reply
  counts as "no data";
- the status code is the three digits after the first space of the first line,
  followed by a space (``HTTP/1.0 200\\r\\n`` without a reason phrase fails);
- ``Content-Length:`` is found by a case-sensitive substring search of the header
  (``content-length: 3`` is ignored, ``X-Content-Length: 3`` is honoured), its
  value read with ``strtoul`` and accepted only when the number is followed by CR
  or LF; when accepted, only the first that many body bytes are hashed;
- the digest is MD5 over the raw body bytes: a chunked reply hashes its chunk
  sizes and CRLFs too.

One deliberate difference: keepalived also searches for ``Content-Length:`` in the
body bytes that happened to arrive in the same ``read()`` as the end of the header,
which makes its answer depend on TCP segmentation; we search the header only, so
any split of a reply gives the same result.

Example::

    >>> build_request("/health", "10.0.0.1", 80)
    b'GET /health HTTP/1.0\\r\\nUser-Agent: KeepAliveClient\\r\\nHost: 10.0.0.1:80\\r\\n\\r\\n'
    >>> p = ResponseParser()
    >>> p.feed(b"HTTP/1.0 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nhello"), p.status
    (True, 200)
    >>> p.hexdigest() == md5_hex(b"hel")
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hafast._core.md5stream import DEFAULT_CAP, MD5Stream, md5_hex
from hafast.lib.pcre2 import BUFFER, RegexStream, error_message

__all__ = [
    "DEFAULT_CAP",
    "MAX_HEADER",
    "PROTOCOLS",
    "ResponseParser",
    "build_request",
    "check_reply",
    "md5_hex",
    "parse_content_length",
    "parse_status",
    "status_ok",
]

USER_AGENT = "KeepAliveClient"  # check_http.c request_template
# keepalived reads the header into a 4096-byte buffer that it NUL-terminates.
MAX_HEADER = 4095
# RFC 9110 §15: three-digit codes; keepalived's bit array covers 100..599 only.
STATUS_MIN, STATUS_MAX = 100, 599
DEFAULT_STATUS: tuple[tuple[int, int], ...] = ((200, 299),)

# http_protocol -> (HTTP minor version, send "Connection: close").  keepalived 2.2.7
# sends "Connection: close" with 1.1 as well, or a 1.1 server would keep the
# connection open and the reply (which ends at EOF) would never end.
PROTOCOLS: dict[str, tuple[int, bool]] = {
    "1.0": (0, False),
    "1.0C": (0, True),
    "1.0c": (0, True),
    "1.1": (1, True),
}

_TERMINATOR = b"\r\n\r\n"  # RFC 9112 §2.1: the empty line that ends the header
_CONTENT_LENGTH = b"Content-Length:"  # matched case-sensitively, as keepalived does
_C_SPACE = frozenset(b" \t\n\v\f\r")  # isspace() in the C locale (strtoul skips it)
_DIGITS = frozenset(b"0123456789")
_ULONG = 1 << 64
_CR, _LF, _SP = 13, 10, 32


def build_request(
    path: str, address: str, port: int, protocol: str = "1.0", virtualhost: str | None = None
) -> bytes:
    """The GET keepalived sends for one url (``check_http.c`` request_template).

    ``Host`` is the virtualhost alone when there is one, else the address and the
    port (always, even 80), an IPv6 literal in brackets (RFC 3986 §3.2.2).

    >>> build_request("/", "::1", 8080, "1.1", None)[-39:]
    b'Connection: close\\r\\nHost: [::1]:8080\\r\\n\\r\\n'
    """
    minor, close = PROTOCOLS[protocol]
    if virtualhost:
        host = virtualhost
    elif ":" in address:
        host = f"[{address}]:{port}"
    else:
        host = f"{address}:{port}"
    connection = "Connection: close\r\n" if close else ""
    return (
        f"GET {path} HTTP/1.{minor}\r\nUser-Agent: {USER_AGENT}\r\n{connection}Host: {host}\r\n\r\n"
    ).encode("utf-8", "surrogateescape")


def parse_status(header: bytes) -> int:
    """keepalived's status code: 3 digits between the first space and the next one.

    0 when there are none (which no ``status_code`` range accepts).

    >>> parse_status(b"HTTP/1.1 404 Not Found\\r\\n\\r\\n")
    404
    >>> parse_status(b"HTTP/1.0 200\\r\\n\\r\\n")
    0
    """
    n = len(header)
    # The first token ends at a space; a CR first means there is no status code.
    i = header.find(b" ")
    cr = header.find(b"\r", 0, i if i >= 0 else n)
    if i < 0 or cr >= 0:
        return 0
    i += 1
    # RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
    if i + 3 >= n or header[i + 3] != _SP:
        return 0
    code = header[i : i + 3]
    if not (code[0] in _DIGITS and code[1] in _DIGITS and code[2] in _DIGITS):
        # strtoul would read "+20" or "\t20" as 20: out of range either way.
        return 0
    return int(code)


def parse_content_length(header: bytes) -> int | None:
    """The body length keepalived believes in, or None (hash everything to EOF).

    >>> [parse_content_length(h) for h in (b"Content-Length: 3\\r\\n",
    ...     b"content-length: 3\\r\\n", b"Content-Length: 3x\\r\\n", b"Content-Length:\\r\\n\\r")]
    [3, None, None, 0]
    """
    nul = header.find(b"\0")  # strstr stops at the first NUL
    if nul >= 0:
        header = header[:nul]
    at = header.find(_CONTENT_LENGTH)
    if at < 0:
        return None
    n = len(header)
    start = at + len(_CONTENT_LENGTH)
    # strtoul(start, &end, 10): whitespace, a sign, digits; end = start if no digits.
    i = start
    while i < n and header[i] in _C_SPACE:
        i += 1
    negative = False
    if i < n and header[i] in b"+-":
        negative = header[i] == 0x2D
        i += 1
    first = i
    while i < n and header[i] in _DIGITS:
        i += 1
    if i == first:
        end, value = start, 0
    else:
        end, value = i, int(header[first:i])
        if value >= _ULONG:
            value = _ULONG - 1  # ERANGE: ULONG_MAX
        elif negative:
            value = (_ULONG - value) % _ULONG
    after = header[end] if end < n else 0
    if after not in (_CR, _LF, 0):
        return None
    if value == _ULONG - 1:  # SIZE_MAX is keepalived's "no Content-Length"
        return None
    return value


def status_ok(status: int, ranges: Sequence[tuple[int, int]]) -> bool:
    """True when ``status`` lies in one of the inclusive ``(low, high)`` ranges.

    >>> status_ok(204, ((200, 299),)), status_ok(0, ((0, 999),))
    (True, False)
    """
    if status < STATUS_MIN or status > STATUS_MAX:
        return False
    return any(lo <= status <= hi for lo, hi in ranges)


class ResponseParser:
    """One reply, fed chunk by chunk as it arrives; bounded memory whatever it sends.

    ``feed(chunk)`` returns False once reading should stop because the reply
    failed (``error`` says why: ``header-too-large``, ``body-too-large``).
    After EOF, ``complete`` says whether a header arrived, ``status`` and
    ``content_length`` describe it, ``hexdigest()`` is the body's digest (when
    made with ``digest=True``).  ``on_header``/``on_body`` (for genhash
    ``-v``) see the header and every hashed slice of the body.

    >>> p = ResponseParser(body_cap=4)
    >>> p.feed(b"HTTP/1.0 200 OK\\r\\n\\r\\nab"), p.feed(b"cde"), p.error
    (True, False, 'body-too-large')
    """

    __slots__ = (
        "_head",
        "_kept",
        "_md5",
        "body_cap",
        "body_size",
        "content_length",
        "error",
        "hashed",
        "header",
        "header_cap",
        "keep",
        "on_body",
        "on_header",
        "regex",
        "status",
    )

    def __init__(
        self,
        *,
        digest: bool = True,
        body_cap: int = DEFAULT_CAP,
        header_cap: int = MAX_HEADER,
        keep: int = 0,
        regex: RegexStream | None = None,
    ) -> None:
        self._head = b""
        self._kept = bytearray()
        self.keep = keep  # body bytes kept for the fuzz harness (nothing else keeps any)
        self.regex = regex  # a url's regex, matched as the reply streams in
        self._md5 = MD5Stream(body_cap) if digest else None
        self.body_cap = body_cap
        self.header_cap = header_cap
        self.header: bytes | None = None
        self.status = 0
        self.content_length: int | None = None
        self.body_size = 0
        self.hashed = 0
        self.error = ""
        self.on_header: Callable[[bytes], object] | None = None
        self.on_body: Callable[[bytes], object] | None = None

    @property
    def complete(self) -> bool:
        """A header arrived (keepalived: anything else is "no data received")."""
        return self.header is not None

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Take the next bytes of the reply; False once the reply has failed."""
        if self.error:
            return False
        if self.header is None:
            # Only the first header_cap bytes can hold the header: copy no more
            # than that (the body part of a large first chunk is hashed in place).
            old = len(self._head)
            head = self._head + bytes(data[: self.header_cap - old])
            at = head.find(_TERMINATOR, 0, self.header_cap)
            if at < 0:
                if len(head) >= self.header_cap:
                    self._head = b""
                    self.error = "header-too-large"
                    return False
                self._head = head
                return True
            end = at + 4  # > old: the buffered part held no terminator
            self._head = b""
            header = head[:end]
            self.header = header
            self.status = parse_status(header)
            self.content_length = parse_content_length(header)
            if self.on_header is not None:
                self.on_header(header)
            if end - old >= len(data):
                # keepalived empties a buffer that ends with the header unmatched: the
                # regex subject then starts at the body
                return True
            data = memoryview(data)[end - old :]
            if self.regex is not None:
                # ...but the buffer that also holds body bytes is matched from the
                # status line on: keepalived's first subject is header + body
                first = header + bytes(data[: max(0, BUFFER - len(header))])
                self.regex.feed(first)
                ok = self._body(data, None)
                if ok:
                    self.regex.feed(data[len(first) - len(header) :])
                return ok
        return self._body(data, self.regex)

    def _body(self, data: bytes | bytearray | memoryview, regex: RegexStream | None) -> bool:
        n = len(data)
        if not n:
            return True
        before = self.body_size
        self.body_size = before + n
        if self.body_size > self.body_cap:
            # A never-ending body: stop before it costs more memory or CPU.
            self.error = "body-too-large"
            return False
        if self.keep and len(self._kept) < self.keep:
            self._kept += data[: self.keep - len(self._kept)]
        if regex is not None:
            regex.feed(data)
        md5 = self._md5
        if md5 is None:
            return True
        limit = self.content_length
        if limit is None:
            take = n
        elif before >= limit:
            take = 0
        else:
            take = min(n, limit - before)
        if take:
            piece = data if take == n else memoryview(data)[:take]
            md5.update(piece)
            self.hashed += take
            if self.on_body is not None:
                self.on_body(bytes(piece))
        return True

    @property
    def kept(self) -> bytes:
        """The first ``keep`` bytes of the body."""
        return bytes(self._kept)

    def hexdigest(self) -> str:
        """MD5 of the hashed body (32 lower-case hex digits), as genhash prints it."""
        if self._md5 is None:
            raise ValueError("parser made with digest=False")
        return self._md5.hexdigest()

    def digest(self) -> bytes:
        if self._md5 is None:
            raise ValueError("parser made with digest=False")
        return self._md5.digest()


def check_reply(
    parser: ResponseParser,
    status_code: Sequence[tuple[int, int]],
    digest: str | None,
    *,
    regex_no_match: bool = False,
) -> tuple[str, str]:
    """keepalived's verdict on a finished reply: ``("", "")`` when it passes, else
    ``(reason, detail)`` with a stable reason name.

    Order as ``http_handle_response``: no data, then status, then digest, then the
    regex the parser was given (which must match, or must not with ``regex_no_match``).

    >>> p = ResponseParser(); _ = p.feed(b"HTTP/1.0 500 Oops\\r\\n\\r\\n")
    >>> check_reply(p, DEFAULT_STATUS, None)
    ('status', 'HTTP status code 500')
    """
    if parser.error:
        return parser.error, f"reply refused: {parser.error}"
    if parser.header is None:
        return "no-data", "no HTTP header received"
    if not status_ok(parser.status, status_code):
        return "status", f"HTTP status code {parser.status}"
    if digest is not None:
        got = parser.hexdigest()
        if got != digest.lower():
            return "digest", f"MD5 digest {got} != {digest.lower()}"
    regex = parser.regex
    if regex is not None and regex.matched == regex_no_match:
        found = "matched" if regex.matched else "not found"
        why = f" (PCRE2: {error_message(regex.error)})" if regex.error else ""
        return "regex", f"regex {regex.pattern.pattern!r} {found}{why}"
    return "", ""
