"""``hafast status [--json]``: ask the running daemon over its control socket.

hafast/cli.py calls :func:`main` with the arguments after ``status``.

Example::

    $ hafast status
    VRRP  VI_1       MASTER  prio 100/100  vrid 51  eth0  192.168.200.16/32 ...
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from hafast.app.cmdline import RUN_DIR
from hafast.app.control import query
from hafast.status.dump import vrrp_sockets


def default_socket(namespace: str | None) -> str:
    tail = f"_{namespace}" if namespace else ""
    return f"{RUN_DIR}/hafast{tail}.ctl"


def render(st: dict[str, Any], *, limit: int = 50) -> str:
    """The status as a table a person reads; ``limit`` real servers per virtual server."""
    lines = [f"hafast pid {st['pid']}  config {st['config']}  up {st['uptime']:.0f}s  "
             f"reloads {st['reloads']} (rejected {st['reload_errors']})"]
    for w in st.get("workers", ()):
        ok = "ok" if w["answering"] else "NOT ANSWERING"
        lines.append(f"  worker {w['name']:<8} pid {w['pid']:<7} restarts {w['restarts']:<3} "
                     f"{ok}")
    for inst in st.get("vrrp", ()):
        d = inst["data"]
        s = inst["stats"]
        lines.append(f"VRRP  {d['iname']:<12} {d.get('state_name', d['state']):<7} "
                     f"prio {d['effective_priority']}/{d['base_priority']}  vrid {d['vrid']}  "
                     f"{d['ifp_ifname']}  {' '.join(d['vips'])}  adverts rx {s['advert_rcvd']} "
                     f"tx {s['advert_sent']}")
    for sock in vrrp_sockets(st):
        seen = [f"{r} {n}" for r, n in sock["drops"].items() if n]
        lines.append(f"VRRP  socket {sock['name']}  rx {sock['rx_packets']}  dropped "
                     f"{sum(sock['drops'].values())}{' (' + ', '.join(seen) + ')' if seen else ''}"
                     f"  kernel drops {sock['kernel_drops']}  rcvbuf {sock['rcvbuf']}")
    for chk in st.get("checkers", ()):
        lines.append(f"CHECK shard {chk['shard']}/{chk['shards']}: {chk['checks']} checks, "
                     f"{chk['up']} up, {chk['down']} down, lag {chk['lag']['last'] * 1000:.1f} ms")
    pools = st.get("pools")
    if pools:
        lines.append(f"POOL  backend {pools['backend']}  changes "
                     + (", ".join(f"{k} {v}" for k, v in sorted(pools["changes"].items()))
                        or "none"))
        for vs in pools["virtual_servers"]:
            rss = vs["real_servers"]
            alive = sum(1 for r in rss if r["alive"])
            q = "quorum up" if vs["quorum_up"] else "QUORUM DOWN"
            lines.append(f"  VS {vs['name']}  {alive}/{len(rss)} alive  {q}")
            for rs in rss[:limit]:
                state = "UP  " if rs["alive"] else "DOWN"
                w = "-" if rs["pool_weight"] is None else rs["pool_weight"]
                lines.append(f"    {state} {rs['address']}:{rs['port']}  weight {w}")
            if len(rss) > limit:
                down = [r for r in rss[limit:] if not r["alive"]]
                lines.append(f"    ... {len(rss) - limit} more ({len(down)} down)")
                for rs in down[:limit]:
                    lines.append(f"    DOWN {rs['address']}:{rs['port']}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """``hafast status [--json] [--socket PATH | -s NAMESPACE]``; 1 when no daemon."""
    out = out or sys.stdout
    ap = argparse.ArgumentParser(prog="hafast status",
                                 description="state of the running hafast daemon")
    ap.add_argument("--json", action="store_true", help="print the whole state as JSON")
    ap.add_argument("--socket", help="control socket (default /run/hafast.ctl)")
    ap.add_argument("-s", "--namespace", help="the daemon was started with -s NAME")
    ap.add_argument("--limit", type=int, default=50, help="real servers shown per VS")
    args = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    path = args.socket or default_socket(args.namespace)
    try:
        st = query(path, "status")
    except OSError as exc:
        print(f"hafast status: no daemon answering on {path}: {exc}", file=sys.stderr)
        return 1
    if "error" in st:
        print(f"hafast status: {st['error']}", file=sys.stderr)
        return 1
    out.write(json.dumps(st, indent=1) + "\n" if args.json else render(st, limit=args.limit))
    return 0
