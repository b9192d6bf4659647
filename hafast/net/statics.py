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
the VRRP side carries on.  ``track_group`` is refused by the loader.

Example (root)::

    statics = Statics()
    statics.apply(config)     # at start, and with the new config on reload
    statics.release()         # at stop
"""

from __future__ import annotations

import logging
from typing import Any

from hafast.config.iproute import RouteSpec, parse_route
from hafast.config.iprule import IpRule, parse_rule
from hafast.config.model import Config, VirtualAddress

log = logging.getLogger("hafast.vrrp")

OWNER = "static"  # the owner name the backend files them under (instances have theirs)


def wanted(config: Config) -> tuple[tuple[VirtualAddress, ...], tuple[RouteSpec, ...],
                                    tuple[IpRule, ...]]:
    """The static addresses, routes and rules ``config`` asks for (checked at load)."""
    return (config.static_ipaddress,
            tuple(parse_route(w) for w in config.static_routes),
            tuple(parse_rule(w, static=True)[0] for w in config.static_rules))


class Statics:
    """The static entries of the running config, in the kernel (see the module doc)."""

    def __init__(self, backend: Any = None) -> None:
        self._backend = backend  # made on first use: no netlink socket without statics
        self._have: tuple[tuple[VirtualAddress, ...], tuple[RouteSpec, ...],
                          tuple[IpRule, ...]] = ((), (), ())
        self._dev = "eth0"
        self._refused: dict[str, int] = {}  # the counts of a backend already closed

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
        gone = ([a for a in old_addrs if a not in set(addrs)],
                [r for r in old_routes if r not in set(routes)],
                [r for r in old_rules if r not in set(rules)])
        if any(gone):
            vips.remove(OWNER, gone[0], gone[1], dev, gone[2])
        if any(want):
            log.info("static entries: %d address(es), %d route(s), %d rule(s)",
                     len(addrs), len(routes), len(rules))
            vips.add(OWNER, addrs, routes, self._dev, rules)
        self._have = want

    def release(self) -> None:
        """Remove every static entry this process holds (the VRRP side's stop)."""
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
