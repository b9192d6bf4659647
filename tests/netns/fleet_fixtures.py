"""The fleet lab (issue 18) that tests/netns/test_fleet_bgp.py and
benchmarks/test_bench_fleet.py share: a router namespace running FRR (zebra, bfdd,
bgpd; ECMP, BFD 50 ms x 3), director namespaces running FRR plus hafast's announcer
(the fleet runner alone or the full daemon), and one namespace of real servers.

Topology (all namespaces made here, deleted when the lab closes)::

    rtr (FRR zebra+bfdd+bgpd, maximum-paths 8, AS 65000)
     |10.0.1.0/30          |10.0.2.0/30
    d1 (FRR + announcer)  d2 (FRR + announcer)       AS 65001, BFD 50 ms x 3
     |10.1.1.0/30          |10.1.2.0/30
    srv: real servers 10.1.1.2:80 (d1's), 10.1.2.2:80 (d2's)

Example::

    with open_lab() as lab:
        lab.start_real_server(1)
        ...
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hafast.lab import fleet as fleetlab
from hafast.lab.fleet import DROP_ALL as DROP_ALL  # the tests' names for them
from hafast.lab.fleet import FRR, router_bgpd
from hafast.lab.fleet import ROUTER_BFDD as ROUTER_BFDD
from hafast.lab.netns import Registry, run_in
from tests.conftest import require, require_root, require_tool
from tests.netns.daemon_fixtures import Daemon, start_daemon

VIP = "192.0.2.100"
TAG = f"fb{os.getpid() % 10000}"
# Two, not the three: with three (12 FRR daemons and three hafast daemons on
# this shared two-core machine) the 50 ms x 3 BFD sessions flapped, all of them at once
# in one run, while other engineers' tests loaded the machine (docs/fleet.md)
DIRECTORS = (1, 2)
ROUTER_BGPD = router_bgpd(DIRECTORS)


def director_conf(i: int, vips: tuple[str, ...] = (VIP,), drain: str = "",
                  speaker_extra: str = "") -> str:
    servers = "".join(f"""virtual_server {vip} 80 {{
  protocol TCP
  lvs_sched wlc
  lvs_method DR
  quorum 1
  announce {{
    prefix {vip}/{128 if ":" in vip else 32}
    announce_delay 1
    {drain}
  }}
  real_server 10.1.{i}.2 80 {{
    TCP_CHECK {{
      connect_timeout 0.3
      retry 1
      delay_before_retry 0.2
      delay_loop 0.5
      warmup 0
    }}
  }}
}}
""" for vip in vips)
    return f"""bgp_speaker {{
  daemon frr
  local_as 65001
  router_id 10.255.0.{i}
  neighbor 10.0.{i}.1 {{
    remote_as 65000
    bfd
  }}
  hold_time 9
  keepalive 3
  frr_pathspace {ns(f"d{i}")}
  {speaker_extra}
}}
{servers}"""


def ns(name: str) -> str:
    return f"{TAG}{name}"


def gateways(router: str, vip: str = VIP) -> set[str]:
    """The router's kernel next hops for ``vip``."""
    return fleetlab.gateways(router, vip)


def wait_gateways(router: str, want: set[str], timeout: float,
                  vip: str = VIP) -> float | None:
    """Seconds until the router's next hops for ``vip`` are ``want``; None on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if gateways(router, vip) == want:
            return time.monotonic() - t0
        time.sleep(0.01)
    return None


def logged_at(log: Path, what: str) -> float:
    """The wall-clock time of the announcer's log line with ``what``: both logs start
    ``YYYY-mm-dd HH:MM:SS`` then a comma (the runner) or a dot (the daemon) and ms."""
    for line in log.read_text().splitlines():
        if what in line:
            stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
            return stamp + int(line[20:23]) / 1000
    raise AssertionError(f"{what!r} not in {log}")


def wait_for(cond: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``cond()``; None on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.01)
    return None


def holds(cond: Callable[[], bool], seconds: float) -> bool:
    """``cond()`` at every look for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not cond():
            return False
        time.sleep(0.01)
    return True


