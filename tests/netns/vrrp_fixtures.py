"""A VRRP lab for tests and benchmarks: two routers and a client on one bridge.

Namespaces (all named with this process's PID): ``sw`` holds the bridge, ``r1``
and ``r2`` are the routers, ``cl`` the client.  Each of r1/r2/cl has ``eth0``
whose veth peer sits in ``sw`` and is enslaved to the bridge, so both ends of
every link live in namespaces we made.  Routers run either hafast's VRRP worker
or Debian's keepalived (its own pid files, ``-n -l -D -P -R``), each started by
PID and stopped by PID; :meth:`VrrpLab.close` undoes everything even after a
failure.

Example::

    with VrrpLab("hv") as lab:
        r1 = lab.start("r1", "hafast", conf_text)
        lab.wait_vip("r1")
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from hafast.lab.netns import Registry, pid_alive, run_in

REPO = Path(__file__).resolve().parents[2]
KEEPALIVED = "/usr/sbin/keepalived"
SUBNET4 = "10.77.0"
SUBNET6 = "fd77::"
ADDR4 = {"r1": f"{SUBNET4}.1", "r2": f"{SUBNET4}.2", "cl": f"{SUBNET4}.10"}
ADDR6 = {"r1": f"{SUBNET6}1", "r2": f"{SUBNET6}2", "cl": f"{SUBNET6}a"}
VIP4 = f"{SUBNET4}.100"
VIP6 = f"{SUBNET6}100"


def _spawn(ns: str, argv: list[str], out: BinaryIO, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    # `ip netns exec` (not nsenter): it also remounts /sys for the namespace, as a
    # daemon started on a real host would see it; the program keeps the PID.
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)


@dataclass
class Router:
    """One running VRRP speaker in a namespace."""

    ns: str
    kind: str  # "hafast" or "keepalived"
    proc: subprocess.Popen[bytes]
    log: Path
    vrrp_pid_file: Path | None = None

    @property
    def vrrp_pid(self) -> int:
        """The PID that runs VRRP (keepalived's child, or hafast itself)."""
        if self.vrrp_pid_file is None:
            return self.proc.pid
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                return int(self.vrrp_pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                time.sleep(0.02)
        raise RuntimeError(f"{self.kind} in {self.ns}: no VRRP child pid file")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class VrrpLab:
    prefix: str
    reg: Registry = field(default_factory=Registry)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hafast-vrrp-")))
    routers: dict[str, Router] = field(default_factory=dict)

    def ns(self, role: str) -> str:
        return f"{self.prefix}{role}"

    # -- topology -------------------------------------------------------------------

    def build(self) -> VrrpLab:
        sw = self.reg.add_netns(self.ns("sw"))
        self.reg.add_bridge(sw, "br0")
        # Link-local multicast must flood even without an MLD querier.
        run_in(sw, ["ip", "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"])
        for role in ("r1", "r2", "cl"):
            ns = self.reg.add_netns(self.ns(role))
            for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
                self.reg.sysctl(ns, key, "0")
            self.reg.add_veth(ns, "eth0", sw, f"p{role}")
            self.reg.set_master(sw, f"p{role}", "br0")
            self.reg.add_address(ns, "eth0", f"{ADDR4[role]}/24")
            self.reg.add_address(ns, "eth0", f"{ADDR6[role]}/64")
        return self

    def close(self) -> None:
        for r in list(self.routers.values()):
            self.stop(r, graceful=False)
        self.routers.clear()
        try:
            self.reg.close()
        finally:
            for p in sorted(self.tmp.glob("*")):
                p.unlink(missing_ok=True)
            self.tmp.rmdir()

    def __enter__(self) -> VrrpLab:
        try:
            return self.build()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- routers --------------------------------------------------------------------

    def start(self, role: str, kind: str, conf: str) -> Router:
        ns = self.ns(role)
        conf_path = self.tmp / f"{role}.conf"
        conf_path.write_text(conf)
        log = self.tmp / f"{role}-{kind}.log"
        out = log.open("wb")
        vrrp_pid_file = None
        if kind == "hafast":
            argv = [sys.executable, "-m", "hafast.vrrp.daemon", "-f", str(conf_path), "-n",
                    "-l", "--stats-file", str(self.tmp / f"{role}.json")]
            env = dict(os.environ, PYTHONPATH=str(REPO))
            proc = _spawn(ns, argv, out, env=env)
        else:
            vrrp_pid_file = self.tmp / f"{role}.vrrp.pid"
            argv = [KEEPALIVED, "-n", "-l", "-D", "-G", "-P", "-R", "-f", str(conf_path),
                    "-p", str(self.tmp / f"{role}.pid"), "-r", str(vrrp_pid_file),
                    "-c", str(self.tmp / f"{role}.chk.pid")]
            proc = _spawn(ns, argv, out)
        out.close()
        router = Router(ns, kind, proc, log, vrrp_pid_file)
        self.routers[role] = router
        return router

    def stop(self, router: Router, *, graceful: bool = True) -> None:
        """SIGTERM (graceful: priority 0 and VIP release) or SIGKILL (a crash)."""
        if router.proc.poll() is None:
            if graceful:
                router.proc.send_signal(signal.SIGTERM)
            else:
                try:
                    vpid = router.vrrp_pid
                except RuntimeError:
                    vpid = router.proc.pid
                if vpid != router.proc.pid and pid_alive(vpid):
                    os.kill(vpid, signal.SIGKILL)
                router.proc.kill()
            try:
                router.proc.wait(10)
            except subprocess.TimeoutExpired:
                router.proc.kill()
                router.proc.wait(5)
        if router.kind == "keepalived":
            # A killed keepalived leaves its pid files; a restart would refuse to run.
            for name in ("pid", "vrrp.pid", "chk.pid"):
                (self.tmp / f"{self._role_of(router)}.{name}").unlink(missing_ok=True)
        for role, r in list(self.routers.items()):
            if r is router:
                del self.routers[role]

    def _role_of(self, router: Router) -> str:
        return next((k for k, r in self.routers.items() if r is router), router.ns[-2:])

    def crash(self, role: str) -> None:
        """Kill the VRRP process with SIGKILL and remove the link's VIPs like a dead host.

        A crashed host stops answering for its VIPs because it is gone; in the lab
        the namespace lives on, so the leftover VIP is taken off its interface.
        """
        router = self.routers[role]
        self.stop(router, graceful=False)
        self.flush_vips(role)

    def flush_vips(self, role: str) -> None:
        ns = self.ns(role)
        for vip, plen in ((VIP4, 24), (VIP6, 64)):
            run_in(ns, ["ip", "addr", "del", f"{vip}/{plen}", "dev", "eth0"], check=False)

    # -- observations -----------------------------------------------------------------

    def has_vip(self, role: str, vip: str = VIP4) -> bool:
        out = run_in(self.ns(role), ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
        return f" {vip}/" in out

    def holders(self, vip: str = VIP4) -> list[str]:
        return [r for r in ("r1", "r2") if self.has_vip(r, vip)]

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``cond`` every 10 ms; returns the seconds it took, raises on timeout."""
        start = time.monotonic()
        while True:
            if cond():
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                logs = "\n".join(f"--- {k} ({r.kind})\n{r.log_text()[-3000:]}"
                                 for k, r in self.routers.items())
                raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")
            time.sleep(0.01)

    def wait_holder(self, role: str, timeout: float, vip: str = VIP4) -> float:
        return self.wait_for(lambda: self.holders(vip) == [role], timeout,
                             f"{vip} only on {role}")

    def mac(self, role: str) -> str:
        words = run_in(self.ns(role), ["ip", "-o", "link", "show", "eth0"]).stdout.split()
        return words[words.index("link/ether") + 1]

    def client_ping(self, vip: str = VIP4) -> bool:
        res = run_in(self.ns("cl"), ["fping", "-c", "1", "-t", "500", vip], check=False)
        return res.returncode == 0

    def client_neigh_mac(self, vip: str = VIP4) -> str:
        out = run_in(self.ns("cl"), ["ip", "neigh", "show", vip, "dev", "eth0"]).stdout
        words = out.split()
        return words[words.index("lladdr") + 1] if "lladdr" in words else ""


@contextmanager
def labs_per_kind(prefix: str, kinds: Sequence[str],
                  veths: Sequence[tuple[str, str]] = ()) -> Iterator[dict[str, VrrpLab]]:
    """A lab of its own for each kind (side-by-side tests run hafast and keepalived
    on the same config, each alone), named ``<prefix><n><pid>``; in each r1 the veth
    pairs ``veths``, both ends up (links whose carrier a test can take away).  Every
    lab is closed at the end, even when closing another one fails.

    Example::

        with labs_per_kind("tg", ("hafast", "keepalived"), [("trk0", "trk1")]) as labs:
            labs["hafast"].start("r1", "hafast", conf_text)
    """
    made: dict[str, VrrpLab] = {}
    try:
        for n, kind in enumerate(kinds):
            lab = made[kind] = VrrpLab(f"{prefix}{n}{os.getpid() % 10000}")
            lab.build()  # closed below even when it fails half way
            ns = lab.ns("r1")
            for a, b in veths:
                run_in(ns, ["ip", "link", "add", a, "type", "veth", "peer", "name", b])
                for dev in (a, b):
                    run_in(ns, ["ip", "link", "set", dev, "up"])
        yield made
    finally:
        for lab in made.values():
            try:
                lab.close()
            except Exception as exc:  # the other lab's namespaces must go too
                print(f"closing {lab.prefix}: {exc!r}")


def conf(
    kind: str,
    *,
    priority: int,
    version: int = 2,
    family: int = 4,
    advert_int: str = "1",
    vrid: int = 51,
    auth_pass: str | None = None,
    nopreempt: bool = False,
    script: tuple[str, int] | None = None,
    extra_global: str = "",
) -> str:
    """A keepalived.conf both hafast and keepalived accept for one instance.

    ``script`` is (path, weight): a vrrp_script tracked by the instance.
    """
    vip = f"{VIP4}/24" if family == 4 else f"{VIP6}/64"
    lines = ["global_defs {", "  router_id " + kind, "  vrrp_garp_master_delay 0",
             f"  vrrp_version {version}"]
    if kind == "keepalived":
        lines += ["  script_user root", "  enable_script_security"]
    lines += [extra_global, "}"]
    if script is not None:
        lines += ["vrrp_script chk {", f"  script \"{script[0]}\"", "  interval 0.2"
                  if version == 3 else "  interval 1", f"  weight {script[1]}", "  fall 1",
                  "  rise 1", "}"]
    lines += [
        "vrrp_instance VI_1 {",
        "  state BACKUP",
        "  interface eth0",
        f"  virtual_router_id {vrid}",
        f"  priority {priority}",
        f"  advert_int {advert_int}",
    ]
    if version == 3:
        lines.append("  version 3")
    if nopreempt:
        lines.append("  nopreempt")
    if auth_pass is not None:
        lines += ["  authentication {", "    auth_type PASS", f"    auth_pass {auth_pass}",
                  "  }"]
    lines += ["  virtual_ipaddress {", f"    {vip}", "  }"]
    if script is not None:
        lines += ["  track_script {", "    chk", "  }"]
    lines += ["}", ""]
    return "\n".join(lines)
