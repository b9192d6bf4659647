"""keepalived's route lines (``virtual_routes``, ``static_routes``), parsed.

The subset of ``ip route add``'s words hafast installs (:class:`hafast.net.vip.NetlinkVips`
encodes them); here, below the network code, so that the loader can refuse a
``static_routes`` line it would not install (the ``hafast -t`` rule, issue 14).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One ``virtual_routes`` line, parsed: ``DST [via GW] [dev IF] [src IP] [table N] ...``."""

    dst: str
    gateway: str | None = None
    dev: str | None = None
    src: str | None = None
    table: int | None = None
    metric: int | None = None
    scope: str | None = None
    kind: str = "unicast"  # "blackhole", "unreachable", "prohibit"


_ROUTE_WORDS = {"via": "gateway", "gw": "gateway", "dev": "dev", "src": "src",
                "table": "table", "metric": "metric", "preference": "metric",
                "scope": "scope"}
_ROUTE_KINDS = ("blackhole", "unreachable", "prohibit")


def parse_route(words: Sequence[str]) -> RouteSpec:
    """Parse the common subset of keepalived's ``virtual_routes`` syntax.

    >>> parse_route(("10.9.0.0/16", "via", "10.0.0.1", "dev", "eth0", "table", "5"))
    RouteSpec(dst='10.9.0.0/16', gateway='10.0.0.1', dev='eth0', src=None, table=5, \
metric=None, scope=None, kind='unicast')
    >>> parse_route(("blackhole", "10.8.0.0/16")).kind
    'blackhole'
    >>> parse_route(("src", "10.0.0.9", "to", "10.7.0.0/16", "via", "10.0.0.1")).src
    '10.0.0.9'
    """
    items = list(words)
    kind = "unicast"
    if items and items[0] in _ROUTE_KINDS:
        kind = items.pop(0)
    fields: dict[str, Any] = {}
    # keepalived.conf(5) and its samples write "src IP [to] DST ..."
    while len(items) > 1 and items[0] in ("src", "to"):
        if items.pop(0) == "src":
            fields["src"] = items.pop(0)
    if not items:
        raise ValueError("a virtual route needs a destination")
    dst = items.pop(0)
    while items:
        word = items.pop(0)
        name = _ROUTE_WORDS.get(word)
        if name is None or not items:
            raise ValueError(f"unsupported virtual route word {word!r} in {' '.join(words)!r}")
        value: Any = items.pop(0)
        if name in ("table", "metric"):
            value = int(value)
        fields[name] = value
    return RouteSpec(dst=dst, kind=kind, **fields)
