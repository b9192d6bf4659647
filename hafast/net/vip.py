"""The VIP backend: virtual addresses, routes and rules in the current namespace via pyroute2.

Only what this backend added is ever removed: an address or route that was already
there (EEXIST) is left alone on release and on stop, so hafast never takes away an
administrator's address.  Every operation is idempotent.

pyroute2 0.9's ``IPRoute`` runs its own asyncio loop and cannot share uvloop's
(uvloop refuses AF_NETLINK datagram endpoints); measured against this path
(``benchmarks/test_bench_netlink.py``, docs/dependencies.md), its asyncio API
costs 2.1x per 1-VIP takeover on asyncio's loop and 2.8x through a thread hop
from uvloop.  So pyroute2 only encodes the rtnetlink messages here; they go out
on a plain NETLINK_ROUTE socket, synchronously (the kernel acks inside ``send``).
Calls return completed futures.

Example (root, in a scratch namespace)::

    backend = NetlinkVips()
    backend.add("VI_1", vips, routes, default_dev="eth0")
    backend.release_all()   # on stop: only what we added goes
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any, Protocol

from hafast.config.iproute import RouteSpec as RouteSpec
from hafast.config.iproute import parse_route as parse_route
from hafast.config.iprule import IpRule
from hafast.config.model import VirtualAddress
from hafast.lib import netlink
from hafast.lib.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    RTM_DELADDR,
    RTM_DELROUTE,
    RTM_GETADDR,
    RTM_NEWADDR,
    RTM_NEWROUTE,
)
from hafast.net.rules import RTM_DELRULE, RTM_NEWRULE, rule_msg

log = logging.getLogger("hafast.vrrp.vip")

# ip-address(8) scope names -> rtnetlink rt_scope values (linux/rtnetlink.h).
SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
# linux/rtnetlink.h
RT_TABLE_MAIN = 254
RTPROT_KEEPALIVED = 18  # rtnetlink protocol number keepalived registered for its routes
ROUTE_TYPES = {"unicast": 1, "blackhole": 6, "unreachable": 7, "prohibit": 8}
# linux/if_addr.h: IFA_F_NODAD.  keepalived adds IPv6 VIPs without DAD so a new
# master can answer for them at once instead of after a tentative second.
IFA_F_NODAD = 0x02
IFA_ADDRESS, IFA_LOCAL = 1, 2  # linux/if_addr.h
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, ifindex
_ADDR_LEN = {socket.AF_INET: 4, socket.AF_INET6: 16}


class VipOps(Protocol):
    """What an instance needs from the VIP backend (futures keep the call order)."""

    def add(
        self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
        default_dev: str, rules: Sequence[IpRule] = (),
    ) -> concurrent.futures.Future[None]: ...

    def remove(
        self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
        default_dev: str, rules: Sequence[IpRule] = (),
    ) -> concurrent.futures.Future[None]: ...

    def release_all(self) -> None: ...


def _done() -> concurrent.futures.Future[None]:
    fut: concurrent.futures.Future[None] = concurrent.futures.Future()
    fut.set_result(None)
    return fut


class MemoryVips:
    """An in-memory VIP backend for unit tests: remembers what is installed, in order."""

    def __init__(self) -> None:
        self.installed: dict[tuple[str, str], str] = {}  # (dev, cidr) -> owner
        self.routes: dict[RouteSpec, str] = {}
        self.rules: dict[IpRule, str] = {}
        self.log: list[tuple[str, str]] = []

    def add(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
            default_dev: str, rules: Sequence[IpRule] = ()) -> concurrent.futures.Future[None]:
        for v in vips:
            key = (v.dev or default_dev, f"{v.address}/{v.prefix}")
            self.installed.setdefault(key, owner)
            self.log.append(("add", key[1]))
        for r in routes:
            self.routes.setdefault(r, owner)
        for rule in rules:
            self.rules.setdefault(rule, owner)
        return _done()

    def reinstate(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
                  default_dev: str, rules: Sequence[IpRule] = ()) -> None:
        """As :meth:`NetlinkVips.reinstate`; the log says what was asked for again."""
        self.log += [("reinstate", f"{v.address}/{v.prefix}") for v in vips]
        self.log += [("reinstate", r.dst) for r in routes]
        self.log += [("reinstate", rule.text()) for rule in rules]
        self.add(owner, vips, routes, default_dev, rules)

    def remove(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
               default_dev: str, rules: Sequence[IpRule] = ()) -> concurrent.futures.Future[None]:
        for rule in rules:
            if self.rules.get(rule) == owner:
                del self.rules[rule]
        for v in vips:
            key = (v.dev or default_dev, f"{v.address}/{v.prefix}")
            if self.installed.get(key) == owner:
                del self.installed[key]
            self.log.append(("remove", key[1]))
        for r in routes:
            if self.routes.get(r) == owner:
                del self.routes[r]
        return _done()

    def release_all(self) -> None:
        self.installed.clear()
        self.routes.clear()
        self.rules.clear()


class NetlinkError(OSError):
    pass


class Rtnl:
    """A plain, synchronous NETLINK_ROUTE socket; messages encoded by pyroute2.

    The kernel handles an address or route request inside ``send`` and queues
    the ack before returning, so a request costs tens of microseconds and never
    waits on the event loop.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  netlink.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self._seq = 0

    def request(self, msg: Any, msg_type: int, flags: int) -> int:
        """Send ``msg``; return 0 or the errno the kernel answered with."""
        self._seq += 1
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
        msg["header"]["sequence_number"] = self._seq
        msg.encode()
        return netlink.request(self.sock, self._seq, bytes(msg.data))

    def close(self) -> None:
        self.sock.close()


