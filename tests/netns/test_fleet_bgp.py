"""Issue 18, first slice: directors announce a VIP by BGP through real FRR, the router
spreads it over them (ECMP), and a director whose real server dies withdraws.

Topology (tests/netns/fleet_fixtures.py, shared with benchmarks/test_bench_fleet.py;
all namespaces made there, deleted at the end)::

    rtr (FRR zebra+bfdd+bgpd, maximum-paths 8, AS 65000)
     |10.0.1.0/30          |10.0.2.0/30
    d1 (FRR + announcer)  d2 (FRR + announcer)       AS 65001, BFD 50 ms x 3
     |10.1.1.0/30          |10.1.2.0/30
    srv: real servers 10.1.1.2:80 (d1's), 10.1.2.2:80 (d2's)

Each director's FRR config is rendered by hafast (``python -m hafast.fleet.runner
--render``, which runs FRR's own ``vtysh --dryrun`` on it); its announcer is hafast's
fleet runner (check engine -> quorum -> announcement machine -> kernel routes).  FRR
daemons run in the foreground with their own pathspace (``-N``), pid files and config
files, and are stopped by PID.  The figures are printed, never asserted tightly: the
machine is shared.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hafast.fleet.sessions import POLL_S
from hafast.lab.netns import run_in
from tests.netns.daemon_fixtures import start_daemon
from tests.netns.fleet_fixtures import (
    DIRECTORS,
    DROP_ALL,
    ROUTER_BFDD,
    ROUTER_BGPD,
    VIP,
    Lab,
    director_conf,
    gateways,
    holds,
    logged_at,
    ns,
    open_lab,
    wait_for,
    wait_gateways,
    wait_log,
)

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(240)]

# generous: a TCP_CHECK round (0.5 s) plus a retry, then FRR's withdrawal (~0.13 s
# measured); a busy two-core machine gets ten times that
WITHDRAW_BOUND_S = 10.0
# BFD 3 x 50 ms detects a silent director in ~0.2 s (measured); without BFD the BGP
# hold time (9 s, so 6-9 s after the last keepalive) would: a bound under 6 s proves
# BFD acted while leaving a busy machine a lot of slack
SILENT_BOUND_S = 5.0


def _session(st: dict[str, Any]) -> tuple[str | None, str | None]:
    """The director's one neighbor in its status: (BGP state, BFD state)."""
    rows = st.get("fleet_sessions") or [{}]
    return rows[0].get("bgp"), rows[0].get("bfd")


@pytest.fixture
def lab() -> Iterator[Lab]:
    with open_lab() as built:
        yield built


