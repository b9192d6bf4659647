"""LVS-DR on nftables: the real server's MAC written into the frame at ingress.

IPVS's direct routing leaves the packet as the client sent it (destination: the
virtual address) and hands it to the real server's MAC on a directly connected
network; the real server holds the virtual address on a loopback (``arp_ignore``)
and answers the client itself.  nftables can do the same from a ``netdev`` table,
before the IP stack sees the packet:

- a base chain ``ingress`` hooked on every link that is up (loopback aside) sends
  ``daddr . l4proto . dport`` through a verdict map (``dr4``/``dr6``) to the
  service's chain;
- the service's chain holds ONE rule: source MAC set to the egress device's own,
  destination MAC picked from an anonymous map (each real server owning ``weight``
  consecutive slots, as the NAT chains do), then ``fwd to`` that device.

The real servers' MACs come from the neighbour table (:mod:`hafast.net.neighbours`,
read whole at most once a second): one not resolved yet is left out, nudged and
looked at again within 50 ms (backing off to 5 s); every DR service is looked at
again every 30 s, so a real server's new MAC, or a link come up, is followed within
that (IPVS asks the neighbour table for every packet).

What differs from IPVS, said by :func:`hafast.lvs.nft.limits`: an ingress hook runs
before connection tracking, so there is no connection table.  Every packet of a
flow is placed by a hash of its addresses and ports (``jhash saddr . sport``), so
the flow stays on its real server while the pool is unchanged; a change of the pool
(a real server leaving, a weight) can move established flows, where IPVS keeps
them on theirs.  ``sh`` and persistence hash the client address alone (a client
keeps its server across connections), ``dh`` the destination address.  Fwmark
services cannot be direct-routed here (the mark is set after ingress) and stay on
the NAT path.

Example::

    >>> from hafast.lvs.backend import Service, ServiceKey
    >>> from hafast.net.neighbours import LinkHop
    >>> hop = LinkHop("eth1", "02:00:00:00:00:02", "02:00:00:00:00:01")
    >>> print(dr_rule(Service(ServiceKey(4, "TCP", "192.0.2.1", 80), "wrr"), [(hop, 2)]))
    meta l4proto tcp ether saddr set 02:00:00:00:00:01 ether daddr set jhash ip saddr \
. th sport mod 2 map { 0-1 : 02:00:00:00:00:02 } fwd to "eth1"
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Protocol

from hafast.lvs.backend import Dest, Pool, Service, ServiceKey
from hafast.lvs.nft_text import address_key, chain_name, slot_map
from hafast.net.neighbours import NO_ROUTE, UNRESOLVED, LinkHop

log = logging.getLogger("hafast.lvs")

SUFFIX = "_dr"  # the netdev table is the inet table's name with this
INGRESS = "ingress"
INGRESS_PRIORITY = 0
# Scheduler -> how a packet picks its slot without a connection table (module doc).
FLOW_PICKER = "jhash {fam} saddr . th sport mod {W}"
PICKERS: dict[str, str] = {
    "sh": "jhash {fam} saddr mod {W}",
    "dh": "jhash {fam} daddr mod {W}",
}
PERSISTENT_PICKER = PICKERS["sh"]
# A service with a real server not resolved yet (or with no route yet) is looked at
# again after these delays, the last one repeated; with none waiting, every DR
# service is looked at every REFRESH_S (a real server's new MAC, a link come up).
RETRY_S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
REFRESH_S = 30.0


class Lookups(Protocol):
    """What :class:`DirectRouting` asks of :class:`hafast.net.neighbours.Neighbours`."""

    def lookup(self, address: str) -> LinkHop | str: ...
    def devices(self) -> list[str]: ...
    def refresh(self) -> None: ...
    def nudge(self, address: str) -> None: ...


def is_dr(key: ServiceKey, dests: Collection[Dest]) -> bool:
    """A service direct-routed on nftables: every destination DR, no fwmark.

    >>> k = ServiceKey(4, "TCP", "192.0.2.1", 80)
    >>> is_dr(k, [Dest("10.1.0.1", 80, 1, "DR")]), is_dr(k, [])
    (True, False)
    >>> is_dr(k, [Dest("10.1.0.1", 80, 1, "DR"), Dest("10.1.0.2", 80, 1)])
    False
    """
    return not key.fwmark and bool(dests) and all(d.method == "DR" for d in dests)


def dr_rule(service: Service, hops: Sequence[tuple[LinkHop, int]]) -> str | None:
    """The one rule of a DR service's chain from ``(hop, weight)`` of its live real
    servers, all on one device (None: none, nothing to do)."""
    live = [(h, w) for h, w in hops if w > 0]
    if not live:
        return None
    key = service.key
    fam = "ip6" if key.family == 6 else "ip"
    slots, width = slot_map((w, hop.mac) for hop, w in live)
    picker = (PERSISTENT_PICKER if service.timeout > 0 else
              PICKERS.get(service.scheduler, FLOW_PICKER)).format(W=width, fam=fam)
    device = live[0][0].device
    return (f"meta l4proto {key.protocol.lower()} ether saddr set {live[0][0].own_mac} "
            f"ether daddr set {picker} map {{ {slots} }} fwd to \"{device}\"")


def element(key: ServiceKey) -> tuple[str, str]:
    """(map, element key) of a DR service in the ingress dispatch maps."""
    return ("dr6" if key.family == 6 else "dr4"), address_key(key)


def skeleton(table: str) -> list[str]:
    """The netdev table, empty and unhooked (made afresh with the inet table)."""
    return [
        f"table netdev {table}",
        f"delete table netdev {table}",
        f"table netdev {table} {{",
        "  map dr4 { type ipv4_addr . inet_proto . inet_service : verdict; }",
        "  map dr6 { type ipv6_addr . inet_proto . inet_service : verdict; }",
        "}",
    ]


def hook(table: str, devices: Sequence[str], hooked: bool) -> list[str]:
    """(Re)hook the ingress chain on ``devices`` (none: unhook).  A base chain's
    devices are fixed at its creation: it is emptied, deleted and made again, in the
    caller's one transaction."""
    lines = [f"flush chain netdev {table} {INGRESS}",
             f"delete chain netdev {table} {INGRESS}"] if hooked else []
    if devices:
        names = ", ".join(f'"{d}"' for d in devices)
        lines += [
            f"add chain netdev {table} {INGRESS} {{ type filter hook ingress devices = "
            f"{{ {names} }} priority {INGRESS_PRIORITY}; policy accept; }}",
            f"add rule netdev {table} {INGRESS} ip daddr . meta l4proto . th dport vmap @dr4",
            f"add rule netdev {table} {INGRESS} ip6 daddr . meta l4proto . th dport vmap @dr6",
        ]
    return lines


