"""Where a directly connected address sits on the link: its device and MAC address.

LVS-DR on nftables (:mod:`hafast.lvs.nft_dr`) hands each packet to the real server's
MAC itself, as IPVS's DR does through the route to the real server: it needs the
device the route to the real server leaves by, that device's own MAC (the source
of the rewritten frame, so that no switch learns the client's router on the
director's port) and the real server's MAC from the neighbour table.

Lookups are rtnetlink requests (:mod:`hafast.lib.netlink`, not a pyroute2 socket:
its sync API runs an asyncio loop of its own, which cannot run inside the daemon's)
on one socket of the calling thread's network namespace, answered inside ``send``:
no waiting.  So that a pool of thousands of real servers costs a few requests, not
three per real server, the links and the neighbour table are read whole (one dump
each, at most every :data:`MAX_AGE_S` unless :meth:`Neighbours.refresh` is asked
for) and each address's route is kept for :data:`ROUTE_TTL_S`.  A neighbour the
kernel has not resolved yet is reported as such, and :meth:`Neighbours.nudge` sends
the one datagram that makes the kernel resolve it (ARP or neighbour discovery), so
the caller can look again later instead of blocking its loop.

Example::

    hop = Neighbours().lookup("10.1.0.2")
    if isinstance(hop, LinkHop):
        print(hop.device, hop.mac)
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from dataclasses import dataclass

from hafast.lib import netlink

# include/uapi/linux/rtnetlink.h, neighbour.h, if.h, if_link.h
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFLA_ADDRESS, IFLA_IFNAME = 1, 3
NDA_DST, NDA_LLADDR = 1, 2
RTN_UNICAST = 1
NUD_INCOMPLETE, NUD_FAILED = 0x01, 0x20
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol,
#                                       scope, type, flags
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
DISCARD_PORT = 9  # RFC 863: what the nudge is sent to; the kernel resolves the MAC first
MAX_AGE_S = 1.0  # the link and neighbour tables are read again when older than this
ROUTE_TTL_S = 30.0  # an address's route (its device, or a gateway) is asked again after

# Why an address has no LinkHop (tables over branching: the caller words its log).
NO_ROUTE = "no route to it"
NOT_ON_LINK = "not on a directly connected network (its route has a gateway)"
NOT_UNICAST = "not a unicast route (a local or broadcast address)"
UNRESOLVED = "its MAC address is not resolved yet"


@dataclass(frozen=True, slots=True)
class LinkHop:
    """``address`` is reached on ``device`` at ``mac``; ``own_mac`` is the device's."""

    device: str
    mac: str
    own_mac: str


def _mac(raw: memoryview | None) -> str:
    return ":".join(f"{b:02x}" for b in bytes(raw or b""))


def _name(raw: memoryview | None) -> str:
    return bytes(raw or b"").rstrip(b"\0").decode(errors="replace")


