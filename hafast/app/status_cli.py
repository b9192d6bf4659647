"""``hafast status [--json] [--down] [--vs VS] [--instance NAME] [--limit N]``: ask the
running daemon over its control socket.

hafast/cli.py calls :func:`main` with the arguments after ``status``.  This module
imports only :mod:`hafast.app.ctlproto` and :mod:`hafast.app.ctljson` at the top (no
argparse unless the command line needs it, no json, no re, no typing): the client's
start-up is most of what an operator waits for (issue 16).  The daemon
applies the filters (:mod:`hafast.status.select`) and sends only what was asked.

Example::

    $ hafast status
    VRRP  VI_1       MASTER  prio 100/100  vrid 51  eth0  192.168.200.16/32 ...
    $ hafast status --down --vs 10.0.0.1:80     # exit 3: nothing down there
"""

from __future__ import annotations

import os
import sys

from hafast.app import ctljson
from hafast.app.ctlproto import default_socket, query_raw

TYPE_CHECKING = False  # (the client's start: see hafast.app.ctlproto)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any, TextIO

__all__ = ["NO_MATCH", "default_socket", "json_lines", "main", "render"]

NO_MATCH = 3  # exit status: a filter matched no virtual server and no instance


def json_lines(raw: bytes) -> str:
    r"""The daemon's compact JSON with each array element after the first on a line of
    its own (one real server a line: grep-able, and 100x cheaper than ``indent``,
    which takes json's pure-Python encoder: 120-180 ms at 10,000 real servers).

    A ``,{"`` can only be structure: inside a JSON string ``"`` is always escaped.

    >>> print(json_lines(b'{"rs":[{"a":1},{"a":2}],"s":",{\\"x"}'), end="")
    {"rs":[{"a":1},
    {"a":2}],"s":",{\"x"}
    """
    return raw.replace(b',{"', b',\n{"').decode().rstrip("\n") + "\n"


def render(st: dict[str, Any], *, limit: int = 50) -> str:
    """The status as a table a person reads; ``limit`` real servers per virtual server."""
    from hafast.status.view import vrrp_sockets  # only here: not the --json path's

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
            # a filtered reply (hafast.status.select) sends some rows and the counts
            counts = vs.get("counts") or {"real_servers": len(rss),
                                          "alive": sum(1 for r in rss if r["alive"])}
            total, alive = counts["real_servers"], counts["alive"]
            q = "quorum up" if vs["quorum_up"] else "QUORUM DOWN"
            lines.append(f"  VS {vs['name']}  {alive}/{total} alive  {q}")
            shown = rss[:limit]
            for rs in shown:
                state = "UP  " if rs["alive"] else "DOWN"
                w = "-" if rs["pool_weight"] is None else rs["pool_weight"]
                lines.append(f"    {state} {rs['address']}:{rs['port']}  weight {w}")
            if total > len(shown):
                down = total - alive - sum(1 for r in shown if not r["alive"])
                lines.append(f"    ... {total - len(shown)} more ({down} down)")
                for rs in [r for r in rss[limit:] if not r["alive"]][:limit]:
                    lines.append(f"    DOWN {rs['address']}:{rs['port']}")
    return "\n".join(lines) + "\n"


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's formatter at the terminal's width, found as shutil would find it:
    argparse imports shutil for that on every ``add_argument`` (and shutil bz2, lzma,
    zlib, fnmatch), ~5 ms of the client's start on a busy director."""
    import argparse

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            columns = 80
    return argparse.HelpFormatter(prog, width=max(columns, 20) - 2)


