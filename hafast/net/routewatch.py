"""Address, route and rule deletions from RTNL events, for the static ones keepalived
restores.

keepalived 2.2.7 (``vrrp.c process_static_entries``, ``keepalived_netlink.c
netlink_route_filter``/``netlink_rule_filter``) listens to the IPv4/IPv6 route and rule
groups of a family once a static route (rule) of that family names a ``track_group``;
an RTM_DELROUTE (RTM_DELRULE) marked with its protocol (18) that matches a static one
then makes it add that entry again ("Restoring deleted static route ...").
:class:`RouteWatch` hears the deletions; :mod:`hafast.net.statics` matches and restores.
keepalived follows address deletions whatever the config (``netlink_if_address_filter``:
a static address not written ``no_track`` that goes is added again), so the address
groups are joined as soon as there are static addresses.

A deleted route is matched as keepalived's ``route_is_ours`` matches static routes:
family, table, destination and its length, TOS.  A deleted rule matches when the
header agrees and every attribute hafast sends for the rule comes back with the same
value (the kernel adds its own, FRA_TABLE and FRA_SUPPRESS_PREFIXLEN among them).

Example::

    watch = RouteWatch(loop, on_route=print, on_rule=print, on_lost=resync, on_addr=print)
    watch.listen(routes={4}, rules={4, 6}, addrs={4})
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from hafast.lib import netlink
from hafast.lib.netlink import RTM_DELADDR, RTM_DELROUTE
from hafast.net.addrwatch import parse_addr_messages

log = logging.getLogger("hafast.vrrp")

RTM_DELRULE = 33  # linux/rtnetlink.h
# linux/rtnetlink.h enum rtnetlink_groups
GROUPS = {("route", 4): 7, ("rule", 4): 8, ("route", 6): 11, ("rule", 6): 19,
          ("addr", 4): 5, ("addr", 6): 9}
SOL_NETLINK, NETLINK_ADD_MEMBERSHIP = 270, 1  # linux/socket.h, linux/netlink.h
RTPROT_KEEPALIVED = 18
RTA_DST, RTA_OIF, RTA_PRIORITY, RTA_TABLE = 1, 4, 6, 15  # linux/rtnetlink.h
FRA_TABLE, FRA_PROTOCOL = 15, 21  # linux/fib_rules.h
# struct rtmsg and struct fib_rule_hdr share this layout: family, dst_len, src_len,
# tos, table, (protocol, scope, type | res1, res2, action), flags
_HDR = struct.Struct("=BBBBBBBBI")
_FAMILY = {socket.AF_INET: 4, socket.AF_INET6: 6}


@dataclass(frozen=True, slots=True)
class DeletedRoute:
    family: int  # 4 or 6
    dst: str  # the network address ("0.0.0.0" / "::" for a default route)
    dst_len: int
    table: int
    tos: int
    protocol: int
    metric: int = 0  # RTA_PRIORITY
    oif: int = 0  # RTA_OIF (0: none)


@dataclass(frozen=True, slots=True)
class DeletedAddress:
    address: str  # as inet_ntop writes it
    ifindex: int


@dataclass(frozen=True, slots=True)
class RuleKey:
    """A rule as its fib_rule_hdr and attributes: what a deletion is compared on."""

    family: int
    dst_len: int
    src_len: int
    tos: int
    action: int
    flags: int
    table: int
    attrs: tuple[tuple[int, bytes], ...]  # sorted, FRA_TABLE left out (it is ``table``)

    def matches(self, deleted: RuleKey) -> bool:
        """``deleted`` (from the kernel) is this rule: the same header, and each of
        this rule's attributes with the same value."""
        if (self.family, self.dst_len, self.src_len, self.tos, self.action, self.flags,
                self.table) != (deleted.family, deleted.dst_len, deleted.src_len,
                                deleted.tos, deleted.action, deleted.flags, deleted.table):
            return False
        theirs = dict(deleted.attrs)
        return all(theirs.get(k) == v for k, v in self.attrs)


def rule_key(body: bytes | memoryview) -> RuleKey | None:
    """The :class:`RuleKey` of one fib_rule_hdr body (a message's, or the encoding of
    one of ours); None when it is too short or of another family."""
    if len(body) < _HDR.size:
        return None
    family, dst_len, src_len, tos, table, _r1, _r2, action, flags = _HDR.unpack_from(body)
    fam = _FAMILY.get(family)
    if fam is None:
        return None
    attrs = netlink.parse_attrs(body, _HDR.size)
    raw_table = attrs.pop(FRA_TABLE, None)
    if raw_table is not None and len(raw_table) == 4:
        table = struct.unpack("=I", raw_table)[0]
    return RuleKey(fam, dst_len, src_len, tos, action, flags, table,
                   tuple(sorted((k, v.tobytes()) for k, v in attrs.items())))


