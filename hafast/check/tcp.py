"""TCP_CHECK: a non-blocking connect, nothing sent; plus the socket helpers the other
connection-based kinds (UDP, DNS, SMTP) share.

The connect is driven by ``loop.add_writer`` and a plain callback (no
``sock_connect`` coroutine, no Task): writable means the handshake finished,
``SO_ERROR`` says how.  The socket is closed with ``SO_LINGER {1, 0}``, so the
server sees a RST and neither side keeps a TIME_WAIT entry; keepalived closes
with a FIN, which a server cannot tell from a client that hung up politely.

Example::

    kind = TcpKind(TcpCheck(), Target("10.0.0.1", 80), loop)
    attempt = kind.start(print)      # later: ProbeResult(ok=True, ...)
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

from hafast.check.api import NO_ATTEMPT, Attempt, Done, ProbeKind, ProbeResult, Target, register

SO_MARK = getattr(socket, "SO_MARK", 36)  # <asm-generic/socket.h>
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
_LINGER_RST = struct.pack("ii", 1, 0)

# errno -> the stable reason name that becomes a failure counter.
REASONS: dict[int, str] = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.ETIMEDOUT: "timeout",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.EHOSTDOWN: "unreachable",
    errno.EADDRNOTAVAIL: "bind",
    errno.EADDRINUSE: "bind",
    errno.EPERM: "denied",
    errno.EACCES: "denied",
}


def failure(err: int, what: str = "") -> ProbeResult:
    """A failed result for ``errno`` ``err``."""
    return ProbeResult(False, REASONS.get(err, "error"), what or errno.errorcode.get(err, str(err)))


def open_socket(target: Target, sock_type: int) -> socket.socket:
    """A non-blocking socket with the target's bindto/bind_port/fwmark/bind_if applied.

    Raises OSError (the caller turns it into a failed result).
    """
    family = target.family
    sock = socket.socket(family, sock_type | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if target.fwmark is not None:
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, target.fwmark)
        if target.bind_if is not None:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, target.bind_if.encode())
        if target.bindto is not None or target.bind_port is not None:
            if target.bind_port is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
            sock.bind((target.bindto or wildcard, target.bind_port or 0))
    except BaseException:
        sock.close()
        raise
    return sock


def close_rst(sock: socket.socket) -> None:
    """Close so the peer gets a RST and no TIME_WAIT stays behind."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()


class Connect:
    """A connect in flight; ``on_connected(sock)`` continues when it succeeds, else
    ``done`` gets the failure.  Subclasses (SMTP) take over the socket after connect.
    """

    __slots__ = ("done", "fd", "kind", "sock")

    def __init__(self, kind: ProbeKind, done: Done, sock: socket.socket) -> None:
        self.kind = kind
        self.done = done
        self.sock: socket.socket | None = sock
        self.fd = sock.fileno()

    def begin(self) -> Attempt:
        sock = self.sock
        assert sock is not None
        target = self.kind.target
        err = sock.connect_ex((target.address, target.port or 0))
        if err == errno.EINPROGRESS:
            loop: Any = self.kind.loop
            loop.add_writer(self.fd, self.writable)
            return self
        if err == 0:
            self.connected()
            return self if self.sock is not None else NO_ATTEMPT
        self.finish(failure(err, "connect"))
        return NO_ATTEMPT

    def writable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        loop: Any = self.kind.loop
        loop.remove_writer(self.fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.finish(failure(err, "connect"))
        else:
            self.connected()

    def connected(self) -> None:
        self.finish(ProbeResult(True))

    def release(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            loop: Any = self.kind.loop
            loop.remove_writer(self.fd)
            loop.remove_reader(self.fd)
            close_rst(sock)

    def finish(self, result: ProbeResult) -> None:
        self.release()
        self.done(result)

    def cancel(self) -> None:
        self.release()


@register
class TcpKind(ProbeKind):
    """TCP_CHECK: UP when the three-way handshake completes within connect_timeout."""

    __slots__ = ()
    keyword = "TCP_CHECK"

    def start(self, done: Done) -> Attempt:
        try:
            sock = open_socket(self.target, socket.SOCK_STREAM)
        except OSError as exc:
            done(failure(exc.errno or 0, f"socket: {exc.strerror}"))
            return NO_ATTEMPT
        return Connect(self, done, sock).begin()
