"""Flows that survive a director's loss and return in a Maglev fleet (issue 18), run
INSIDE the IPVS VM.

Three directors, each the full hafast daemon announcing the VIP by BGP through its own
FRR (zebra + bgpd, config rendered by hafast) to a router running FRR with ECMP over
them; each has the same LVS-DR virtual server, ``lvs_sched mh`` with ``mh-port``, to
three real servers on one bridge::

    cli --- rtr (FRR, AS 65000, maximum-paths 8, fib_multipath_hash_policy 1)
             |r-d1        |r-d2        |r-d3         10.0.i.0/30 up-links
             d1           d2           d3            hafast + FRR, AS 65001
             |            |            |
             +---- br0 (in rtr, 10.1.0.1/24) ----+--- rs1 rs2 rs3 (VIP on lo)

The client holds 60 TCP connections on fixed source ports; the router spreads them
over the directors by its multipath hash.  Each real server answers a line with its
name, so a flow that broke or changed real server shows.  Director d1 is lost (its up-link
goes down at the router, so the router's table drops it at once and bgpd withdraws
its path) and returns (the link up, the session back, three-way ECMP again).  The
router's ECMP is not consistent: besides d1's own flows, some of the others move
between d2 and d3 too.  A moved flow meets a director without its connection entry.

- ``net.ipv4.vs.sloppy_tcp=1`` on every director: that director schedules the
  flow's next segment, and Maglev picks the same real server as the first director
  did (the same destinations in the same order: hafast adds them sorted), so every
  flow survives, the loss and the return (at the return each flow goes back to a
  director that still holds its entry);
- the control, ``sloppy_tcp=0``, in the same boot with fresh flows: IPVS schedules
  only a SYN, the segment reaches the director's own TCP stack, which resets it.

- a real server flapping on d1 only, over fresh flows: rs2 fails d1's own health
  checks (an nft rule drops d1's sockets' packets to it; the flows IPVS forwards have
  no socket and pass) and comes back.  d1 keeps rs2 in its place at weight 0 (its
  Maglev slots), d2 and d3 never see it down, and every flow keeps its real server.

The research probe (same topology, ipvsadm instead of hafast) measured 60/60 and
29/60 reset.  The loss here is a link down rather than a silent director (nft
drop-all, caught by BFD in ~0.2 s on the host): BFD's 50 ms x 3 is not safe on the
VM's one emulated CPU shared with 14 daemons, and the flows do not care how the
router learned it.  LVS-DR as in the research: the real servers answer the client
through the router, not the director.

Daemons (FRR, hafast) are stopped by PID and the namespaces deleted at the end, so
the VM can power off.
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import require, require_root, require_tool
from tests.figures import record

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

from hafast.lab.fleet import FRR, router_bgpd, start_frr
from hafast.lab.netns import Registry, run_in, socket_in
from tests.netns.daemon_fixtures import Daemon, start_daemon

pytestmark = [pytest.mark.ipvs, pytest.mark.timeout(600)]

TAG = f"fm{os.getpid() % 10000}"
VIP, PORT = "192.0.2.100", 80
DIRECTORS = (1, 2, 3)
REALS = {f"rs{j}": f"10.1.0.2{j}" for j in (1, 2, 3)}
FLOWS = 60
CLIENT = "10.0.0.2"
# the VM runs Python ~20x slower and all daemons share one emulated CPU: generous,
# bounded waits (the research saw three-way ECMP 17.5 s after FRR started, without
# hafast's own start-up)
START_S = 240.0
MOVE_S = 60.0
PROBE_TIMEOUT_S = 15.0
# the kernel drops a downed link's next hop at once, and zebra installs its own group
# a moment later: the flows are mapped and probed after both
SETTLE_S = 1.0

# Plain multipath routes, not kernel nexthop objects: the kernel takes a downed link's
# next hop out of its nexthop groups by itself, and FRR 8.4.4's zebra, which still
# counts the group as whole, never installed the three-way route again when d1's link
# came back (seen on the host: zebra's RIB had three next hops, the kernel two).
ROUTER_ZEBRA = "hostname rtr\nno zebra nexthop kernel enable\n"
ROUTER_BGPD = router_bgpd(DIRECTORS, bfd=False)  # a link down needs no BFD here


def director_conf(i: int) -> str:
    # written in another order on each director: hafast adds them sorted all the same
    reals = list(REALS.values())
    reals = reals[i - 1:] + reals[:i - 1]
    servers = "".join(f"""  real_server {addr} {PORT} {{
    TCP_CHECK {{
      connect_timeout 2
      retry 1
      delay_before_retry 1
      delay_loop 3
      warmup 0
    }}
  }}