@pytest.mark.parametrize("announcer", ["runner", "daemon"])
def test_two_directors_ecmp_and_quorum_withdrawal(lab: Lab, announcer: str) -> None:
    router = ns("rtr")
    for i in DIRECTORS:
        lab.start_real_server(i)
    confs = {i: lab.render_director(i) for i in DIRECTORS}
    assert "permit 192.0.2.100/32" in confs[1]["bgpd"]
    assert "redistribute kernel route-map hafast-fleet" in confs[1]["bgpd"]
    assert "neighbor 10.0.1.1 bfd profile hafast" in confs[1]["bgpd"]
    t0 = time.monotonic()
    lab.start_frr("rtr", {"zebra": "hostname rtr\n", "bfdd": ROUTER_BFDD, "bgpd": ROUTER_BGPD})
    for i in DIRECTORS:
        lab.start_frr(f"d{i}", confs[i])
        lab.start_announcer(i, announcer)
    every = {f"10.0.{i}.2" for i in DIRECTORS}
    # The checks below look at one director's next hop, not at the whole set: on a
    # busy two-core machine a BFD session (3 x 50 ms) of another director may flap.
    d1_in = lambda: "10.0.1.2" in gateways(router)  # noqa: E731
    d1_out = lambda: "10.0.1.2" not in gateways(router)  # noqa: E731
    took = wait_gateways(router, every, 60)
    assert took is not None, (f"no {len(every)}-way ECMP: next hops {gateways(router)}\n"
                              + lab.explain())
    print(f"\n[{announcer}] {len(every)}-way ECMP for {VIP} in the router's kernel {took:.2f} s "
          f"after FRR start ({time.monotonic() - t0:.2f} s)")
    for i in DIRECTORS:
        # the VIP is local by a route, not an address (an address would be a connected
        # route that zebra keeps for ever)
        local = run_in(ns(f"d{i}"), ["ip", "route", "show", "table", "local", f"{VIP}/32"])
        assert "proto 250" in local.stdout, local.stdout
        addrs = run_in(ns(f"d{i}"), ["ip", "-o", "addr"]).stdout
        assert VIP not in addrs

    # quorum loss on d1: its only real server goes away
    lab.stop_real_server(1)
    t_stop = time.monotonic()
    took = wait_for(d1_out, WITHDRAW_BOUND_S)
    gone_at = time.time()
    assert took is not None, f"d1 still a next hop: {gateways(router)}"
    withdrawn_at = logged_at(lab.logs[1], "ANNOUNCED -> WITHDRAWN")
    print(f"[{announcer}] real server stopped -> d1 out of the router's next hops: "
          f"{took:.2f} s (route deleted -> router's table: {gone_at - withdrawn_at:.3f} s)")
    if announcer == "daemon":
        # the daemon measured the same withdrawal to its bgpd's Adj-RIB-Out
        st = lab.daemons[1].wait_for(
            lambda s: (s["fleet"][0]["latency"]["withdraw"] or {}).get("count") == 1, 15,
            "the withdrawal measured")
        latency = st["fleet"][0]["latency"]
        assert latency["unseen"] == 0, latency
        print(f"[daemon] route deleted -> out of d1's bgpd Adj-RIB-Out: "
              f"{latency['withdraw']['last_s']:.3f} s (status)")
    announce = run_in(ns("d1"), ["ip", "route", "show", f"{VIP}/32", "proto", "250"])
    assert announce.stdout.strip() == ""
    assert holds(d1_out, 0.5), "no flap back while the server is down"
    assert time.monotonic() - t_stop < WITHDRAW_BOUND_S + 5

    # quorum back: d1 announces again
    lab.start_real_server(1)
    took = wait_for(d1_in, WITHDRAW_BOUND_S)
    back_at = time.time()
    assert took is not None, f"d1 did not come back: {gateways(router)}"
    announced_at = logged_at(lab.logs[1], "WITHDRAWN -> ANNOUNCED")
    print(f"[{announcer}] real server back -> d1 in the router's next hops again: "
          f"{took:.2f} s (route added -> router's table: {back_at - announced_at:.3f} s)")
    log = lab.logs[1].read_text()
    assert "STARTUP -> ANNOUNCED" in log and "ANNOUNCED -> WITHDRAWN" in log, log
    # STARTUP ended on the check workers' report of a full round, not on its bound
    assert "no full round of checks reported" not in log, log
    print("".join(line for line in log.splitlines(keepends=True) if " -> " in line), end="")

    # a crash leaves the route (fail-static), and the restarted announcer does not
    # withdraw it while it waits in STARTUP.  Judged on d1's own announce route: the
    # restart's CPU burst can make a BFD session of any director flap on a busy machine,
    # which the router shows but hafast has no part in.
    def route() -> bool:
        out = run_in(ns("d1"), ["ip", "route", "show", f"{VIP}/32", "proto", "250"]).stdout
        return "blackhole" in out

    lab.crash_announcer(1)
    assert holds(route, 1.0), "a crash withdrew"
    lab.start_announcer(1, announcer, run=2)
    assert holds(route, 4.0), "a restart withdrew"
    wait_log(lab.logs[1], "STARTUP -> ANNOUNCED", 20)
    assert holds(route, 0.5)
    assert wait_for(d1_in, WITHDRAW_BOUND_S) is not None, gateways(router)
    print(f"[{announcer}] crash and restart of d1's announcer: no withdrawal")
    if announcer == "daemon":
        fleet = lab.daemons[1].status()["fleet"]
        # the restarted announcer went STARTUP -> ANNOUNCED once, never through
        # WITHDRAWN, and found its route in place: no route change, nothing measured
        assert fleet == [{"prefix": f"{VIP}/32", "state": "ANNOUNCED", "quorum": True,
                          "transitions": {"ANNOUNCED": 1}, "held_s": None,
                          "own": None, "latency": {
                              "announce": None, "withdraw": None, "unseen": 0,
                              "skipped": 0, "measuring": None}}], fleet
        # its sessions as its FRR reports them, read on its bgpd's vty socket (frr_pathspace)
        lab.daemons[1].wait_for(lambda st: _session(st) == ("Established", "up"),
                                POLL_S + 10, "d1's session Established, BFD up")

    # d2 goes silent (a dead box, a cut link): BFD takes it out, not the hold timer
    run_in(ns("d2"), ["nft", "-f", "-"], input=DROP_ALL)
    took = wait_for(lambda: "10.0.2.2" not in gateways(router), SILENT_BOUND_S)
    assert took is not None, f"silent d2 still a next hop: {gateways(router)}"
    print(f"[{announcer}] d2 silent (nft drop-all) -> out of the router's next hops: "
          f"{took:.3f} s")
    if announcer == "daemon":
        # d2's own view: its FRR lost the session, and the daemon says so
        lab.daemons[2].wait_for(lambda st: _session(st)[1] == "down", POLL_S + 10,
                                "d2's BFD session down in its status")
        log2 = lab.logs[2].read_text()
        assert "BFD session 10.0.2.1: up -> down" in log2, log2[-3000:]

    if announcer == "runner":
        # SIGTERM: the runner drains (no drain time here) and withdraws, as the daemon
        os.kill(lab.pids[1], signal.SIGTERM)
        took = wait_for(d1_out, WITHDRAW_BOUND_S)
        assert took is not None, f"d1 still announced after SIGTERM: {gateways(router)}"
        wait_log(lab.logs[1], "-> WITHDRAWN (stopping)", 10)
        print(f"[runner] SIGTERM on d1 -> d1 out of the router's next hops: {took:.2f} s")
    if announcer == "daemon":
        # SIGTERM: the daemon withdraws before its pools go (its FRR stays up)
        lab.daemons[1].signal(signal.SIGTERM)
        took = wait_for(d1_out, WITHDRAW_BOUND_S)
        assert took is not None, f"d1 still announced after SIGTERM: {gateways(router)}"
        print(f"[daemon] SIGTERM on d1 -> d1 out of the router's next hops: {took:.2f} s")
        assert lab.daemons[1].proc.wait(20) == 0


