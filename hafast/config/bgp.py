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
    if "prefix" not in f:
        ld.error(kw, "announce needs a prefix (expected: prefix A/32 or A/128)")
        return None
    return m.Announce(where=kw.where(), **f)