""" for addr in reals)
    return f"""global_defs {{
  router_id d{i}
}}
bgp_speaker {{
  daemon frr
  local_as 65001
  router_id 10.255.0.{i}
  neighbor 10.0.{i}.1 {{
    remote_as 65000
  }}
  hold_time 9
  keepalive 3
}}
virtual_server {VIP} {PORT} {{
  protocol TCP
  lvs_sched mh
  mh-port
  lvs_method DR
  quorum 1
  announce {{
    prefix {VIP}/32
    announce_delay 0
  }}
{servers}}}
"""


def ns(name: str) -> str:
    return f"{TAG}{name}"


def gateways() -> set[str]:
    """The router's kernel next hops for the VIP."""
    out = run_in(ns("rtr"), ["ip", "-j", "route", "show", f"{VIP}/32"]).stdout
    routes = json.loads(out or "[]")
    if not routes:
        return set()
    r = routes[0]
    if "nexthops" in r:
        return {h["gateway"] for h in r["nexthops"]}
    return {r["gateway"]} if "gateway" in r else set()


def wait_for(cond: Callable[[], bool], timeout: float, what: str,
             logs: Callable[[], str] = lambda: "", poll: float = 0.1) -> float:
    """Seconds until ``cond``, polled every ``poll`` s.  A poll starts ip or ipvsadm:
    tenths of a second of the guest's one emulated CPU, which the daemons starting up
    need; the waits that are not measured poll once a second."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(poll)
    raise AssertionError(f"{what}: not within {timeout:.0f} s; router's next hops "
                         f"{gateways()}\n{logs()}")


def holders(ports: list[int]) -> dict[int, set[int]]:
    """For each client port, the directors whose IPVS holds a connection entry for it.

    Read from IPVS rather than predicted with ``ip route get ... sport P``: the
    predictions did not match (31 flows "moved" in a control arm where 24 were
    reset).  The likely reason: with fib_multipath_hash_policy 1 the kernel takes a
    forwarded packet's own L4 hash when it carries one, and here that is the
    client's TCP txhash (random per socket, kept across the veth), not the ports."""
    out: dict[int, set[int]] = {p: set() for p in ports}
    for i in DIRECTORS:
        for line in run_in(ns(f"d{i}"), ["ipvsadm", "-Lnc"]).stdout.splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[3].startswith(f"{CLIENT}:"):
                port = int(parts[3].rsplit(":", 1)[1])
                if port in out:
                    out[port].add(i)
    return out


def gained(before: dict[int, set[int]], after: dict[int, set[int]]) -> int:
    """Flows that reached a director that held no entry for them before."""
    return sum(1 for p in before if after[p] - before[p])


