"""The addresses of this network namespace, from RTNL address events (raw
netlink): what ha_suspend follows in the parent.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable, Iterator

from hafast.lib import netlink
from hafast.lib.netlink import NLMSG_DONE, NLMSG_ERROR, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR

log = logging.getLogger("hafast")


RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x10, 0x100  # linux/rtnetlink.h
IFA_ADDRESS, IFA_LOCAL = 1, 2  # linux/if_addr.h
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, ifindex
_ADDR_LEN = {socket.AF_INET: 4, socket.AF_INET6: 16}


def parse_addr_messages(data: bytes) -> Iterator[tuple[int, str, int]]:
    """``(message type, address, ifindex)`` of each RTNL address message in ``data``.

    The address is IFA_LOCAL when present (on a point-to-point link IFA_ADDRESS is
    the peer's), else IFA_ADDRESS.  NLMSG_DONE and NLMSG_ERROR come out as
    ``(type, "", 0)`` so a dump knows where it ends.

    >>> body = _IFADDRMSG.pack(socket.AF_INET, 24, 0, 0, 3)
    >>> body += netlink.attr(IFA_LOCAL, bytes([10, 0, 0, 1]))
    >>> list(parse_addr_messages(netlink.pack_message(RTM_NEWADDR, 0, 0, body)))
    [(20, '10.0.0.1', 3)]
    """
    for m in netlink.messages(data):
        if m.kind in (NLMSG_DONE, NLMSG_ERROR):
            yield m.kind, "", 0
        elif m.kind in (RTM_NEWADDR, RTM_DELADDR):
            address = _address(m.body)
            if address is not None:
                yield m.kind, address[0], address[1]


def _address(body: memoryview) -> tuple[str, int] | None:
    """``(address, ifindex)`` of one ifaddrmsg body, or None when it names none."""
    if len(body) < _IFADDRMSG.size:
        return None
    family, _plen, _fl, _scope, index = _IFADDRMSG.unpack_from(body)
    attrs = netlink.parse_attrs(body, _IFADDRMSG.size)
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if raw is None or len(raw) != _ADDR_LEN.get(family):
        return None
    return socket.inet_ntop(family, raw), index


def dump_addresses() -> set[tuple[str, int]]:
    """Every ``(address, ifindex)`` in this network namespace (an RTM_GETADDR dump)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       netlink.NETLINK_ROUTE) as s:
        s.settimeout(5.0)
        s.bind((0, 0))
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        dump = netlink.pack_message(RTM_GETADDR, netlink.NLM_F_REQUEST | netlink.NLM_F_DUMP,
                                    1, body)
        # An error ends the dump with what came before it, as an empty table would.
        replies = netlink.exchange(s, [(1, dump)], dump=True, errors={})
        held: set[tuple[str, int]] = set()
        for m in replies:
            address = _address(m.body) if m.kind == RTM_NEWADDR else None
            if address is not None:
                held.add(address)
        return held


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
        s = netlink.event_socket(RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR, rcvbuf=1 << 20)
        try:
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

        def apply(data: bytes) -> None:
            for kind, address, index in parse_addr_messages(data):
                if kind == RTM_NEWADDR:
                    held.add((address, index))
                elif kind == RTM_DELADDR:
                    held.discard((address, index))

        got = netlink.drain(lambda: self._sock, apply)
        if got.error is not None:
            log.warning("address watch: %s", got.error)
            return
        if got.lost:
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
            netlink.close_watched(self.loop, self._sock)
            self._sock = None
