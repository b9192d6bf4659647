"""Issue 18: a silent director leaves the router's next hops (BFD 50 ms x 3) against
a silent VRRP master's takeover at advert_int 1 s, measured in one run.

Two labs, one after the other (tests/netns/fleet_fixtures.py, then
tests/netns/vrrp_fixtures.py):

* **fleet**: a router running FRR (ECMP, BFD 50 ms x 3) and three directors, each
  running FRR and the full hafast daemon (pools in memory) announcing the VIP, as the
  issue's topology has it.  The netns tests run two: three flapped their BFD sessions
  while other tests loaded this shared two-core machine (docs/fleet.md); the suite's
  benchmarks run alone.  Each round:

  - d2 goes silent (an nft table that drops every packet in and out, as
    tests/netns/test_fleet_bgp.py does): the time from the last BFD packet the router
    got from d2 to the kernel route event that drops d2 from the VIP's next hops (and,
    in the figure's detail, from the nft command);
  - d1's real server stops (quorum lost): the time from the stop to the route event
    that drops d1, the first after hafast deleted its announce route in d1 (a BFD flap
    of d1 just then is not a withdrawal);
  - d1's daemon is crashed (SIGKILL of its process group) and started again, then
    reloaded (SIGHUP, its TCP_CHECK's delay_loop changed 0.5 -> 0.6 s): the withdrawals
    seen, at the router (d1 left the next hops) and by hafast (d1's own announce
    route deleted).  Both must be 0.

* **VRRP pair**: r1 (priority 100, master) and r2 (90) at advert_int 1 s, hafast's
  VRRP daemon and then keepalived 2.2.7.  r1 goes silent the same way (nft drop-all
  right after one of its adverts), not by SIGKILL as test_bench_vrrp_failover.py
  does: a silent box is the failure both designs can only find by a timeout, so
  the two figures are about the same event (a SIGKILLed fleet daemon leaves its
  routes in place on purpose, and its FRR keeps the sessions up).  The time from
  r1's last advert (kernel-stamped on the wire in the client's namespace) to r2's
  first advert as master, and to the VIP on r2's interface.

Instants: packets by the kernel's receive stamp (SO_TIMESTAMPNS); route and address
events by the wall clock when a thread blocked on an RTNL socket in that namespace
woke (netlink has no receive stamp), a few ms late at worst on a busy machine.  The
router's table is also polled every 10 ms; a figure falls back to the poll when no
event was parsed, and says so.  Figures are reported, never asserted; a missed goal
is reported as missed.  Rounds: ``HAFAST_BENCH_FLEET_ROUNDS`` (default 5, at most
20).  Needs root, FRR, nft and keepalived::

    .venv/bin/python -m pytest benchmarks/test_bench_fleet.py -q -s
"""

from __future__ import annotations

import os
import select
import signal
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from benchmarks.test_bench_vrrp_failover import R1, Watch
from hafast.lab.fleet import router_bgpd
from hafast.lab.netns import call_in, run_in, socket_in
from hafast.lib import netlink
from hafast.vrrp.timers import master_down_interval_us
from tests.conftest import require_root, require_tool
from tests.netns.fleet_fixtures import (
    DROP_ALL,
    ROUTER_BFDD,
    VIP,
    Lab,
    director_conf,
    gateways,
    ns,
    open_lab,
    wait_for,
    wait_log,
)
from tests.netns.vrrp_fixtures import VIP4, VrrpLab, conf

ROUNDS = max(1, min(20, int(os.environ.get("HAFAST_BENCH_FLEET_ROUNDS", "5"))))
# lab start (~30 s) plus per round ~25 s (fleet) and 2 x ~10 s (VRRP), doubled
pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120 + 100 * ROUNDS)]

DIRECTORS = (1, 2, 3)
D1, D2 = "10.0.1.2", "10.0.2.2"
SILENT_GOAL_MS = 500.0
# Without BFD the 9 s hold time would find the silent director in 6-9 s
SILENT_WAIT_S = 15.0
QUORUM_WAIT_S = 10.0
BACK_WAIT_S = 60.0
SETTLE_S = 2.0  # the window a restart or reload is watched for after it has settled

# The suite pairs the fleet figures with the VRRP ones by these names
# (benchmarks/suite/pysections.py FLEET_PAIRS)
FLEET_SILENT = "fleet: silent director, last BFD packet -> router next hop gone (BFD 50 ms x 3)"
VRRP_ADVERT = "fleet: silent VRRP master, last advert -> backup's first advert (advert 1 s)"
VRRP_VIP = "fleet: silent VRRP master, last advert -> VIP on the backup (advert 1 s)"
QUORUM = "fleet: quorum lost -> router next hop gone"