VIP2 = "192.0.2.101"


def test_daemon_own_checks_gate_the_announcement(lab: Lab) -> None:
    """announce track_file / track_script / track_process (hafast/fleet/owncheck.py):
    the VIP is held back until the director's script has succeeded, withdrawn while
    the maintenance file reads 1 (with the quorum up), and announced again at 0; then
    withdrawn when the tracked process (a copy of sleep under a name of this test's
    own) is killed, and announced again when it runs again."""
    router = ns("rtr")
    lab.start_real_server(1)
    maint, gate = lab.base / "maint", lab.base / "gate"
    maint.write_text("0\n")
    sleeper = lab.base / f"hfsl{os.getpid() % 100000}"
    shutil.copy("/bin/sleep", sleeper)
    proc = subprocess.Popen([str(sleeper), "120"])
    lab.reg.defer(f"sleeper {proc.pid}", lambda: (proc.kill(), proc.wait()))
    tracks = ("track_file {\n      maint\n    }\n    track_script {\n      chk\n    }\n"
              "    track_process {\n      sleeper\n    }")
    top = (f"vrrp_script chk {{\n  script \"/usr/bin/test -e {gate}\"\n  interval 0.2\n}}\n"
           f"track_file maint {{\n  file {maint}\n}}\n"
           f"vrrp_track_process sleeper {{\n  process {sleeper.name}\n}}\n")
    lab.start_frr("rtr", {"zebra": "hostname rtr\n", "bfdd": ROUTER_BFDD, "bgpd": ROUTER_BGPD})
    lab.start_frr("d1", lab.render_director(1))
    d = start_daemon(lab.base / "d1-own", top + director_conf(1, drain=tracks),
                     ns=ns("d1"), extra=["--pool-backend", "memory"])
    lab.reg.defer(f"daemon {d.proc.pid}", d.close)
    lab.logs[1] = d.log
    # the script fails (no gate file): the quorum is up, the VIP is not announced
    st = d.wait_for(lambda s: (s.get("fleet") or [{}])[0].get("own") == {
        "file:maint": True, "script:chk": False, "process:sleeper": True}, 20,
        "the script's first verdict")
    assert holds(lambda: "10.0.1.2" not in gateways(router), 4.0), gateways(router)
    assert st["pools"]["virtual_servers"][0]["quorum_up"] is True
    gate.write_text("")
    took = wait_for(lambda: "10.0.1.2" in gateways(router), 60)
    assert took is not None, f"{gateways(router)}\n{lab.explain()}"
    # maintenance: the director leaves the router, its real server still up
    maint.write_text("1\n")
    took = wait_for(lambda: "10.0.1.2" not in gateways(router), WITHDRAW_BOUND_S)
    assert took is not None, f"still announced in maintenance: {gateways(router)}"
    fleet = d.status()["fleet"][0]
    assert (fleet["state"], fleet["own"]) == ("WITHDRAWN", {
        "file:maint": False, "script:chk": True, "process:sleeper": True}), fleet
    print(f"\n[daemon] track_file to 1 -> d1 out of the router's next hops: {took:.2f} s")
    maint.write_text("0\n")
    assert wait_for(lambda: "10.0.1.2" in gateways(router), WITHDRAW_BOUND_S) is not None
    assert "announce 192.0.2.100/32: ANNOUNCED -> WITHDRAWN" in d.log_text()
    # the tracked process dies (seen by its pidfd): withdrawn; it runs again: announced
    # (a start is seen by the process connector, or the next scan of /proc)
    proc.kill()
    proc.wait()
    took = wait_for(lambda: "10.0.1.2" not in gateways(router), WITHDRAW_BOUND_S)
    assert took is not None, f"announced with its process dead: {gateways(router)}"
    print(f"[daemon] tracked process killed -> d1 out of the router's next hops: "
          f"{took:.2f} s")
    again = subprocess.Popen([str(sleeper), "120"])
    lab.reg.defer(f"sleeper {again.pid}", lambda: (again.kill(), again.wait()))
    assert wait_for(lambda: "10.0.1.2" in gateways(router), WITHDRAW_BOUND_S + 5) is not None



