"""Netlink framing, written once: the header and attribute layouts, packing and
parsing messages and attributes, a send-then-gather-acks helper, and an event
socket's opening, drain and closing.

Everyone here speaks netlink on a plain socket (RTNL address and link events,
VIP addresses and routes, the IPVS generic-netlink family): pyroute2 0.9's
asyncio sockets cannot run on uvloop, and its synchronous socket costs an event
loop turn per request.  What goes inside a message (ifaddrmsg, genlmsghdr, the
IPVS attributes) stays with its user; the framing around it lives here.

Layouts are linux/netlink.h: ``struct nlmsghdr`` (16 bytes), then the family's
header, then attributes (``struct nlattr``, the same four bytes as rtnetlink's
``struct rtattr``), each padded to NLMSG_ALIGNTO / NLA_ALIGNTO = 4.

>>> msg = pack_message(RTM_NEWADDR, NLM_F_REQUEST, 7, attr(2, bytes([10, 0, 0, 1])))
>>> [(m.kind, m.seq, dict(parse_attrs(m.body))[2].tobytes()) for m in messages(msg)]
[(20, 7, b'\\n\\x00\\x00\\x01')]
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # annotations only: hafast -t reaches this module, and asyncio is
    import asyncio  # 60 ms of its start-up (hafast.net.neighbours, the nft backend)

# linux/netlink.h
NETLINK_ROUTE = 0
NETLINK_GENERIC = 16
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH (GET requests)
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400  # NEW requests
NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER
# linux/rtnetlink.h: message types the callers here share.
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26

NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
NLATTR = struct.Struct("=HH")  # length, type (struct nlattr == struct rtattr)
NLMSGERR = struct.Struct("=i")  # struct nlmsgerr starts with the negative errno (0: ack)


class Message(NamedTuple):
    """One netlink message: its header fields and its body (after the header)."""

    kind: int
    flags: int
    seq: int
    body: memoryview


def align(length: int) -> int:
    """NLMSG_ALIGN / NLA_ALIGN: round up to 4 bytes.

    >>> align(5), align(8)
    (8, 8)
    """
    return (length + 3) & ~3


def pack_message(kind: int, flags: int, seq: int, body: bytes, port: int = 0) -> bytes:
    """A whole message: the nlmsghdr, its length filled in, then ``body``."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, port) + body


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes (the length counts the payload, not the pad).

    >>> attr(3, b"eth").hex()
    '0700030065746800'
    """
    return NLATTR.pack(NLATTR.size + len(payload), kind) + payload + bytes(-len(payload) % 4)


def messages(data: bytes | memoryview) -> Iterator[Message]:
    """The messages of one datagram, in order; stops at a truncated or malformed one.

    >>> [m.kind for m in messages(pack_message(3, 0, 1, b"") * 2)]
    [3, 3]
    """
    mv = memoryview(data)
    off = 0
    while off + NLMSGHDR.size <= len(mv):
        length, kind, flags, seq, _port = NLMSGHDR.unpack_from(mv, off)
        if length < NLMSGHDR.size or off + length > len(mv):
            return
        yield Message(kind, flags, seq, mv[off + NLMSGHDR.size:off + length])
        off += align(length)


def parse_attrs(data: bytes | memoryview, start: int = 0,
                end: int | None = None) -> dict[int, memoryview]:
    """``{type: payload}`` of the attributes in ``data[start:end]`` (nested flags
    stripped; a repeated type keeps its last value); stops at a malformed one.

    >>> {k: v.tobytes() for k, v in parse_attrs(attr(1, b"\\x01") + attr(2, b"")).items()}
    {1: b'\\x01', 2: b''}
    """
    mv = memoryview(data)
    end = len(mv) if end is None else end
    out: dict[int, memoryview] = {}
    pos = start
    while pos + NLATTR.size <= end:
        length, kind = NLATTR.unpack_from(mv, pos)
        if length < NLATTR.size or pos + length > end:
            break
        out[kind & NLA_TYPE_MASK] = mv[pos + NLATTR.size:pos + length]
        pos += align(length)
    return out


def error_code(body: memoryview) -> int:
    """The errno an NLMSG_ERROR body carries, positive; 0 for an ack."""
    return -int(NLMSGERR.unpack_from(body)[0]) if len(body) >= NLMSGERR.size else 0


def exchange(sock: socket.socket, requests: Sequence[tuple[int, bytes]], *, dump: bool = False,
             errors: dict[int, int] | None = None, bufsize: int = 1 << 16) -> list[Message]:
    """Send ``requests`` (``(seq, message)`` pairs) in one send and gather the replies
    until every sequence number is answered: by an NLMSG_ERROR (an ack or an error),
    by NLMSG_DONE, or, unless ``dump``, by its first reply that is not NLM_F_MULTI.

    Returns the other messages (the data replies).  An error lands in
    ``errors[seq]`` when ``errors`` is given, else raises OSError.  Blocking: for a
    socket whose kernel side answers inside ``send`` (rtnetlink, genetlink) that is
    microseconds, never a wait on a peer.

    Example (any namespace)::

        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as s:
            dump = pack_message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, bytes(8))
            replies = exchange(s, [(1, dump)], dump=True)
    """
    sock.send(b"".join(m for _, m in requests))
    waiting = {seq for seq, _ in requests}
    out: list[Message] = []
    while waiting:
        for m in messages(sock.recv(bufsize)):
            if m.kind == NLMSG_ERROR:
                code = error_code(m.body)
                if code and errors is not None:
                    errors[m.seq] = code
                elif code:
                    raise OSError(code, os.strerror(code))
                waiting.discard(m.seq)
            elif m.kind == NLMSG_DONE:
                waiting.discard(m.seq)
            else:
                out.append(m)
                if not dump and not m.flags & NLM_F_MULTI:
                    waiting.discard(m.seq)
    return out


class Drained(NamedTuple):
    """What :func:`drain` met: ``lost``, how many times the kernel said it had dropped
    messages (ENOBUFS: the receive buffer overran); ``error``, the read error that
    stopped it (None: the queue was empty or the socket gone)."""

    lost: int
    error: OSError | None


def event_socket(groups: int = 0, *, protocol: int = NETLINK_ROUTE,
                 rcvbuf: int | None = None) -> socket.socket:
    """A non-blocking netlink socket that listens for the kernel's events: bound to the
    multicast ``groups`` bind mask (0: the caller joins groups by number afterwards,
    NETLINK_ADD_MEMBERSHIP), with a receive buffer of ``rcvbuf`` bytes when given (a
    burst of address or route changes would otherwise overrun the default and cost a
    resync).  Closed again if it cannot be set up; the OSError is the caller's."""
    s = socket.socket(socket.AF_NETLINK,
                      socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, protocol)
    try:
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.bind((0, groups))
    except OSError:
        s.close()
        raise
    return s


