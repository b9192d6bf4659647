"""keepalived's route lines (``virtual_routes``, ``static_routes``), parsed.

The subset of ``ip route add``'s words hafast installs (:class:`hafast.net.vip.NetlinkVips`
encodes them); here, below the network code, so that the loader can refuse a
``static_routes`` line it would not install (the ``hafast -t`` rule, issue 14).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class RouteRefused(ValueError):
    """A static route keepalived would install without what the line asks (its
    ``track_group``): the config is refused rather than run untracked."""


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
    # static_routes: the track_group whose instances track ``dev`` (hafast.net.statics);
    # not the kernel's: a reload that changes only it leaves the route in place
    track_group: str | None = field(default=None, compare=False)
    # keepalived's dont_track: its deletion by someone else is not followed (a route
    # without ``dev`` is not either: keepalived 2.2.7 says it cannot track it)
    no_track: bool = False

    @property
    def tracked(self) -> bool:
        """Whether keepalived 2.2.7 follows this route's deletion (alloc_route).

        >>> RouteSpec("10.1.0.0/16", dev="eth0").tracked, RouteSpec("10.1.0.0/16").tracked
        (True, False)
        """
        return self.dev is not None and not self.no_track

    @property
    def family(self) -> int:
        """4 or 6, as keepalived takes it from the destination (or the gateway).

        >>> RouteSpec("default", gateway="fd00::1").family
        6
        """
        return 6 if ":" in self.dst or ":" in (self.gateway or "") else 4


_ROUTE_WORDS = {"via": "gateway", "gw": "gateway", "dev": "dev", "src": "src",
                "table": "table", "metric": "metric", "preference": "metric",
                "scope": "scope"}
_ROUTE_KINDS = ("blackhole", "unreachable", "prohibit")


def parse_route(words: Sequence[str], *, static: bool = False) -> RouteSpec:
    """Parse the common subset of keepalived's ``virtual_routes`` syntax;
    ``static``: a ``static_routes`` line, which may name a ``track_group`` (it then
    needs ``dev``, as keepalived 2.2.7's alloc_route: "Static route cannot have track
    group if no oif specified").

    >>> parse_route(("10.9.0.0/16", "via", "10.0.0.1", "dev", "eth0", "table", "5"))
    RouteSpec(dst='10.9.0.0/16', gateway='10.0.0.1', dev='eth0', src=None, table=5, \
metric=None, scope=None, kind='unicast', track_group=None, no_track=False)
    >>> parse_route(("blackhole", "10.8.0.0/16")).kind
    'blackhole'
    >>> parse_route(("src", "10.0.0.9", "to", "10.7.0.0/16", "via", "10.0.0.1")).src
    '10.0.0.9'
    >>> parse_route(("10.6.0.0/16", "dev", "eth1", "track_group", "TG"), static=True).track_group
    'TG'
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
        if word == "no_track":
            fields["no_track"] = True
            continue
        name = _ROUTE_WORDS.get(word)
        if word == "track_group" and static and items:
            if "track_group" in fields:
                raise RouteRefused(f"track_group {items[0]} is a duplicate")
            name = word
        if name is None or not items:
            raise ValueError(f"unsupported virtual route word {word!r} in {' '.join(words)!r}")
        value: Any = items.pop(0)
        if name in ("table", "metric"):
            value = int(value)
        fields[name] = value
    if "track_group" in fields and "dev" not in fields:
        raise RouteRefused("Static route cannot have track group if no oif specified "
                         "(write dev IF)")
    return RouteSpec(dst=dst, kind=kind, **fields)
