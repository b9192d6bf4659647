"""Plain HTTP_GET fetches (no TLS, no bindto/bind_port/bind_if/fwmark): one
:class:`Fetcher` per loop runs every one in flight.

Every fetch waits in ONE epoll, which the loop watches as one reader, and the
socket, connect, send, reads and close run in C
(:class:`hafast._core.sockset.FetchSet`): per check no Python socket, no libuv poll
handle, no ``epoll_ctl`` pair, no reader callback; each reader wake-up hands back
what every ready fetch read (the FIN usually in the same pass) to its attempt,
which feeds its parser.  Measured side by side on the lab
(benchmarks/test_bench_http.py, 4,096 nginx servers, 64 in flight): this path costs
about the CPU per check that wrk spends per request (52 µs, ~85% of it in the
kernel's TCP); the :class:`hafast.check.http_exchange.Exchange` it replaced cost
67 µs, ``create_connection`` + Protocol (a Task per check) ~1.7x, pycurl's multi
interface ~3.5x (and libcurl cannot send keepalived's request byte for byte).

A fetch that ended other than at EOF is named by :func:`ending` in the Exchange's
words, so a failure counts under the same reason on either path.

Example::

    fetcher = Fetcher.acquire(loop)
    fd = fetcher.fetches.start(socket.AF_INET, "10.0.0.1", 80, request, attempt)
    # each wake-up: attempt.fetched(fd, data, status), until status is not 0
    fetcher.release()
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from typing import Any

from hafast._core.sockset import FetchSet
from hafast.check import tcp
from hafast.check.http_exchange import connect_detail
from hafast.check.perloop import PerLoop

__all__ = ["Fetcher", "ending"]

_CONNECT_REASONS = tcp.REASONS

log = logging.getLogger("hafast.check")


def _os_error(err: int) -> str:
    return str(OSError(err, os.strerror(err)))  # "[Errno 104] Connection reset by peer"


# FetchSet stage -> (reason, detail) of a fetch that failed there: the same words as
# Exchange's for the same failure (a counter must not change name with the path).
_ENDINGS: dict[int, Callable[[int], tuple[str, str]]] = {
    FetchSet.CONNECT: lambda err: (_CONNECT_REASONS.get(err, "connect"), connect_detail(err)),
    FetchSet.SEND: lambda err: (_CONNECT_REASONS.get(err, "send"), f"send: {_os_error(err)}"),
    FetchSet.READ: lambda err: (
        "reset" if err == errno.ECONNRESET else "read", f"read: {_os_error(err)}"
    ),
    FetchSet.SOCKET: lambda err: (_CONNECT_REASONS.get(err, "socket"), f"socket: {_os_error(err)}"),
}
_STAGE = FetchSet.STAGE


def ending(status: int) -> tuple[str, str]:
    """(reason, detail) for a FetchSet status (or ``-start()``) other than EOF."""
    return _ENDINGS.get(status & _STAGE, _ENDINGS[FetchSet.CONNECT])(status & 0xFFFF)


_fetchers: PerLoop[Fetcher] = PerLoop()


class Fetcher:
    """One epoll on one loop for every plain HTTP_GET fetch in flight.

    The loop sees one reader (the epoll descriptor); :meth:`ready` hands each
    fetch's bytes to its attempt's parser and settles the fetches that ended, in
    one pass.  The sockets live in :class:`hafast._core.sockset.FetchSet`, which
    also holds each fetch's attempt (its ``owner``): no ``fd -> attempt`` map.
    Shared by every :class:`hafast.check.http.HttpGetKind` of the loop
    (``acquire``/``release``).
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