def close_watched(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Stop ``loop`` reading ``sock`` and close it.  The loop may be closed already
    (a watcher closed at shutdown, after its loop): the socket is closed all the same."""
    with contextlib.suppress(Exception):
        loop.remove_reader(sock.fileno())
    sock.close()


def drain(current: Callable[[], socket.socket | None], on_datagram: Callable[[bytes], None],
          *, bufsize: int = 1 << 16, kernel_only: bool = False,
          on_overrun: Callable[[], None] | None = None) -> Drained:
    """Read the datagrams queued on a non-blocking netlink socket until it would block,
    handing each to ``on_datagram`` before the next is read.

    ``current()`` is asked for the socket before every read and the drain stops when
    it says None: a callback may close the socket (its owner's ``close()`` drops it),
    and what is still queued then belongs to nobody.  Reading one datagram at a time
    is what makes that safe.  A read error other than EAGAIN and ENOBUFS stops the
    drain and is returned, not raised, so that an OSError a callback raises is never
    taken for the socket's (it propagates): what a broken socket means (log it,
    close it) is the owner's call.

    The callers differ, so these are parameters rather than one policy:
    ``on_overrun`` is called at the ENOBUFS itself, where the owner wants to hear of
    it at once (ProcConnector counts each and has its process watch read everything
    again); the RTNL watchers act once, after the drain, on the returned count (their
    answer, a fresh dump or a full check, must come after every queued event).
    ``kernel_only`` drops datagrams whose sender is not the kernel (port id 0), as
    ProcConnector always has; the RTNL watchers never checked the sender (so they
    also read from any datagram socket, as their tests feed them).

    Example::

        got = drain(lambda: self._sock, self._apply)
        if got.error is None and got.lost:
            self._resync()
    """
    lost = 0
    while (sock := current()) is not None:
        try:
            if kernel_only:
                data, (sender, _groups) = sock.recvfrom(bufsize)
                if sender != 0:
                    continue
            else:
                data = sock.recv(bufsize)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                return Drained(lost, exc)
            # the socket stays usable: the messages after the gap are still queued
            lost += 1
            if on_overrun is not None:
                on_overrun()
            continue
        on_datagram(data)
    return Drained(lost, None)


def request(sock: socket.socket, seq: int, message: bytes) -> int:
    """Send one request that asks for an ack (NLM_F_ACK); 0 or the errno it got.

    Example (root)::

        err = request(sock, 1, pack_message(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, 1, body))
    """
    errors: dict[int, int] = {}
    # NLM_F_ACK guarantees an NLMSG_ERROR: wait for it as for a dump's end, so a data
    # reply (NLM_F_ECHO) cannot end the wait and leave the ack for the next request.
    exchange(sock, [(seq, message)], dump=True, errors=errors)
    return errors.get(seq, 0)
