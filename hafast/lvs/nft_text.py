"""The nft text of a NAT service: its chain's rules, and for a persistent service the
sets and chains that remember each client's real server (pure; the backend,
:mod:`hafast.lvs.nft`, sends it; the kernel accepts it in tests/netns).

A service is a chain; its real servers own ``weight`` consecutive slots of
``0 .. sum(weights) - 1`` and the scheduler's expression (:data:`PICKERS`) picks one.

Persistence (``persistence_timeout``), as IPVS's templates: one dynamic set per real
server, holding the clients (masked by ``persistence_granularity``) it was given,
each with the timeout.  The service chain first sends a client found in a real
server's set there (and refreshes its timeout); a client in no set is placed by
the scheduler's pick, through a small chain per real server that adds it to that
server's set and DNATs.  A real server at weight 0 keeps its clients, as IPVS
keeps a quiescent destination's templates; one that leaves the pool takes its set
with it, and its clients are placed again.  Where IPVS counts the timeout from a
client's last connection's end, the set counts it from its last connection's
start (the nat chain sees a connection's first packet only).  The cost: a new
connection is looked up in the sets one real server after another, so a persistent
service of thousands of real servers pays thousands of set lookups per connection
(IPVS: one template lookup); a few tens, as persistent services usually have, cost
little beside the NAT itself.

Example::

    >>> from hafast.lvs.backend import Dest, Service, ServiceKey
    >>> s = Service(ServiceKey(4, "TCP", "10.0.0.1", 80), "rr", timeout=300, netmask=24)
    >>> for line in persistent_rules(s, [Dest("10.1.0.2", 8080, 1)]): print(line)
    meta l4proto tcp ip saddr & 255.255.255.0 @s4_tcp_10_0_0_1_80_p300_24_10_1_0_2_8080 \
update @s4_tcp_10_0_0_1_80_p300_24_10_1_0_2_8080 { ip saddr & 255.255.255.0 } \
dnat ip to 10.1.0.2:8080
    meta l4proto tcp numgen inc mod 1 vmap { 0 : jump s4_tcp_10_0_0_1_80_p300_24_10_1_0_2_8080 }
"""

from __future__ import annotations

import io
import ipaddress
import re
from collections.abc import Iterable, Sequence

from hafast.lvs.backend import Dest, DestKey, Service, ServiceKey

# Scheduler -> the nft expression that picks a slot.  Tables over branching.
PICKERS: dict[str, str] = {
    "rr": "numgen inc mod {W}",
    "wrr": "numgen inc mod {W}",
    "sh": "jhash {fam} saddr mod {W}",
    "dh": "jhash {fam} daddr mod {W}",
    "mh": "jhash {fam} saddr mod {W}",
}
DEFAULT_PICKER = "numgen random mod {W}"
# A set of clients per real server: IPVS keeps a template per client, without a bound.
PERSIST_SET_SIZE = 1 << 20


def chain_name(key: ServiceKey) -> str:
    """A chain name from the service key (nft names: letters, digits, ``_``).

    >>> chain_name(ServiceKey(4, "TCP", "10.0.0.1", 80))
    's4_tcp_10_0_0_1_80'
    """
    if key.fwmark:
        return f"m{key.family}_{key.fwmark}"
    addr = re.sub(r"[^0-9A-Za-z]", "_", key.address or "")
    return f"s{key.family}_{key.protocol.lower()}_{addr}_{key.port}"


def element(key: ServiceKey) -> tuple[str, str]:
    """(map, element key) of a service in the dispatch maps."""
    if key.fwmark:
        return "svcmark", str(key.fwmark)
    return ("svc6" if key.family == 6 else "svc4"), address_key(key)


def address_key(key: ServiceKey) -> str:
    """``daddr . l4proto . dport`` of an address service: its key in the NAT table's
    dispatch maps and in the DR table's (:func:`hafast.lvs.nft_dr.element`)."""
    return f"{key.address} . {key.protocol.lower()} . {key.port}"