def test_daemon_reload_is_a_diff(lab: Lab) -> None:
    """SIGHUP with one VIP's announce removed and another's added: the first leaves the
    router (and its local route goes), the second arrives after its own STARTUP, and
    nothing else moves."""
    router = ns("rtr")
    lab.start_real_server(1)
    # FRR's config covers both VIPs (hafast does not reload FRR yet): a VIP in the
    # route-map's prefix list without its kernel route announces nothing
    frr = lab.render_director(1, (VIP, VIP2))
    lab.start_frr("rtr", {"zebra": "hostname rtr\n", "bfdd": ROUTER_BFDD, "bgpd": ROUTER_BGPD})
    lab.start_frr("d1", frr)
    lab.start_announcer(1, "daemon", vips=(VIP,))
    assert wait_gateways(router, {"10.0.1.2"}, 60) is not None, (
        f"{gateways(router)}\n{lab.explain()}")
    assert gateways(router, VIP2) == set()
    d = lab.daemons[1]
    (d.dir / "hafast.conf").write_text(director_conf(1, (VIP2,)))
    d.signal(signal.SIGHUP)
    took = wait_gateways(router, set(), WITHDRAW_BOUND_S)
    assert took is not None, f"{VIP} still announced after the reload: {gateways(router)}"
    local = run_in(ns("d1"), ["ip", "route", "show", "table", "local", f"{VIP}/32"]).stdout
    assert local.strip() == "", local
    took2 = wait_gateways(router, {"10.0.1.2"}, 30, vip=VIP2)
    assert took2 is not None, f"{VIP2} not announced after the reload"
    print(f"\n[daemon] reload: {VIP} withdrawn in {took:.2f} s, {VIP2} announced "
          f"{took2:.2f} s later (its STARTUP: a round of checks + announce_delay 1 s)")
    # the new VIP's announcement measured to bgpd's Adj-RIB-Out (hafast.fleet.latency)
    st = d.wait_for(lambda s: s["fleet"][0]["latency"]["measuring"] is None, 15,
                    "the announcement measured")
    fleet = st["fleet"]
    latency = fleet[0].pop("latency")
    assert fleet == [{"prefix": f"{VIP2}/32", "state": "ANNOUNCED",
                      "quorum": True, "transitions": {"ANNOUNCED": 1},
                      "held_s": None, "own": None}]
    assert latency["announce"]["count"] == 1 and latency["unseen"] == 0, latency
    print(f"[daemon] {VIP2}: route added -> in bgpd's Adj-RIB-Out "
          f"{latency['announce']['last_s']:.3f} s (status)")


