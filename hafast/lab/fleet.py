"""Lab parts for fleet mode (issue 18): the upstream router's FRR config, FRR daemons
started in a namespace, and the router's next hops for a VIP.

Shared by the fleet demo (``hafast demo --fleet``, :mod:`hafast.fleet_demo`) and the
netns tests and benchmark (tests/netns/fleet_fixtures.py).  The router is FRR (zebra,
bfdd, bgpd) in AS 65000 with ``maximum-paths 8`` and a BFD profile of 50 ms x 3; each
director ``i`` peers from 10.0.i.2 in AS 65001.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from hafast.lab.netns import Registry, run_in

FRR = Path("/usr/lib/frr")
ROUTER_AS, DIRECTOR_AS = 65000, 65001
# a director that goes silent: every packet in and out dropped, before anything else
DROP_ALL = """table inet fleet_silent {
  chain in { type filter hook input priority -400; policy drop; }
  chain out { type filter hook output priority -400; policy drop; }
}
"""
ROUTER_BFDD = """bfd
 profile fast
  detect-multiplier 3
  receive-interval 50
  transmit-interval 50
 exit
exit
"""


def router_bgpd(directors: Iterable[int], bfd: bool = True) -> str:
    """The router's bgpd.conf: one neighbor per director (10.0.i.2), BFD profile
    ``fast`` (unless not ``bfd``), ECMP over up to eight of them."""
    return """router bgp {asn}
 bgp router-id 10.255.0.254
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 timers bgp 3 9
 neighbor D peer-group
 neighbor D remote-as {peer}
 neighbor D timers connect 1
 neighbor D advertisement-interval 0
{bfd}{neighbors} address-family ipv4 unicast
  maximum-paths 8
 exit-address-family
exit
""".format(asn=ROUTER_AS, peer=DIRECTOR_AS,
           bfd=" neighbor D bfd profile fast\n" if bfd else "",
           neighbors="".join(f" neighbor 10.0.{i}.2 peer-group D\n" for i in directors))


def start_frr(reg: Registry, d: Path, ns: str, confs: dict[str, str],
              zebra_wait_s: float = 10.0) -> None:
    """The daemons ``confs`` names (zebra, bfdd, bgpd: zebra first) in namespace
    ``ns``, each with its own config file, pid file and log in the new folder ``d`` and
    (through ``-N ns``) vty sockets under /var/run/frr/ns; the registry stops them and
    removes the run folder.  The others wait up to ``zebra_wait_s`` for zebra's socket."""
    frr = pwd.getpwnam("frr")
    d.mkdir()
    run_dir = Path("/var/run/frr") / ns
    run_dir.mkdir(parents=True, exist_ok=True)
    reg.defer(f"rmtree {run_dir}", lambda: shutil.rmtree(run_dir, ignore_errors=True))
    for path in (d, run_dir):
        os.chown(path, frr.pw_uid, frr.pw_gid)
    for daemon in (x for x in ("zebra", "bfdd", "bgpd") if x in confs):
        conf = d / f"{daemon}.conf"
        conf.write_text(confs[daemon])
        os.chown(conf, frr.pw_uid, frr.pw_gid)
        reg.spawn(ns, [str(FRR / daemon), "-N", ns, "-f", str(conf),
                       "-i", str(d / f"{daemon}.pid"), "--log", f"file:{d}/{daemon}.log",
                       "-P", "0"],  # no TCP vty: the unix sockets under run_dir are enough
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if daemon == "zebra":  # the others connect to its zserv socket
            deadline = time.monotonic() + zebra_wait_s
            while not (run_dir / "zserv.api").exists() and time.monotonic() < deadline:
                time.sleep(0.02)


def gateways(router: str, vip: str) -> set[str]:
    """The router's kernel next hops for ``vip``/32 (one route, or ECMP nexthops)."""
    out = run_in(router, ["ip", "-j", "route", "show", f"{vip}/32"]).stdout
    routes = json.loads(out or "[]")
    if not routes:
        return set()
    r = routes[0]
    return {h["gateway"] for h in r.get("nexthops", [r]) if "gateway" in h}
