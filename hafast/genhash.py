"""``genhash``: the MD5 digest of a url's body, as keepalived's ``genhash`` prints it,
to paste into a ``url { digest ... }`` block.

Same flags, same request bytes, same reading of the reply (the body is hashed raw,
chunk framing included, up to ``Content-Length`` when keepalived believes it;
see :mod:`hafast.check.http_parse`), same output: the digest alone on stdout, or
with ``-v`` the header and body dumps keepalived makes.  Failures print
keepalived's messages.  One difference: keepalived exits 0 even when it printed
no digest; we exit 1, so a script can tell.

Example::

    $ genhash -s 10.201.0.1 -p 80 -u /fixed
    b0600714438283f88a85f3cdb2314ace
    >>> main(["-s", "not-an-ip", "-p", "80", "-u", "/"])  # doctest: +SKIP
    1
"""

from __future__ import annotations

import asyncio
import getopt
import ipaddress
import sys
import time
from collections.abc import Sequence
from typing import BinaryIO

from hafast.check.api import Target
from hafast.check.http_exchange import Exchange
from hafast.check.http_parse import PROTOCOLS, ResponseParser, build_request
from hafast.check.http_tls import client_context

__all__ = ["dump_buffer", "main"]

_SHORT = "hTvSIs:V:p:u:m:P:t:"
_LONG = [
    "help", "genhash", "verbose", "use-ssl", "use-sni", "server=", "use-virtualhost=",
    "port=", "url=", "fwmark=", "protocol=", "timeout=",
]

_USAGE = """\
Usage: {prog} COMMAND [OPTIONS]
Commands:
   -s server-address -p port -u url
   -S -s server-address -p port -u url
   -h

Options:
Either long or short options are allowed.
   --use-ssl         -S       Use SSL connection to remote server.
   --use-sni         -I       Use SNI during SSL handshake (uses virtualhost setting; see -V).
   --server          -s       Use the specified remote server address.
   --port            -p       Use the specified remote server port.
   --url             -u       Use the specified remote server url.
   --use-virtualhost -V       Use the specified virtualhost in GET query.
   --verbose         -v       Use verbose mode output.
   --help            -h       Display this short inlined help screen.
   --fwmark          -m       Use the specified FW mark.
   --protocol        -P       Use the specified HTTP protocol - '1.0', 1.0c', '1.1'.
                                1.0c means 1.0 with 'Connection: close'
   --timeout         -t       Timeout in seconds
"""

# check_http.c's section banners for -v
_DELIM_BEGIN = "-----------------------["
_DELIM_END = "]-----------------------\n"
HEADER_HEXA = f"{_DELIM_BEGIN}    HTTP Header Buffer    {_DELIM_END}"
HEADER_ASCII = f"{_DELIM_BEGIN} HTTP Header Ascii Buffer {_DELIM_END}"
HTML_HEXA = f"{_DELIM_BEGIN}        HTML Buffer        {_DELIM_END}"
HTML_HASH = f"{_DELIM_BEGIN}    HTML hash resulting    {_DELIM_END}"
HTML_HASH_FINAL = f"{_DELIM_BEGIN} HTML hash final resulting {_DELIM_END}"

# A failed exchange -> what keepalived's genhash prints (stdout) for it.
_MESSAGES = {
    "tls": "SSL handshake/communication error connecting to",
    "read": "Read error with",
    "reset": "Read error with",
    "send": "Cannot send get request to",
}
_NO_DATA = "no data received from remote webserver"  # keepalived prints it on stderr
# genhash hashes pages a human asked for; the cap only stops an endless body.
BODY_CAP = 1 << 30


def dump_buffer(data: bytes) -> str:
    """keepalived's hex dump: decimal offset, 16 bytes a line, ASCII on the right.

    >>> print(dump_buffer(b"hello"), end="")
    0000  68 65 6c 6c 6f          -                           hello           
    """  # noqa: W291 (the dump pads the last line, as keepalived's does)
    lines = []
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        hexes = [f" {b:02x}" for b in row] + ["   "] * (16 - len(row))
        text = "".join(chr(b) if 0x20 <= b <= 0x7E else "." for b in row).ljust(16)
        lines.append(f"{off & 0xFFFF:04d} {''.join(hexes[:8])} -{''.join(hexes[8:])}   {text}\n")
    return "".join(lines)


class _Usage(Exception):
    """Bad command line: keepalived prints a message (maybe) and the usage."""


class _Options:
    __slots__ = ("fwmark", "port", "protocol", "server", "sni", "ssl", "timeout", "url",
                 "verbose", "vhost")

    def __init__(self) -> None:
        self.server = ""
        self.port = 0
        self.url = ""
        self.ssl = False
        self.sni = False
        self.vhost: str | None = None
        self.verbose = False
        self.protocol = "1.0"
        self.timeout: float | None = None  # keepalived waits for ever by default
        self.fwmark: int | None = None