def deleted_route(body: memoryview) -> DeletedRoute | None:
    """The :class:`DeletedRoute` of one rtmsg body, or None."""
    if len(body) < _HDR.size:
        return None
    family, dst_len, _src_len, tos, table, proto, _scope, _type, _flags = _HDR.unpack_from(body)
    fam = _FAMILY.get(family)
    if fam is None:
        return None
    attrs = netlink.parse_attrs(body, _HDR.size)
    raw_table = attrs.get(RTA_TABLE)
    if raw_table is not None and len(raw_table) == 4:
        table = struct.unpack("=I", raw_table)[0]
    raw = attrs.get(RTA_DST)
    dst = (socket.inet_ntop(family, raw) if raw is not None and len(raw) in (4, 16)
           else ("0.0.0.0" if fam == 4 else "::"))
    metric, oif = (struct.unpack("=I", raw)[0] if raw is not None and len(raw) == 4 else 0
                   for raw in (attrs.get(RTA_PRIORITY), attrs.get(RTA_OIF)))
    return DeletedRoute(fam, dst, dst_len, table, tos, proto, metric, oif)


def deletions(data: bytes) -> Iterator[DeletedRoute | RuleKey | DeletedAddress]:
    """The address, route and rule deletions in one datagram.

    >>> body = _HDR.pack(socket.AF_INET, 16, 0, 0, 254, 18, 0, 1, 0)
    >>> body += netlink.attr(RTA_DST, bytes([10, 89, 0, 0]))
    >>> list(deletions(netlink.pack_message(RTM_DELROUTE, 0, 0, body)))
    [DeletedRoute(family=4, dst='10.89.0.0', dst_len=16, table=254, tos=0, protocol=18, \
metric=0, oif=0)]
    """
    for kind, address, index in parse_addr_messages(data):
        if kind == RTM_DELADDR:
            yield DeletedAddress(address, index)
    for m in netlink.messages(data):
        item: DeletedRoute | RuleKey | None = None
        if m.kind == RTM_DELROUTE:
            item = deleted_route(m.body)
        elif m.kind == RTM_DELRULE:
            key = rule_key(m.body)
            # keepalived ignores a rule whose protocol is not its own (FRA_PROTOCOL)
            proto = dict(key.attrs).get(FRA_PROTOCOL) if key is not None else None
            if key is not None and (proto is None or proto[:1] == bytes([RTPROT_KEEPALIVED])):
                item = key
        if item is not None:
            yield item


def same_network(dst: str, deleted: DeletedRoute) -> bool:
    """Whether a static route's destination (``10.1.0.0/16``, ``default``) is the
    deleted one's."""
    if dst == "default":
        return deleted.dst_len == 0
    net = ipaddress.ip_network(dst, strict=False)
    return (net.prefixlen == deleted.dst_len
            and net.network_address == ipaddress.ip_address(deleted.dst))


class RouteWatch:
    """Calls ``on_route(DeletedRoute)`` / ``on_rule(RuleKey)`` for each deletion in
    the groups :meth:`listen` joined, and ``on_lost()`` when the socket overflowed
    (events were dropped: the caller checks everything again)."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_route: Callable[[DeletedRoute], None],
                 on_rule: Callable[[RuleKey], None],
                 on_lost: Callable[[], None],
                 on_addr: Callable[[DeletedAddress], None] | None = None) -> None:
        self.loop = loop
        self.on_route, self.on_rule, self.on_lost = on_route, on_rule, on_lost
        self.on_addr = on_addr
        self.joined: set[tuple[str, int]] = set()
        self.events = 0
        self._sock: socket.socket | None = None

    def listen(self, routes: Iterable[int], rules: Iterable[int], addrs: Iterable[int] = ()
               ) -> None:
        """Join the route groups of the families in ``routes``, the rule groups of
        those in ``rules``, the address groups of those in ``addrs`` (a reload may add
        some; none is left)."""
        want = ({("route", f) for f in routes} | {("rule", f) for f in rules}
                | {("addr", f) for f in addrs})
        if not want - self.joined:
            return
        if self._sock is None:
            s = netlink.event_socket(rcvbuf=1 << 20)
            self._sock = s
            self.loop.add_reader(s.fileno(), self._readable)
        for key in sorted(want - self.joined):
            # RTNLGRP_IPV6_RULE is group 19: past the bind mask's reach on old
            # kernels, so every group is joined the same way, by number
            self._sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, GROUPS[key])
            self.joined.add(key)

    def _readable(self) -> None:
        got = netlink.drain(lambda: self._sock, self._dispatch)
        if got.error is not None:
            log.warning("route watch: %s", got.error)
        elif got.lost:
            self.on_lost()

    def _dispatch(self, data: bytes) -> None:
        for item in deletions(data):
            self.events += 1
            if isinstance(item, DeletedRoute):
                self.on_route(item)
            elif isinstance(item, DeletedAddress):
                if self.on_addr is not None:
                    self.on_addr(item)
            else:
                self.on_rule(item)

    def close(self) -> None:
        if self._sock is not None:
            netlink.close_watched(self.loop, self._sock)
            self._sock = None
        self.joined.clear()
