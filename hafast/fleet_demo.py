"""``hafast demo --fleet``: three active directors announce one VIP by BGP to a router.

What it does (needs root and FRR; about a minute; everything torn down at the end,
also on failure or Ctrl-C):

1. builds the lab: a router namespace running FRR (ECMP over up to 8 paths, BFD
   50 ms x 3), a client behind it, three directors, and one web server behind each
   director (its own namespace, its default route through its director);
2. starts hafast in each director as the real daemon with ``frr_control run``: hafast
   starts the director's FRR itself, checks its web server (TCP_CHECK), and announces
   the VIP while the check passes; the pool is the host kernel's nftables (NAT; this
   kernel has no IPVS);
3. shows the router's three next hops for the VIP, then starts a client that opens
   a new HTTP connection to the VIP every 40 ms (new source port each time, so the
   router's ECMP spreads them);
4. makes d2 go silent (every packet dropped, as a dead box): BFD takes it out of
   the router's next hops within a few hundred milliseconds, against the 3.6 s a VRRP
   backup waits at advert_int 1; then d2 comes back;
5. stops d3's web server: d3's quorum is lost and it withdraws the VIP itself;
6. prints what the client saw: requests answered and failed, and when the failures
   were (only in flight to the silent director before BFD acted);
7. stops the directors with SIGTERM: each withdraws and stops its FRR.

The flows of one connection do not move between directors here: with IPVS's ``mh``
scheduler and ``sloppy_tcp`` they would (tests/ipvs/test_fleet_maglev.py, in the IPVS
VM, keeps 60 of 60 long-lived connections through a director's loss and return); the
host's nftables pool is NAT, so the demo counts requests, each its own connection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hafast.lab.demo import DemoError, done_line, start_daemon, wait_until

VIP = "192.0.2.100"
DIRECTORS = (1, 2, 3)
CLIENT = "10.9.0.2"
DEADLINE_S = 150.0
# the client: a new connection (new source port) every 40 ms for SECONDS, one JSON
# line per request: [time, ok]
CLIENT_LOOP = """
import json, socket, sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    t = time.time(); ok = False
    try:
        with socket.create_connection((sys.argv[2], 80), timeout=0.5) as s:
            s.settimeout(0.5)
            s.sendall(b"GET / HTTP/1.0\\r\\nHost: vip\\r\\n\\r\\n")
            ok = s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        pass
    print(json.dumps([t, ok]), flush=True)
    time.sleep(max(0.0, 0.04 - (time.time() - t)))
