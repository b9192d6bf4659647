"""The README's main job: two hafast directors heal a farm of 200 web servers.

What it does (needs root; about a minute; everything torn down at the end, also on
failure or Ctrl-C):

1. builds the lab farm: one nginx serving 200 real-server addresses in a server
   namespace, and two director namespaces on its bridge;
2. starts hafast in each director as a real daemon (parent + VRRP worker + check
   workers): the seed's MASTER/BACKUP pair on VIP 10.200.0.100 (VRID 51, priorities
   100/90, PASS 1111), HTTP_GET with the MD5 digest of every server's body, the pool
   in the host kernel's nftables (``hafast.lvs.nft``; this kernel has no IPVS);
3. shows ``hafast status`` of the master;
4. breaks one real server (its connections reset) and shows it leave the pool;
5. kills the master with SIGKILL (parent and workers, a host dying) and shows the
   backup take the VIP with the pool already in place;
6. repairs the server and shows it come back into the new master's pool;
7. stops the new master with SIGTERM (priority 0, VIP and pool released).

Example::

    sudo .venv/bin/python -c "from hafast.daemon_demo import run_daemon_demo; run_daemon_demo(None)"
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hafast.lab.demo import DemoError, done_line, start_daemon, wait_until

VIP = "10.200.0.100"
DEADLINE_S = 110.0  # the whole demo, set-up and teardown included, stays under 2 min


def _conf(role: str, servers: list[str], fifo: Path) -> str:
    from hafast.lab.farm import FIXED_BODY, FIXED_PATH, md5_hex

    prio, state = (100, "MASTER") if role == "d1" else (90, "BACKUP")
    digest = md5_hex(FIXED_BODY)
    rs = "".join(f"""
  real_server {addr} 80 {{
    weight 1
    alpha
    HTTP_GET {{
      url {{
        path {FIXED_PATH}
        digest {digest}
      }}
      connect_timeout 2
      retry 1
      delay_before_retry 0.5
    }}
  }}""" for addr in servers)
    return f"""global_defs {{
  router_id {role}
  notify_fifo {fifo}
  vrrp_garp_master_delay 0
}}
vrrp_instance VI_1 {{
  state {state}
  interface srv0
  virtual_router_id 51
  priority {prio}
  advert_int 1
  authentication {{
    auth_type PASS
    auth_pass 1111
  }}
  virtual_ipaddress {{
    {VIP}/24
  }}
}}
virtual_server {VIP} 80 {{
  delay_loop 1
  lb_algo rr
  lb_kind NAT
  protocol TCP
{rs}
}}
"""


class _Director:
    def __init__(self, role: str, ns: str, tmp: Path) -> None:
        self.role, self.ns, self.tmp = role, ns, tmp
        self.ctl = str(tmp / f"{role}.ctl")
        self.log = tmp / f"{role}.log"
        self.fifo = tmp / f"{role}.fifo"
        os.mkfifo(self.fifo, 0o600)
        self.fifo_fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.fifo_buf = b""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, conf: str, workers: int) -> None:
        path = self.tmp / f"{self.role}.conf"
        path.write_text(conf)
        self.proc = start_daemon(self.ns, path, self.tmp / self.role, self.log,
                                 "--pool-backend", "nft", "--check-workers", str(workers))

    def status(self) -> dict[str, Any]:
        from hafast.app.control import query

        return query(self.ctl, "status", timeout=5)

    def transitions(self) -> list[str]:
        while True:
            try:
                chunk = os.read(self.fifo_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.fifo_buf += chunk
        return [x for x in self.fifo_buf.decode().splitlines() if x.startswith("INSTANCE")]

    def kill_hard(self) -> None:
        """SIGKILL the parent and its workers at once: a host that died."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill_hard()
            return -9

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(self.fifo_fd)


def _pool(st: dict[str, Any]) -> dict[str, bool]:
    vs = st["pools"]["virtual_servers"][0]["real_servers"]
    return {r["address"]: r["pool_weight"] is not None for r in vs}


def _has_vip(ns: str) -> bool:
    from hafast.lab.netns import run_in

    return f" {VIP}/" in run_in(ns, ["ip", "-o", "addr", "show", "dev", "srv0"]).stdout


_DEST = re.compile(r"\d+ : [0-9.]+ \. \d+")  # numgen slot : address . port


def _nft_dests(ns: str) -> int:
    from hafast.lab.netns import run_in

    out = run_in(ns, ["nft", "list", "table", "inet", "hafast_lvs"], check=False).stdout
    return len(_DEST.findall(out))


