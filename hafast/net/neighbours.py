"""Where a directly connected address sits on the link: its device and MAC address.

LVS-DR on nftables (:mod:`hafast.lvs.nft_dr`) hands each packet to the real server's
MAC itself, as IPVS's DR does through the route to the real server: it needs the
device the route to the real server leaves by, that device's own MAC (the source
of the rewritten frame, so that no switch learns the client's router on the
director's port) and the real server's MAC from the neighbour table.

Lookups are rtnetlink GET requests (:mod:`hafast.lib.netlink`, not a pyroute2
socket: its sync API runs an asyncio loop of its own, which cannot run inside the
daemon's) on one socket of the calling thread's network namespace (microseconds, no
waiting): a neighbour the kernel has not resolved yet is reported as such, and
:meth:`Neighbours.nudge` sends the one datagram that makes the kernel resolve it
(ARP or neighbour discovery), so the caller can look again later instead of
blocking its loop.

Example::

    hop = Neighbours().lookup("10.1.0.2")
    if isinstance(hop, LinkHop):
        print(hop.device, hop.mac)
"""

from __future__ import annotations

import contextlib
import socket
import struct
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

    def lookup(self, address: str) -> LinkHop | str:
        """The address's LinkHop, or why there is none (one of the reasons above)."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        raw = socket.inet_pton(family, address)
        routes = [m for m in self._ask(RTM_GETROUTE, 0, _RTMSG.pack(
            family, len(raw) * 8, 0, 0, 0, 0, 0, 0, 0) + netlink.attr(RTA_DST, raw))
            if m.kind == RTM_NEWROUTE]
        if not routes:
            return NO_ROUTE
        body = routes[0].body
        if _RTMSG.unpack_from(body)[7] != RTN_UNICAST:
            return NOT_UNICAST
        attrs = netlink.parse_attrs(body, _RTMSG.size)
        if RTA_GATEWAY in attrs:
            return NOT_ON_LINK
        oif = attrs.get(RTA_OIF)
        if oif is None:
            return NO_ROUTE
        index = struct.unpack("=I", oif)[0]
        link = self._link(index)
        if link is None:
            return NO_ROUTE
        device, own, _flags = link
        for m in self._ask(RTM_GETNEIGH, 0, _NDMSG.pack(family, index, 0, 0, 0)
                           + netlink.attr(NDA_DST, raw)):
            if m.kind != RTM_NEWNEIGH:
                continue
            state = _NDMSG.unpack_from(m.body)[2]
            mac = netlink.parse_attrs(m.body, _NDMSG.size).get(NDA_LLADDR)
            if mac is not None and len(mac) and not state & (NUD_INCOMPLETE | NUD_FAILED):
                return LinkHop(device, _mac(mac), own)
        return UNRESOLVED

    def _link(self, index: int) -> tuple[str, str, int] | None:
        for m in self._ask(RTM_GETLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)):
            if m.kind == RTM_NEWLINK:
                attrs = netlink.parse_attrs(m.body, _IFINFOMSG.size)
                flags = _IFINFOMSG.unpack_from(m.body)[3]
                return _name(attrs.get(IFLA_IFNAME)), _mac(attrs.get(IFLA_ADDRESS)), flags
        return None

    def devices(self) -> list[str]:
        """Every link that is up, loopback aside: where a packet for a virtual server
        can come in."""
        names = []
        for m in self._ask(RTM_GETLINK, netlink.NLM_F_DUMP,
                           _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            if m.kind != RTM_NEWLINK:
                continue
            flags = _IFINFOMSG.unpack_from(m.body)[3]
            if flags & IFF_UP and not flags & IFF_LOOPBACK:
                names.append(_name(netlink.parse_attrs(m.body, _IFINFOMSG.size)
                                   .get(IFLA_IFNAME)))
        return sorted(names)

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
