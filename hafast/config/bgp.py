"""Fleet mode's config blocks (hafast extensions): ``bgp_speaker`` and ``announce``.

Built as soon as they close (nothing to inherit).  A missing setting without which the
speaker cannot run (an AS number, a neighbor's remote AS, an announce's prefix) is an
error at the block's keyword, so ``hafast -t`` names the file and line.

Example::

    >>> from hafast.config.loader import load_text
    >>> res = load_text('''bgp_speaker {
    ...   local_as 65001
    ...   router_id 10.255.0.1
    ...   neighbor 10.0.1.1 {
    ...     remote_as 65000
    ...     bfd
    ...   }
    ... }''')
    >>> res.config.bgp_speaker.neighbors[0]
    BgpNeighbor(address='10.0.1.1', remote_as=65000, bfd=True)
    >>> load_text("bgp_speaker {\\n router_id 10.255.0.1\\n}").errors[0].format()
    '<string>:1:1: error: bgp_speaker needs local_as (expected: local_as <integer 1..4294967295>)'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hafast.config import model as m
from hafast.config.tokens import Token
from hafast.config.walk import Pending, Walker, as_tuples


def _neighbor(ld: Walker, p: Pending) -> m.BgpNeighbor | None:
    name = p.args[0] if p.args else p.kw
    try:
        address = str(ipaddress.ip_address(name.text))
    except ValueError:
        ld.error(name, f"neighbor '{name.text}' is not an IP address "
                 "(expected: neighbor ADDR { remote_as N; bfd })")
        return None
    f = as_tuples(p.fields)
    if "remote_as" not in f:
        ld.error(p.kw, f"neighbor {address} needs remote_as "
                 "(expected: remote_as <integer 1..4294967295>)")
        return None
    return m.BgpNeighbor(address=address, where=p.kw.where(), **f)


def bgp_speaker(ld: Walker, f: dict[str, Any], pos: dict[str, Token], kw: Token) -> Any:
    pending = f.pop("neighbors", ())
    neighbors = [n for p in pending if (n := _neighbor(ld, p)) is not None]
    seen: set[str] = set()
    for n, p in zip(neighbors, pending, strict=False):
        if n.address in seen:
            ld.error(p.kw, f"neighbor {n.address} given twice")
        seen.add(n.address)
    if "local_as" not in f:
        ld.error(kw, "bgp_speaker needs local_as (expected: local_as <integer 1..4294967295>)")
        return None
    if "router_id" in f and ":" in f["router_id"]:
        ld.error(pos["router_id"], f"router_id {f['router_id']} is not an IPv4 address "
                 "(BGP identifiers are 32 bits, RFC 4271 §4.2)")
        return None
    hold, keep = f.get("hold_time", 9), f.get("keepalive", 3)
    if keep * 3 > hold:
        # RFC 4271 §10: keepalive "a reasonable maximum ... one third of the Hold Time"
        ld.warn(pos.get("keepalive", pos.get("hold_time", kw)),
                f"keepalive {keep} is more than a third of hold_time {hold}")
    return m.BgpSpeaker(neighbors=tuple(neighbors), where=kw.where(), **f)


def announce(ld: Walker, f: dict[str, Any], pos: dict[str, Token], kw: Token) -> Any:
    prefixes = f.pop("prefixes", [])
    if not prefixes:
        ld.error(kw, "announce needs a prefix (expected: prefix A/32 or A/128)")
        return None
    once = tuple(dict.fromkeys(prefixes))
    if len(once) != len(prefixes):
        twice = next(p for p in once if prefixes.count(p) > 1)
        ld.warn(pos.get("prefixes", kw), f"announce: prefix {twice} given twice")
    return m.Announce(prefix=once[0], prefixes=once, where=kw.where(), **as_tuples(f))


def _at(where: str) -> Token:
    file, _, rest = where.rpartition(":")
    file, _, line = file.rpartition(":")
    if not file or not line.isdigit() or not rest.isdigit():
        return Token("", "<config>", 0, 0)
    return Token("", file, int(line), int(rest))


def diagnose(config: m.Config, warn: Callable[[Token, str], None],
             error: Callable[[Token, str], None]) -> None:
    """What ``hafast -t`` says about fleet mode once the whole config is built.

    >>> from hafast.config.loader import load_text
    >>> res = load_text('''static_ipaddress {
    ...   192.0.2.100/32 dev lo
    ... }
    ... virtual_server 192.0.2.100 80 {
    ...   protocol TCP
    ...   lvs_sched wlc
    ...   lvs_method DR
    ...   announce {
    ...     prefix 192.0.2.100/32
    ...   }
    ... }''')
    >>> for w in res.warnings[1:]:  # the first: no real_server
    ...     print(w.format()[:73])
    <string>:8:3: warning: announce has no effect without a bgp_speaker block
    <string>:8:3: warning: 192.0.2.100 is also an interface address in this c
    """
    announced = [vs for vs in config.virtual_servers if vs.announce is not None]
    if not announced:
        return
    if config.bgp_speaker is None:
        assert announced[0].announce is not None
        warn(_at(announced[0].announce.where),
             "announce has no effect without a bgp_speaker block")
    addresses: dict[str, str] = {}
    for v in config.static_ipaddress:
        addresses.setdefault(str(ipaddress.ip_address(v.address)), "static_ipaddress")
    for inst in config.vrrp_instances:
        for v in inst.virtual_ipaddress:
            addresses.setdefault(str(ipaddress.ip_address(v.address)),
                                 f"vrrp_instance {inst.name}")
    first: dict[str, m.VirtualServer] = {}  # prefix -> the first block announcing it
    for vs in announced:
        assert vs.announce is not None
        vips = [str(ipaddress.ip_network(p).network_address) for p in vs.announce.prefixes]
        for prefix, vip in zip(vs.announce.prefixes, vips, strict=True):
            if vip in addresses:
                # measured: zebra takes the address's route as connected, and a connected
                # route satisfies FRR's import-check whatever hafast does to its own route
                warn(_at(vs.announce.where),
                     f"{vip} is also an interface address in this config "
                     f"({addresses[vip]}): FRR would keep announcing it whatever the quorum "
                     "(import-check is satisfied by the connected route); leave the address "
                     "out, hafast makes the VIP local with a route")
            if vs.address is not None and vs.address != vip and vs.group is None:
                warn(_at(vs.announce.where), f"announce prefix {prefix} is not this virtual "
                     f"server's address {vs.address}")
            _shared(first.setdefault(prefix, vs), vs, prefix, error)
        _tracks(config, vs.announce, warn, error)
        if vs.group is not None:
            _group(config, vs.group, vs.announce, vips, warn)


def _settings(a: m.Announce) -> m.Announce:
    """What must agree between two blocks announcing one prefix: all but where and
    which prefixes."""
    return replace(a, prefix="", prefixes=(), where="")


def _shared(owner: m.VirtualServer, vs: m.VirtualServer, prefix: str,
            error: Callable[[Token, str], None]) -> None:
    """A prefix several virtual servers announce (VIP:80 and VIP:443) has one machine,
    which announces it while every one of them has its quorum and own checks
    (hafast.fleet.runner); its settings are the first block's, so any other block must
    say the same: one that does not would be silently overruled."""
    assert owner.announce is not None and vs.announce is not None
    if owner is vs or _settings(owner.announce) == _settings(vs.announce):
        return
    error(_at(vs.announce.where), f"announce {prefix}: also announced by virtual_server "
          f"{owner.label} ({owner.announce.where}) with other settings; a prefix has one "
          "announcement, so make both blocks' settings the same")


def _tracks(config: m.Config, a: m.Announce, warn: Callable[[Token, str], None],
            error: Callable[[Token, str], None]) -> None:
    """An announce block's tracked objects (hafast.fleet.owncheck): each must be
    defined (an unknown one would hold the VIP back for good: an error), and a weight
    has no effect (a tracked object that is down withdraws the VIP)."""
    known = {"track_script": ({s.name for s in config.vrrp_scripts}, "vrrp_script"),
             "track_file": ({f.name for f in config.track_files}, "track_file"),
             "track_process": ({p.name for p in config.track_processes},
                               "vrrp_track_process")}
    at = _at(a.where)
    for kind, refs in (("track_script", a.track_script), ("track_file", a.track_file),
                       ("track_interface", a.track_interface),
                       ("track_process", a.track_process)):
        for r in refs:
            if kind in known and r.name not in known[kind][0]:
                error(at, f"announce {a.prefix}: {kind} {r.name} is not defined (expected "
                      f"the name of a {known[kind][1]} block in this config)")
            if r.weight is not None:
                warn(at, f"announce {a.prefix}: {kind} {r.name} weight {r.weight} has no "
                     "effect: the VIP is withdrawn while the object is down")


def _member_is(member: m.VsgMember, vip: str) -> bool:
    """Whether the group member is exactly ``vip`` (one address, no range)."""
    return (member.address is not None and member.last is None and "/" not in member.address
            and ipaddress.ip_address(member.address) == ipaddress.ip_address(vip))


def _group(config: m.Config, name: str, a: m.Announce, vips: list[str],
           warn: Callable[[Token, str], None]) -> None:
    """A virtual_server_group's announce block announces its prefix lines: say so when
    the group holds other addresses (a range, a fwmark, another address), which go
    unannounced, or a prefix is not one of the group's addresses."""
    group = next((g for g in config.virtual_server_groups if g.name == name), None)
    if group is None or not group.members:
        return
    for prefix, vip in zip(a.prefixes, vips, strict=True):
        if not any(_member_is(mb, vip) for mb in group.members):
            warn(_at(a.where), f"announce prefix {prefix} is not an address of "
                 f"virtual_server_group {name}")
    others = [mb for mb in group.members if not any(_member_is(mb, v) for v in vips)]
    if others and len(others) < len(group.members):
        shown = ", ".join(f"fwmark {mb.fwmark}" if mb.address is None else
                          f"{mb.address}-{mb.last}" if mb.last else str(mb.address)
                          for mb in others[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        warn(_at(a.where), f"announce {a.prefix}: virtual_server_group {name} also holds "
             f"{shown}{more}, which this director does not announce (add a prefix line "
             "for each address to announce)")

