"""What a VRRP takeover costs in netlink: hafast's NetlinkVips against pyroute2's asyncio API.

A takeover adds the instance's VIPs and its virtual route; giving up mastership
removes them.  This times both, for 1 and for 50 VIPs (+ 1 route), in a network
namespace of its own (a veth pair, deleted afterwards), along these paths:

* ``netlinkvips``: the shipped :class:`hafast.net.vip.NetlinkVips` (pyroute2
  message classes, sent on our own blocking NETLINK_ROUTE socket), called from a
  coroutine on the worker's uvloop loop as the VRRP worker does;
* ``async_uvloop``: ``pyroute2.AsyncIPRoute`` driven from
  :func:`hafast.lib.eventloop.new_loop` (uvloop).  pyroute2 0.9.7 opens its socket
  with ``loop.create_datagram_endpoint(sock=...)``, which uvloop refuses for
  AF_NETLINK (``ValueError: cannot open a UDP handle, invalid family 16``): the
  figure is that error;
* ``async_asyncio``: ``AsyncIPRoute`` on asyncio's own loop (what it supports; the
  worker would have to give up uvloop for it);
* ``async_thread``: ``AsyncIPRoute`` on an asyncio loop in a second thread, each
  takeover handed over from the uvloop loop with ``run_coroutine_threadsafe``
  (the only way to keep uvloop and use it);
* ``sync_iproute``: pyroute2's synchronous ``IPRoute``, which runs an asyncio loop
  of its own inside every call: the same socket machinery as the synchronous
  ``pyroute2.IPVS`` that :class:`hafast.lvs.ipvs.BatchLink` replaced (the host
  kernel has no IPVS, so this is the per-request figure the host can measure).

Each path runs in a fresh child process inside the namespace, so the import cost
(import + socket + the first request) and the RSS it adds over a worker-like base
(``hafast.net.vip`` and uvloop imported) are its own.  Medians of the repeats.

Root only; figures are reported, never asserted.  Run::

    .venv/bin/python -m pytest benchmarks/test_bench_netlink.py -q -s
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script in the child
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

NS = "hafast-bench-nl"
DEV = "nlb0"
PATHS = ("netlinkvips", "async_uvloop", "async_asyncio", "async_thread", "sync_iproute")
SIZES = {1: 200, 50: 20}  # VIPs -> repeats
ROUTE_DST = "10.78.0.0/16"
RTPROT_KEEPALIVED = 18


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _vips(n: int) -> list[Any]:
    from hafast.config.model import VirtualAddress

    return [VirtualAddress(f"10.77.{i // 250}.{i % 250 + 1}", 32, 4) for i in range(n)]


# --------------------------------------------------------------------------- child


def _child_netlinkvips(out: dict[str, Any]) -> None:
    from hafast.lib.eventloop import new_loop
    from hafast.net.vip import NetlinkVips, parse_route

    route = parse_route((ROUTE_DST, "dev", DEV))
    loop = new_loop()
    t0 = time.perf_counter()
    backend = NetlinkVips()
    out["setup_s"] = time.perf_counter() - t0

    async def takeover(vips: list[Any]) -> tuple[float, float]:
        t = time.perf_counter()
        backend.add("VI_1", vips, [route], default_dev=DEV)
        t_add = time.perf_counter() - t
        t = time.perf_counter()
        backend.remove("VI_1", vips, [route], default_dev=DEV)
        return t_add, time.perf_counter() - t

    _run_sizes(out, lambda vips: loop.run_until_complete(takeover(vips)))
    out["rss_added_kib"] = _rss_kib() - out.pop("base_kib")
    backend.close()
    loop.close()


def _ops(ipr: Any, index: int, vips: list[Any]) -> tuple[Any, Any]:
    """The takeover and its undo as AsyncIPRoute calls, in NetlinkVips' order
    (addresses then the route; the route goes first on removal)."""

    async def add() -> None:
        for v in vips:
            await ipr.addr("add", index=index, address=v.address, prefixlen=v.prefix)
        await ipr.route("add", dst=ROUTE_DST, oif=index, proto=RTPROT_KEEPALIVED, scope=253)

    async def remove() -> None:
        await ipr.route("del", dst=ROUTE_DST, oif=index, proto=RTPROT_KEEPALIVED, scope=253)
        for v in vips:
            await ipr.addr("del", index=index, address=v.address, prefixlen=v.prefix)

    return add, remove


def _child_async(out: dict[str, Any], flavour: str) -> None:
    from hafast.lib.eventloop import new_loop

    index = socket.if_nametoindex(DEV)
    loop = asyncio.new_event_loop() if flavour == "async_asyncio" else new_loop()
    out["loop"] = type(loop).__module__ + "." + type(loop).__name__
    t0 = time.perf_counter()
    from pyroute2 import AsyncIPRoute

    out["import_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ipr = AsyncIPRoute()
    run: Callable[[Any], Any]
    if flavour == "async_thread":
        side = asyncio.new_event_loop()
        thread = threading.Thread(target=side.run_forever, daemon=True)
        thread.start()

        def run_side(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, side).result()

        run = run_side

        async def hop(coro: Any) -> Any:  # from the uvloop loop, as a worker would
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, side))
    else:
        run = loop.run_until_complete

        async def hop(coro: Any) -> Any:
            return await coro
    try:
        run(ipr.link("get", index=index))  # the first request opens the endpoint
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        return
    out["setup_s"] = time.perf_counter() - t0

    async def takeover(vips: list[Any]) -> tuple[float, float]:
        add, remove = _ops(ipr, index, vips)
        t = time.perf_counter()
        await hop(add())
        t_add = time.perf_counter() - t
        t = time.perf_counter()
        await hop(remove())
        return t_add, time.perf_counter() - t

    _run_sizes(out, lambda vips: loop.run_until_complete(takeover(vips)))
    out["rss_added_kib"] = _rss_kib() - out.pop("base_kib")
    run(ipr.close()) if asyncio.iscoroutinefunction(ipr.close) else ipr.close()


def _child_sync(out: dict[str, Any]) -> None:
    index = socket.if_nametoindex(DEV)
    t0 = time.perf_counter()
    from pyroute2 import IPRoute

    out["import_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ipr = IPRoute()
    ipr.link("get", index=index)
    out["setup_s"] = time.perf_counter() - t0
    route = {"dst": ROUTE_DST, "oif": index, "proto": RTPROT_KEEPALIVED, "scope": 253}

    # Called outside any running loop: inside one, 0.9's IPRoute hands back coroutines.
    def takeover(vips: list[Any]) -> tuple[float, float]:
        t = time.perf_counter()
        for v in vips:
            ipr.addr("add", index=index, address=v.address, prefixlen=v.prefix)
        ipr.route("add", **route)
        t_add = time.perf_counter() - t
        t = time.perf_counter()
        ipr.route("del", **route)
        for v in vips:
            ipr.addr("del", index=index, address=v.address, prefixlen=v.prefix)
        return t_add, time.perf_counter() - t

    _run_sizes(out, takeover)
    out["rss_added_kib"] = _rss_kib() - out.pop("base_kib")
    ipr.close()


def _run_sizes(out: dict[str, Any], once: Any) -> None:
    for n, repeats in SIZES.items():
        vips = _vips(n)
        once(vips)  # warm: the first of each size is not a takeover's steady cost
        adds, removes = [], []
        for _ in range(repeats):
            a, r = once(vips)
            adds.append(a)
            removes.append(r)
        out[f"add_{n}_ms"] = statistics.median(adds) * 1e3
        out[f"remove_{n}_ms"] = statistics.median(removes) * 1e3


def child(path: str) -> dict[str, Any]:
    """One path's figures, in this process (which must be inside the namespace)."""
    import uvloop  # noqa: F401 - the worker's base: uvloop and the VIP module loaded

    import hafast.net.vip  # noqa: F401

    out: dict[str, Any] = {"path": path, "base_kib": _rss_kib()}
    t0 = time.perf_counter()
    if path == "netlinkvips":
        import pyroute2.netlink.rtnl.ifaddrmsg
        import pyroute2.netlink.rtnl.rtmsg  # noqa: F401

        out["import_s"] = time.perf_counter() - t0
        _child_netlinkvips(out)
    elif path == "sync_iproute":
        _child_sync(out)
    else:
        _child_async(out, path)
    return out