class RealServers:
    """rs1..rs3's line servers, one thread for all: each line is answered with the
    server's name (the health checks connect and close)."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.stop = threading.Event()
        for name in REALS:
            srv = socket_in(ns(name))
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("0.0.0.0", PORT))
            srv.listen(256)
            srv.setblocking(False)
            self.sel.register(srv, selectors.EVENT_READ, (name, None))
        self.thread = threading.Thread(target=self._run, name="real-servers", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.2):
                name, conn = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if conn is None:
                    try:
                        c, _addr = sock.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    self.sel.register(c, selectors.EVENT_READ, (name, c))
                    continue
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(sock)
                    sock.close()
                    continue
                try:
                    sock.send(f"{name}\n".encode() * data.count(b"\n"))
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()


@dataclass
class Flows:
    """``FLOWS`` client connections from fixed source ports."""

    first_port: int
    socks: list[socket.socket] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [self.first_port + k for k in range(FLOWS)]

    def open(self) -> None:
        for port in self.ports:
            s = socket_in(ns("cli"))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((CLIENT, port))
            s.settimeout(PROBE_TIMEOUT_S)
            s.connect((VIP, PORT))
            self.socks.append(s)

    def probe(self) -> list[str]:
        """Each flow's answer: the real server's name, or what went wrong."""
        out = []
        for s in self.socks:
            try:
                s.sendall(b"ping\n")
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = s.recv(100)
                    if not chunk:
                        raise ConnectionAbortedError("EOF")
                    buf += chunk
                out.append(buf.decode().strip())
            except TimeoutError:
                out.append("timeout")
            except OSError as exc:
                out.append(type(exc).__name__)
        return out

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks.clear()


@dataclass
class Arm:
    """One run of loss and return over fresh flows; what each flow answered."""

    sloppy: int
    base: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    back: list[str] = field(default_factory=list)
    on_d1: int = 0  # flows d1 held: each has to move when d1 is lost
    moved_at_loss: int = 0
    moved_at_return: int = 0
    loss_s: float = 0.0
    return_s: float = 0.0

    def kept(self, after: list[str]) -> int:
        return sum(1 for a, b in zip(self.base, after, strict=True) if a == b and a in REALS)

    def line(self) -> str:
        return (f"sloppy_tcp={self.sloppy}: baseline {dict(collections.Counter(self.base))}; "
                f"d1 held {self.on_d1}; d1 lost (router {self.loss_s:.2f} s): "
                f"{self.moved_at_loss} flows reached a new director, "
                f"{self.kept(self.lost)}/{FLOWS} kept their real server "
                f"{dict(collections.Counter(self.lost))}; d1 back (router {self.return_s:.2f} "
                f"s): {self.moved_at_return} reached a new director, "
                f"{self.kept(self.back)}/{FLOWS} kept {dict(collections.Counter(self.back))}")


class Lab:
    def __init__(self, reg: Registry, base: Path) -> None:
        self.reg = reg
        self.base = base
        self.daemons: dict[int, Daemon] = {}

    def build(self) -> None:
        reg = self.reg
        for name in ("rtr", "cli", *(f"d{i}" for i in DIRECTORS), *REALS):
            reg.add_netns(ns(name))
        rtr = ns("rtr")
        for key, value in (("net.ipv4.ip_forward", "1"),
                           ("net.ipv4.fib_multipath_hash_policy", "1"),
                           # the real servers answer from the VIP through br0, while
                           # the router's route to the VIP points at the directors
                           ("net.ipv4.conf.all.rp_filter", "0"),
                           ("net.ipv4.conf.default.rp_filter", "0")):
            reg.sysctl(rtr, key, value)
        reg.add_veth(rtr, "r-cli", ns("cli"), "eth0")
        reg.add_address(rtr, "r-cli", "10.0.0.1/30")
        reg.add_address(ns("cli"), "eth0", f"{CLIENT}/30")
        reg.add_route(ns("cli"), "default", via="10.0.0.1")
        reg.add_bridge(rtr, "br0")
        reg.add_address(rtr, "br0", "10.1.0.1/24")
        for i in DIRECTORS:
            d = ns(f"d{i}")
            reg.add_veth(rtr, f"r-d{i}", d, "up0")
            reg.add_address(rtr, f"r-d{i}", f"10.0.{i}.1/30")
            reg.add_address(d, "up0", f"10.0.{i}.2/30")
            reg.add_route(d, "default", via=f"10.0.{i}.1")
            reg.add_veth(rtr, f"s-d{i}", d, "lan0")
            reg.set_master(rtr, f"s-d{i}", "br0")
            reg.add_address(d, "lan0", f"10.1.0.1{i}/24")
        for name, addr in REALS.items():
            r = ns(name)
            reg.add_veth(rtr, f"s-{name}", r, "eth0")
            reg.set_master(rtr, f"s-{name}", "br0")
            reg.add_address(r, "eth0", f"{addr}/24")
            reg.add_route(r, "default", via="10.1.0.1")
            # LVS-DR: the VIP on lo, never answered for by ARP
            reg.add_address(r, "lo", f"{VIP}/32")
            reg.sysctl(r, "net.ipv4.conf.all.arp_ignore", "1")
            reg.sysctl(r, "net.ipv4.conf.all.arp_announce", "2")

    def set_sloppy(self, value: int) -> None:
        for i in DIRECTORS:
            self.reg.sysctl(ns(f"d{i}"), "net.ipv4.vs.sloppy_tcp", str(value))
            self.reg.sysctl(ns(f"d{i}"), "net.ipv4.vs.expire_nodest_conn", "0")

    def start_frr(self, name: str, zebra: str, bgpd: str) -> None:
        """zebra and bgpd in namespace ``name`` (no bfdd); zebra may take a minute to
        come up on the VM's emulated CPU."""
        start_frr(self.reg, self.base / name, ns(name), {"zebra": zebra, "bgpd": bgpd},
                  zebra_wait_s=60.0)

    def start_director(self, i: int) -> None:
        from hafast.config.loader import load_text
        from hafast.fleet.frrconf import render_config

        text = director_conf(i)
        res = load_text(text)
        assert res.ok, [d.format() for d in res.diagnostics]
        frr = render_config(res.config, hostname=f"d{i}")
        assert frr is not None and not frr.bfdd
        self.start_frr(f"d{i}", frr.zebra, frr.bgpd)
        d = start_daemon(self.base / f"d{i}-hafast", text, ns=ns(f"d{i}"))
        self.reg.defer(f"daemon {d.proc.pid}", d.close)
        self.daemons[i] = d

    def logs(self) -> str:
        out = []
        for i, d in self.daemons.items():
            out.append(f"== d{i} hafast\n{d.log_text()[-1500:]}")
        for p in sorted(self.base.glob("*/bgpd.log")):
            out.append(f"== {p.parent.name} bgpd\n{p.read_text(errors='replace')[-1000:]}")
        return "\n".join(out)

    def ipvs_dests(self, i: int) -> list[str]:
        """d{i}'s destinations, in the kernel's list order (ipvsadm sorts them by
        address unless told ``--nosort``)."""
        out = run_in(ns(f"d{i}"), ["ipvsadm", "-Ln", "--nosort"]).stdout
        return [" ".join(line.split()[:4]) for line in out.splitlines()
                if line.strip().startswith("->") and line.split()[1][0].isdigit()]


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    require(Path("/proc/net/ip_vs").exists(), "ip_vs is not loaded")
    for daemon in ("zebra", "bgpd"):
        require((FRR / daemon).exists(), f"needs FRR's {daemon} (Debian package frr)")
    require_tool("ipvsadm")
    base = Path(tempfile.mkdtemp(prefix="hafast-maglev-"))
    os.chmod(base, 0o755)  # the FRR daemons run as user frr
    t0 = time.monotonic()
    with Registry() as reg:
        reg.defer(f"rmtree {base}", lambda: shutil.rmtree(base, ignore_errors=True))
        lab = Lab(reg, base)
        lab.build()
        print(f"\nnamespaces built in {time.monotonic() - t0:.1f} s")
        yield lab
        t0 = time.monotonic()
    print(f"torn down in {time.monotonic() - t0:.1f} s")


