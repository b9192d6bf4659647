"""The check engine's TCP sockets, pure Python: the readable reference twin of
``sockset_c``.

TCP_CHECK's connects (:class:`ConnectSet`) and plain HTTP_GET's request/reply
exchanges (:class:`FetchSet`) each wait in ONE epoll that the loop watches as one
reader: per attempt one ``epoll_ctl`` (the register; ``close`` unregisters), and
every attempt that finished in a loop iteration is handed back in one call.

Only the attempts' syscalls are here, as in the compiled twin; the sets' contract
(the status numbers, the buffer and budget, the arguments and states refused, a
failure at once) is ``hafast._core.epoll_set``'s, for both twins.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
from typing import Any

from hafast._core import epoll_set as _rules
from hafast._core.epoll_set import DIAL_CONNECT as _DIAL_CONNECT
from hafast._core.epoll_set import DIAL_SOCKET as _DIAL_SOCKET

__all__ = ["ConnectSet", "FetchSet"]


# --------------------------------------------------------------------------- connects

_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
_WATCH = select.EPOLLOUT | select.EPOLLONESHOT
_LINGER_RST = struct.pack("ii", 1, 0)  # struct linger {l_onoff 1, l_linger 0}


def _dial(family: int, address: str, port: int, smart: bool
          ) -> tuple[socket.socket | None, int, int]:
    """Begin a non-blocking TCP connect: ``(sock, 0, 0)``, or ``(None, step, errno)``
    with the step that failed (``_DIAL_SOCKET``: no socket; ``_DIAL_CONNECT``: the
    address, or the connect itself).

    SO_LINGER {1, 0} before the connect: every close of the socket is a RST, no
    TIME_WAIT on either side.  ``smart``: no quick ACKs (HAProxy's "option
    tcp-smart-connect"), for a connection that sends at once: the ACK of the
    SYN-ACK rides on the request, and the reply is not ACKed before the RST: 7
    packets a check instead of 9, each of them costing both ends' TCP on this CPU.
    """
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None, _DIAL_CONNECT, errno.EINVAL
    try:
        socket.inet_pton(family, address)
    except (OSError, UnicodeError):
        return None, _DIAL_CONNECT, errno.EINVAL
    try:
        sock = socket.socket(family, _STREAM)
    except OSError as exc:
        return None, _DIAL_SOCKET, exc.errno or errno.EIO
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    if smart:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
    err = sock.connect_ex((address, port))
    if err not in (0, errno.EINPROGRESS):
        sock.close()
        return None, _DIAL_CONNECT, err
    return sock, 0, 0


class _EpollSet:
    """One epoll: what ConnectSet and FetchSet share."""

    def __init__(self, max_events: int) -> None:
        self._max_events = _rules.check_max_events(max_events)
        self._epoll = select.epoll()

    @property
    def closed(self) -> bool:
        return self._epoll.closed

    def fileno(self) -> int:
        """The epoll descriptor, for ``loop.add_reader``."""
        return self._epoll.fileno()


class ConnectSet(_EpollSet):
    """Non-blocking TCP connects waiting in one epoll (TCP_CHECK's connector).

    ``start`` makes the socket (``SO_LINGER {1, 0}``: every close is a RST and leaves
    no TIME_WAIT), connects and registers it ``EPOLLONESHOT`` for writability (the
    handshake finished; ``SO_ERROR`` says how).  ``ready`` collects every finished
    connect with one ``epoll_wait(0)`` and closes them all BEFORE the caller acts on
    any: a descriptor number a callback reuses cannot be taken for an old one.  The
    set owns its descriptors (by number) until ``ready`` or ``cancel`` closes them.

    Example::

        >>> cs = ConnectSet()
        >>> cs.start(socket.AF_INET, "not an address", 80) == -errno.EINVAL
        True
        >>> cs.cancel(12345), cs.pending
        (False, 0)
        >>> cs.close(); cs.closed
        True
    """

    def __init__(self, max_events: int = _rules.MAX_EVENTS) -> None:
        super().__init__(max_events)
        self._socks: dict[int, socket.socket] = {}

    @property
    def pending(self) -> int:
        return len(self._socks)

    def start(self, family: int, address: str, port: int) -> int:
        """Begin a connect to ``address``:``port``; the fd (>= 0), or ``-errno``."""
        if self._epoll.closed:
            raise _rules.closed("ConnectSet")
        sock, _step, err = _dial(family, address, port, False)
        if sock is None:
            return -err
        # (an immediate success is watched too: epoll reports it writable at once)
        return self._watch(sock)

    def adopt(self, fd: int) -> int:
        """Watch a connect begun elsewhere (a socket with bind/mark options); the set
        owns ``fd`` from now on, even on failure.  0, or ``-errno``."""
        if self._epoll.closed:
            _rules.refuse_adopt(fd)
        try:
            self._epoll.register(fd, _WATCH)  # first: any fd epoll takes is a socket here
        except OSError as exc:
            os.close(fd)
            return -(exc.errno or errno.EIO)
        self._socks[fd] = socket.socket(fileno=fd)
        return 0

    def _watch(self, sock: socket.socket) -> int:
        fd = sock.fileno()
        try:
            self._epoll.register(fd, _WATCH)
        except OSError as exc:
            sock.close()
            return -(exc.errno or errno.EIO)
        self._socks[fd] = sock
        return fd

    def ready(self) -> list[tuple[int, int]]:
        """``[(fd, SO_ERROR), ...]`` of the connects that finished; their fds are closed."""
        if self._epoll.closed:
            return []
        out = []
        socks = self._socks
        for fd, _ in self._epoll.poll(0, self._max_events):
            sock = socks.pop(fd, None)
            if sock is None:
                continue
            try:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError as exc:
                err = exc.errno or errno.EIO
            sock.close()  # closing also takes it out of the epoll set
            out.append((fd, err))
        return out

    def cancel(self, fd: int) -> bool:
        """Abandon the connect on ``fd`` (closed with a RST); False if not ours."""
        sock = self._socks.pop(fd, None)
        if sock is None:
            return False
        sock.close()
        return True

    def close(self) -> None:
        """Close every connect in flight and the epoll."""
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()
        self._epoll.close()


# --------------------------------------------------------------------------- fetches

_READ_SIZE = _rules.READ_SIZE


class _Fetch:
    __slots__ = ("owner", "request", "sent", "sock")

    def __init__(self, sock: socket.socket, owner: Any, request: bytes, sent: int) -> None:
        self.sock = sock
        self.owner = owner
        self.request = request
        self.sent = sent


def _again(exc: OSError) -> bool:
    return isinstance(exc, (BlockingIOError, InterruptedError))


class FetchSet(_EpollSet):
    """Request/reply exchanges on plain TCP connections (HTTP_GET's fetcher), all
    waiting in one epoll that the loop watches as one reader.

    ``start`` makes the socket (``SO_LINGER {1, 0}``: every close is a RST, no
    TIME_WAIT on either side), connects and sends the request at once: over
    loopback or a veth the handshake has usually completed inside ``connect``;
    Linux says EAGAIN while the socket is in SYN_SENT and the connect's own error
    once it failed.  What the socket did not take waits for writability (the
    socket stays readable too: a server may answer before reading it all).

    ``ready`` makes one ``epoll_wait(0)`` and, per fetch, sends the rest of its
    request or reads until EAGAIN, EOF, an error or a full buffer (the server's
    FIN usually follows its reply at once: seeing it now saves a round trip),
    returning ``(fd, owner, data, status)``: ``data`` the bytes read in this call
    (None: nothing), ``status`` 0 while the fetch goes on, else what ended it:
    ``EOF``, or a stage (``CONNECT``, ``SEND``, ``READ``) ORed with the errno.  An
    ended fetch's fd is closed before ``ready`` returns, so a number that a
    callback reuses cannot be taken for the old fetch; ``owner`` (whatever
    ``start`` was given) names the fetch without looking the number up.  The set
    keeps no reply bytes between calls: a never-ending body is the caller's to
    stop (``cancel``).  Each call reads at most ``BUDGET`` bytes in all; the rest
    stay ready (level-triggered) for the next call.

    ``start`` returns the fd, or ``-(stage | errno)`` when it failed at once
    (``CONNECT``: the address, the connect or the first send; ``SOCKET``: no
    socket or no epoll slot).

    Example::

        >>> fs = FetchSet()
        >>> fs.start(socket.AF_INET, "not an address", 80, b"GET /") == -(
        ...     FetchSet.CONNECT | errno.EINVAL)
        True
        >>> fs.cancel(12345), fs.pending
        (False, 0)
        >>> fs.close(); fs.closed
        True
    """

    OPEN = _rules.OPEN
    EOF = _rules.EOF
    CONNECT = _rules.CONNECT
    SEND = _rules.SEND
    READ = _rules.READ
    SOCKET = _rules.SOCKET
    STAGE = _rules.STAGE
    READ_SIZE = _rules.READ_SIZE
    BUDGET = _rules.BUDGET

    def __init__(self, max_events: int = _rules.MAX_EVENTS) -> None:
        super().__init__(max_events)
        self._fetches: dict[int, _Fetch] = {}
        self._buf = memoryview(bytearray(_READ_SIZE))

    @property
    def pending(self) -> int:
        return len(self._fetches)

    def start(self, family: int, address: str, port: int, request: bytes,
              owner: Any = None) -> int:
        """Connect to ``address``:``port`` and send ``request``: the fd (>= 0), or
        ``-(stage | errno)`` when it failed at once."""
        if self._epoll.closed:
            raise _rules.closed("FetchSet")
        sock, step, err = _dial(family, address, port, True)
        if sock is None:
            return _rules.failed_at_once(step, err)
        try:
            sent = sock.send(request, socket.MSG_NOSIGNAL)
        except OSError as exc:
            if not _again(exc):
                sock.close()
                return -(self.CONNECT | (exc.errno or errno.EIO))
            sent = 0
        fd = sock.fileno()
        mask = select.EPOLLIN if sent == len(request) else select.EPOLLIN | select.EPOLLOUT
        try:
            self._epoll.register(fd, mask)
        except OSError as exc:
            sock.close()
            return -(self.SOCKET | (exc.errno or errno.EIO))
        self._fetches[fd] = _Fetch(sock, owner, request if sent < len(request) else b"", sent)
        return fd

    def _send_rest(self, fd: int, fetch: _Fetch) -> int:
        """Writable (or an error): the connect's outcome, then the rest of the
        request.  0 (goes on), or the status that ended it."""
        sock = fetch.sock
        if fetch.sent == 0:
            # Nothing went out yet: the handshake just finished, SO_ERROR says how.
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return self.CONNECT | err
        try:
            fetch.sent += sock.send(memoryview(fetch.request)[fetch.sent:], socket.MSG_NOSIGNAL)
        except OSError as exc:
            return 0 if _again(exc) else self.SEND | (exc.errno or errno.EIO)
        if fetch.sent == len(fetch.request):
            fetch.request = b""
            try:
                self._epoll.modify(fd, select.EPOLLIN)
            except OSError as exc:
                return self.SEND | (exc.errno or errno.EIO)
        return 0

    def _read(self, fetch: _Fetch) -> tuple[int, int]:
        """Read to EAGAIN, EOF, an error or a full buffer: (bytes, status)."""
        buf, have = self._buf, 0
        while have < _READ_SIZE:
            try:
                got = fetch.sock.recv_into(buf[have:])
            except OSError as exc:
                return have, (0 if _again(exc) else self.READ | (exc.errno or errno.EIO))
            if not got:
                return have, self.EOF
            have += got
        return have, 0

    def ready(self) -> list[tuple[int, Any, bytes | None, int]]:
        """``[(fd, owner, data, status), ...]``: what each fetch read in this call
        and how it ended (0: it goes on); an ended fetch's fd is closed already."""
        if self._epoll.closed:
            return []
        out: list[tuple[int, Any, bytes | None, int]] = []
        fetches = self._fetches
        budget = self.BUDGET
        for fd, events in self._epoll.poll(0, self._max_events):
            if budget <= 0:
                break  # level-triggered: the rest are reported again next time
            fetch = fetches.get(fd)
            if fetch is None:
                continue
            status = have = 0
            if fetch.request and events & (select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
                status = self._send_rest(fd, fetch)
            if not status and events & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                have, status = self._read(fetch)
                budget -= have
            if not have and not status:
                continue
            data = bytes(self._buf[:have]) if have else None
            if status:
                del fetches[fd]
                fetch.sock.close()  # closing also takes it out of the epoll set
            out.append((fd, fetch.owner, data, status))
        return out

    def cancel(self, fd: int) -> bool:
        """Abandon the fetch on ``fd`` (closed with a RST); False if not ours."""
        fetch = self._fetches.pop(fd, None)
        if fetch is None:
            return False
        fetch.sock.close()
        return True

    def close(self) -> None:
        """Close every fetch in flight and the epoll."""
        fetches, self._fetches = self._fetches, {}
        for fetch in fetches.values():
            fetch.sock.close()
        self._epoll.close()