def _parse(argv: Sequence[str], err: BinaryIO) -> _Options:
    if len(argv) <= 1:  # keepalived: argc <= 2 is "trivially" wrong
        raise _Usage
    try:
        opts, rest = getopt.gnu_getopt(list(argv), _SHORT, _LONG)
    except getopt.GetoptError as exc:
        err.write(f"{exc}\n".encode())
        raise _Usage from exc
    o = _Options()
    have = set()
    for flag, value in opts:
        key = flag.lstrip("-")
        if key in ("h", "help"):
            raise _Usage
        if key in ("T", "genhash"):
            continue
        if key in ("v", "verbose"):
            o.verbose = True
        elif key in ("S", "use-ssl"):
            o.ssl = True
        elif key in ("I", "use-sni"):
            o.sni = True
        elif key in ("s", "server"):
            try:
                o.server = str(ipaddress.ip_address(value))
            except ValueError:
                err.write(f"server should be an IP, not {value}\n".encode())
                raise _Usage from None
            have.add("s")
        elif key in ("V", "use-virtualhost"):
            o.vhost = value
        elif key in ("p", "port"):
            if not value.isdigit() or not 0 < int(value) <= 65535:
                err.write(f"invalid port number '{value}'\n".encode())
                raise _Usage
            o.port = int(value)
            have.add("p")
        elif key in ("u", "url"):
            o.url = value  # keepalived checks the last -u given
            have.add("u")
        elif key in ("m", "fwmark"):
            mark = value.lstrip(" \t")
            if not mark.isdigit():
                err.write(f"invalid fwmark '{value}'\n".encode())
                raise _Usage
            o.fwmark = int(mark)
        elif key in ("P", "protocol"):
            if value not in PROTOCOLS:
                err.write(f"invalid HTTP protocol version '{value}'\n".encode())
                raise _Usage
            o.protocol = value
        elif key in ("t", "timeout"):
            seconds = value.lstrip(" \t")
            if not seconds.isdigit():
                err.write(f"invalid timeout '{value}'\n".encode())
                raise _Usage
            o.timeout = float(int(seconds))
    if rest:
        err.write(f"Unexpected argument(s): {' '.join(rest)} \n".encode())
        raise _Usage
    if have != {"s", "p", "u"}:
        raise _Usage
    return o


def _run(o: _Options, out: BinaryIO, err: BinaryIO) -> int:
    target = Target(o.server, o.port, fwmark=o.fwmark)
    request = build_request(o.url, o.server, o.port, o.protocol, o.vhost)
    parser = ResponseParser(digest=True, body_cap=BODY_CAP)
    verbose = o.verbose
    first_body = [True]

    if verbose:
        def on_header(header: bytes) -> None:
            out.write(dump_buffer(header).encode())
            out.write(HEADER_ASCII.encode())
            out.write(header + b"\n")

        def on_body(piece: bytes) -> None:
            if first_body[0]:
                out.write(HTML_HEXA.encode())
                first_body[0] = False
            out.write(dump_buffer(piece).encode())

        parser.on_header = on_header
        parser.on_body = on_body

    async def exchange() -> tuple[str, str, Exchange, float]:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[tuple[str, str]] = loop.create_future()

        def finish(reason: str, detail: str) -> None:
            if not result.done():
                result.set_result((reason, detail))

        if verbose:
            out.write(HEADER_HEXA.encode())
        ex = Exchange(
            loop, target, request, parser, finish,
            tls_context=client_context() if o.ssl else None,
            sni=o.vhost if o.sni else None,
        )
        start = time.monotonic()
        ex.begin()
        try:
            reason, detail = await asyncio.wait_for(asyncio.shield(result), o.timeout)
        except TimeoutError:
            ex.cancel()
            reason, detail = "timeout", ""
        return reason, detail, ex, time.monotonic() - start

    try:
        import uvloop

        reason, _detail, ex, seconds = uvloop.run(exchange())
    except ImportError:
        reason, _detail, ex, seconds = asyncio.run(exchange())
    usecs = int(seconds * 1e6)

    if reason == "timeout":
        message = {"connect": "Timeout connecting", "tls": "Timeout connecting"}.get(ex.phase)
        if message is None:
            message = "Timeout HTTP read" if ex.got_bytes else "Timeout WEB read"
        out.write(f"{message}\n".encode())
        return 1
    if reason in ("no-data", "header-too-large") or (not reason and not parser.complete):
        out.flush()
        err.write(f"{_NO_DATA}\n".encode())
        return 1
    if reason == "body-too-large":
        out.write(f"body larger than {BODY_CAP} bytes: no digest\n".encode())
        return 1
    if reason:
        if ex.phase == "connect":
            out.write(b"Connection failed\n")
        else:
            out.write(f"{_MESSAGES.get(reason, 'Read error with')}\n".encode())
        return 1
    digest = parser.digest()
    if verbose:
        out.write(b"\n" + HTML_HASH.encode() + dump_buffer(digest).encode())
        out.write(HTML_HASH_FINAL.encode())
    out.write(f"{digest.hex()}\n".encode())
    if verbose:
        out.write(f"\nGlobal response time for [{o.url}] = {usecs} usecs\n".encode())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run genhash with ``argv`` (without the program name); return the exit status.

    Example: ``main(["-s", "10.201.0.1", "-p", "80", "-u", "/fixed"])`` prints the
    digest and returns 0.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        options = _parse(args, err)
    except _Usage:
        err.write(_USAGE.format(prog="genhash").encode())
        err.flush()
        return 1
    try:
        return _run(options, out, err)
    finally:
        out.flush()
        err.flush()


if __name__ == "__main__":
    sys.exit(main())