# linux/rtnetlink.h
RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x10, 0x40
RTA_DST, RTA_GATEWAY, RTA_MULTIPATH, RTA_TABLE = 1, 5, 9, 15
IFA_ADDRESS, IFA_LOCAL = 1, 2
RT_TABLE_MAIN, RTN_BLACKHOLE = 254, 6
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol,
# scope, type, flags
RTNEXTHOP = struct.Struct("=HBBi")  # len, flags, hops, ifindex
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
ETH_P_IP, PACKET_OUTGOING = 0x0800, 4
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
BFD_PORT = (3784).to_bytes(2, "big")  # RFC 5881 §4: single-hop control packets


# -- watching the kernel ---------------------------------------------------------------


@dataclass(frozen=True)
class RouteEvent:
    at: float  # time.time() when the thread woke
    kind: int  # RTM_NEWROUTE / RTM_DELROUTE
    proto: int
    rtype: int
    gateways: frozenset[str]


@dataclass(frozen=True)
class AddrEvent:
    at: float
    kind: int  # RTM_NEWADDR / RTM_DELADDR
    address: str


def _route_event(at: float, kind: int, body: memoryview, dst: str) -> RouteEvent | None:
    """``body`` (an rtmsg and its attributes) as an event for ``dst``/32 in the main
    table; None for any other route."""
    if len(body) < RTMSG.size:
        return None
    family, dst_len, _s, _t, table, proto, _scope, rtype, _f = RTMSG.unpack_from(body)
    attrs = netlink.parse_attrs(body, RTMSG.size)
    if family != socket.AF_INET or dst_len != 32 or RTA_DST not in attrs:
        return None
    if socket.inet_ntoa(attrs[RTA_DST].tobytes()) != dst:
        return None
    if RTA_TABLE in attrs:  # the rtmsg field is a byte: the attribute has the real id
        table = struct.unpack("=I", attrs[RTA_TABLE].tobytes())[0]
    if table != RT_TABLE_MAIN:
        return None
    gws: set[str] = set()
    if kind == netlink.RTM_NEWROUTE:
        if RTA_GATEWAY in attrs:
            gws.add(socket.inet_ntoa(attrs[RTA_GATEWAY].tobytes()))
        if RTA_MULTIPATH in attrs:
            mp = attrs[RTA_MULTIPATH]
            pos = 0
            while pos + RTNEXTHOP.size <= len(mp):
                length = RTNEXTHOP.unpack_from(mp, pos)[0]
                if length < RTNEXTHOP.size:
                    break
                sub = netlink.parse_attrs(mp, pos + RTNEXTHOP.size, pos + length)
                if RTA_GATEWAY in sub:
                    gws.add(socket.inet_ntoa(sub[RTA_GATEWAY].tobytes()))
                pos += netlink.align(length)
    return RouteEvent(at, kind, proto, rtype, frozenset(gws))


def _addr_event(at: float, kind: int, body: memoryview) -> AddrEvent | None:
    if len(body) < IFADDRMSG.size or body[0] != socket.AF_INET:
        return None
    attrs = netlink.parse_attrs(body, IFADDRMSG.size)
    raw = attrs.get(IFA_LOCAL, attrs.get(IFA_ADDRESS))
    return None if raw is None else AddrEvent(at, kind, socket.inet_ntoa(raw.tobytes()))


class Rtnl(threading.Thread):
    """RTNL events of one namespace (route or address changes), each stamped when this
    thread woke to read it."""

    def __init__(self, netns: str, groups: int, parse: Callable[[float, int, memoryview],
                                                               Any]) -> None:
        super().__init__(daemon=True, name=f"rtnl:{netns}")
        self.sock = call_in(netns, netlink.event_socket, groups, rcvbuf=1 << 20)
        self.parse = parse
        self.events: list[Any] = []
        self.lost = 0
        self._halt = False
        self.start()

    def run(self) -> None:
        while not self._halt:
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if not ready:
                continue
            at = time.time()
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError:  # ENOBUFS: events lost; the poll still sees the table
                self.lost += 1
                continue
            for m in netlink.messages(data):
                ev = self.parse(at, m.kind, m.body)
                if ev is not None:
                    self.events.append(ev)

    def since(self, t: float) -> list[Any]:
        return [e for e in list(self.events) if e.at >= t]

    def close(self) -> None:
        self._halt = True
        self.join(2)
        self.sock.close()