"""


# a web server: http.server's own, but bound without socket.getfqdn(), whose reverse
# lookup waits out the resolver where the namespace's default route leads nowhere
WEB_SERVER = """
import functools, http.server, socketserver, sys
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server((sys.argv[1], 80), handler).serve_forever()
"""


def _conf(i: int, ns: str, tmp: Path) -> str:
    return f"""bgp_speaker {{
  local_as 65001
  router_id 10.255.0.{i}
  neighbor 10.0.{i}.1 {{
    remote_as 65000
    bfd
  }}
  frr_pathspace {ns}
  frr_control run
  frr_dir {tmp / f"d{i}-frr"}
}}
virtual_server {VIP} 80 {{
  delay_loop 1
  lvs_sched rr
  lvs_method NAT
  protocol TCP
  quorum 1
  announce {{
    prefix {VIP}/32
    announce_delay 0
  }}
  real_server 10.1.{i}.2 80 {{
    TCP_CHECK {{
      connect_timeout 0.5
      retry 1
      delay_before_retry 0.2
      warmup 0
    }}
  }}
}}
"""


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> float:
    # 10 ms: the BFD figure the demo prints is a few hundred
    return wait_until(cond, timeout, what, poll=0.01)


class _Lab:
    def __init__(self, reg: Any, tmp: Path, tag: str) -> None:
        self.reg, self.tmp, self.tag = reg, tmp, tag
        self.daemons: dict[int, subprocess.Popen[bytes]] = {}
        self.servers: dict[int, subprocess.Popen[bytes]] = {}

    def ns(self, name: str) -> str:
        return f"{self.tag}{name}"

    def build(self) -> None:
        reg, ns = self.reg, self.ns
        for name in ("rtr", "cli", *(f"d{i}" for i in DIRECTORS), *(f"s{i}" for i in DIRECTORS)):
            reg.add_netns(ns(name))
        reg.sysctl(ns("rtr"), "net.ipv4.ip_forward", "1")
        reg.sysctl(ns("rtr"), "net.ipv4.fib_multipath_hash_policy", "1")  # by ports too
        reg.add_veth(ns("rtr"), "r-cli", ns("cli"), "eth0")
        reg.add_address(ns("rtr"), "r-cli", "10.9.0.1/24")
        reg.add_address(ns("cli"), "eth0", f"{CLIENT}/24")
        reg.add_route(ns("cli"), "default", via="10.9.0.1")
        for i in DIRECTORS:
            d, s = ns(f"d{i}"), ns(f"s{i}")
            reg.sysctl(d, "net.ipv4.ip_forward", "1")  # NAT to its web server
            reg.add_veth(ns("rtr"), f"r-d{i}", d, "up0")
            reg.add_address(ns("rtr"), f"r-d{i}", f"10.0.{i}.1/30")
            reg.add_address(d, "up0", f"10.0.{i}.2/30")
            reg.add_route(d, "default", via=f"10.0.{i}.1")
            reg.add_veth(d, "rs0", s, "eth0")
            reg.add_address(d, "rs0", f"10.1.{i}.1/30")
            reg.add_address(s, "eth0", f"10.1.{i}.2/30")
            reg.add_route(s, "default", via=f"10.1.{i}.1")

    def start_server(self, i: int) -> None:
        from hafast.lab.netns import run_in

        root = self.tmp / f"www{i}"
        root.mkdir(exist_ok=True)
        (root / "index.html").write_text(f"served behind d{i}\n")
        self.servers[i] = self.reg.spawn(
            self.ns(f"s{i}"), [sys.executable, "-c", WEB_SERVER, f"10.1.{i}.2", str(root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: run_in(self.ns(f"s{i}"), ["bash", "-c",
                                                f"exec 3<>/dev/tcp/10.1.{i}.2/80"],
                             check=False).returncode == 0, 10, f"web server {i}")

    def stop_server(self, i: int) -> None:
        proc = self.servers.pop(i)
        proc.terminate()
        proc.wait(10)

    def start_director(self, i: int) -> None:
        conf = self.tmp / f"d{i}.conf"
        conf.write_text(_conf(i, self.ns(f"d{i}"), self.tmp))
        self.daemons[i] = start_daemon(self.ns(f"d{i}"), conf, self.tmp / f"d{i}",
                                       self.tmp / f"d{i}.log", "--pool-backend", "nft",
                                       "--check-workers", "1")
        self.reg.defer(f"director d{i}", lambda: self._end_director(i))

    def _end_director(self, i: int) -> None:
        """SIGTERM (withdraw, FRR stopped); then whatever is left, by PID."""
        proc = self.daemons.get(i)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        # the FRR daemons hafast started (detached: not our children)
        run_dir = Path("/var/run/frr") / self.ns(f"d{i}")
        for daemon in ("bgpd", "bfdd", "zebra"):
            with contextlib.suppress(OSError, ValueError):
                pid = int((run_dir / f"{daemon}.pid").read_text())
                if Path(f"/proc/{pid}/comm").read_text().strip() == daemon:
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(run_dir, ignore_errors=True)

    def status(self, i: int) -> dict[str, Any]:
        from hafast.app.control import query

        return query(str(self.tmp / f"d{i}.ctl"), "status", timeout=5)

    def hops(self) -> set[str]:
        from hafast.lab.fleet import gateways

        return gateways(self.ns("rtr"), VIP)


def _named(hops: set[str]) -> str:
    return ", ".join(f"d{h.split('.')[2]}" for h in sorted(hops)) or "none"


def run_fleet_demo(args: argparse.Namespace | None) -> int:
    """Run the demo (see the module docstring); 0 when the fleet behaved as expected."""
    from hafast.lab.fleet import DROP_ALL, ROUTER_BFDD, router_bgpd, start_frr
    from hafast.lab.netns import Registry, run_in

    if os.geteuid() != 0:
        print("the demo needs root (network namespaces, nftables, FRR)", file=sys.stderr)
        return 2
    missing = [p for p in ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/lib/frr/bfdd",
                           "/usr/lib/frr/frr-reload.py") if not os.path.exists(p)]
    if missing:
        print(f"the fleet demo needs FRR ({', '.join(missing)} missing: apt install frr "
              "frr-pythontools)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="hafast-fleet-demo-"))
    os.chmod(tmp, 0o755)  # the FRR daemons run as user frr
    code = 1
    every = {f"10.0.{i}.2" for i in DIRECTORS}
    client: subprocess.Popen[str] | None = None
    try:
        with Registry() as reg:
            lab = _Lab(reg, tmp, f"hfd{os.getpid() % 10000}")
            print("== building the lab: a router running FRR, a client, three directors, "
                  "a web server behind each")
            lab.build()
            for i in DIRECTORS:
                lab.start_server(i)
            start_frr(reg, tmp / "rtr", lab.ns("rtr"), {"zebra": "hostname rtr\n",
                                                "bfdd": ROUTER_BFDD,
                                                "bgpd": router_bgpd(DIRECTORS)})
            print("== starting hafast in each director (frr_control run: hafast starts "
                  "its FRR; TCP_CHECK of its web server; BFD 50 ms x 3)")
            for i in DIRECTORS:
                lab.start_director(i)
            took = _wait(lambda: lab.hops() == every, 90, "three-way ECMP at the router")
            print(f"   the router has {VIP} by three-way ECMP after {took:.1f}s:")
            print("   $ ip route show " + VIP + "\n   " + run_in(
                lab.ns("rtr"), ["ip", "route", "show", f"{VIP}/32"]).stdout.strip()
                .replace("\n", "\n   "))
            # the session as d1's FRR reports it (read every 5 s: hafast.fleet.sessions)
            _wait(lambda: (lab.status(1).get("fleet_sessions") or [{}])[0].get("bgp")
                  == "Established", 15, "d1's status to show its BGP session")
            st = lab.status(1)
            s = (st.get("fleet_sessions") or [{}])[0]
            print(f"   d1 says: VIP {st['fleet'][0]['state']}, BGP session "
                  f"{s.get('bgp')}, BFD {s.get('bfd')}; FRR pids {st['fleet_frr']['daemons']}")

            print("== a client opens a new HTTP connection to the VIP every 40 ms")
            client = subprocess.Popen(
                ["ip", "netns", "exec", lab.ns("cli"), sys.executable, "-c", CLIENT_LOOP,
                 "24", VIP], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(4)

            print("== d2 goes silent (every packet in and out dropped: a dead box)")
            run_in(lab.ns("d2"), ["nft", "-f", "-"], input=DROP_ALL)
            silent_at = time.time()
            took = _wait(lambda: "10.0.2.2" not in lab.hops(), 10, "d2 out of the next hops")
            # a request fails if it left before the router acted (0.5 s client timeout)
            windows = [("d2 silent, before BFD acted", silent_at, silent_at + took + 1.0)]
            print(f"   the router dropped d2 after {took * 1000:.0f} ms (BFD); next hops: "
                  f"{_named(lab.hops())}")
            time.sleep(4)
            print("== d2 is back")
            run_in(lab.ns("d2"), ["nft", "delete", "table", "inet", "fleet_silent"])
            took = _wait(lambda: lab.hops() == every, 30, "d2 back in the next hops")
            print(f"   BGP and BFD up again, d2 back in the next hops after {took:.1f}s")
            time.sleep(3)

            print("== d3's web server stops")
            lab.stop_server(3)
            stopped_at = time.time()
            took = _wait(lambda: "10.0.3.2" not in lab.hops(), 10, "d3 withdrawing")
            windows.append(("d3's server down, before d3 withdrew", stopped_at,
                            stopped_at + took + 1.0))
            print(f"   d3's quorum is lost; it withdrew the VIP, gone from the router "
                  f"after {took:.1f}s; next hops: {_named(lab.hops())}")

            out, _ = client.communicate(timeout=40)
            seen = [json.loads(line) for line in out.splitlines() if line.startswith("[")]
            failed = [t for t, ok in seen if not ok]
            print(f"== the client: {len(seen)} requests, {len(seen) - len(failed)} "
                  f"answered, {len(failed)} failed")
            outside = failed
            for label, start, end in windows:
                mine = [t for t in outside if start - 0.6 <= t <= end]
                outside = [t for t in outside if t not in mine]
                print(f"   {len(mine)} failed while {label} ({end - 1.0 - start:.2f}s)")
            print(f"   {len(outside)} failed at any other time")
            print("== stopping the directors with SIGTERM (each withdraws, then stops "
                  "its FRR)")
            for i in DIRECTORS:
                lab.daemons[i].send_signal(signal.SIGTERM)
            for i in DIRECTORS:
                rc = lab.daemons[i].wait(30)
                print(f"   d{i} exit {rc}")
            with contextlib.suppress(DemoError):
                _wait(lambda: not lab.hops(), 10, "the VIP gone from the router")
            print(f"   the router's next hops: {_named(lab.hops())}")
            if outside or len(seen) < 100:
                raise DemoError(f"the client saw {len(outside)} failures outside the "
                                f"windows above (of {len(seen)} requests)")
            code = 0
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        for i in DIRECTORS:
            log = tmp / f"d{i}.log"
            if log.exists():
                print(f"--- d{i} log (tail)\n{log.read_text(errors='replace')[-2000:]}",
                      file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted; tearing down", file=sys.stderr)
        code = 130
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
    print(done_line(t0, DEADLINE_S))
    return code


if __name__ == "__main__":
    sys.exit(run_fleet_demo(None))