class Neighbours:
    """Route, link and neighbour lookups through one rtnetlink socket, opened on first
    use in the calling thread's network namespace."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._seq = 0
        self._read_at = -1e9  # when the link and neighbour tables were read
        self._routed_at = -1e9  # when the route cache was started
        self._links: dict[int, tuple[str, str, int]] = {}  # index: (name, mac, flags)
        self._macs: dict[tuple[str, int], str] = {}  # (address, index): resolved MAC
        self._routes: dict[str, int | str] = {}  # address: egress index, or why none

    def _ask(self, kind: int, flags: int, body: bytes) -> list[netlink.Message]:
        """One request; its data replies (an error answer: none)."""
        if self._sock is None:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                              netlink.NETLINK_ROUTE)
            s.settimeout(5.0)
            s.bind((0, 0))
            self._sock = s
        self._seq += 1
        msg = netlink.pack_message(kind, netlink.NLM_F_REQUEST | flags, self._seq, body)
        return netlink.exchange(self._sock, [(self._seq, msg)],
                                dump=bool(flags & netlink.NLM_F_DUMP), errors={})

    def refresh(self) -> None:
        """Read the links and the neighbour table now (one dump each); start the route
        cache again once it is :data:`ROUTE_TTL_S` old."""
        now = time.monotonic()
        links: dict[int, tuple[str, str, int]] = {}
        for m in self._ask(RTM_GETLINK, netlink.NLM_F_DUMP,
                           _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            if m.kind == RTM_NEWLINK:
                _fam, _type, index, flags, _change = _IFINFOMSG.unpack_from(m.body)
                attrs = netlink.parse_attrs(m.body, _IFINFOMSG.size)
                links[index] = (_name(attrs.get(IFLA_IFNAME)), _mac(attrs.get(IFLA_ADDRESS)),
                                flags)
        macs: dict[tuple[str, int], str] = {}
        for m in self._ask(RTM_GETNEIGH, netlink.NLM_F_DUMP,
                           _NDMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            if m.kind != RTM_NEWNEIGH:
                continue
            family, index, state, _flags, _type = _NDMSG.unpack_from(m.body)
            attrs = netlink.parse_attrs(m.body, _NDMSG.size)
            dst, mac = attrs.get(NDA_DST), attrs.get(NDA_LLADDR)
            if dst is None or not mac or state & (NUD_INCOMPLETE | NUD_FAILED):
                continue
            with contextlib.suppress(ValueError, OSError):
                macs[(socket.inet_ntop(family, bytes(dst)), index)] = _mac(mac)
        self._links, self._macs, self._read_at = links, macs, now
        if now - self._routed_at >= ROUTE_TTL_S:
            self._routes, self._routed_at = {}, now

    def _current(self) -> None:
        if time.monotonic() - self._read_at >= MAX_AGE_S:
            self.refresh()

    def _route(self, address: str) -> int | str:
        """The egress index of ``address``'s route, or why there is none (kept for
        :data:`ROUTE_TTL_S`; no route at all is asked again each time)."""
        known = self._routes.get(address)
        if known is not None:
            return known
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        raw = socket.inet_pton(family, address)
        routes = [m for m in self._ask(RTM_GETROUTE, 0, _RTMSG.pack(
            family, len(raw) * 8, 0, 0, 0, 0, 0, 0, 0) + netlink.attr(RTA_DST, raw))
            if m.kind == RTM_NEWROUTE]
        if not routes:
            return NO_ROUTE
        body = routes[0].body
        attrs = netlink.parse_attrs(body, _RTMSG.size)
        oif = attrs.get(RTA_OIF)
        got: int | str = (NOT_UNICAST if _RTMSG.unpack_from(body)[7] != RTN_UNICAST
                          else NOT_ON_LINK if RTA_GATEWAY in attrs
                          else NO_ROUTE if oif is None
                          else struct.unpack("=I", oif)[0])
        if got != NO_ROUTE:
            self._routes[address] = got
        return got

    def lookup(self, address: str) -> LinkHop | str:
        """The address's LinkHop, or why there is none (one of the reasons above)."""
        self._current()
        index = self._route(address)
        if isinstance(index, str):
            return index
        link = self._links.get(index)
        if link is None:
            return NO_ROUTE
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        canonical = socket.inet_ntop(family, socket.inet_pton(family, address))
        mac = self._macs.get((canonical, index))
        return UNRESOLVED if mac is None else LinkHop(link[0], mac, link[1])

    def devices(self) -> list[str]:
        """Every link that is up, loopback aside: where a packet for a virtual server
        can come in."""
        self._current()
        return sorted(name for name, _mac, flags in self._links.values()
                      if flags & IFF_UP and not flags & IFF_LOOPBACK)

    @staticmethod
    def nudge(address: str) -> None:
        """One empty datagram to the discard port: the kernel resolves the address's
        MAC to send it (a real server's answer, if any, is a port unreachable)."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.sendto(b"", (address, DISCARD_PORT))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
