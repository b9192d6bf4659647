"""The kernel side of an announcement: two routes per VIP, over rtnetlink.

- ``local A/32 dev lo table local``: the director accepts the VIP's packets (IPVS sees
  them) without the VIP being an interface address.  An address would make zebra a
  *connected* route, which satisfies FRR's import-check for ever, so the VIP could never
  be withdrawn (measured; docs/fleet.md).
- ``blackhole A/32`` in the main table: the announce signal.  bgpd's ``network A/32``
  with import-check announces the prefix exactly while this route exists.  A blackhole
  never carries traffic here (the local table is looked up first).

The announce route's metric (RTA_PRIORITY) says how: :data:`SERVE_METRIC` in service,
:data:`DRAIN_METRIC` while SIGTERM drains.  zebra passes the metric to bgpd as the
path's MED, and the rendered route-map (:mod:`hafast.fleet.frrconf`) keys on it, so a
drain is still one change of a kernel route, never a vtysh call.  Draining adds the
drain route before deleting the serving one: zebra keeps the lower metric selected
while both exist, so the prefix is never withdrawn in between.

Both carry :data:`RTPROT_HAFAST_FLEET`, so they are told apart from an operator's
routes and from keepalived-compatible ``virtual_routes`` (protocol 18), and survive a
crash (fail-static: the VIP stays announced until a new hafast decides).

Requests are synchronous, as in :mod:`hafast.net.vip`: the kernel acks inside ``send``
(tens of microseconds), so they are fine on the event loop.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from typing import Any

from hafast.lib import netlink
from hafast.lib.netlink import (
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    RTM_DELROUTE,
    RTM_GETROUTE,
    RTM_NEWROUTE,
)
from hafast.net.vip import Rtnl

# rtnetlink protocol numbers are a byte; /etc/iproute2/rt_protos leaves 250 unassigned
# (FRR's own daemons use 186-198, keepalived 18)
RTPROT_HAFAST_FLEET = 250
RT_TABLE_MAIN, RT_TABLE_LOCAL = 254, 255
RTN_LOCAL, RTN_BLACKHOLE = 2, 6  # linux/rtnetlink.h
RT_SCOPE_UNIVERSE, RT_SCOPE_HOST = 0, 254
# explicit, since the kernel gives an IPv6 route without one metric 1024
SERVE_METRIC, DRAIN_METRIC = 100, 200
# struct rtmsg (linux/rtnetlink.h): family, dst_len, src_len, tos, table, protocol,
# scope, type, flags
_RTMSG = struct.Struct("=BBBBBBBBI")
RTA_DST = 1
_ADDR_LEN = {socket.AF_INET: 4, socket.AF_INET6: 16}


class KernelError(OSError):
    pass


class KernelRoutes:
    """Adds and deletes the VIP routes; every call is idempotent.

    Example (root, in a scratch namespace)::

        k = KernelRoutes()
        k.make_local("192.0.2.100/32")
        k.announce("192.0.2.100/32")    # FRR starts announcing
        k.withdraw("192.0.2.100/32")    # FRR withdraws
    """

    def __init__(self) -> None:
        from pyroute2.netlink.rtnl.rtmsg import rtmsg

        self._rtmsg = rtmsg
        self._nl = Rtnl()

    def _msg(self, prefix: str, table: int, kind: int, scope: int,
             metric: int | None = None) -> Any:
        net = ipaddress.ip_network(prefix)
        m = self._rtmsg()
        m["family"] = socket.AF_INET if net.version == 4 else socket.AF_INET6
        m["dst_len"] = net.prefixlen
        m["table"] = table
        m["proto"] = RTPROT_HAFAST_FLEET
        m["type"] = kind
        m["scope"] = scope
        attrs: list[tuple[str, object]] = [("RTA_TABLE", table),
                                           ("RTA_DST", str(net.network_address))]
        if kind == RTN_LOCAL:
            attrs.append(("RTA_OIF", socket.if_nametoindex("lo")))
        if metric is not None:
            attrs.append(("RTA_PRIORITY", metric))
        m["attrs"] = attrs
        return m

    def _add(self, m: Any, what: str) -> bool:
        err = self._nl.request(m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)
        if err in (0, errno.EEXIST):
            return err == 0
        raise KernelError(err, f"cannot add {what}: {errno.errorcode.get(err, err)}")

    def _delete(self, m: Any, what: str) -> bool:
        err = self._nl.request(m, RTM_DELROUTE, 0)
        if err in (0, errno.ESRCH, errno.ENOENT):
            return err == 0
        raise KernelError(err, f"cannot delete {what}: {errno.errorcode.get(err, err)}")

    def make_local(self, prefix: str) -> bool:
        """``ip route add local PREFIX dev lo table local``; True if it was added now."""
        return self._add(self._msg(prefix, RT_TABLE_LOCAL, RTN_LOCAL, RT_SCOPE_HOST),
                         f"local route {prefix}")

    def unmake_local(self, prefix: str) -> bool:
        return self._delete(self._msg(prefix, RT_TABLE_LOCAL, RTN_LOCAL, RT_SCOPE_HOST),
                            f"local route {prefix}")

    def _route(self, prefix: str, metric: int) -> Any:
        return self._msg(prefix, RT_TABLE_MAIN, RTN_BLACKHOLE, RT_SCOPE_UNIVERSE, metric)

    def announce(self, prefix: str) -> bool:
        """Add the announce route (and drop a drain route a crash may have left); True
        if it was not there."""
        added = self._add(self._route(prefix, SERVE_METRIC), f"announce route {prefix}")
        self._delete(self._route(prefix, DRAIN_METRIC), f"drain route {prefix}")
        return added

    def drain(self, prefix: str) -> bool:
        """Swap the announce route for the drain route; True if it was not there."""
        added = self._add(self._route(prefix, DRAIN_METRIC), f"drain route {prefix}")
        self._delete(self._route(prefix, SERVE_METRIC), f"announce route {prefix}")
        return added

    def withdraw(self, prefix: str) -> bool:
        """Delete the announce and drain routes; True if one was there."""
        gone = [self._delete(self._route(prefix, metric), f"announce route {prefix}")
                for metric in (SERVE_METRIC, DRAIN_METRIC)]
        return any(gone)

    def ours(self) -> set[str]:
        """Every prefix with a route of :data:`RTPROT_HAFAST_FLEET` in any table (one
        RTM_GETROUTE dump, both families): what this or an earlier run announced or
        made local."""
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                           netlink.NETLINK_ROUTE) as s:
            s.settimeout(5.0)
            s.bind((0, 0))
            dump = netlink.pack_message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1,
                                        _RTMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0))
            replies = netlink.exchange(s, [(1, dump)], dump=True)
        found = set()
        for m in replies:
            if m.kind != RTM_NEWROUTE or len(m.body) < _RTMSG.size:
                continue
            family, dst_len, _src, _tos, _table, proto, *_rest = _RTMSG.unpack_from(m.body)
            if proto != RTPROT_HAFAST_FLEET:
                continue
            raw = netlink.parse_attrs(m.body, _RTMSG.size).get(RTA_DST)
            if raw is not None and len(raw) == _ADDR_LEN.get(family):
                found.add(f"{ipaddress.ip_address(raw.tobytes())}/{dst_len}")
        return found

    def close(self) -> None:
        self._nl.close()
