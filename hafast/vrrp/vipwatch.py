"""A master whose VIP, virtual route or virtual rule someone else deletes steps down.

keepalived 2.2.7 (keepalived_netlink.c) follows the kernel's deletions:

- ``netlink_if_address_filter``/``address_is_ours``: an address of a MASTER
  instance's ``virtual_ipaddress`` or ``virtual_ipaddress_excluded`` deleted from the
  interface it was put on (its ``dev``, else the instance's);
- ``netlink_route_filter``/``route_is_ours``: an RTM_DELROUTE marked with protocol 18
  whose table, family, destination and its length, metric, TOS and (when the route
  names one) output interface are those of a ``virtual_routes`` line; the first
  instance holding such a line is the one, and it must be MASTER;
- ``netlink_rule_filter``/``rule_is_ours``: an RTM_DELRULE (protocol 18 or none)
  that is a ``virtual_rules`` line;

and, unless that entry is written ``no_track`` (a route without ``dev`` is not
followed either: "cannot track route ... with no interface specified"), calls
``set_vrrp_backup``: priority 0, the instance's rules, routes and VIPs removed,
BACKUP, its Master_Down_Timer armed for Skew_Time only, so that unopposed it is
MASTER again (everything added back) that much later.  A ``no_track`` entry stays
deleted until the instance next becomes MASTER.  :class:`hafast.vrrp.fsm.VipDeleted`
is that step; this module hears the deletions (one
:class:`hafast.net.routewatch.RouteWatch`) and finds the instance.

Measured side by side (tests/netns/test_deleted_vip_route_rule.py): each deletion
gives keepalived 2.2.7 ``BACKUP`` at once and ``MASTER`` 0.41-0.43 s later (priority
150, advert_int 1: Skew_Time 0.414 s) with the entry back; ``no_track`` ones, and a
blackhole route without ``dev``, nothing.

keepalived's rule filter, unlike the other two, does not look at the instance's
state; but a rule is only in the kernel while its instance is MASTER, and the
deletion keepalived makes itself on leaving MASTER (a higher priority heard) was
seen to change nothing (one "Entering BACKUP STATE", one BACKUP line), so only
masters are acted on here.  In a sync group the other masters step down the same
way (:meth:`hafast.vrrp.sync_group.SyncGroup.step_down`).

Example::

    watch = VipWatch(loop, lambda: worker.instances)
    watch.follow()      # at start and after each reload
    watch.close()       # before the VIPs are released at stop
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable

from hafast.net.routewatch import (
    RTPROT_KEEPALIVED,
    DeletedAddress,
    DeletedRoute,
    RouteWatch,
    RuleKey,
    same_network,
)
from hafast.net.rules import deletion_key
from hafast.vrrp import fsm
from hafast.vrrp.fsm import State
from hafast.vrrp.instance import Instance
from hafast.vrrp.sync_group import SyncGroup

log = logging.getLogger("hafast.vrrp")

RT_TABLE_MAIN = 254


def _index(dev: str) -> int:
    try:
        return socket.if_nametoindex(dev)
    except OSError:
        return -1


def route_is_ours(inst: Instance, d: DeletedRoute) -> str | None:
    """The ``virtual_routes`` line of ``inst`` that deletion ``d`` removed (its
    destination), tracked or not; None when none is."""
    for r in inst.spec.routes:
        if (r.family == d.family and (r.table or RT_TABLE_MAIN) == d.table
                and (r.metric or 0) == d.metric and d.tos == 0
                and (r.dev is None or _index(r.dev) == d.oif)
                and same_network(r.dst, d)):
            return r.dst if r.tracked else ""
    return None


class VipWatch:
    """Feeds :class:`~hafast.vrrp.fsm.VipDeleted` to the master whose VIP, virtual
    route or virtual rule was deleted (see the module doc)."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 instances: Callable[[], Iterable[Instance]],
                 groups: Callable[[], Iterable[SyncGroup]] = tuple) -> None:
        self._loop = loop
        self._instances = instances
        self._groups = groups
        self._watch: RouteWatch | None = None
        self._rule_keys: dict[int, tuple[tuple[RuleKey, str], ...]] = {}
        self.stepped_down = 0

    def follow(self) -> None:
        """Listen to the families the running instances' tracked entries need (a
        reload may add some)."""
        addrs, routes, rules = self.families()
        if not (addrs or routes or rules):
            return
        if self._watch is None:
            self._watch = RouteWatch(self._loop, self._route_deleted, self._rule_deleted,
                                     self._lost, self._addr_deleted)
        try:
            self._watch.listen(routes, rules, addrs)
        except OSError as exc:
            log.warning("cannot watch the VIPs, virtual routes and rules: %s", exc)

    def families(self) -> tuple[set[int], set[int], set[int]]:
        """The families whose address, route and rule deletions matter now (and the
        rules' keys, kept for matching)."""
        addrs: set[int] = set()
        routes: set[int] = set()
        rules: set[int] = set()
        self._rule_keys = {}
        for inst in self._instances():
            s = inst.spec
            addrs |= {v.family for v in s.vips + s.excluded if "no_track" not in v.options}
            routes |= {r.family for r in s.routes if r.tracked}
            # compare_rule never matches a dont_track rule: the next one may
            keys = [(key, rule.text()) for rule in s.rules if not rule.no_track
                    if (key := deletion_key(rule)) is not None]
            rules |= {rule.family for rule in s.rules if not rule.no_track}
            self._rule_keys[id(inst)] = tuple(keys)
        return addrs, routes, rules

    def _step_down(self, inst: Instance, what: str) -> None:
        log.info("%s: %s deleted by someone else: leaving MASTER (keepalived's "
                 "set_vrrp_backup)", inst.name, what)
        self.stepped_down += 1
        group = next((g for g in self._groups() if inst in g.members), None)
        if group is not None:
            group.step_down(inst, what)
        else:
            inst.feed(fsm.VipDeleted(inst.timers.now_us(), what))

    def _addr_deleted(self, d: DeletedAddress) -> None:
        deleted = ipaddress.ip_address(d.address)
        for inst in self._instances():
            if inst.state is not State.MASTER:
                continue  # address_is_ours: only masters have theirs up
            s = inst.spec
            for v in s.vips + s.excluded:
                if (ipaddress.ip_address(v.address) == deleted
                        and _index(v.dev or s.ifname) == d.ifindex):
                    if "no_track" not in v.options:
                        self._step_down(inst, f"VIP {v.address}")
                    return

    def _route_deleted(self, d: DeletedRoute) -> None:
        if d.protocol != RTPROT_KEEPALIVED:
            return
        for inst in self._instances():
            what = route_is_ours(inst, d)
            if what is None:
                continue
            # route_is_ours takes the first instance with such a line, whatever its
            # state; only a master acts
            if what and inst.state is State.MASTER:
                self._step_down(inst, f"virtual route {what}")
            return

    def _rule_deleted(self, deleted: RuleKey) -> None:
        for inst in self._instances():
            for key, text in self._rule_keys.get(id(inst), ()):
                if key.matches(deleted):
                    if inst.state is State.MASTER:
                        self._step_down(inst, f"virtual rule {text}")
                    return

    def _lost(self) -> None:
        # keepalived does not look again either when its socket overflowed
        log.warning("VIP watch: netlink events were lost; a deleted VIP, route or rule "
                    "may go unnoticed until the next transition")

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
