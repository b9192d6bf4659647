"""Run the hafast daemon (parent + workers) as a real process, and watch it.

Used by tests/netns/test_daemon_*.py (inside namespaces) and by
tests/unit/core/test_daemon_loopback.py (no namespace, loopback only).  Every
daemon gets its own pid files, control socket and dump prefix under a temporary
folder; :meth:`Daemon.close` stops it by PID (SIGTERM, then SIGKILL to its process
group) even when a test failed.

Example::

    d = start_daemon(tmp_path, conf_text, extra=["--pool-backend", "memory"])
    d.wait_ready()
    assert d.status()["pools"]["changes"] == {...}
    d.close()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hafast.app.control import query

REPO = Path(__file__).resolve().parents[2]
ENTRY = "import sys; from hafast.app.cmdline import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    dir: Path
    name: str
    ns: str | None

    @property
    def ctl(self) -> str:
        return str(self.dir / f"{self.name}.ctl")

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    def pid_file(self, which: str = "") -> Path:
        return self.dir / f"{self.name}{which}.pid"

    def worker_pid(self, which: str) -> int:
        """``vrrp`` or ``check`` (the first check worker) from the pid files."""
        path = self.pid_file("_vrrp" if which == "vrrp" else "_check")
        return int(path.read_text().split()[0])

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def status(self, timeout: float = 30.0) -> dict[str, Any]:
        return query(self.ctl, "status", timeout=timeout)

    def request(self, cmd: str) -> dict[str, Any]:
        return query(self.ctl, cmd)

    def wait_for(self, cond: Callable[[dict[str, Any]], bool], timeout: float, what: str
                 ) -> dict[str, Any]:
        """Poll the status every 50 ms until ``cond(status)``; raise with the log."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon {self.name} exited ({self.proc.returncode}) "
                                     f"waiting for {what}\n{self.log_text()[-4000:]}")
            try:
                last = self.status(timeout=5)
                if cond(last):
                    return last
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; last "
                                     f"status {str(last)[:1500]}\n{self.log_text()[-4000:]}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 20.0) -> dict[str, Any]:
        return self.wait_for(
            lambda st: bool(st.get("workers")) and all(w["answering"] for w in st["workers"]),
            timeout, "every worker answering")

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait (the graceful path); returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Make sure nothing of this daemon is left running (its process group)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# Inside the IPVS VM (one emulated CPU, Python ~20x slower) a spare VRRP worker's start
# costs seconds of the guest's only CPU for every daemon; the tests there are about
# IPVS, and the spare is tested on the host (tests/netns/test_vrrp_spare.py).
IN_VM_EXTRA = ("--no-vrrp-spare",) if os.environ.get("HAFAST_IN_VM") == "1" else ()


def daemon_argv(dir: Path, name: str, conf: Path, extra: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-c", ENTRY, "-f", str(conf), "-n", "-l", "-G",
            "-p", str(dir / f"{name}.pid"), "-r", str(dir / f"{name}_vrrp.pid"),
            "-c", str(dir / f"{name}_check.pid"), "--control-socket", str(dir / f"{name}.ctl"),
            "--dump-prefix", str(dir / f"{name}-dump"), *IN_VM_EXTRA, *extra]


def start_daemon(dir: Path, conf_text: str, *, name: str = "hafast", ns: str | None = None,
                 extra: Sequence[str] = ()) -> Daemon:
    """Write the config and start ``hafast -n`` (in namespace ``ns`` when given).

    The daemon leads its own process group, so :meth:`Daemon.close` can end it and
    its workers by PID without touching anything else.
    """
    dir.mkdir(parents=True, exist_ok=True)
    conf = dir / f"{name}.conf"
    conf.write_text(conf_text)
    argv = daemon_argv(dir, name, conf, extra)
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    out = (dir / f"{name}.log").open("wb")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                start_new_session=True)
    finally:
        out.close()
    return Daemon(proc, dir, name, ns)


# --------------------------------------------------------------------------- two directors

VIP = "10.200.0.100"
VRID = 51