def parser() -> argparse.ArgumentParser:
    """The command line as argparse reads it: help, usage and every error."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="hafast status", description="state of the running hafast daemon",
        formatter_class=_formatter,
        epilog="exit status: 0 shown, 1 no daemon answering, 2 bad arguments, "
               "3 the filters matched no virtual server and no instance")
    ap.add_argument("--json", action="store_true", help="print the state as JSON")
    ap.add_argument("--socket", help="control socket (default /run/hafast.ctl)")
    ap.add_argument("-s", "--namespace", help="the daemon was started with -s NAME")
    ap.add_argument("--limit", type=int, default=None,
                    help="real servers shown per VS (default 50; --json: all), then as "
                         "many of the rest that are down")
    ap.add_argument("--down", action="store_true",
                    help="only the real servers that are down (and their virtual servers), "
                         "and the VRRP instances in neither MASTER nor BACKUP")
    ap.add_argument("--vs", action="append", metavar="VS",
                    help="only this virtual server: ADDR:PORT, [V6ADDR]:PORT, 'fwmark N' or "
                         "a virtual_server_group name (repeatable)")
    ap.add_argument("--instance", action="append", metavar="NAME",
                    help="only this VRRP instance (repeatable)")
    return ap


# The plain spellings :func:`quick_args` reads: flag -> (attribute, kind); a bool is a
# flag, the others take the next word
_QUICK = {"--json": ("json", bool), "--down": ("down", bool),
          "--socket": ("socket", str), "-s": ("namespace", str),
          "--namespace": ("namespace", str), "--limit": ("limit", int),
          "--vs": ("vs", list), "--instance": ("instance", list)}


class Args:
    """What the command line asked for (argparse's Namespace has the same fields)."""

    def __init__(self) -> None:
        self.json = self.down = False
        self.socket: str | None = None
        self.namespace: str | None = None
        self.limit: int | None = None
        self.vs: list[str] | None = None
        self.instance: list[str] | None = None


def quick_args(argv: Sequence[str]) -> Args | None:
    """The options in their plain spellings, read without argparse (argparse and
    what it imports were ~10 ms of every ``hafast status``'s start, issue 16).
    None for anything else (``-h``, an abbreviation, ``--opt=value``, a value that
    starts with ``-``, a bad number): argparse then reads the command line as ever,
    with its help and its errors.  ``tests/unit/core/test_status_select.py`` holds
    the two readings equal.

    >>> a = quick_args(["--vs", "10.0.0.1:80", "--down", "--vs", "web"])
    >>> a.vs, a.down, a.json, quick_args(["--js"])
    (['10.0.0.1:80', 'web'], True, False, None)
    """
    out = Args()
    it = iter(argv)
    for word in it:
        row = _QUICK.get(word)
        if row is None:
            return None
        name, kind = row
        if kind is bool:
            setattr(out, name, True)
            continue
        value = next(it, None)
        if value is None or value.startswith("-"):
            return None
        if kind is int:
            if not value.isdigit():
                return None
            setattr(out, name, int(value))
        elif kind is list:
            got = getattr(out, name)
            setattr(out, name, [*(got or ()), value])
        else:
            setattr(out, name, value)
    return out


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """``hafast status``; 0 shown, 1 no daemon (or it refused), 3 nothing matched."""
    out = out or sys.stdout
    words = list(sys.argv[1:] if argv is None else argv)
    args: Any = quick_args(words)
    if args is None:
        ap = parser()
        args = ap.parse_args(words)
        if args.limit is not None and args.limit < 0:
            ap.error("--limit must be >= 0")
    path = args.socket or default_socket(args.namespace)
    filtered = bool(args.down or args.vs or args.instance)
    request: dict[str, Any] = {"cmd": "status"}
    if args.down:
        request["down"] = True
    if args.vs:
        request["vs"] = args.vs
    if args.instance:
        request["instance"] = args.instance
    limit = args.limit if args.limit is not None or args.json else 50
    if limit is not None:
        request["limit"] = limit
    try:
        raw = query_raw(path, request)
    except OSError as exc:
        print(f"hafast status: no daemon answering on {path}: {exc}", file=sys.stderr)
        return 1
    if not raw.strip():
        print(f"hafast status: the daemon on {path} closed without an answer", file=sys.stderr)
        return 1
    if args.json and len(request) == 1 and not raw.startswith(b'{"error"'):
        # the whole state: printed as it came, not decoded and encoded again
        out.write(json_lines(raw))
        return 0
    try:
        st = ctljson.loads(raw)
    except ValueError as exc:
        print(f"hafast status: the daemon's reply is not JSON: {exc}", file=sys.stderr)
        return 1
    if "error" in st:
        print(f"hafast status: {st['error']}", file=sys.stderr)
        return 1
    if filtered and "selected" not in st:
        print("hafast status: this daemon does not filter (an older version?)",
              file=sys.stderr)
        return 1
    if args.json:
        out.write(json_lines(ctljson.dumps(st).encode()))
    else:
        out.write(render(st, limit=50 if limit is None else limit))
    if filtered and not st["selected"]:
        print("hafast status: no virtual server or VRRP instance matches", file=sys.stderr)
        return NO_MATCH
    return 0