def wait_log(log: Path, what: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if log.exists() and what in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{what!r} not in {log} after {timeout} s")


class Lab:
    def __init__(self, reg: Registry, base: Path,
                 directors: tuple[int, ...] = DIRECTORS) -> None:
        self.reg = reg
        self.base = base
        self.directors = directors
        self.rs: dict[int, subprocess.Popen[bytes]] = {}
        self.daemons: dict[int, Daemon] = {}
        self.pids: dict[int, int] = {}
        self.logs: dict[int, Path] = {}

    def build(self) -> None:
        reg = self.reg
        for name in ("rtr", "srv", *(f"d{i}" for i in self.directors)):
            reg.add_netns(ns(name))
        reg.sysctl(ns("rtr"), "net.ipv4.ip_forward", "1")
        reg.sysctl(ns("rtr"), "net.ipv4.fib_multipath_hash_policy", "1")
        for i in self.directors:
            d = ns(f"d{i}")
            reg.add_veth(ns("rtr"), f"r-d{i}", d, "up0")
            reg.add_address(ns("rtr"), f"r-d{i}", f"10.0.{i}.1/30")
            reg.add_address(d, "up0", f"10.0.{i}.2/30")
            reg.add_veth(d, "rs0", ns("srv"), f"s-d{i}")
            reg.add_address(d, "rs0", f"10.1.{i}.1/30")
            reg.add_address(ns("srv"), f"s-d{i}", f"10.1.{i}.2/30")

    def start_real_server(self, i: int) -> None:
        self.rs[i] = self.reg.spawn(
            ns("srv"), [sys.executable, "-m", "http.server", "80", "--bind", f"10.1.{i}.2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = run_in(ns("srv"), ["bash", "-c", f"exec 3<>/dev/tcp/10.1.{i}.2/80"],
                           check=False)
            if probe.returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError(f"real server {i} did not listen")

    def stop_real_server(self, i: int) -> None:
        proc = self.rs.pop(i)
        proc.terminate()
        proc.wait(10)

    def start_frr(self, name: str, confs: dict[str, str]) -> None:
        """zebra, bfdd, bgpd in namespace ``name`` (:func:`hafast.lab.fleet.start_frr`)."""
        fleetlab.start_frr(self.reg, self.base / name, ns(name), confs)

    def render_director(self, i: int, vips: tuple[str, ...] = (VIP,),
                        drain: str = "") -> dict[str, str]:
        conf = self.base / f"d{i}.conf"
        conf.write_text(director_conf(i, vips, drain))
        out = self.base / f"d{i}-frr"
        proc = subprocess.run(
            [sys.executable, "-m", "hafast.fleet.runner", "-f", str(conf), "--render",
             str(out), "--hostname", f"d{i}"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return {d: (out / f"{d}.conf").read_text() for d in ("zebra", "bfdd", "bgpd")}

    def start_announcer(self, i: int, kind: str, run: int = 1,
                        vips: tuple[str, ...] = (VIP,), drain: str = "") -> None:
        """hafast's fleet runner alone, or the full daemon (pools in memory: the host
        kernel has no IPVS), announcing d{i}'s VIPs; ``run`` numbers restarts."""
        if kind == "daemon":
            d = start_daemon(self.base / f"d{i}-daemon{run}", director_conf(i, vips, drain),
                             ns=ns(f"d{i}"), extra=["--pool-backend", "memory"])
            self.reg.defer(f"daemon {d.proc.pid}", d.close)
            self.daemons[i] = d
            self.pids[i] = d.proc.pid
            self.logs[i] = d.log
            return
        log = open(self.base / f"d{i}-announcer{run}.log", "wb")  # the process writes it
        self.reg.defer(f"close {log.name}", log.close)
        proc = self.reg.spawn(ns(f"d{i}"), [sys.executable, "-m", "hafast.fleet.runner",
                                            "-f", str(self.base / f"d{i}.conf")],
                              stdout=log, stderr=subprocess.STDOUT)
        self.pids[i] = proc.pid
        self.logs[i] = Path(log.name)

    def explain(self) -> str:
        """What each director's kernel and bgpd hold for the VIPs, and its log's tail:
        for a failed wait."""
        out = []
        for i in self.directors:
            d = ns(f"d{i}")
            for cmd in (["ip", "route", "show", "table", "all"],
                        ["vtysh", "-N", d, "-c", "show ip bgp", "-c", "show ip route kernel"]):
                proc = subprocess.run(["ip", "netns", "exec", d, *cmd], capture_output=True,
                                      text=True, timeout=30, check=False)
                text = proc.stdout if cmd[0] != "ip" else "".join(
                    line for line in proc.stdout.splitlines(True) if "192.0.2." in line)
                out.append(f"--- d{i}: {' '.join(cmd)}\n{text}{proc.stderr}")
            if i in self.logs:
                out.append(f"--- d{i} log\n{self.logs[i].read_text(errors='replace')[-1500:]}")
        return "\n".join(out)

    def crash_announcer(self, i: int) -> None:
        """SIGKILL, as a crash: no withdrawal can run (the daemon's whole group)."""
        pid = self.pids.pop(i)
        if i in self.daemons:
            os.killpg(pid, signal.SIGKILL)
            self.daemons.pop(i).proc.wait(10)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


@contextmanager
def open_lab(directors: tuple[int, ...] = DIRECTORS) -> Iterator[Lab]:
    """A built :class:`Lab` (namespaces and links, nothing started); on leaving, every
    process it started is stopped by PID and every namespace and file is deleted."""
    require_root()
    for daemon in ("zebra", "bfdd", "bgpd"):
        require((FRR / daemon).exists(), f"needs FRR's {daemon} (Debian package frr)")
    require(shutil.which("vtysh"), "needs FRR's vtysh (Debian package frr)")
    require_tool("nft")
    base = Path(tempfile.mkdtemp(prefix="hafast-fleet-"))
    os.chmod(base, 0o755)  # the FRR daemons run as user frr
    with Registry() as reg:
        reg.defer(f"rmtree {base}", lambda: shutil.rmtree(base, ignore_errors=True))
        lab = Lab(reg, base, directors)
        lab.build()
        yield lab
