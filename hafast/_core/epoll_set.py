"""``ConnectSet``'s and ``FetchSet``'s logic outside their inner loops: once, for
both ``sockset`` twins.

Each twin keeps only its hot path, the syscalls of an attempt: ``start`` (socket,
options, connect, the first send, the epoll register), ``ready`` (one
``epoll_wait(0)`` and, per socket, ``SO_ERROR``, the rest of the request, the
reads, the close), ``cancel`` and ``close`` (the compiled twin on raw descriptors,
the pure twin on socket objects).  What is left is the sets' contract, and it
lives here: the numbers a caller sees (a fetch's status: the stage in the high
bits, the errno in the low 16), the read buffer and the budget of one ``ready``,
the default epoll batch, the arguments and states refused, and how a failure at
once is spelled.  Both twins read these names at import, so a change here is a
change to both; ``tests/unit/test_fetchset.py`` holds the twins' class attributes
equal.

None of it runs per attempt that goes well: a steady check calls nothing here.

Example, a fetch whose connect failed at once, and the words of a status::

    >>> import errno
    >>> status = -failed_at_once(DIAL_CONNECT, errno.ECONNREFUSED)
    >>> status & STAGE == CONNECT, status & ERRNO == errno.ECONNREFUSED
    (True, True)
    >>> -failed_at_once(DIAL_SOCKET, errno.EMFILE) & STAGE == SOCKET
    True
    >>> check_max_events(0)
    Traceback (most recent call last):
    ...
    ValueError: max_events must be at least 1
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["BUDGET", "CONNECT", "DIAL_CONNECT", "DIAL_SOCKET", "EOF", "ERRNO",
           "MAX_EVENTS", "OPEN", "READ", "READ_SIZE", "SEND", "SOCKET", "STAGE",
           "check_max_events", "closed", "failed_at_once", "refuse_adopt"]

MAX_EVENTS = 4096  # events one ready() takes from the epoll; the rest wait for the next

# What ended a fetch (``status`` in FetchSet.ready's tuples, ``-status`` from its
# start): the stage in the high bits, the errno in the low 16.  0: it goes on.
OPEN = 0
EOF = 1
CONNECT = 0x10000  # the connect failed (or the first send said how it failed)
SEND = 0x20000  # sending the rest of the request failed
READ = 0x30000  # reading the reply failed
SOCKET = 0x40000  # no socket (socket(), epoll_ctl): nothing was tried
STAGE = 0xFFFF0000
ERRNO = 0xFFFF

READ_SIZE = 256 * 1024  # one read buffer per set; a chunk is at most this
BUDGET = 4 * READ_SIZE  # bytes read per ready() before yielding to the loop

# Which step of a twin's dial failed.
DIAL_SOCKET = 1  # socket(): nothing was tried
DIAL_CONNECT = 2  # the address, or connect() itself


def check_max_events(max_events: int) -> int:
    """``max_events``, if an epoll batch can be that big."""
    if max_events < 1:
        raise ValueError("max_events must be at least 1")
    return max_events


def closed(kind: str) -> ValueError:
    """What ``start`` (or ``adopt``) on a closed set raises."""
    return ValueError(f"{kind} is closed")


def refuse_adopt(fd: int) -> None:
    """``adopt`` on a closed set: the set owns ``fd`` even so, so it closes it.
    (A number that was no descriptor still gets the closed set's error, in both
    twins: the compiled one's close(2) never raised.)"""
    with contextlib.suppress(OSError):
        os.close(fd)
    raise closed("ConnectSet")


def failed_at_once(step: int, err: int) -> int:
    """``FetchSet.start``'s answer when its dial failed at ``step`` with ``err``:
    ``-(SOCKET | err)`` when there was no socket, else ``-(CONNECT | err)``."""
    return -((SOCKET if step == DIAL_SOCKET else CONNECT) | err)