# --------------------------------------------------------------------------- host


def run_path(path: str) -> dict[str, Any]:
    proc = subprocess.run(
        ["ip", "netns", "exec", NS, sys.executable, __file__, path],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        return {"path": path, "error": proc.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.root
@pytest.mark.netns
def test_takeover_netlink(figures: Any) -> None:
    from hafast.lab.netns import Registry
    from tests.conftest import require_root

    require_root()
    results = {}
    with Registry() as lab:
        lab.add_netns(NS)
        lab.add_veth(NS, DEV, NS, DEV + "p")
        for path in PATHS:
            results[path] = run_path(path)
    for path, r in results.items():
        print(json.dumps(r, sort_keys=True))
        if "error" in r:
            continue
        for key in ("add_1_ms", "remove_1_ms", "add_50_ms", "remove_50_ms"):
            figures.add(f"netlink {path} {key}", r[key], "ms")
        figures.add(f"netlink {path} import+setup", (r["import_s"] + r["setup_s"]) * 1e3, "ms")
        figures.add(f"netlink {path} rss added", r["rss_added_kib"] / 1024, "MiB")
    ref = results["netlinkvips"]
    for path, r in results.items():
        if path != "netlinkvips" and "error" not in r and "error" not in ref:
            figures.add(f"netlink {path} / netlinkvips, 1-VIP takeover",
                        r["add_1_ms"] / ref["add_1_ms"], "x", goal="<= 1.5x to switch")
    assert "error" not in ref, ref


if __name__ == "__main__":
    if os.geteuid() != 0:
        raise SystemExit("root only")
    print(json.dumps(child(sys.argv[1])))