class DirectRouting:
    """The DR half of the nftables backend: which services have their chain in the
    netdev table, the links its ingress chain is hooked on, each chain's rule as last
    sent, and which services wait for a real server's MAC.  It writes nft lines; the
    backend sends them (in its own transactions) and says when they went out
    (:meth:`sent`), and runs :meth:`tick` when :meth:`delay` says.
    """

    def __init__(self, table: str, neighbours: Lookups) -> None:
        self.table = table
        self.neighbours = neighbours
        self.reset()
        self._said: set[tuple[str, str]] = set()

    def reset(self) -> None:
        """A new, empty netdev table (the backend's open and release)."""
        self.services: set[ServiceKey] = set()
        self.hooked: tuple[str, ...] | None = None
        self.rules: dict[ServiceKey, str | None] = {}
        self.waiting: set[ServiceKey] = set()
        self._tries = 0

    def rule_of(self, key: ServiceKey, svc: Service, dests: Sequence[Dest]) -> str | None:
        """A DR service's rule from its real servers' hops as they are now."""
        return dr_rule(svc, self._hops(key, dests))

    def chain_lines(self, key: ServiceKey, rule: str | None, present: bool) -> list[str]:
        """The lines that make (or rewrite) a DR service's chain with ``rule``."""
        chain = chain_name(key)
        mapname, elem = element(key)
        t = self.table
        lines = [f"flush chain netdev {t} {chain}"] if present else [
            f"add chain netdev {t} {chain}",
            f"add element netdev {t} {mapname} {{ {elem} : jump {chain} }}"]
        self.rules[key] = rule
        if rule is not None:
            lines.append(f"add rule netdev {t} {chain} {rule}")
        return lines

    def forget(self, key: ServiceKey) -> None:
        self.rules.pop(key, None)
        self.waiting.discard(key)

    def _hops(self, key: ServiceKey, dests: Sequence[Dest]) -> list[tuple[LinkHop, int]]:
        """Where each live real server of a DR service is on the link.  One that has
        no route or MAC yet is left out for now (nudged; looked at again: tick); one
        off the link is left out; either is said once per address and reason.  The
        service forwards on the device of its first real server."""
        hops: list[tuple[LinkHop, int]] = []
        self.waiting.discard(key)
        for d in sorted(dests, key=lambda d: d.key):
            if d.weight <= 0:
                continue
            hop = self.neighbours.lookup(d.address)
            if isinstance(hop, LinkHop) and hops and hop.device != hops[0][0].device:
                hop = f"on {hop.device}, not {hops[0][0].device} as the service's first"
            if isinstance(hop, str):
                if hop in (UNRESOLVED, NO_ROUTE):
                    self.waiting.add(key)
                    if hop == UNRESOLVED:
                        self.neighbours.nudge(d.address)
                if (d.address, hop) not in self._said:
                    self._said.add((d.address, hop))
                    log.warning("pool on nft: real server %s of %s (lvs_method DR) is out of "
                                "its service for now: %s", d.address, key, hop)
                continue
            self._said = {s for s in self._said if s[0] != d.address}
            hops.append((hop, d.weight))
        return hops

    def hook_lines(self, services: set[ServiceKey]) -> tuple[list[str], tuple[str, ...] | None]:
        """The ingress chain on the links up now while a DR service exists, unhooked
        when none does: (lines, the links it will be hooked on)."""
        devices = tuple(self.neighbours.devices()) if services else ()
        want = devices or None
        if want == self.hooked:
            return [], self.hooked
        return hook(self.table, devices, self.hooked is not None), want

    def sent(self, services: set[ServiceKey], hooked: tuple[str, ...] | None) -> None:
        """The backend's transaction went out with these services and this hook."""
        self.services, self.hooked = services, hooked
        self._tries = self._tries + 1 if self.waiting else 0

    def failed(self) -> None:
        """The transaction was refused: the next tick rewrites every chain."""
        self.rules.clear()

    def delay(self) -> float | None:
        """Seconds until :meth:`tick` is due (None: no DR service)."""
        if self.waiting:
            return RETRY_S[min(max(self._tries, 1), len(RETRY_S)) - 1]
        return REFRESH_S if self.services else None

    def tick(self, pool: Pool) -> tuple[list[str], tuple[str, ...] | None]:
        """Everything looked up afresh: the lines for each DR service whose rule is not
        the one sent (a MAC resolved or changed, a route) and for the links hooked."""
        self.neighbours.refresh()
        lines: list[str] = []
        for key in sorted(self.services, key=str):
            svc = pool.services.get(key)
            if svc is None:
                continue
            rule = self.rule_of(key, svc, list(pool.dests.get(key, {}).values()))
            if key not in self.rules or rule != self.rules[key]:
                lines += self.chain_lines(key, rule, True)
        hook_lines, hooked = self.hook_lines(self.services)
        return [*hook_lines, *lines], hooked
