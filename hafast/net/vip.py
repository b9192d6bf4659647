"""The VIP backend: virtual addresses and routes in the current namespace via pyroute2.

Only what this backend added is ever removed: an address or route that was already
there (EEXIST) is left alone on release and on stop, so hafast never takes away an
administrator's address.  Every operation is idempotent.

pyroute2 0.9's ``IPRoute`` runs its own asyncio loop and cannot share uvloop's
(uvloop refuses AF_NETLINK datagram endpoints), so all netlink work happens on one
worker thread that owns the ``IPRoute``; calls return futures and keep their order.

Example (root, in a scratch namespace)::

    backend = NetlinkVips()
    backend.add("VI_1", vips, routes, default_dev="eth0").result()
    backend.release_all()   # on stop: only what we added goes
"""

from __future__ import annotations

import concurrent.futures
import errno
import ipaddress
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hafast.config.model import VirtualAddress

log = logging.getLogger("hafast.vrrp.vip")

# ip-address(8) scope names -> rtnetlink rt_scope values (linux/rtnetlink.h).
SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
# linux/if_addr.h: IFA_F_NODAD.  keepalived adds IPv6 VIPs without DAD so a new
# master can answer for them at once instead of after a tentative second.
IFA_F_NODAD = 0x02


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
    """
    items = list(words)
    kind = "unicast"
    if items and items[0] in _ROUTE_KINDS:
        kind = items.pop(0)
    if not items:
        raise ValueError("a virtual route needs a destination")
    dst = items.pop(0)
    fields: dict[str, Any] = {}
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


class VipOps(Protocol):
    """What an instance needs from the VIP backend (futures keep the call order)."""

    def add(
        self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
        default_dev: str,
    ) -> concurrent.futures.Future[None]: ...

    def remove(
        self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
        default_dev: str,
    ) -> concurrent.futures.Future[None]: ...

    def release_all(self) -> None: ...


def _done() -> concurrent.futures.Future[None]:
    fut: concurrent.futures.Future[None] = concurrent.futures.Future()
    fut.set_result(None)
    return fut


class MemoryVips:
    """An in-memory VIP backend for unit tests: remembers what is installed, in order."""

    def __init__(self) -> None:
        self.installed: dict[tuple[str, str], str] = {}  # (dev, cidr) -> owner
        self.routes: dict[RouteSpec, str] = {}
        self.log: list[tuple[str, str]] = []

    def add(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
            default_dev: str) -> concurrent.futures.Future[None]:
        for v in vips:
            key = (v.dev or default_dev, f"{v.address}/{v.prefix}")
            self.installed.setdefault(key, owner)
            self.log.append(("add", key[1]))
        for r in routes:
            self.routes.setdefault(r, owner)
        return _done()

    def remove(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
               default_dev: str) -> concurrent.futures.Future[None]:
        for v in vips:
            key = (v.dev or default_dev, f"{v.address}/{v.prefix}")
            if self.installed.get(key) == owner:
                del self.installed[key]
            self.log.append(("remove", key[1]))
        for r in routes:
            if self.routes.get(r) == owner:
                del self.routes[r]
        return _done()

    def release_all(self) -> None:
        self.installed.clear()
        self.routes.clear()


class NetlinkVips:
    """Addresses and routes through pyroute2 on a private worker thread."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hafast-vip")
        self._local = threading.local()
        # What we added and may therefore remove: (ifindex, address, prefix) and routes.
        self._addrs: dict[tuple[int, str, int], tuple[str, dict[str, Any]]] = {}
        self._routes: dict[RouteSpec, tuple[str, dict[str, Any]]] = {}
        self._closed = False

    # -- worker-thread side ---------------------------------------------------------

    def _ipr(self) -> Any:
        ipr = getattr(self._local, "ipr", None)
        if ipr is None:
            from pyroute2 import IPRoute  # imported on the worker thread only

            ipr = self._local.ipr = IPRoute()
        return ipr

    def _index(self, dev: str) -> int:
        found = self._ipr().link_lookup(ifname=dev)
        if not found:
            raise LookupError(f"no interface {dev!r}")
        return int(found[0])

    def _addr_args(self, v: VirtualAddress, default_dev: str) -> tuple[tuple[int, str, int],
                                                                      dict[str, Any]]:
        index = self._index(v.dev or default_dev)
        args: dict[str, Any] = {"index": index, "address": v.address, "prefixlen": v.prefix}
        if v.label:
            args["label"] = v.label
        if v.scope:
            args["scope"] = SCOPES.get(v.scope, 0) if not v.scope.isdigit() else int(v.scope)
        if v.family == 4 and v.brd:
            if v.brd == "+":
                net = ipaddress.ip_interface(f"{v.address}/{v.prefix}").network
                args["broadcast"] = str(net.broadcast_address)
            elif v.brd != "-":
                args["broadcast"] = v.brd
        if v.peer:
            args["local"] = v.address
            args["address"] = v.peer
        if v.family == 6 and "-nodad" not in v.options:
            args["flags"] = IFA_F_NODAD
        return (index, v.address, v.prefix), args

    def _route_args(self, r: RouteSpec, default_dev: str) -> dict[str, Any]:
        args: dict[str, Any] = {"dst": r.dst}
        if r.kind != "unicast":
            args["type"] = r.kind
        else:
            args["oif"] = self._index(r.dev or default_dev)
        if r.gateway:
            args["gateway"] = r.gateway
        if r.src:
            args["prefsrc"] = r.src
        if r.table is not None:
            args["table"] = r.table
        if r.metric is not None:
            args["priority"] = r.metric
        if r.scope:
            args["scope"] = SCOPES.get(r.scope, 0)
        return args

    def _do_add(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
                default_dev: str) -> None:
        ipr = self._ipr()
        for v in vips:
            try:
                key, args = self._addr_args(v, default_dev)
                if key in self._addrs:
                    continue
                ipr.addr("add", **args)
                self._addrs[key] = (owner, args)
            except Exception as exc:  # one bad VIP must not stop the others
                if getattr(exc, "code", None) != errno.EEXIST:
                    log.warning("%s: cannot add %s/%s: %s", owner, v.address, v.prefix, exc)
        for r in routes:
            try:
                if r in self._routes:
                    continue
                args = self._route_args(r, default_dev)
                ipr.route("add", **args)
                self._routes[r] = (owner, args)
            except Exception as exc:
                if getattr(exc, "code", None) != errno.EEXIST:
                    log.warning("%s: cannot add route %s: %s", owner, r.dst, exc)

    def _do_remove(self, owner: str | None, vips: Sequence[VirtualAddress] | None,
                   routes: Sequence[RouteSpec] | None, default_dev: str) -> None:
        ipr = self._ipr()
        # Routes first: a route using a VIP as its source goes before the VIP.
        route_keys = list(self._routes) if routes is None else list(routes)
        for r in route_keys:
            entry = self._routes.get(r)
            if entry is None or (owner is not None and entry[0] != owner):
                continue
            del self._routes[r]
            try:
                ipr.route("del", **entry[1])
            except Exception as exc:
                if getattr(exc, "code", None) not in (errno.ESRCH, errno.ENOENT):
                    log.warning("cannot remove route %s: %s", r.dst, exc)
        if vips is None:
            keys = list(self._addrs)
        else:
            keys = []
            for v in vips:
                try:
                    keys.append(self._addr_args(v, default_dev)[0])
                except LookupError:
                    continue
        for key in keys:
            addr_entry = self._addrs.get(key)
            if addr_entry is None or (owner is not None and addr_entry[0] != owner):
                continue
            del self._addrs[key]
            args = dict(addr_entry[1])
            args.pop("flags", None)
            try:
                ipr.addr("del", **args)
            except Exception as exc:
                if getattr(exc, "code", None) not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                    log.warning("cannot remove %s/%s: %s", key[1], key[2], exc)

    # -- caller side ------------------------------------------------------------------

    def add(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
            default_dev: str) -> concurrent.futures.Future[None]:
        """Install ``vips`` and ``routes`` (those present already are left unowned)."""
        return self._pool.submit(self._do_add, owner, tuple(vips), tuple(routes), default_dev)

    def remove(self, owner: str, vips: Sequence[VirtualAddress], routes: Sequence[RouteSpec],
               default_dev: str) -> concurrent.futures.Future[None]:
        """Remove those of ``vips``/``routes`` that ``owner`` added."""
        return self._pool.submit(self._do_remove, owner, tuple(vips), tuple(routes), default_dev)

    def release_all(self) -> None:
        """Remove everything this backend added and wait for it (stop path)."""
        if self._closed:
            return
        self._pool.submit(self._do_remove, None, None, None, "").result(timeout=10)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(ipr, *args)`` on the netlink thread and wait (start-up lookups)."""
        return self._pool.submit(lambda: fn(self._ipr(), *args)).result(timeout=10)

    def close(self) -> None:
        if self._closed:
            return
        self.release_all()
        self._closed = True

        def shut() -> None:
            ipr = getattr(self._local, "ipr", None)
            if ipr is not None:
                ipr.close()

        self._pool.submit(shut).result(timeout=10)
        self._pool.shutdown(wait=True)
