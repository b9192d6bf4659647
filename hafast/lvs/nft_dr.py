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

from collections.abc import Sequence

from hafast.lvs.backend import Dest, Service, ServiceKey
from hafast.net.neighbours import LinkHop

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


def is_dr(key: ServiceKey, dests: Sequence[Dest]) -> bool:
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
    slots, first = [], 0
    for hop, weight in live:
        last = first + weight - 1
        slots.append(f"{first if first == last else f'{first}-{last}'} : {hop.mac}")
        first = last + 1
    picker = (PERSISTENT_PICKER if service.timeout > 0 else
              PICKERS.get(service.scheduler, FLOW_PICKER)).format(W=first, fam=fam)
    device = live[0][0].device
    return (f"meta l4proto {key.protocol.lower()} ether saddr set {live[0][0].own_mac} "
            f"ether daddr set {picker} map {{ {', '.join(slots)} }} fwd to \"{device}\"")


def element(key: ServiceKey) -> tuple[str, str]:
    """(map, element key) of a DR service in the ingress dispatch maps."""
    return ("dr6" if key.family == 6 else "dr4",
            f"{key.address} . {key.protocol.lower()} . {key.port}")


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
