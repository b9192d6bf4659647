"""The addresses of this network namespace, from RTNL address events (raw
netlink): what ha_suspend follows in the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Callable, Iterator

log = logging.getLogger("hafast")


NETLINK_ROUTE = 0  # linux/netlink.h
RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x10, 0x100  # linux/rtnetlink.h
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2  # linux/if_addr.h
_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, ifindex
_RTATTR = struct.Struct("=HH")  # length, type
_ADDR_LEN = {socket.AF_INET: 4, socket.AF_INET6: 16}


def parse_addr_messages(data: bytes) -> Iterator[tuple[int, str, int]]:
    """``(message type, address, ifindex)`` of each RTNL address message in ``data``.

    The address is IFA_LOCAL when present (on a point-to-point link IFA_ADDRESS is
    the peer's), else IFA_ADDRESS.  NLMSG_DONE and NLMSG_ERROR come out as
    ``(type, "", 0)`` so a dump knows where it ends.

    >>> body = _IFADDRMSG.pack(socket.AF_INET, 24, 0, 0, 3) + _RTATTR.pack(8, IFA_LOCAL)
    >>> msg = _NLMSGHDR.pack(16 + len(body) + 4, RTM_NEWADDR, 0, 0, 0) + body + bytes([10, 0, 0, 1])
    >>> list(parse_addr_messages(msg))
    [(20, '10.0.0.1', 3)]
    """
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            return
        body = off + _NLMSGHDR.size
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            yield kind, "", 0
        elif kind in (RTM_NEWADDR, RTM_DELADDR) and length >= _NLMSGHDR.size + _IFADDRMSG.size:
            family, _plen, _fl, _scope, index = _IFADDRMSG.unpack_from(data, body)
            want = _ADDR_LEN.get(family)
            attrs: dict[int, bytes] = {}
            a = body + _IFADDRMSG.size
            end = off + length
            while a + _RTATTR.size <= end:
                alen, atype = _RTATTR.unpack_from(data, a)
                if alen < _RTATTR.size or a + alen > end:
                    break
                attrs[atype] = data[a + _RTATTR.size:a + alen]
                a += (alen + 3) & ~3  # NLA_ALIGN
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if want is not None and raw is not None and len(raw) == want:
                yield kind, socket.inet_ntop(family, raw), index
        off += (length + 3) & ~3  # NLMSG_ALIGN


def dump_addresses() -> set[tuple[str, int]]:
    """Every ``(address, ifindex)`` in this network namespace (an RTM_GETADDR dump)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       NETLINK_ROUTE) as s:
        s.settimeout(5.0)
        s.bind((0, 0))
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        s.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETADDR,
                              NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        held: set[tuple[str, int]] = set()
        while True:
            data = s.recv(1 << 16)
            if not data:
                return held
            for kind, address, index in parse_addr_messages(data):
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return held
                if kind == RTM_NEWADDR:
                    held.add((address, index))


class AddressWatch:
    """The addresses of this network namespace, kept current from RTNL events;
    ``on_change(address, present)`` when an address arrives on its first interface
    or leaves its last one (keepalived counts the same address on several
    interfaces likewise).

    Subscribed before the first dump, so nothing falls between the two; a socket
    that overflowed (ENOBUFS) is answered with a fresh dump.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_change: Callable[[str, bool], None]) -> None:
        self.loop = loop
        self.on_change = on_change
        self.held: set[tuple[str, int]] = set()
        self.resyncs = 0
        self._sock: socket.socket | None = None

    def open(self) -> None:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                          | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            self.held = dump_addresses()
        except OSError:
            s.close()
            raise
        self._sock = s
        self.loop.add_reader(s.fileno(), self._readable)

    def addresses(self) -> set[str]:
        return {a for a, _i in self.held}

    def _set(self, held: set[tuple[str, int]]) -> None:
        before, after = self.addresses(), {a for a, _i in held}
        self.held = held
        for address in sorted(after - before):
            self.on_change(address, True)
        for address in sorted(before - after):
            self.on_change(address, False)

    def _readable(self) -> None:
        held = set(self.held)
        lost = False
        while self._sock is not None:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    log.warning("address watch: %s", exc)
                    return
                lost = True
                continue
            for kind, address, index in parse_addr_messages(data):
                if kind == RTM_NEWADDR:
                    held.add((address, index))
                elif kind == RTM_DELADDR:
                    held.discard((address, index))
        if lost:
            # Events were dropped: once the queue is drained (nothing older than
            # the dump is left to apply), the kernel's own table is the truth.
            self.resyncs += 1
            try:
                held = dump_addresses()
            except OSError as exc:
                log.warning("address watch: dump failed: %s", exc)
        self._set(held)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