def director_conf(role: str, servers: Sequence[str], *, fifo: Path | None, priority: int,
                  state: str, http: int = 0, delay_loop: str = "1",
                  extra_global: str = "", advert_int: str = "1") -> str:
    """The seed's MASTER/BACKUP pair (VRID 51, priorities 100/90, PASS 1111) with
    ``servers`` behind the VIP: the first ``http`` by HTTP_GET with the farm's fixed
    body digest, the rest by TCP_CHECK (no virtual_server without servers: a
    VRRP-only peer)."""
    from hafast.lab.farm import FIXED_BODY, FIXED_PATH, md5_hex

    digest = md5_hex(FIXED_BODY)
    lines = ["global_defs {", f"  router_id {role}", "  vrrp_garp_master_delay 0"]
    if fifo is not None:
        lines.append(f"  notify_fifo {fifo}")
    lines += [extra_global, "}", "vrrp_instance VI_1 {", f"  state {state}",
              "  interface srv0", f"  virtual_router_id {VRID}", f"  priority {priority}",
              f"  advert_int {advert_int}", "  authentication {", "    auth_type PASS",
              "    auth_pass 1111", "  }", "  virtual_ipaddress {", f"    {VIP}/24", "  }", "}"]
    if not servers:
        return "\n".join([*lines, ""])
    lines += [f"virtual_server {VIP} 80 {{", f"  delay_loop {delay_loop}", "  lb_algo rr",
              "  lb_kind NAT", "  protocol TCP"]
    for i, addr in enumerate(servers):
        lines.append(f"  real_server {addr} 80 {{")
        lines.append("    weight 1")
        if i < http:
            lines += ["    HTTP_GET {", "      url {", f"        path {FIXED_PATH}",
                      f"        digest {digest}", "      }", "      connect_timeout 2",
                      "      retry 1", "      delay_before_retry 0.5", "    }"]
        else:
            lines += ["    TCP_CHECK {", "      connect_timeout 2", "      retry 1",
                      "      delay_before_retry 0.5", "    }"]
        lines.append("  }")
    lines += ["}", ""]
    return "\n".join(lines)


class FifoReader:
    """Reads a notify FIFO without blocking; ``lines()`` returns everything so far."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path, 0o600)
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.buf = b""

    def lines(self) -> list[str]:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buf += chunk
        return [x for x in self.buf.decode().split("\n") if x]

    def close(self) -> None:
        os.close(self.fd)


@dataclass
class PairLab:
    """The farm (nginx with ``count`` servers) and two director namespaces on its bridge.

    Everything is named ``hd<pid>``; :meth:`close` stops the daemons by PID and
    deletes the namespaces even after a failure.
    """

    count: int
    dir: Path
    farm: Any = None
    daemons: dict[str, Daemon] | None = None
    fifos: dict[str, FifoReader] | None = None

    def build(self) -> PairLab:
        from hafast.lab.farm import Farm
        from hafast.lab.netns import run_in

        self.daemons, self.fifos = {}, {}
        self.farm = Farm(count=self.count, name=f"hd{os.getpid()}", bridge=True)
        self.farm.build()
        self.farm.add_director(f"{self.farm.name}-dir2")
        # VRRP multicast must flood the lab bridge even without a querier.
        run_in(self.farm.server_ns, ["ip", "link", "set", "lab0", "type", "bridge",
                                     "mcast_snooping", "0"])
        for role in ("d1", "d2"):
            self.fifos[role] = FifoReader(self.dir / f"{role}.fifo")
        return self

    def ns(self, role: str) -> str:
        assert self.farm is not None
        return str(self.farm.directors[0 if role == "d1" else 1].ns)

    @property
    def servers(self) -> list[str]:
        return list(self.farm.addresses)

    def start(self, role: str, conf_text: str, *extra: str) -> Daemon:
        assert self.daemons is not None
        d = start_daemon(self.dir / role, conf_text, name=role, ns=self.ns(role),
                         extra=["--pool-backend", "nft", *extra])
        self.daemons[role] = d
        return d

    def conf(self, role: str, servers: Sequence[str], **kw: Any) -> str:
        assert self.fifos is not None
        prio, state = (100, "MASTER") if role == "d1" else (90, "BACKUP")
        return director_conf(role, servers, fifo=self.fifos[role].path, priority=prio,
                             state=state, **kw)

    def has_vip(self, role: str) -> bool:
        from hafast.lab.netns import run_in

        out = run_in(self.ns(role), ["ip", "-o", "addr", "show", "dev", "srv0"]).stdout
        return f" {VIP}/" in out

    def holders(self) -> list[str]:
        return [r for r in ("d1", "d2") if self.has_vip(r)]

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> float:
        start = time.monotonic()
        while not cond():
            if time.monotonic() - start > timeout:
                logs = "\n".join(f"--- {k}\n{d.log_text()[-3000:]}"
                                 for k, d in (self.daemons or {}).items())
                raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")
            time.sleep(0.02)
        return time.monotonic() - start

    def nft_services(self, role: str) -> str:
        from hafast.lab.netns import run_in

        res = run_in(self.ns(role), ["nft", "list", "map", "inet", "hafast_lvs", "svc4"],
                     check=False)
        return res.stdout

    def close(self) -> None:
        for d in (self.daemons or {}).values():
            d.close()
        for f in (self.fifos or {}).values():
            f.close()
        if self.farm is not None:
            self.farm.close()
