"""``static_ipaddress``, ``static_routes``, ``static_rules``: what the VRRP side adds once.

keepalived 2.2.7 (``vrrp_daemon.c start_vrrp``/``vrrp_terminate_phase2``) adds the
static addresses, then routes, then rules when its VRRP process starts, whatever any
instance's state, and never moves them; at stop it removes rules, routes, addresses
(after the instances released theirs), even under ``--dont-release-vrrp``; a reload
removes the ones the new config no longer has and adds the new ones.  So does
:class:`Statics`, with a backend of its own that takes an entry already in the
kernel as its own (:class:`~hafast.net.vip.NetlinkVips` ``adopt_existing``: keepalived
counts an existing static address or route as set, and deletes leftover static
rules before adding them), so a restarted worker removes its predecessor's at stop.

An entry the kernel refuses (a gateway that is not reachable, a table the kernel
rejects) is logged and counted (:meth:`Statics.counters`); the rest still go in and
the VRRP side carries on.

Restoring, as keepalived 2.2.7 does (given the loop and the worker's LinkWatch):

- a static address someone deletes is added again at once ("Restoring deleted static
  address", keepalived_netlink.c netlink_if_address_filter), unless written
  ``no_track``: keepalived always follows address deletions;
- once a static route (rule) of a family names a ``track_group``, keepalived listens
  to that family's route (rule) deletions (``process_static_entries``), and a static
  route with a ``dev`` (a rule without ``no_track``) someone deletes is added again at
  once, "Restoring deleted static route ..." (``netlink_route_filter`` ->
  ``reinstate_static_route``), tracked or not; the instances stay as they are;
- when an interface comes up, the static addresses and the static routes on it are
  added again (``interface_up`` -> ``static_track_group_reinstate_config``): a link
  taken down administratively took its routes with it;
- the instances of a ``track_group`` fault while the interface of a static entry
  naming it is down: that is interface tracking (:mod:`hafast.vrrp.build`).

Example (root)::

    statics = Statics(loop=loop, linkwatch=linkwatch)
    statics.apply(config)     # at start, and with the new config on reload
    statics.release()         # at stop
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import replace
from typing import Any

from hafast.config.iproute import RouteSpec, parse_route
from hafast.config.iprule import IpRule, parse_rule
from hafast.config.model import Config, VirtualAddress
from hafast.net.routewatch import (
    RTPROT_KEEPALIVED,
    DeletedAddress,
    DeletedRoute,
    RouteWatch,
    RuleKey,
    rule_key,
    same_network,
)

log = logging.getLogger("hafast.vrrp")

OWNER = "static"  # the owner name the backend files them under (instances have theirs)


def wanted(config: Config) -> tuple[tuple[VirtualAddress, ...], tuple[RouteSpec, ...],
                                    tuple[IpRule, ...]]:
    """The static addresses, routes and rules ``config`` asks for (checked at load)."""
    return (config.static_ipaddress,
            tuple(parse_route(w, static=True) for w in config.static_routes),
            tuple(parse_rule(w, static=True)[0] for w in config.static_rules))


class Statics:
    """The static entries of the running config, in the kernel (see the module doc)."""

    def __init__(self, backend: Any = None, *, loop: asyncio.AbstractEventLoop | None = None,
                 linkwatch: Any = None) -> None:
        self._backend = backend  # made on first use: no netlink socket without statics
        self._have: tuple[tuple[VirtualAddress, ...], tuple[RouteSpec, ...],
                          tuple[IpRule, ...]] = ((), (), ())
        self._dev = "eth0"
        self._refused: dict[str, int] = {}  # the counts of a backend already closed
        self._loop = loop  # None: nothing is restored (unit tests, tools)
        self._linkwatch = linkwatch
        self._watch: RouteWatch | None = None
        self._routes_followed: tuple[RouteSpec, ...] = ()
        self._rules_followed: tuple[tuple[RuleKey, IpRule], ...] = ()
        self._addrs_followed: tuple[VirtualAddress, ...] = ()
        self._link_devs: set[str] = set()  # interfaces whose coming up restores
        self.restored: dict[str, int] = {}  # entries added again, by kind

    def _vips(self) -> Any:
        if self._backend is None:
            from hafast.net.vip import NetlinkVips

            self._backend = NetlinkVips(adopt_existing=True)
        return self._backend

    def apply(self, config: Config) -> None:
        """Make the kernel hold ``config``'s statics: those the previous config had and
        this one has not go first (rules, routes, addresses), then the new ones are
        added (addresses, routes, rules); unchanged ones are not touched."""
        addrs, routes, rules = want = wanted(config)
        old_addrs, old_routes, old_rules = self._have
        dev, self._dev = self._dev, config.global_defs.default_interface
        if not any(want) and not any(self._have):
            return
        vips = self._vips()
        kept = {_untracked(a) for a in addrs}
        gone = ([a for a in old_addrs if _untracked(a) not in kept],
                [r for r in old_routes if r not in set(routes)],
                [r for r in old_rules if r not in set(rules)])
        if any(gone):
            vips.remove(OWNER, gone[0], gone[1], dev, gone[2])
        if any(want):
            log.info("static entries: %d address(es), %d route(s), %d rule(s)",
                     len(addrs), len(routes), len(rules))
            vips.add(OWNER, addrs, routes, self._dev, rules)
        self._have = want
        self._follow()

    def _follow(self) -> None:
        """Listen for what :meth:`apply`'s config asks to restore (the module doc)."""
        addrs, routes, rules = self._have
        route_families = {r.family for r in routes if r.track_group}
        rule_families = {r.family for r in rules if r.track_group}
        # keepalived's dont_track: a route without an interface (it says it cannot
        # track it), a rule written no_track
        self._routes_followed = tuple(r for r in routes
                                      if r.tracked and r.family in route_families)
        self._rules_followed = tuple(
            (key, r) for r in rules if not r.no_track and r.family in rule_families
            if (key := _key_of(r)) is not None)
        self._addrs_followed = tuple(a for a in addrs if "no_track" not in a.options)
        addr_families = {a.family for a in self._addrs_followed}
        if self._loop is not None and (route_families or rule_families or addr_families):
            if self._watch is None:
                self._watch = RouteWatch(self._loop, self._route_deleted,
                                         self._rule_deleted, self._resync,
                                         self._addr_deleted)
            try:
                self._watch.listen(route_families, rule_families, addr_families)
            except OSError as exc:
                log.warning("cannot watch static routes and rules: %s", exc)
        if self._linkwatch is None:
            return
        devs = [a.dev or self._dev for a in addrs if "no_track" not in a.options]
        devs += [r.dev for r in routes if r.dev]
        for dev in devs:
            if dev not in self._link_devs:
                self._link_devs.add(dev)
                self._linkwatch.watch(dev, lambda up, d=dev: self._link_up(d) if up else None)

    def _restore(self, addrs: tuple[VirtualAddress, ...], routes: tuple[RouteSpec, ...],
                 rules: tuple[IpRule, ...]) -> None:
        if self._backend is None or not (addrs or routes or rules):
            return  # released (the deletions were ours), or nothing on that link
        for kind, items, text in (("address", addrs, lambda a: f"{a.address}/{a.prefix}"),
                                  ("route", routes, lambda r: " ".join(_route_words(r))),
                                  ("rule", rules, lambda r: r.text())):
            for item in items:
                log.info("Restoring deleted static %s %s", kind, text(item))
                self.restored[kind] = self.restored.get(kind, 0) + 1
        self._backend.reinstate(OWNER, addrs, routes, self._dev, rules)

    def _route_deleted(self, d: DeletedRoute) -> None:
        if d.protocol != RTPROT_KEEPALIVED or d.tos:
            return
        # keepalived's route_is_ours: family, table, destination; the first match
        for r in self._routes_followed:
            if (r.family == d.family and (r.table or _RT_TABLE_MAIN) == d.table
                    and same_network(r.dst, d)):
                self._restore((), (r,), ())
                return

    def _addr_deleted(self, d: DeletedAddress) -> None:
        # keepalived's addr_is_equal: family, interface, address (not the prefix)
        deleted = ipaddress.ip_address(d.address)
        for a in self._addrs_followed:
            if ipaddress.ip_address(a.address) == deleted and _index(a.dev or self._dev) \
                    == d.ifindex:
                self._restore((a,), (), ())
                return

    def _rule_deleted(self, deleted: RuleKey) -> None:
        for key, rule in self._rules_followed:
            if key.matches(deleted):
                self._restore((), (), (rule,))
                return

    def _resync(self) -> None:
        # deletions were lost: adding again what is still there changes nothing
        if self._backend is not None:
            self._backend.reinstate(OWNER, self._addrs_followed, self._routes_followed,
                                    self._dev,
                                    tuple(r for _k, r in self._rules_followed))

    def _link_up(self, dev: str) -> None:
        addrs, routes, _rules = self._have
        self._restore(tuple(a for a in addrs if (a.dev or self._dev) == dev
                            and "no_track" not in a.options),
                      tuple(r for r in routes if r.dev == dev), ())

    def release(self) -> None:
        """Remove every static entry this process holds (the VRRP side's stop)."""
        if self._watch is not None:
            # before the entries go: their deletions are ours
            self._watch.close()
            self._watch = None
        if self._backend is None:
            return
        try:
            self._backend.release_all()
        except OSError as exc:
            log.warning("removing static entries failed: %s", exc)
        self._have = ((), (), ())
        self._refused = self.counters()
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()
        self._backend = None

    def counters(self) -> dict[str, int]:
        """Static entries the kernel refused, by kind ("address", "route", "rule")."""
        if self._backend is None:
            return dict(self._refused)
        return dict(getattr(self._backend, "refused", {}) or {})


_RT_TABLE_MAIN = 254


def _index(dev: str) -> int:
    try:
        return socket.if_nametoindex(dev)
    except OSError:
        return -1


def _untracked(v: VirtualAddress) -> VirtualAddress:
    """``v`` without its track_group: a reload that changes only that keeps the address
    (RouteSpec and IpRule leave theirs out of their equality)."""
    if v.track_group is None:
        return v
    return replace(v, options=tuple(o for o in v.options if not o.startswith("track_group ")))


def _key_of(rule: IpRule) -> RuleKey | None:
    """The :class:`RuleKey` of the message hafast sends for ``rule``."""
    from hafast.net.rules import rule_msg

    msg = rule_msg(rule)
    msg.encode()
    return rule_key(memoryview(bytes(msg.data))[16:])  # past the nlmsghdr


def _route_words(r: RouteSpec) -> list[str]:
    words = [] if r.kind == "unicast" else [r.kind]
    words.append(r.dst)
    for name, value in (("via", r.gateway), ("dev", r.dev), ("src", r.src),
                        ("table", r.table), ("metric", r.metric), ("scope", r.scope),
                        ("track_group", r.track_group)):
        if value is not None:
            words += [name, str(value)]
    return words