class LastBfd(threading.Thread):
    """The kernel receive stamp of the last BFD control packet (RFC 5881 §4: UDP to
    port 3784) from ``source`` on ``dev``.  BFD only: a TCP segment (BGP) may carry
    its sender's departure time (a CLOCK_MONOTONIC stamp, kept across the veth) where
    the receive stamp would be."""

    def __init__(self, netns: str, dev: str, source: str) -> None:
        super().__init__(daemon=True, name=f"wire:{netns}/{dev}")
        self.sock = socket_in(netns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        self.sock.bind((dev, ETH_P_IP))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.source = socket.inet_aton(source)
        self.last = 0.0
        self.packets = 0
        self._halt = False
        self.start()

    def run(self) -> None:
        while not self._halt:
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if not ready:
                continue
            pkt, anc, _flags, addr = self.sock.recvmsg(128, 64)
            ip = pkt[14:]  # after the Ethernet header
            if addr[2] == PACKET_OUTGOING or len(ip) < 24 or ip[12:16] != self.source:
                continue
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != socket.IPPROTO_UDP or ip[ihl + 2:ihl + 4] != BFD_PORT:
                continue
            self.packets += 1
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", data[:16])
                    self.last = sec + nsec / 1e9

    def close(self) -> None:
        self._halt = True
        self.join(2)
        self.sock.close()


# -- reporting -------------------------------------------------------------------------


def _report(figures: Any, name: str, samples_s: list[float], goal: str = "",
            **detail: Any) -> None:
    """Median and max of ``samples_s`` (seconds) as two figures in ms."""
    ms = [round(s * 1000, 1) for s in samples_s]
    if not ms:
        print(f"{name}: not measured")
        return
    for stat, value in (("median", statistics.median(ms)), ("max", max(ms))):
        suffix = ""
        for kind in (" hafast", " keepalived"):  # the suite pairs on this last word
            if name.endswith(kind):
                base, suffix = name[:-len(kind)], kind
                break
        else:
            base = name
        figures.add(f"{base} ({stat}){suffix}", value, "ms", goal=goal, samples=ms,
                    rounds=len(ms), **detail)
    print(f"{name}: median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms, "
          f"{len(ms)} rounds {ms}")


# -- fleet -----------------------------------------------------------------------------


@dataclass
class FleetRun:
    silent: list[float] = field(default_factory=list)  # last BFD packet -> event, s
    silent_nft: list[float] = field(default_factory=list)  # nft started -> event, s
    quorum: list[float] = field(default_factory=list)
    quorum_local: list[float] = field(default_factory=list)  # stop -> hafast withdrew
    polled: int = 0  # figures taken from the poll (no event parsed)
    restart_router: int = 0  # withdrawals of d1 seen at the router
    restart_local: int = 0  # d1's announce route deleted by hafast
    restart_sessions: int = 0  # the router's BGP session with d1 went down
    reload_router: int = 0
    reload_local: int = 0
    reload_sessions: int = 0
    restarts: int = 0
    reloads: int = 0
    notes: list[str] = field(default_factory=list)


def _left_at(events: list[RouteEvent], hop: str) -> float | None:
    """The first event after which ``hop`` is no longer a next hop."""
    for e in events:
        if hop not in e.gateways:
            return e.at
    return None


def _departures(events: list[RouteEvent], hop: str, present: bool) -> int:
    """How many times ``hop`` left the next hops, ``present`` at the start."""
    n = 0
    for e in events:
        now = hop in e.gateways
        if present and not now:
            n += 1
        present = now
    return n


def _own_withdrawals(events: list[RouteEvent]) -> int:
    # hafast's withdrawal is the deletion of its blackhole announce route (proto 250)
    return sum(1 for e in events if e.kind == netlink.RTM_DELROUTE and e.proto == 250
               and e.rtype == RTN_BLACKHOLE)


class SessionDowns:
    """The router's bgpd log from now on: how often its session with ``peer`` went
    down (log-neighbor-changes), so a director that left the next hops because its
    BFD or BGP session dropped (a busy machine) is told apart from a withdrawal."""

    def __init__(self, lab: Lab, peer: str) -> None:
        self.log = lab.base / "rtr" / "bgpd.log"
        self.peer = peer
        self.start = self.log.stat().st_size if self.log.exists() else 0

    def lines(self) -> list[str]:
        with self.log.open("rb") as f:
            f.seek(self.start)
            text = f.read().decode(errors="replace")
        return [line for line in text.splitlines()
                if "ADJCHANGE" in line and f"neighbor {self.peer}" in line and " Down" in line]


def _trace(what: str, events: list[RouteEvent], t0: float) -> None:
    """The route events after ``t0``, for the log: when a figure looks odd."""
    kinds = {netlink.RTM_NEWROUTE: "new", netlink.RTM_DELROUTE: "del"}
    shown = ", ".join(f"+{e.at - t0:.3f} {kinds.get(e.kind, e.kind)} "
                      f"{'/'.join(sorted(e.gateways)) or '-'}" for e in events[:8])
    print(f"{what}: route events {shown or 'none'}")


def _wait_hop(router: str, hop: str, present: bool, timeout: float) -> tuple[float, float] | None:
    """(time.time(), seconds waited) when ``hop`` is (or is no longer) a next hop."""
    took = wait_for(lambda: (hop in gateways(router)) == present, timeout)
    return None if took is None else (time.time(), took)


def _silent_round(lab: Lab, run: FleetRun, rtr_events: Rtnl, wire: LastBfd) -> bool:
    router = ns("rtr")
    # a BFD packet heard just now, so the last one before the silence is on record
    heard = time.time()
    wait_for(lambda: wire.last > heard, 2.0)
    t_cmd = time.time()
    run_in(ns("d2"), ["nft", "-f", "-"], input=DROP_ALL)
    seen = _wait_hop(router, D2, False, SILENT_WAIT_S)
    if seen is None:
        run.notes.append(f"silent d2 still a next hop after {SILENT_WAIT_S} s")
    else:
        at = _left_at(rtr_events.since(t_cmd), D2)
        _trace("silent d2", rtr_events.since(t_cmd), t_cmd)
        if at is None:
            at = seen[0]
            run.polled += 1
        run.silent_nft.append(at - t_cmd)
        if t_cmd - 1.0 < wire.last <= at:
            run.silent.append(at - wire.last)
        else:
            run.notes.append(f"no BFD packet from d2 stamped just before its silence "
                             f"(last {wire.last:.3f}, nft at {t_cmd:.3f})")
    run_in(ns("d2"), ["nft", "delete", "table", "inet", "fleet_silent"])
    if _wait_hop(router, D2, True, BACK_WAIT_S) is None:
        run.notes.append(f"d2 not back {BACK_WAIT_S} s after its silence ended")
        return False
    return True


def _quorum_round(lab: Lab, run: FleetRun, rtr_events: Rtnl, d1_events: Rtnl) -> bool:
    """d1's real server stops: the time to the router's event that drops d1 after
    hafast withdrew (so a BFD flap of d1 just then is not taken for the withdrawal)."""
    router = ns("rtr")
    t_stop = time.time()
    lab.stop_real_server(1)
    seen = _wait_hop(router, D1, False, QUORUM_WAIT_S)
    if seen is None:
        run.notes.append(f"d1 still a next hop {QUORUM_WAIT_S} s after its server stopped")
    else:
        own = [e.at for e in d1_events.since(t_stop) if e.kind == netlink.RTM_DELROUTE
               and e.proto == 250 and e.rtype == RTN_BLACKHOLE]
        withdrawn = own[0] if own else t_stop
        at = _left_at(rtr_events.since(withdrawn), D1)
        _trace("quorum lost on d1", rtr_events.since(t_stop), t_stop)
        if not own:
            run.notes.append("quorum lost on d1: no deletion of its announce route seen")
        if at is None:
            at = seen[0]
            run.polled += 1
        run.quorum.append(at - t_stop)
        if own:
            run.quorum_local.append(withdrawn - t_stop)
    lab.start_real_server(1)
    if _wait_hop(router, D1, True, BACK_WAIT_S) is None:
        run.notes.append(f"d1 not back {BACK_WAIT_S} s after its server came back")
        return False
    return True


def _restart_round(lab: Lab, run: FleetRun, rtr_events: Rtnl, d1_events: Rtnl,
                   nth: int) -> bool:
    router = ns("rtr")
    t0 = time.time()
    present = D1 in gateways(router)
    downs = SessionDowns(lab, D1)
    lab.crash_announcer(1)
    lab.start_announcer(1, "daemon", run=nth + 2)
    try:
        wait_log(lab.logs[1], "STARTUP -> ANNOUNCED", 30)
    except AssertionError as exc:
        run.notes.append(f"restart {nth + 1}: {exc}")
        return False
    time.sleep(SETTLE_S)
    run.restarts += 1
    run.restart_router += _departures(rtr_events.since(t0), D1, present)
    run.restart_local += _own_withdrawals(d1_events.since(t0))
    run.restart_sessions += len(downs.lines())
    for line in downs.lines():
        print(f"restart {nth + 1}: {line}")
    return True


def _reload_round(lab: Lab, run: FleetRun, rtr_events: Rtnl, d1_events: Rtnl,
                  nth: int) -> bool:
    router = ns("rtr")
    d = lab.daemons[1]
    plans = d.log_text().count("reload plan:")
    # a real diff (the daemon started on this round's restart with delay_loop 0.5):
    # the checker of the VIP's one real server changes, the VIP and its quorum stay
    (d.dir / "hafast.conf").write_text(director_conf(1).replace("delay_loop 0.5",
                                                                "delay_loop 0.6"))
    t0 = time.time()
    present = D1 in gateways(router)
    downs = SessionDowns(lab, D1)
    d.signal(signal.SIGHUP)
    if wait_for(lambda: d.log_text().count("reload plan:") > plans, 20) is None:
        run.notes.append(f"reload {nth + 1}: no reload plan logged in 20 s")
        return False
    time.sleep(SETTLE_S)
    run.reloads += 1
    run.reload_router += _departures(rtr_events.since(t0), D1, present)
    run.reload_local += _own_withdrawals(d1_events.since(t0))
    run.reload_sessions += len(downs.lines())
    for line in downs.lines():
        print(f"reload {nth + 1}: {line}")
    return True


def test_bench_fleet_silent_director(figures: Any) -> None:
    run = FleetRun()
    with open_lab(DIRECTORS) as lab:
        router = ns("rtr")
        for i in DIRECTORS:
            lab.start_real_server(i)
        confs = {i: lab.render_director(i) for i in DIRECTORS}
        lab.start_frr("rtr", {"zebra": "hostname rtr\n", "bfdd": ROUTER_BFDD,
                              "bgpd": router_bgpd(DIRECTORS)})
        for i in DIRECTORS:
            lab.start_frr(f"d{i}", confs[i])
            lab.start_announcer(i, "daemon")
        every = {f"10.0.{i}.2" for i in DIRECTORS}
        took = wait_for(lambda: gateways(router) == every, 60)
        assert took is not None, f"no ECMP: {gateways(router)}\n{lab.explain()}"
        rtr_events = Rtnl(router, RTMGRP_IPV4_ROUTE, lambda at, k, b: _route_event(at, k, b, VIP))
        lab.reg.defer("rtnl rtr", rtr_events.close)
        d1_events = Rtnl(ns("d1"), RTMGRP_IPV4_ROUTE, lambda at, k, b: _route_event(at, k, b, VIP))
        lab.reg.defer("rtnl d1", d1_events.close)
        wire = LastBfd(router, "r-d2", D2)
        lab.reg.defer("wire r-d2", wire.close)
        t_start = time.monotonic()
        for nth in range(ROUNDS):
            if not (_silent_round(lab, run, rtr_events, wire)
                    and _quorum_round(lab, run, rtr_events, d1_events)
                    and _restart_round(lab, run, rtr_events, d1_events, nth)
                    and _reload_round(lab, run, rtr_events, d1_events, nth)):
                run.notes.append(f"stopped in round {nth + 1}: the lab did not recover")
                break
        lost = rtr_events.lost + d1_events.lost
        print(f"\n{ROUNDS} fleet round(s) in {time.monotonic() - t_start:.0f} s; "
              f"route events at the router {len(rtr_events.events)}, lost reads {lost}, "
              f"figures from the poll {run.polled}, BFD packets from d2 {wire.packets}")
    for note in run.notes:
        print(f"note: {note}")
    detail: dict[str, Any] = {"polled": run.polled, "notes": run.notes}
    _report(figures, FLEET_SILENT, run.silent, goal=f"< {SILENT_GOAL_MS:.0f} ms",
            from_nft_ms=[round(s * 1000, 1) for s in run.silent_nft], **detail)
    # no goal: a TCP_CHECK round (delay_loop 0.5 s, retry 1) and then FRR (~0.13 s)
    _report(figures, QUORUM, run.quorum,
            stop_to_withdrawn_ms=[round(s * 1000, 1) for s in run.quorum_local], **detail)
    if run.quorum_local:
        print(f"  of which stop -> hafast deleted its announce route: "
              f"{[round(s * 1000, 1) for s in run.quorum_local]} ms")
    if run.silent:
        missed = sum(1 for s in run.silent if s * 1000 >= SILENT_GOAL_MS)
        print(f"goal < {SILENT_GOAL_MS:.0f} ms: {'met' if not missed else 'MISSED'} "
              f"({missed} of {len(run.silent)} rounds over)")
    for what, n, router_n, local_n, sessions in (
            ("crash + restart", run.restarts, run.restart_router, run.restart_local,
             run.restart_sessions),
            ("reload", run.reloads, run.reload_router, run.reload_local,
             run.reload_sessions)):
        if not n:
            continue
        figures.add(f"fleet: withdrawals at the router in {what} of hafast", router_n,
                    "withdrawals", goal="0", times=n, sessions_down=sessions)
        figures.add(f"fleet: withdrawals by hafast (announce route deleted) in {what}",
                    local_n, "withdrawals", goal="0", times=n)
        figures.add(f"fleet: router's BGP session with the director down in {what}",
                    sessions, "sessions", goal="0", times=n)
        print(f"{what} of d1's daemon x{n}: d1 left the router's next hops {router_n} "
              f"time(s); hafast deleted its announce route {local_n} time(s); the router's "
              f"session with d1 went down {sessions} time(s) (goal 0 each)")


# -- VRRP pair -------------------------------------------------------------------------


@pytest.fixture
def vrrp_lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool("keepalived")
    require_tool("nft")
    with VrrpLab(f"hf{os.getpid() % 100000}") as built:
        yield built


def _vrrp_round(lab: VrrpLab, vips: Rtnl) -> tuple[float, float] | None:
    """One silent master: (last advert -> r2's first advert, -> VIP on r2), seconds;
    None when the pair did not get there (said on stdout)."""
    try:
        lab.wait_holder("r1", 15, VIP4)
    except AssertionError as exc:
        print(f"vrrp round: r1 never the only holder: {str(exc)[:3000]}")
        return None
    time.sleep(3.0)  # r2 settled as backup
    watch = Watch(lab.ns("cl"))
    watch.start()
    silenced = False
    try:
        watch.next_advert(3.0)
        run_in(lab.ns("r1"), ["nft", "-f", "-"], input=DROP_ALL)
        silenced = True
        advert, _prio = watch.result(15)
        last_r1 = max(a[0] for a in watch.adverts if a[1] == R1)
        end = time.monotonic() + 5
        vip_at = None
        while vip_at is None and time.monotonic() < end:
            vip_at = next((e.at for e in vips.since(last_r1)
                           if e.kind == netlink.RTM_NEWADDR and e.address == VIP4), None)
            time.sleep(0.01)
    except TimeoutError as exc:
        print(f"vrrp round: {exc}")
        return None
    finally:
        watch.close()
        if silenced:
            run_in(lab.ns("r1"), ["nft", "delete", "table", "inet", "fleet_silent"])
    return advert, (float("nan") if vip_at is None else vip_at - last_r1)


def test_bench_vrrp_silent_master(vrrp_lab: VrrpLab, figures: Any) -> None:
    lab = vrrp_lab
    expected_ms = master_down_interval_us(2, 90, 1_000_000) / 1000
    goal = f"~{expected_ms:.0f} ms (RFC Master_Down_Interval)"
    vips = Rtnl(lab.ns("r2"), RTMGRP_IPV4_IFADDR, _addr_event)
    try:
        for kind in ("hafast", "keepalived"):
            lab.start("r1", kind, conf(kind, priority=100, auth_pass="1111"))
            lab.start("r2", kind, conf(kind, priority=90, auth_pass="1111"))
            adverts: list[float] = []
            held: list[float] = []
            for _ in range(ROUNDS):
                got = _vrrp_round(lab, vips)
                if got is None:
                    break
                adverts.append(got[0])
                if got[1] == got[1]:  # not NaN
                    held.append(got[1])
            _report(figures, f"{VRRP_ADVERT} {kind}", adverts, goal=goal)
            _report(figures, f"{VRRP_VIP} {kind}", held, goal=goal)
            for role in list(lab.routers):
                lab.stop(lab.routers[role])
            for role in ("r1", "r2"):
                lab.flush_vips(role)
    finally:
        vips.close()
