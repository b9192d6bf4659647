"""TCP_CHECK: a non-blocking connect, nothing sent; plus the socket helpers the other
connection-based kinds (UDP, DNS, SMTP) share.

TCP_CHECK's connects wait in ONE epoll per loop (:class:`Connector`), which the
loop watches as one reader: per attempt that is one ``epoll_ctl`` (the register;
``close`` unregisters), and every connect that finished in a loop iteration is
settled in one callback, as the C loop in ``benchmarks/c/tcp_connect_loop.c``
does.  ``loop.add_writer``/``remove_writer`` per attempt cost a libuv poll
handle, two ``epoll_ctl`` calls and a callback handle each (about 15 µs of the
56 µs a check cost before).  Writable means the handshake finished, ``SO_ERROR``
says how.  The socket is closed with ``SO_LINGER {1, 0}``, so the server sees a
RST and neither side keeps a TIME_WAIT entry; keepalived closes with a FIN, which
a server cannot tell from a client that hung up politely.  The syscalls of a
plain connect (no bind/mark/device option) run in C, in
:class:`hafast._core.sockset.ConnectSet` (or its Python twin).

The other connection-based kinds (SMTP) keep :class:`Connect`, driven by
``loop.add_writer``: they go on talking over the socket after the connect.

Example::

    kind = TcpKind(TcpCheck(), Target("10.0.0.1", 80), loop)
    attempt = kind.start(print)      # later: ProbeResult(ok=True, ...)
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

from hafast._core.sockset import ConnectSet
from hafast.check.api import NO_ATTEMPT, Attempt, Done, ProbeKind, ProbeResult, Target
from hafast.check.perloop import PerLoop

SO_MARK = getattr(socket, "SO_MARK", 36)  # <asm-generic/socket.h>
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER {on, 0 s}: close with a RST

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
    # The worker's own open-files limit, not the server's fault: the runner
    # reschedules without counting a failure (runner.LOCAL_REASONS).
    errno.EMFILE: "fd-limit",
    errno.ENFILE: "fd-limit",
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
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    except OSError:
        pass
    sock.close()


# ProbeKind's own ``target`` slot, which TcpKind.target reads and writes under its
# property (a subclass cannot drop a slot of its base)
_TARGET_SLOT: Any = ProbeKind.__dict__["target"]


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


OK = ProbeResult(True)

_connectors: PerLoop[Connector] = PerLoop()


class Connector:
    """One epoll on one loop for every TCP_CHECK connect in flight.

    The loop sees one reader (the epoll descriptor); :meth:`ready` collects every
    finished connect and settles them in one pass.  The sockets themselves live in
    :class:`hafast._core.sockset.ConnectSet` (compiled: socket, ``SO_LINGER``,
    connect, ``epoll_ctl``, ``SO_ERROR`` and close in C, no Python socket object
    per attempt); here only ``fd -> attempt``.
    """

    __slots__ = ("connects", "loop", "users", "waiting")

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.connects = ConnectSet()
        self.waiting: dict[int, Connecting] = {}
        self.users = 0
        loop.add_reader(self.connects.fileno(), self.ready)

    @classmethod
    def acquire(cls, loop: Any) -> Connector:
        return _connectors.acquire(loop, lambda: cls(loop))

    def release(self) -> None:
        _connectors.release(self)

    def close(self) -> None:
        _connectors.forget(self)
        for attempt in list(self.waiting.values()):
            attempt.cancel()
        try:
            self.loop.remove_reader(self.connects.fileno())
        except Exception:  # the loop was closed first: nothing left to unhook
            pass
        self.connects.close()

    def ready(self) -> None:
        # Every fd of the batch is closed already (ConnectSet.ready): take all their
        # attempts out BEFORE any callback runs, or a connect a callback starts on a
        # reused number would be taken for an old one later in the same batch.
        waiting = self.waiting
        settled = []
        for fd, err in self.connects.ready():
            attempt = waiting.pop(fd, None)
            if attempt is not None:
                attempt.fd = -1
                settled.append((attempt.done, err))
        for done, err in settled:
            done(failure(err, "connect") if err else OK)


class Connecting:
    """A TCP_CHECK connect in flight (the runner's Attempt)."""

    __slots__ = ("connector", "done", "fd")

    def __init__(self, connector: Connector, fd: int, done: Done) -> None:
        self.connector = connector
        self.fd = fd
        self.done = done

    def cancel(self) -> None:
        fd = self.fd
        if fd >= 0:
            self.fd = -1
            connector = self.connector
            connector.waiting.pop(fd, None)
            connector.connects.cancel(fd)


class TcpKind(ProbeKind):
    """TCP_CHECK: UP when the three-way handshake completes within connect_timeout."""

    __slots__ = ("address", "connector", "family", "plain", "port")
    keyword = "TCP_CHECK"

    def __init__(self, spec: Any, target: Target, loop: Any) -> None:
        self.connector: Connector | None = None
        super().__init__(spec, target, loop)  # sets address, port, family (target below)

    # A plain target (no bind, mark or device option: nearly every TCP_CHECK) is not
    # kept: its address and port are, and the Target is made again when asked (the
    # reload's key, a log line).  80 bytes a check (issue 16).  The slot keeps a
    # target with options, whose connect is made in Python (_start_bound).
    @property
    def target(self) -> Target:
        bound: Target | None = _TARGET_SLOT.__get__(self)
        return bound if bound is not None else Target(self.address, self.port)

    @target.setter
    def target(self, target: Target) -> None:
        self.address = target.address
        self.port = target.port  # None (no port anywhere) connects to 0, as before
        self.family = target.family
        self.plain = target.plain  # the whole connect is then one ConnectSet.start
        _TARGET_SLOT.__set__(self, None if self.plain else target)

    def start(self, done: Done) -> Attempt:
        connector = self.connector
        if connector is None:
            try:
                connector = self.connector = Connector.acquire(self.loop)
            except OSError as exc:
                done(failure(exc.errno or 0, f"epoll: {exc.strerror}"))
                return NO_ATTEMPT
        if self.plain:
            fd = connector.connects.start(self.family, self.address, self.port or 0)
        else:
            bound = self._start_bound(connector, done)
            if bound is None:
                return NO_ATTEMPT
            fd = bound
        if fd < 0:
            done(failure(-fd, "connect"))
            return NO_ATTEMPT
        attempt = Connecting(connector, fd, done)
        connector.waiting[fd] = attempt
        return attempt

    def _start_bound(self, connector: Connector, done: Done) -> int | None:
        """The connect with bind/mark/device options, made in Python, then handed to
        the ConnectSet: the fd, ``-errno``, or None when ``done`` was told already."""
        try:
            sock = open_socket(self.target, socket.SOCK_STREAM)
        except OSError as exc:
            done(failure(exc.errno or 0, f"socket: {exc.strerror}"))
            return None
        try:
            # Set before the connect, so every close (and the cancel's) is a RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            err = sock.connect_ex((self.address, self.port or 0))
        except OSError as exc:  # an address that does not parse
            sock.close()
            done(failure(exc.errno or 0, f"connect: {exc}"))
            return None
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            return -err
        fd = sock.detach()
        err = connector.connects.adopt(fd)
        return fd if err == 0 else err

    def close(self) -> None:
        if self.connector is not None:
            self.connector.release()
            self.connector = None