def bgp_paths(router: str, vip: str = VIP) -> dict[str, dict[str, object]]:
    """The router's BGP paths for ``vip`` by next hop: MED, AS path, multipath/best."""
    out = run_in(router, ["vtysh", "-N", router, "-c",
                          f"show bgp ipv4 unicast {vip}/32 json"]).stdout
    paths = json.loads(out or "{}").get("paths", [])
    return {p["nexthops"][0]["ip"]: {
        "med": p.get("metric", 0), "aspath": p.get("aspath", {}).get("string", ""),
        "community": p.get("community", {}).get("string", ""),
        "large": p.get("largeCommunity", {}).get("string", ""),
        "used": bool(p.get("multipath") or p.get("bestpath"))} for p in paths}


# RFC 8326 §4: the receiver's policy lowers LOCAL_PREF on GRACEFUL_SHUTDOWN (65535:0)
ROUTER_BGPD_GSHUT = """bgp community-list standard gshut seq 5 permit graceful-shutdown
route-map from-directors permit 10
 match community gshut
 set local-preference 0
exit
route-map from-directors permit 20
exit
""" + ROUTER_BGPD.replace("  maximum-paths 8\n",
                          "  maximum-paths 8\n  neighbor D route-map from-directors in\n")


@pytest.mark.parametrize(("method", "worse"), [
    ("med 500", {"med": 500, "aspath": "65001", "community": "65000:100",
                 "large": "65001:1:2"}),
    ("prepend 2", {"med": 0, "aspath": "65001 65001 65001", "community": "65000:100",
                   "large": "65001:1:2"}),
    ("graceful_shutdown", {"med": 0, "aspath": "65001",
                           "community": "65000:100 graceful-shutdown",
                           "large": "65001:1:2"}),
])
def test_daemon_sigterm_drains(lab: Lab, method: str, worse: dict[str, object]) -> None:
    """SIGTERM with a drain_method: the router keeps d1's path, worse, and out of its
    multipath (so d2 takes the new flows) for shutdown_drain_time; then d1 withdraws
    and exits.  d1's path carries its announce communities (RFC 1997 and RFC 8092's
    large ones) all along; with
    graceful_shutdown the router's own policy (RFC 8326 §4) makes it worse."""
    router = ns("rtr")
    drain = (f"drain_method {method}\n    shutdown_drain_time 3\n    communities 65000:100"
             "\n    large_communities 65001:1:2")
    for i in DIRECTORS:
        lab.start_real_server(i)
    confs = {i: lab.render_director(i, drain=drain if i == 1 else "") for i in DIRECTORS}
    assert "match metric 200" in confs[1]["bgpd"]
    assert "set community 65000:100" in confs[1]["bgpd"]
    lab.start_frr("rtr", {"zebra": "hostname rtr\n", "bfdd": ROUTER_BFDD,
                          "bgpd": ROUTER_BGPD_GSHUT})
    for i in DIRECTORS:
        lab.start_frr(f"d{i}", confs[i])
        lab.start_announcer(i, "daemon", drain=drain if i == 1 else "")
    every = {f"10.0.{i}.2" for i in DIRECTORS}
    assert wait_gateways(router, every, 60) is not None, gateways(router)
    assert bgp_paths(router)["10.0.1.2"] == {"med": 0, "aspath": "65001",
                                             "community": "65000:100",
                                             "large": "65001:1:2", "used": True}
    assert bgp_paths(router)["10.0.2.2"]["community"] == ""
    assert bgp_paths(router)["10.0.2.2"]["large"] == ""

    d = lab.daemons[1]
    d.signal(signal.SIGTERM)
    t0 = time.monotonic()
    took = wait_for(lambda: "10.0.1.2" not in gateways(router), WITHDRAW_BOUND_S)
    assert took is not None, f"d1 still in the multipath after SIGTERM: {gateways(router)}"
    paths = bgp_paths(router)
    # the drain may end before a very busy machine gets here: only judge it while it runs
    if time.monotonic() - t0 < 2.5:
        assert paths.get("10.0.1.2") == {**worse, "used": False}, paths
        assert d.proc.poll() is None, "the daemon left before its drain time"
    print(f"\n[daemon] SIGTERM, drain_method {method}: d1 out of the multipath in "
          f"{took:.2f} s, its path kept: {paths.get('10.0.1.2')}")
    gone = wait_for(lambda: "10.0.1.2" not in bgp_paths(router), WITHDRAW_BOUND_S + 3)
    assert gone is not None, bgp_paths(router)
    print(f"[daemon] d1's path withdrawn {took + gone:.2f} s after SIGTERM "
          "(shutdown_drain_time 3)")
    assert time.monotonic() - t0 >= 2.9, "withdrawn before the drain time"
    assert d.proc.wait(20) == 0