def run_arm(lab: Lab, sloppy: int, first_port: int) -> Arm:
    """Fresh flows; d1 lost and back; each flow probed before, between and after."""
    every = {f"10.0.{i}.2" for i in DIRECTORS}
    lab.set_sloppy(sloppy)
    arm = Arm(sloppy)
    flows = Flows(first_port)
    try:
        flows.open()
        arm.base = flows.probe()
        assert all(a in REALS for a in arm.base), arm.base
        before = holders(flows.ports)
        assert all(len(h) == 1 for h in before.values()), before
        arm.on_d1 = sum(1 for h in before.values() if 1 in h)
        run_in(ns("rtr"), ["ip", "link", "set", "r-d1", "down"])
        arm.loss_s = wait_for(lambda: gateways() == every - {"10.0.1.2"}, MOVE_S,
                              "d1 out of the router's next hops", lab.logs)
        time.sleep(SETTLE_S)
        arm.lost = flows.probe()
        during = holders(flows.ports)
        arm.moved_at_loss = gained(before, during)
        run_in(ns("rtr"), ["ip", "link", "set", "r-d1", "up"])
        arm.return_s = wait_for(lambda: gateways() == every, MOVE_S,
                                "d1 back in the router's next hops", lab.logs)
        time.sleep(SETTLE_S)
        arm.back = flows.probe()
        arm.moved_at_return = gained(during, holders(flows.ports))
    finally:
        flows.close()
    return arm


