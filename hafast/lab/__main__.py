"""``python -m hafast.lab``: build a farm, break it, tear it down, by hand.

    python -m hafast.lab up 1000                  # 10.201.0.1 .. 10.201.3.232
    python -m hafast.lab get 10.201.0.7           # from the director namespace
    python -m hafast.lab fault 10.201.0.7 http500
    python -m hafast.lab fault 10.201.0.10-10.201.0.20 drop
    python -m hafast.lab fault 10.201.0.7 recover  # or: recover all
    python -m hafast.lab status
    python -m hafast.lab down
    python -m hafast.lab --name m measure 1000 4096 16384   # figures for the report

The lab outlives the command; its state (namespaces, nginx PID, faults) is kept in
/run/hafast-lab/<name>/state.json, which is what ``fault`` and ``down`` read.
Try your own tools inside it with ``ip netns exec hafast-dir curl 10.201.0.1``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import json
import statistics
import sys
import time
from collections.abc import Iterator

from hafast.lab.farm import LAB_ROOT, Farm, body_for, cleanup_stale, http_get, load_state
from hafast.lab.faults import KINDS, FaultError, Faults
from hafast.lab.netns import NetnsError, call_in

DEFAULT_NAME = "hafast"


def parse_addresses(spec: str) -> list[str]:
    """``a,b`` lists, ``first-last`` ranges, or both: ``10.0.0.1,10.0.0.5-10.0.0.9``."""
    out: list[str] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        lo = int(ipaddress.IPv4Address(first))
        hi = int(ipaddress.IPv4Address(last)) if last else lo
        if hi < lo or hi - lo >= 1 << 16:
            raise FaultError(f"bad address range {part!r}")
        out.extend(str(ipaddress.IPv4Address(i)) for i in range(lo, hi + 1))
    return out


@contextlib.contextmanager
def _locked_state(name: str) -> Iterator[dict[str, object]]:
    lab = LAB_ROOT / name
    state = load_state(name)
    if state is None:
        raise NetnsError(f"no lab called {name!r} is up (no {lab / 'state.json'})")
    with open(lab / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = load_state(name) or state
        yield state
        tmp = lab / "state.tmp"
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        tmp.replace(lab / "state.json")


def cmd_up(args: argparse.Namespace) -> int:
    farm = Farm(
        args.count, name=args.name, network=args.network, offset=args.offset,
        bridge=args.bridge, workers=args.workers, slow_rate=args.slow_rate, tls=args.tls,
    )
    farm.build()
    farm.detach()
    print(
        f"lab {farm.name}: {farm.count} servers {farm.addresses[0]}..{farm.addresses[-1]} "
        f"in {farm.server_ns}, client side {farm.director_ns}, nginx pid {farm.nginx_pid}, "
        f"built in {farm.build_seconds:.3f} s"
    )
    print(f"try: ip netns exec {farm.director_ns} curl -s http://{farm.addresses[0]}/")
    return 0


def cmd_fault(args: argparse.Namespace) -> int:
    everything = args.kind == "recover" and args.addr == "all"
    addrs = [] if everything else parse_addresses(args.addr)
    with _locked_state(args.name) as state:
        active = state.get("faults")
        faults = Faults(
            str(state["server_ns"]), table=str(state["nft_table"]),
            active=dict(active) if isinstance(active, dict) else {},
        )
        if args.kind == "recover":
            seconds = faults.recover(None if everything else addrs)
        else:
            seconds = faults.apply(addrs, args.kind)
        state["faults"] = faults.active
    what = "every address" if everything else f"{len(addrs)} address(es)"
    print(f"{args.kind} on {what}, applied in {seconds * 1000:.1f} ms")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    args.kind = "recover"
    return cmd_fault(args)


def cmd_get(args: argparse.Namespace) -> int:
    state = load_state(args.name)
    if state is None:
        raise NetnsError(f"no lab called {args.name!r} is up")
    ns = args.ns or state["directors"][0]["ns"]
    port = state.get("tls_port") if args.tls else state.get("port", 80)
    reply = call_in(
        ns, http_get, args.addr, args.path, port=int(port or 443), timeout=args.timeout,
        tls=args.tls,
    )
    if reply.error:
        print(f"{args.addr}: {reply.error} after {reply.seconds:.3f} s")
        return 1
    sys.stdout.write(f"{reply.status} ")
    sys.stdout.write(reply.body.decode(errors="replace"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = load_state(args.name)
    if state is None:
        print(f"no lab called {args.name!r} is up")
        return 1
    print(json.dumps(state, indent=1))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    removed = cleanup_stale(args.name)
    print(f"lab {args.name}: {'torn down' if removed else 'nothing to tear down'}")
    return 0


def sweep(addrs: list[str], *, port: int = 80, concurrency: int = 256,
          timeout: float = 5.0) -> tuple[int, int, float]:
    """GET / from every address, ``concurrency`` at a time, on an asyncio loop in
    the calling thread (run it with call_in). Returns (ok, failed, seconds)."""
    import asyncio

    async def one(addr: str, gate: asyncio.Semaphore) -> bool:
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(addr, port), timeout)
                writer.write(b"GET / HTTP/1.0\r\n\r\n")
                data = await asyncio.wait_for(reader.read(), timeout)
                writer.close()
                return data.endswith(body_for(addr))
            except (OSError, TimeoutError):
                return False

    async def main() -> list[bool]:
        gate = asyncio.Semaphore(concurrency)
        return await asyncio.gather(*(one(a, gate) for a in addrs))

    start = time.perf_counter()
    results = asyncio.run(main())
    ok = sum(results)
    return ok, len(results) - ok, time.perf_counter() - start


def cmd_measure(args: argparse.Namespace) -> int:
    """Build time, fault apply time and nginx RSS for each farm size, one at a time."""
    results = []
    for count in args.sizes:
        with Farm(count, name=args.name, workers=args.workers) as farm:
            a = farm.addresses
            sample = a[:: max(1, count // 20)]
            replies = farm.fetch_many(sample)
            ok = sum(r.body == body_for(x) for x, r in zip(sample, replies, strict=True))
            single: dict[str, float] = {}
            for kind in KINDS:
                times = []
                for i in range(args.repeat):
                    times.append(farm.faults.apply([a[i % count]], kind))
                    farm.faults.recover([a[i % count]])
                single[kind] = statistics.median(times)
            bulk = farm.faults.apply(a[: min(1000, count)], "drop")
            recover_bulk = farm.faults.recover()
            # apply -> first new connection that sees the fault, end to end
            start = time.perf_counter()
            farm.faults.apply([a[0]], "http500")
            seen = farm.fetch(a[0]).status == 500
            to_effect = time.perf_counter() - start
            farm.faults.recover()
            rss_idle = farm.nginx_rss_kib()
            burst = farm.fetch_many([a[i % count] for i in range(args.burst)])
            rss_busy = farm.nginx_rss_kib()
            ok_all, failed, sweep_s = call_in(farm.director_ns, sweep, a)
            rss_sweep = farm.nginx_rss_kib()
            row = {
                "servers": count,
                "build_s": round(farm.build_seconds, 4),
                "sample_ok": f"{ok}/{len(sample)}",
                "apply_one_median_ms": {k: round(v * 1000, 2) for k, v in single.items()},
                "apply_1000_ms": round(bulk * 1000, 2),
                "recover_1000_ms": round(recover_bulk * 1000, 2),
                "apply_to_first_faulted_reply_ms": round(to_effect * 1000, 2),
                "fault_seen": seen,
                "burst_ok": sum(r.status == 200 for r in burst),
                "nginx_rss_kib_idle": rss_idle,
                f"nginx_rss_kib_after_{args.burst}_requests": rss_busy,
                "sweep_all_ok": ok_all,
                "sweep_all_failed": failed,
                "sweep_all_s": round(sweep_s, 3),
                "nginx_rss_kib_after_sweep": rss_sweep,
                "nginx_processes": len(farm.nginx_pids()),
            }
        results.append(row)
        print(json.dumps(row), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hafast.lab", description=__doc__.split("\n")[0])
    p.add_argument("--name", default=DEFAULT_NAME, help="lab name (namespaces <name>-srv/-dir)")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="build a farm of N real servers and leave it running")
    up.add_argument("count", type=int)
    up.add_argument("--network", default="10.201.0.0/16")
    up.add_argument("--offset", type=int, default=1)
    up.add_argument("--bridge", action="store_true", help="server side on a bridge")
    up.add_argument("--workers", type=int, default=2, help="nginx worker processes")
    up.add_argument("--tls", action="store_true", help="also serve HTTPS on 443")
    up.add_argument("--slow-rate", type=int, default=16, help="bytes/s of the slow fault")
    up.set_defaults(func=cmd_up)

    fault = sub.add_parser("fault", help="put a fault on addresses (or 'recover' them)")
    fault.add_argument("addr", help="10.201.0.7, a,b lists or first-last ranges")
    fault.add_argument("kind", choices=[*KINDS, "recover"])
    fault.set_defaults(func=cmd_fault)

    recover = sub.add_parser("recover", help="take faults off addresses, or 'all'")
    recover.add_argument("addr", nargs="?", default="all")
    recover.set_defaults(func=cmd_recover)

    get = sub.add_parser("get", help="HTTP/1.0 GET from a director namespace")
    get.add_argument("addr")
    get.add_argument("path", nargs="?", default="/")
    get.add_argument("--ns", default=None, help="namespace to fetch from")
    get.add_argument("--timeout", type=float, default=2.0)
    get.add_argument("--tls", action="store_true", help="HTTPS (farm built with --tls)")
    get.set_defaults(func=cmd_get)

    measure = sub.add_parser("measure", help="build/fault/RSS figures per farm size")
    measure.add_argument("sizes", type=int, nargs="*", default=[1000, 4096, 16384])
    measure.add_argument("--repeat", type=int, default=20, help="single-address applies")
    measure.add_argument("--burst", type=int, default=2000, help="requests before RSS")
    measure.add_argument("--workers", type=int, default=2)
    measure.set_defaults(func=cmd_measure)

    sub.add_parser("status", help="print the lab's state").set_defaults(func=cmd_status)
    sub.add_parser("down", help="tear the lab down").set_defaults(func=cmd_down)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (NetnsError, FaultError, ValueError) as exc:
        print(f"hafast.lab: {exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    raise SystemExit(main())

