"""global_defs' nftables keywords where their order matters, as keepalived 2.2.7 reads them.

keepalived's handlers run in file order and each sets global data outright, so the
table walk's "last value wins" is not enough for these three (``global_parser.c``):

- ``nftables [NAME]`` and ``vrrp_iptables`` (on a build without iptables) set the table
  *and reset the chain priority to -1*: an ``nftables_priority`` written before them
  has no effect;
- ``vrrp_iptables`` always names the table ``keepalived``; an ``nftables`` after it is
  refused ("nftables already specified - ignoring");
- a table name of 256 characters or more is refused ("nftables table name too long -
  ignoring").

Example::

    >>> from hafast.config.tokens import Token
    >>> f = {"nftables_priority": -5, "nftables": "t"}
    >>> pos = {"nftables_priority": Token("nftables_priority", "k", 2, 3),
    ...        "nftables": Token("nftables", "k", 3, 3)}
    >>> nftables_in_order(f, pos, lambda tok, msg: None); f["nftables_priority"]
    -1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hafast.config.tokens import Token

NFT_TABLE_MAXNAMELEN = 256  # linux/netfilter/nf_tables.h, with its terminating NUL


def _before(a: Token | None, b: Token | None) -> bool:
    """``a`` was read before ``b`` (in one file; across includes order is not known)."""
    return (a is not None and b is not None and a.file == b.file
            and (a.line, a.col) < (b.line, b.col))


def nftables_in_order(f: dict[str, Any], pos: Mapping[str, Token],
                      warn: Callable[[Token, str], None]) -> None:
    """Adjust global_defs' fields ``f`` to what keepalived's handlers leave."""
    nft, ipt, prio = pos.get("nftables"), pos.get("vrrp_iptables"), pos.get("nftables_priority")
    name = f.get("nftables")
    if nft is not None and name and len(name) >= NFT_TABLE_MAXNAMELEN:
        warn(nft, "nftables table name too long - ignoring")
        del f["nftables"]
        nft = None
    if ipt is not None and _before(ipt, nft):
        # the table stays keepalived: NftSettings.of reads vrrp_iptables first
        warn(nft, "nftables already specified - ignoring")  # type: ignore[arg-type]
    setters = [t for t in (nft, ipt) if t is not None]
    if prio is not None and any(_before(prio, t) for t in setters):
        f["nftables_priority"] = -1