def _addr(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _fam(key: ServiceKey) -> str:
    return "ip6" if key.family == 6 else "ip"


def _match(key: ServiceKey, with_port: bool) -> str:
    # nft: a port mapping is only valid after a transport protocol match.
    if key.fwmark:
        return "meta l4proto { tcp, udp, sctp }" if with_port else f"meta nfproto ipv{key.family}"
    return f"meta l4proto {key.protocol.lower()}"


def slot_map(targets: Iterable[tuple[int, str]]) -> tuple[str, int]:
    """The elements of a weighted pick map, ``span : target, ...``, from ``(weight,
    target)`` pairs (each weight a run of consecutive slots), and the number of slots;
    the NAT chains here and the DR chains of :mod:`hafast.lvs.nft_dr` alike.

    Written piece by piece from an iterable: at 10,000 real servers the lists of spans,
    pairs and element texts joined at the end were ~2 MB of short-lived objects at once,
    which the parent kept as freed pools after its first sync (issue 16).

    >>> slot_map([(1, "10.1.0.2 . 80"), (2, "10.1.0.3 . 80")])
    ('0 : 10.1.0.2 . 80, 1-2 : 10.1.0.3 . 80', 3)
    """
    out = io.StringIO()
    first = 0
    for weight, target in targets:
        last = first + weight - 1
        if first:
            out.write(", ")
        out.write(str(first) if first == last else f"{first}-{last}")
        out.write(" : ")
        out.write(target)
        first = last + 1
    return out.getvalue(), first


def _live(dests: Sequence[Dest]) -> list[Dest]:
    return [d for d in sorted(dests, key=lambda d: d.key) if d.weight > 0]


def service_rule(service: Service, dests: Sequence[Dest]) -> str | None:
    """The one rule of a service's chain without persistence (None: nothing has
    weight, nothing to do).

    >>> s = Service(ServiceKey(4, "TCP", "10.0.0.1", 80), "wrr")
    >>> rule = service_rule(s, [Dest("10.1.0.2", 8080, 1), Dest("10.1.0.3", 8080, 2)])
    >>> for part in rule.split(" map "): print(part)
    meta l4proto tcp dnat ip to numgen inc mod 3
    { 0 : 10.1.0.2 . 8080, 1-2 : 10.1.0.3 . 8080 }
    """
    key = service.key
    live = _live(dests)
    if not live:
        return None
    with_port = names_port(key, live)
    targets, width = slot_map((d.weight, dest_target(key, d.key, with_port)) for d in live)
    return pick_rule(service, with_port, width, f"{{ {targets} }}")


def dest_target(key: ServiceKey, dest: DestKey, with_port: bool) -> str:
    """What DNAT sends a connection to, from the destination's ``(address, port)``:
    ``address . port``, or the address alone.

    >>> dest_target(ServiceKey(6, "TCP", "fd00::1", 443), ("fd01::2", 0), True)
    '[fd01::2] . 443'
    """
    address, port = dest
    return f"{_addr(address)} . {port or key.port}" if with_port else _addr(address)


def pick_rule(service: Service, with_port: bool, width: int, slots: str) -> str:
    """A NAT service's rule: the scheduler's pick of a slot of ``0 .. width - 1``,
    looked up in ``slots`` (an anonymous map's text, or ``@NAME``).

    >>> pick_rule(Service(ServiceKey(4, "TCP", "10.0.0.1", 80), "sh"), True, 3, "@m")
    'meta l4proto tcp dnat ip to jhash ip saddr mod 3 map @m'
    """
    key = service.key
    picker = PICKERS.get(service.scheduler, DEFAULT_PICKER).format(W=width, fam=_fam(key))
    return f"{_match(key, with_port)} dnat {_fam(key)} to {picker} map {slots}"


def names_port(key: ServiceKey, dests: Iterable[Dest]) -> bool:
    """Whether DNAT names a port: always, but for a fwmark service whose
    destinations have none."""
    return not key.fwmark or any(d.port for d in dests)


# -- persistence --------------------------------------------------------------------


def persist_name(service: Service, dest: Dest) -> str:
    """The set (and the chain) of ``dest``'s clients.  The timeout and the mask are in
    the name: a reload that changes either makes new sets beside the old ones, which
    go in the same transaction (a set's timeout is fixed at its creation)."""
    addr = re.sub(r"[^0-9A-Za-z]", "_", dest.address)
    return (f"{chain_name(service.key)}_p{service.timeout}_{service.netmask}_"
            f"{addr}_{dest.port}")


def _client(service: Service) -> str:
    """The client's key in the sets: its address, masked by persistence_granularity."""
    key = service.key
    full = 128 if key.family == 6 else 32
    saddr = f"{_fam(key)} saddr"
    if service.netmask >= full:
        return saddr
    net = ipaddress.ip_network(f"{'::' if key.family == 6 else '0.0.0.0'}/{service.netmask}")
    return f"{saddr} & {net.netmask}"


def _dnat(service: Service, dest: Dest, with_port: bool) -> str:
    key = service.key
    if not with_port:
        return f"dnat {_fam(key)} to {_addr(dest.address)}"
    return f"dnat {_fam(key)} to {_addr(dest.address)}:{dest.port or key.port}"


def persistent_objects(table: str, service: Service, dests: Sequence[Dest]) -> list[str]:
    """The lines that make (or refresh) each destination's set and its pick chain;
    sent before the service chain's rules, which refer to them."""
    key = service.key
    with_port = names_port(key, dests)
    match, client = _match(key, with_port), _client(service)
    addr_type = "ipv6_addr" if key.family == 6 else "ipv4_addr"
    lines = []
    for d in sorted(dests, key=lambda d: d.key):
        name = persist_name(service, d)
        lines += [
            f"add set inet {table} {name} {{ type {addr_type}; flags dynamic,timeout; "
            f"timeout {service.timeout}s; size {PERSIST_SET_SIZE}; }}",
            f"add chain inet {table} {name}",
            f"flush chain inet {table} {name}",
            f"add rule inet {table} {name} {match} update @{name} {{ {client} }} "
            f"{_dnat(service, d, with_port)}",
        ]
    return lines


def persistent_rules(service: Service, dests: Sequence[Dest]) -> list[str]:
    """The service chain's rules: a known client to its real server (every
    destination, weight 0 included), then the scheduler's pick for a new one."""
    key = service.key
    ordered = sorted(dests, key=lambda d: d.key)
    with_port = names_port(key, ordered)
    match, client = _match(key, with_port), _client(service)
    rules = []
    for d in ordered:
        name = persist_name(service, d)
        rules.append(f"{match} {client} @{name} update @{name} {{ {client} }} "
                     f"{_dnat(service, d, with_port)}")
    live = _live(ordered)
    if live:
        picks, width = slot_map((d.weight, f"jump {persist_name(service, d)}") for d in live)
        picker = PICKERS.get(service.scheduler, DEFAULT_PICKER).format(W=width, fam=_fam(key))
        rules.append(f"{match} {picker} vmap {{ {picks} }}")
    return rules


def persistent_leftovers(table: str, before: Service | None, old: Iterable[Dest],
                         after: Service | None, new: Iterable[Dest]) -> list[str]:
    """The sets and pick chains of ``before`` that ``after`` no longer has (a real
    server gone, persistence changed or dropped, the service gone): sent after the
    service chain no longer refers to them.  Neither ``old`` nor ``new`` is read
    unless ``before`` was persistent."""
    if before is None or before.timeout <= 0:
        return []
    keep = ({persist_name(after, d) for d in new}
            if after is not None and after.timeout > 0 else set())
    lines = []
    for d in sorted(old, key=lambda d: d.key):
        name = persist_name(before, d)
        if name not in keep:
            lines += [f"flush chain inet {table} {name}", f"delete chain inet {table} {name}",
                      f"delete set inet {table} {name}"]
    return lines