# d1's own health checks of one real server fail (its sockets' packets to it dropped;
# the flows IPVS forwards have no socket, so they pass): a server flapping on d1 only
FLAP_NFT = """table inet maglev_flap {{
  chain out {{
    type filter hook output priority 0; policy accept;
    ip daddr {addr} tcp dport {port} meta skuid 0 drop
  }}
}}
"""


def weights(i: int) -> dict[str, int]:
    """d{i}'s destinations -> weight, in the kernel's list order."""
    out = run_in(ns(f"d{i}"), ["ipvsadm", "-Ln", "--nosort"]).stdout
    return {line.split()[1]: int(line.split()[3]) for line in out.splitlines()
            if line.strip().startswith("->") and line.split()[1][0].isdigit()}


@dataclass
class Flap:
    """One real server failing d1's checks only, over fresh flows."""

    base: list[str] = field(default_factory=list)
    during: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # d1's list before, during, after
    order_during: list[str] = field(default_factory=list)
    order_after: list[str] = field(default_factory=list)
    d1_during: dict[str, int] = field(default_factory=dict)
    others_during: list[dict[str, int]] = field(default_factory=list)

    def kept(self, after: list[str]) -> int:
        return sum(1 for a, b in zip(self.base, after, strict=True) if a == b and a in REALS)


def flap_arm(lab: Lab, first_port: int) -> Flap:
    """Fresh flows; rs2 fails d1's checks only and comes back: every flow should keep
    its real server, and d1 keep rs2 in its place at weight 0 (its Maglev slots) while
    the others keep it at 1."""
    lab.set_sloppy(1)
    flows = Flows(first_port)
    victim = f"{REALS['rs2']}:{PORT}"
    flap = Flap()
    try:
        flows.open()
        flap.base = flows.probe()
        assert all(a in REALS for a in flap.base), flap.base
        flap.order = list(weights(1))
        run_in(ns("d1"), ["nft", "-f", "-"], input=FLAP_NFT.format(addr=REALS["rs2"],
                                                                   port=PORT))
        wait_for(lambda: weights(1).get(victim) == 0, MOVE_S,
                 f"{victim} at weight 0 on d1", lab.logs, poll=1.0)
        flap.d1_during = weights(1)
        flap.order_during = list(flap.d1_during)
        flap.others_during = [weights(2), weights(3)]
        flap.during = flows.probe()
        run_in(ns("d1"), ["nft", "delete", "table", "inet", "maglev_flap"])
        wait_for(lambda: weights(1).get(victim) == 1, MOVE_S,
                 f"{victim} back at weight 1 on d1", lab.logs, poll=1.0)
        flap.after = flows.probe()
        flap.order_after = list(weights(1))
    finally:
        flows.close()
        run_in(ns("d1"), ["nft", "delete", "table", "inet", "maglev_flap"], check=False)
    return flap


