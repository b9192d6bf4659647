"""The netlink process connector (``CONFIG_PROC_EVENTS``), as a hint for vrrp_track_process.

keepalived 2.2.7 counts processes from these events alone.  The kernel sends them only
to sockets in the initial network namespace and only to CAP_NET_ADMIN: elsewhere the
"listen" request fails with ECONNREFUSED (errno 111, the error keepalived logs before it
keeps its instances in FAULT).  They also carry pids as the initial pid namespace numbers
them.  So hafast never counts from them: an event only says "read this pid now"
(:class:`hafast.vrrp.procwatch.ProcessWatch` reads it, as its scan would, a second
later), which makes a start or an exec seen in milliseconds where the connector works,
and changes nothing where it does not.

Layouts are linux/connector.h (``struct cn_msg``) and linux/cn_proc.h
(``struct proc_event``); the netlink framing is :mod:`hafast.lib.netlink`'s.

Example::

    conn = ProcConnector(loop, on_event=lambda what, pid: ..., on_lost=rescan)
    if not conn.open():
        ...  # conn.error says why (errno 111 in a network namespace)
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterator

from hafast.lib.netlink import NLMSG_DONE, NLMSG_ERROR, drain, messages, pack_message

log = logging.getLogger("hafast.vrrp.track")

NETLINK_CONNECTOR = 11  # linux/netlink.h
CN_IDX_PROC = CN_VAL_PROC = 1  # linux/connector.h
PROC_CN_MCAST_LISTEN, PROC_CN_MCAST_IGNORE = 1, 2  # linux/cn_proc.h
# enum what (linux/cn_proc.h)
PROC_EVENT_NONE, PROC_EVENT_FORK, PROC_EVENT_EXEC = 0, 1, 2
PROC_EVENT_COMM, PROC_EVENT_EXIT = 0x200, 0x80000000
NLMSG_NOOP = 1

CN_MSG = struct.Struct("=IIIIHH")  # id.idx, id.val, seq, ack, len, flags
EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns; event_data follows
PIDS = struct.Struct("=ii")  # process_pid, process_tgid (exec, comm, exit start so)
FORK = struct.Struct("=iiii")  # parent_pid, parent_tgid, child_pid, child_tgid
OP = struct.Struct("=I")


def listen_message(port: int, listen: bool = True) -> bytes:
    """The request that starts (or stops) the events for this socket."""
    op = PROC_CN_MCAST_LISTEN if listen else PROC_CN_MCAST_IGNORE
    body = CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, OP.size, 0) + OP.pack(op)
    return pack_message(NLMSG_DONE, 0, 0, body, port)


def parse_events(data: bytes | memoryview) -> Iterator[tuple[int, int, int]]:
    """``(what, pid, parent)`` for each event of a whole process in ``data``: a thread's
    fork, exec, rename or exit is skipped; ``parent`` is the forking process (forks
    only, else 0).  PROC_EVENT_NONE is the kernel's answer to the listen request.

    >>> ev = CN_MSG.pack(1, 1, 0, 0, 32, 0) + EVENT.pack(PROC_EVENT_FORK, 0, 0)
    >>> list(parse_events(pack_message(NLMSG_DONE, 0, 0, ev + FORK.pack(7, 7, 9, 9))))
    [(1, 9, 7)]
    >>> list(parse_events(pack_message(NLMSG_DONE, 0, 0, ev + FORK.pack(7, 7, 10, 9))))
    []
    """
    for m in messages(data):
        if m.kind in (NLMSG_ERROR, NLMSG_NOOP) or len(m.body) < CN_MSG.size + EVENT.size:
            continue
        idx, val, _seq, _ack, _len, _flags = CN_MSG.unpack_from(m.body)
        if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC):
            continue
        what = EVENT.unpack_from(m.body, CN_MSG.size)[0]
        at = CN_MSG.size + EVENT.size
        if what == PROC_EVENT_NONE:
            yield (what, 0, 0)
        elif what == PROC_EVENT_FORK and len(m.body) >= at + FORK.size:
            _ppid, ptgid, pid, tgid = FORK.unpack_from(m.body, at)
            if pid == tgid:
                yield (what, tgid, ptgid)
        elif what in (PROC_EVENT_EXEC, PROC_EVENT_COMM, PROC_EVENT_EXIT) and \
                len(m.body) >= at + PIDS.size:
            pid, tgid = PIDS.unpack_from(m.body, at)
            if pid == tgid:
                yield (what, tgid, 0)


class ProcConnector:
    """A process-connector socket on the loop; ``on_event(what, pid, parent)`` for each
    event, ``on_lost()`` when the kernel dropped some (the socket buffer overran)."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_event: Callable[[int, int, int], None],
                 on_lost: Callable[[], None]) -> None:
        self.loop = loop
        self.on_event = on_event
        self.on_lost = on_lost
        self.sock: socket.socket | None = None
        self.error: str | None = None
        self.confirmed = False  # the kernel answered the listen request
        self.events = 0
        self.lost = 0

    def open(self) -> bool:
        """Subscribe; False (and :attr:`error`) where the kernel will not send events."""
        try:
            sock = socket.socket(socket.AF_NETLINK,
                                 socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                 NETLINK_CONNECTOR)
        except OSError as exc:  # EPROTONOSUPPORT: a kernel without CONFIG_PROC_EVENTS
            self.error = f"errno {exc.errno} ({os.strerror(exc.errno or 0)})"
            return False
        try:
            sock.bind((0, CN_IDX_PROC))
            sock.send(listen_message(sock.getsockname()[0]))
        except OSError as exc:
            # ECONNREFUSED: not the initial network namespace; EPERM: no CAP_NET_ADMIN
            self.error = f"errno {exc.errno} ({os.strerror(exc.errno or 0)})"
            sock.close()
            return False
        self.sock = sock
        self.loop.add_reader(sock.fileno(), self._readable)
        return True

    def _readable(self) -> None:
        # only the kernel speaks here
        got = drain(lambda: self.sock, self._dispatch, bufsize=4096, kernel_only=True,
                    on_overrun=self._overrun)
        if got.error is not None:
            log.warning("process connector: %s; events off", got.error)
            self.close()

    def _overrun(self) -> None:
        self.lost += 1
        self.on_lost()

    def _dispatch(self, data: bytes) -> None:
        for what, pid, parent in parse_events(data):
            if what == PROC_EVENT_NONE:
                self.confirmed = True
                continue
            self.events += 1
            self.on_event(what, pid, parent)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        self.loop.remove_reader(sock.fileno())
        try:
            sock.send(listen_message(sock.getsockname()[0], listen=False))
        except OSError:
            pass
        sock.close()