def _show_status(d: _Director, limit: int = 4) -> None:
    from hafast.app.status_cli import main as status_main

    out = io.StringIO()
    status_main(["--socket", d.ctl, "--limit", str(limit)], out=out)
    print(f"$ hafast status    # {d.role} ({d.ns})")
    print(out.getvalue().rstrip())


def run_daemon_demo(args: argparse.Namespace | None) -> int:
    """Run the demo (see the module docstring); 0 when the farm healed as expected."""
    from hafast.lab.farm import Farm
    from hafast.lab.netns import run_in

    if os.geteuid() != 0:
        print("the demo needs root (network namespaces, VRRP, nftables)", file=sys.stderr)
        return 2
    count = int(getattr(args, "servers", 200) or 200)
    t0 = time.monotonic()
    farm = Farm(count=count, name=f"hdemo{os.getpid()}", bridge=True)
    tmp = Path(tempfile.mkdtemp(prefix="hafast-demo-"))
    directors: list[_Director] = []
    code = 1
    try:
        print(f"== building the farm: {count} real servers (one nginx) and two directors")
        farm.build()
        farm.add_director(f"{farm.name}-dir2")
        run_in(farm.server_ns, ["ip", "link", "set", "lab0", "type", "bridge",
                                "mcast_snooping", "0"])
        d1 = _Director("d1", farm.directors[0].ns, tmp)
        d2 = _Director("d2", farm.directors[1].ns, tmp)
        directors += [d1, d2]
        servers = list(farm.addresses)
        print(f"   built in {farm.build_seconds:.1f}s; servers {servers[0]} .. {servers[-1]}")

        print("== starting hafast in both directors (MASTER prio 100, BACKUP prio 90, "
              "VRID 51, PASS 1111)")
        d1.start(_conf("d1", servers, d1.fifo), workers=2)
        d2.start(_conf("d2", servers, d2.fifo), workers=1)
        took = wait_until(lambda: _has_vip(d1.ns) and not _has_vip(d2.ns), 20, "the VIP on d1")
        print(f"   VIP {VIP} on d1 after {took:.1f}s")
        took = wait_until(lambda: all(_pool(d1.status()).values())
                     and all(_pool(d2.status()).values()), 40, "every server in both pools")
        print(f"   all {count} servers passed HTTP_GET + MD5 and joined both pools "
              f"({_nft_dests(d1.ns)} nftables destinations on d1) after {took:.1f}s more")
        _show_status(d1)

        victim = servers[7]
        print(f"== fault: {victim} resets every connection")
        farm.faults.apply([victim], "reject")
        took = wait_until(lambda: not _pool(d1.status())[victim], 15,
                          "the server leaving d1's pool")
        wait_until(lambda: not _pool(d2.status())[victim], 15, "the server leaving d2's pool")
        print(f"   {victim} left the pool after {took:.1f}s; "
              f"{sum(_pool(d1.status()).values())}/{count} in the pool")

        print("== the master dies: SIGKILL to d1's parent and workers")
        d1.kill_hard()
        # A dead host no longer answers for its VIP; in the lab its namespace lives
        # on, so the leftover address is taken off the way the host's death would.
        run_in(d1.ns, ["ip", "addr", "del", f"{VIP}/24", "dev", "srv0"], check=False)
        took = wait_until(lambda: _has_vip(d2.ns), 10, "d2 taking the VIP")
        print(f"   d2 holds the VIP {took:.1f}s later (master down interval 3.6s); "
              f"its FIFO says {d2.transitions()[-1]!r}")
        print(f"   d2's pool was already in place: {sum(_pool(d2.status()).values())}"
              f"/{count} servers, {_nft_dests(d2.ns)} nftables destinations")

        print(f"== repair: {victim} answers again")
        farm.faults.recover([victim])
        took = wait_until(lambda: _pool(d2.status())[victim], 15, "the server back in d2's pool")
        print(f"   {victim} is back in the pool after {took:.1f}s")
        _show_status(d2)

        print("== stopping d2 with SIGTERM (priority 0, VIP and pool released)")
        rc = d2.stop()
        print(f"   exit {rc}; VIP left: {_has_vip(d2.ns)}; nftables destinations left: "
              f"{_nft_dests(d2.ns)}")
        if rc != 0 or _has_vip(d2.ns) or _nft_dests(d2.ns):
            raise DemoError("d2 did not release everything")
        code = 0
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        for d in directors:
            print(f"--- {d.role} log (tail)\n{d.log.read_text(errors='replace')[-3000:]}",
                  file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted; tearing down", file=sys.stderr)
        code = 130
    finally:
        for d in directors:
            d.close()
        farm.close()
        for p in tmp.glob("*"):
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            tmp.rmdir()
    print(done_line(t0, DEADLINE_S))
    return code


if __name__ == "__main__":
    sys.exit(run_daemon_demo(None))