VIP6 = "2001:db8::100"
ROUTER_BGPD6 = ROUTER_BGPD.replace(" exit-address-family\n", """ exit-address-family
 address-family ipv6 unicast
  neighbor D activate
  maximum-paths 8
 exit-address-family
""")


def devices6(router: str, vip: str = VIP6) -> set[str]:
    """The router's kernel next-hop devices for ``vip``/128 (r-d1, r-d2): FRR installs
    an eBGP IPv6 path by the peer's link-local next hop, so devices say which director
    is in, where addresses would be fe80:: ones."""
    out = run_in(router, ["ip", "-6", "-j", "route", "show", f"{vip}/128"]).stdout
    routes = json.loads(out or "[]")
    if not routes:
        return set()
    r = routes[0]
    return {h["dev"] for h in r.get("nexthops", [r]) if "dev" in h}


@pytest.mark.parametrize("announcer", ["runner", "daemon"])
def test_ipv6_128_ecmp_and_withdrawal(lab: Lab, announcer: str) -> None:
    """An IPv6 VIP announced as a /128 over the same IPv4 sessions (FRR sends the
    up-link's IPv6 next hop with it): the router has it by ECMP over both directors,
    and a director whose real server dies leaves it; the daemon also withdraws it on
    SIGTERM."""
    router = ns("rtr")
    for i in DIRECTORS:
        for name, dev, host in (("rtr", f"r-d{i}", 1), (f"d{i}", "up0", 2)):
            # nodad: a tentative address cannot be the next hop yet (the namespaces,
            # and the addresses with them, go at the end)
            run_in(ns(name), ["ip", "addr", "add", f"fd00:0:{i}::{host}/64", "dev", dev,
                              "nodad"])
        lab.start_real_server(i)
    confs = {i: lab.render_director(i, (VIP6,)) for i in DIRECTORS}
    assert f"ipv6 prefix-list hafast-fleet-6 seq 5 permit {VIP6}/128" in confs[1]["bgpd"]
    lab.start_frr("rtr", {"zebra": "hostname rtr\n", "bfdd": ROUTER_BFDD,
                          "bgpd": ROUTER_BGPD6})
    for i in DIRECTORS:
        lab.start_frr(f"d{i}", confs[i])
        lab.start_announcer(i, announcer, vips=(VIP6,))
    every = {f"r-d{i}" for i in DIRECTORS}
    took = wait_for(lambda: devices6(router) == every, 60)
    assert took is not None, f"no IPv6 ECMP for {VIP6}: {devices6(router)}\n{lab.explain()}"
    route = run_in(router, ["ip", "-6", "route", "show", f"{VIP6}/128"]).stdout
    print(f"\n[{announcer}] {len(every)}-way ECMP for {VIP6}/128 in the router's kernel in "
          f"{took:.2f} s:\n{route}", end="")
    for i in DIRECTORS:
        mine = run_in(ns(f"d{i}"), ["ip", "-6", "route", "show", f"{VIP6}/128", "proto",
                                    "250"]).stdout
        assert "blackhole" in mine, mine
        local = run_in(ns(f"d{i}"), ["ip", "-6", "route", "show", "table", "local",
                                     f"{VIP6}/128"]).stdout
        assert "proto 250" in local, local

    lab.stop_real_server(1)
    took = wait_for(lambda: "r-d1" not in devices6(router), WITHDRAW_BOUND_S)
    assert took is not None, f"d1 still a next hop for {VIP6}: {devices6(router)}"
    print(f"[{announcer}] real server stopped -> d1 out of {VIP6}'s next hops: {took:.2f} s")
    lab.start_real_server(1)
    took = wait_for(lambda: "r-d1" in devices6(router), WITHDRAW_BOUND_S)
    assert took is not None, f"d1 did not come back for {VIP6}: {devices6(router)}"
    print(f"[{announcer}] real server back -> d1 in {VIP6}'s next hops again: {took:.2f} s")
    if announcer == "daemon":
        lab.daemons[1].signal(signal.SIGTERM)
        took = wait_for(lambda: "r-d1" not in devices6(router), WITHDRAW_BOUND_S)
        assert took is not None, f"d1 still a next hop after SIGTERM: {devices6(router)}"
        assert lab.daemons[1].proc.wait(20) == 0
        print(f"[daemon] SIGTERM on d1 -> d1 out of {VIP6}'s next hops: {took:.2f} s")