class NetlinkVips:
    """Addresses, routes and rules through rtnetlink (pyroute2 message classes, plain
    socket).

    ``adopt_existing``: an entry already in the kernel (EEXIST) becomes ours, to be
    removed later.  For the static ones (``static_ipaddress``/``_routes``/``_rules``):
    keepalived 2.2.7 takes an existing static address or route as set (its netlink
    layer answers EEXIST with success) and deletes leftover static rules before adding
    them, so at stop it removes them all; a restarted worker finds its predecessor's.
    """

    def __init__(self, *, adopt_existing: bool = False) -> None:
        from hafast.net.pyroute2_lazy import skip_package_init

        # Built while a restarted VRRP worker starts up (vipguard's budget): only the
        # message classes, not pyroute2's whole package __init__ (~120 ms).
        skip_package_init()
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
        from pyroute2.netlink.rtnl.rtmsg import rtmsg

        self._ifaddrmsg = ifaddrmsg
        self._rtmsg = rtmsg
        self._nl = Rtnl()
        # What we added and may therefore remove: (ifindex, address, prefix) and routes.
        self._addrs: dict[tuple[int, str, int], tuple[str, Any]] = {}
        self._routes: dict[RouteSpec, tuple[str, Any]] = {}
        self._rules: dict[IpRule, tuple[str, Any]] = {}
        self.adopt_existing = adopt_existing
        # Adds the kernel refused, by kind ("address", "route", "rule"): the metric
        # behind each "cannot add" warning.
        self.refused: dict[str, int] = {}
        self._closed = False
        self._warm_up()

    def _warm_up(self) -> None:
        # pyroute2's first encode of each message class costs ~2 ms of lazy set-up;
        # pay it now rather than inside the first takeover.
        for msg in (self._ifaddrmsg(), self._rtmsg()):
            msg["attrs"] = []
            msg.encode()
        m = self._ifaddrmsg()
        m["attrs"] = [("IFA_LOCAL", "192.0.2.1"), ("IFA_ADDRESS", "192.0.2.1"),
                      ("IFA_LABEL", "warm")]
        m.encode()
        rule_msg(IpRule(src="192.0.2.0", src_len=24, priority=1, table=1)).encode()

    @staticmethod
    def _index(dev: str) -> int:
        try:
            return socket.if_nametoindex(dev)
        except OSError as exc:
            raise LookupError(f"no interface {dev!r}") from exc

    def _addr_msg(self, v: VirtualAddress, default_dev: str) -> tuple[tuple[int, str, int], Any]:
        index = self._index(v.dev or default_dev)
        m = self._ifaddrmsg()
        m["family"] = socket.AF_INET if v.family == 4 else socket.AF_INET6
        m["prefixlen"] = v.prefix
        m["index"] = index
        if v.scope:
            m["scope"] = int(v.scope) if v.scope.isdigit() else SCOPES.get(v.scope, 0)
        attrs: list[tuple[str, object]] = []
        if v.family == 4:
            attrs.append(("IFA_LOCAL", v.address))
            attrs.append(("IFA_ADDRESS", v.peer or v.address))
            if v.brd == "+":
                net = ipaddress.ip_interface(f"{v.address}/{v.prefix}").network
                attrs.append(("IFA_BROADCAST", str(net.broadcast_address)))
            elif v.brd and v.brd != "-":
                attrs.append(("IFA_BROADCAST", v.brd))
            if v.label:
                attrs.append(("IFA_LABEL", v.label))
        else:
            if v.peer:
                attrs.append(("IFA_LOCAL", v.address))
            attrs.append(("IFA_ADDRESS", v.peer or v.address))
            if "-nodad" not in v.options:
                m["flags"] = IFA_F_NODAD
        m["attrs"] = attrs
        return (index, v.address, v.prefix), m

    def _route_msg(self, r: RouteSpec, default_dev: str) -> Any:
        net = ipaddress.ip_network(r.dst, strict=False) if r.dst != "default" else None
        family = 6 if (net is not None and net.version == 6) or ":" in (r.gateway or "") else 4
        m = self._rtmsg()
        m["family"] = socket.AF_INET if family == 4 else socket.AF_INET6
        m["dst_len"] = net.prefixlen if net is not None else 0
        table = r.table if r.table is not None else RT_TABLE_MAIN
        m["table"] = table if table < 256 else 252  # RT_TABLE_COMPAT; the real one in RTA_TABLE
        m["proto"] = RTPROT_KEEPALIVED
        m["type"] = ROUTE_TYPES[r.kind]
        link_scope = r.kind == "unicast" and not r.gateway
        m["scope"] = SCOPES.get(r.scope or "", 253 if link_scope else 0)
        attrs: list[tuple[str, object]] = [("RTA_TABLE", table)]
        if net is not None:
            attrs.append(("RTA_DST", str(net.network_address)))
        if r.kind == "unicast":
            attrs.append(("RTA_OIF", self._index(r.dev or default_dev)))
        if r.gateway:
            attrs.append(("RTA_GATEWAY", r.gateway))
        if r.src:
            attrs.append(("RTA_PREFSRC", r.src))
        if r.metric is not None:
            attrs.append(("RTA_PRIORITY", r.metric))
        m["attrs"] = attrs
        return m

    def _refuse(self, kind: str, owner: str, what: str, why: object) -> None:
        self.refused[kind] = self.refused.get(kind, 0) + 1
        log.warning("%s: cannot add %s: %s", owner, what, why)

    def _took(self, err: int) -> bool:
        """Whether an add that answered ``err`` leaves the entry ours."""
        return err == 0 or (err == errno.EEXIST and self.adopt_existing)

    def add(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
            default_dev: str, rules: Sequence[IpRule] = ()) -> concurrent.futures.Future[None]:
        """Install ``vips``, ``routes``, then ``rules`` (keepalived's order); ones already
        present stay unowned (EEXIST) unless ``adopt_existing``.  A refused one is
        logged and counted in :attr:`refused`; the others still go in."""
        for v in vips:
            try:
                key, msg = self._addr_msg(v, default_dev)
                if key in self._addrs:
                    continue
                err = self._nl.request(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)
            except (OSError, LookupError, ValueError) as exc:
                self._refuse("address", owner, f"{v.address}/{v.prefix}", exc)
                continue
            if self._took(err):
                self._addrs[key] = (owner, msg)
            elif err != errno.EEXIST:
                self._refuse("address", owner, f"{v.address}/{v.prefix}", os.strerror(err))
        for r in routes:
            if r in self._routes:
                continue
            try:
                rmsg = self._route_msg(r, default_dev)
                err = self._nl.request(rmsg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)
            except (OSError, LookupError, ValueError) as exc:
                self._refuse("route", owner, f"route {r.dst}", exc)
                continue
            if self._took(err):
                self._routes[r] = (owner, rmsg)
            elif err != errno.EEXIST:
                self._refuse("route", owner, f"route {r.dst}", os.strerror(err))
        for rule in rules:
            if rule in self._rules:
                continue
            try:
                fmsg = rule_msg(rule)
                err = self._nl.request(fmsg, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL)
            except (OSError, ValueError) as exc:
                self._refuse("rule", owner, f"rule {rule.text()}", exc)
                continue
            # The kernel's EEXIST for a rule compares its protocol too: one marked
            # keepalived's (18) is a predecessor's (a worker that died as master), not
            # an administrator's, and goes when this owner lets go (keepalived deletes
            # its leftovers at start instead).
            if self._took(err) or (err == errno.EEXIST and rule.protocol == RTPROT_KEEPALIVED):
                self._rules[rule] = (owner, fmsg)
            elif err != errno.EEXIST:
                self._refuse("rule", owner, f"rule {rule.text()}", os.strerror(err))
        return _done()

    def reinstate(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
                  default_dev: str, rules: Sequence[IpRule] = ()) -> None:
        """Add again entries someone else deleted (keepalived's reinstate_static_*):
        forgotten, then added; one still in the kernel answers EEXIST and, with
        ``adopt_existing``, stays ours."""
        for v in vips:
            with contextlib.suppress(LookupError, ValueError):
                self._addrs.pop(self._addr_msg(v, default_dev)[0], None)
        for r in routes:
            self._routes.pop(r, None)
        for rule in rules:
            self._rules.pop(rule, None)
        self.add(owner, vips, routes, default_dev, rules)

    def _remove(self, owner: str | None, addr_keys: Sequence[tuple[int, str, int]],
                routes: Sequence[RouteSpec], rules: Sequence[IpRule] = ()) -> None:
        # Rules first, then routes, then addresses: keepalived's order
        # (vrrp_restore_interface), the reverse of adding.
        for rule in rules:
            rule_entry = self._rules.get(rule)
            if rule_entry is None or (owner is not None and rule_entry[0] != owner):
                continue
            del self._rules[rule]
            err = self._nl.request(rule_entry[1], RTM_DELRULE, 0)
            if err not in (0, errno.ENOENT):
                log.warning("cannot remove rule %s: %s", rule.text(), os.strerror(err))
        # Routes before addresses: a route using a VIP as its source goes before the VIP.
        for r in routes:
            entry = self._routes.get(r)
            if entry is None or (owner is not None and entry[0] != owner):
                continue
            del self._routes[r]
            err = self._nl.request(entry[1], RTM_DELROUTE, 0)
            if err not in (0, errno.ESRCH, errno.ENOENT):
                log.warning("cannot remove route %s: %s", r.dst, os.strerror(err))
        for key in addr_keys:
            addr_entry = self._addrs.get(key)
            if addr_entry is None or (owner is not None and addr_entry[0] != owner):
                continue
            del self._addrs[key]
            err = self._nl.request(addr_entry[1], RTM_DELADDR, 0)
            if err not in (0, errno.EADDRNOTAVAIL, errno.ENODEV):
                log.warning("cannot remove %s/%s: %s", key[1], key[2], os.strerror(err))

    def remove(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
               default_dev: str, rules: Sequence[IpRule] = ()) -> concurrent.futures.Future[None]:
        """Remove those of ``vips``/``routes``/``rules`` that ``owner`` added."""
        keys = []
        for v in vips:
            try:
                keys.append(self._addr_msg(v, default_dev)[0])
            except LookupError:
                continue
        try:
            self._remove(owner, keys, list(routes), list(rules))
        except OSError as exc:
            log.warning("%s: removing VIPs failed: %s", owner, exc)
        return _done()

    def release_all(self) -> None:
        """Remove everything this backend added (stop path)."""
        if self._closed:
            return
        try:
            self._remove(None, list(self._addrs), list(self._routes), list(self._rules))
        except OSError as exc:
            log.warning("releasing VIPs failed: %s", exc)

    @property
    def owned(self) -> tuple[list[tuple[int, str, int]], list[RouteSpec]]:
        """What this backend added and would remove."""
        return list(self._addrs), list(self._routes)

    @property
    def owned_rules(self) -> list[IpRule]:
        """The rules this backend added and would remove."""
        return list(self._rules)

    def delete(self, vips: Sequence[VirtualAddress], default_dev: str) -> list[VirtualAddress]:
        """Remove ``vips`` from their interfaces whoever added them; returns those
        that were there.  For the parent, when the VRRP worker that held them is
        dead or hung (:mod:`hafast.app.vipguard`): one netlink request each, no
        dump first (the seconds count)."""
        removed = []
        for v in vips:
            try:
                key, msg = self._addr_msg(v, default_dev)
                err = self._nl.request(msg, RTM_DELADDR, 0)
            except (OSError, LookupError, ValueError) as exc:
                log.warning("cannot remove %s/%s: %s", v.address, v.prefix, exc)
                continue
            self._addrs.pop(key, None)
            if err == 0:
                removed.append(v)
            elif err not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                log.warning("cannot remove %s/%s: %s", v.address, v.prefix, os.strerror(err))
        return removed

    def owns(self, vip: VirtualAddress, default_dev: str) -> bool:
        """Whether ``vip`` was added (or adopted) here and so goes on release.

        An interface that no longer exists owns nothing.

        >>> NetlinkVips().owns(VirtualAddress("192.0.2.9", 24, 4), "lo")  # doctest: +SKIP
        False
        """
        try:
            key = (self._index(vip.dev or default_dev), vip.address, vip.prefix)
        except LookupError:
            return False
        return key in self._addrs

    def adopt(self, owner: str, vips: Sequence[VirtualAddress], default_dev: str
              ) -> list[VirtualAddress]:
        """Take ``vips`` that are already on their interface as ``owner``'s own.

        For a restarted worker whose predecessor left its VIPs up: ``add`` leaves
        an existing address unowned (it may be an administrator's), so the
        successor says explicitly which ones are its to remove later.  Only
        addresses present in the kernel are adopted; returns them.
        """
        present = self._present()
        taken = []
        for v in vips:
            try:
                key, msg = self._addr_msg(v, default_dev)
            except (LookupError, ValueError):
                continue
            if key in self._addrs or (key[0], ipaddress.ip_address(key[1]), key[2]) not in present:
                continue
            self._addrs[key] = (owner, msg)
            taken.append(v)
        return taken

    @staticmethod
    def _present() -> set[tuple[int, Any, int]]:
        """``(ifindex, address, prefix)`` of every address in this namespace: one
        RTM_GETADDR dump (as :func:`hafast.net.addrwatch.dump_addresses`), where
        ``ip -o addr`` cost a fork and an exec on the worker's start-up path."""
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                           netlink.NETLINK_ROUTE) as s:
            s.settimeout(5.0)
            s.bind((0, 0))
            dump = netlink.pack_message(RTM_GETADDR, NLM_F_REQUEST | netlink.NLM_F_DUMP, 1,
                                        _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))
            # An error ends the dump with what came before it (adopt takes less).
            replies = netlink.exchange(s, [(1, dump)], dump=True, errors={})
        found = set()
        for m in replies:
            if m.kind != RTM_NEWADDR or len(m.body) < _IFADDRMSG.size:
                continue
            family, plen, _flags, _scope, index = _IFADDRMSG.unpack_from(m.body)
            attrs = netlink.parse_attrs(m.body, _IFADDRMSG.size)
            # IFA_LOCAL is our own end of a point-to-point address (IFA_ADDRESS is then
            # the peer's), and the address _addr_msg keys a VIP by.
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is not None and len(raw) == _ADDR_LEN.get(family):
                found.add((index, ipaddress.ip_address(raw.tobytes()), plen))
        return found

    def close(self) -> None:
        if self._closed:
            return
        self.release_all()
        self._closed = True
        self._nl.close()


# ------------------------------------------------------------------ Accept_Mode
# keepalived's nftables tables for masters without Accept_Mode: hafast.net.noaccept.