def test_flows_survive_a_directors_loss_and_return(lab: Lab) -> None:
    t0 = time.monotonic()
    lab.set_sloppy(1)
    servers = RealServers()
    try:
        lab.start_frr("rtr", ROUTER_ZEBRA, ROUTER_BGPD)
        for i in DIRECTORS:
            lab.start_director(i)
        every = {f"10.0.{i}.2" for i in DIRECTORS}
        up = wait_for(lambda: gateways() == every, START_S, "three-way ECMP", lab.logs,
                      poll=1.0)
        print(f"three-way ECMP {up:.1f} s after the daemons started "
              f"({time.monotonic() - t0:.1f} s after FRR's)")
        # the same destinations in the same (sorted) order on every director, though
        # each config lists them in another order
        lists = {i: lab.ipvs_dests(i) for i in DIRECTORS}
        assert len(lists[1]) == len(REALS), lists
        assert lists[1] == lists[2] == lists[3], lists
        for d in lab.daemons.values():
            assert "sloppy_tcp is 0" not in d.log_text()

        survive = run_arm(lab, 1, 40000)
        print(survive.line())
        control = run_arm(lab, 0, 41000)
        print(control.line())
        flap = flap_arm(lab, 42000)
        print(f"rs2 failing d1's checks only: {flap.kept(flap.during)}/{FLOWS} kept their "
              f"real server, {flap.kept(flap.after)}/{FLOWS} after it came back; d1 "
              f"{flap.d1_during}, d2 and d3 {flap.others_during}")
        record("Maglev fleet (IPVS VM)", "a real server flapping on d1 only", {
            "kept while down on d1": f"{flap.kept(flap.during)}/{FLOWS}",
            "kept after": f"{flap.kept(flap.after)}/{FLOWS}"})
        for arm in (survive, control):
            record("Maglev fleet (IPVS VM)", f"d1 lost and back, sloppy_tcp={arm.sloppy}", {
                "flows d1 held": arm.on_d1, "reached a new director": arm.moved_at_loss,
                "kept after the loss": f"{arm.kept(arm.lost)}/{FLOWS}",
                "kept after the return": f"{arm.kept(arm.back)}/{FLOWS}"})
        print(f"test body {time.monotonic() - t0:.1f} s")

        # the scenario moved flows between directors (else it proves nothing): d1's
        # at least, which reached another director and lived (a new IPVS entry) ...
        assert survive.on_d1 > 0 and control.on_d1 > 0
        assert survive.moved_at_loss >= survive.on_d1, survive.line()
        # ... every one survived with sloppy_tcp=1, the loss and the return
        assert survive.kept(survive.lost) == FLOWS, survive.line()
        assert survive.kept(survive.back) == FLOWS, survive.line()
        # ... and without it the moved ones are reset: the control can fail
        assert control.kept(control.lost) < FLOWS, control.line()
        assert any(a not in REALS and a != "timeout" for a in control.lost), control.line()
        # a server down on d1 only: no flow moves or breaks, d1 keeps it (weight 0) in
        # its place in the list, and d2 and d3 never saw it down
        assert flap.kept(flap.during) == flap.kept(flap.after) == FLOWS, flap
        assert flap.order == flap.order_during == flap.order_after, flap
        assert all(w[f"{REALS['rs2']}:{PORT}"] == 1 for w in flap.others_during), flap
    finally:
        servers.close()
        # all at once: each takes seconds to stop on the VM's emulated CPU
        for d in lab.daemons.values():
            d.signal(signal.SIGTERM)
        for d in lab.daemons.values():
            d.close()
