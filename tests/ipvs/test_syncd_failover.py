"""Connections that survive a director failover (issue 15), run INSIDE the IPVS VM.

Two directors, each the full daemon (hafast, or keepalived 2.2.7 beside it) with VRRP
and the same LVS-NAT virtual server; a TCP echo server in a third namespace; a client
in a fourth with long-lived connections through the VIP, each sending a line every
100 ms and reading it back::

    client --brc-- d1:ext, d2:ext      (VI_EXT: VIP 10.0.0.100)
    rs     --brr-- d1:int, d2:int      (VI_INT: gateway 192.168.70.254; the sync daemon)

VI_EXT and VI_INT are one sync group.  The master (d1) is SIGKILLed and its links go
down (the director is gone: a killed daemon alone leaves its VIPs and its IPVS table
working).  d2 takes the VIPs.  With ``lvs_sync_daemon int VI_EXT`` d2's backup sync
daemon already holds the connections (``ipvsadm -Lnc`` lists them before the kill) and
every one keeps flowing; without it d2 answers the next segment of each with a RST.
Figures printed: takeover time, the longest stall, connections kept.  One VM run
(-s): hafast takeover 2.8 s, 4/4 kept, longest stall 3.44 s; keepalived 2.2.7 3.2 s,
4/4, 3.43 s; hafast without lvs_sync_daemon 3.3 s, 0/4 (each reset).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, require, require_root, require_tool

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

from hafast.lab.netns import Registry, socket_in

pytestmark = pytest.mark.ipvs

PFX = f"sf{os.getpid() % 10000}"
VIP, GW, RS, PORT = "10.0.0.100", "192.168.70.254", "192.168.70.2", 7000
CONNS = 4
WAIT_S = 120.0  # the VM runs Python ~20x slower: generous, bounded waits
AFTER_S = 8.0  # how long the connections are watched after the takeover


def conf(name: str, priority: int, sync: bool, layout: str = "group") -> str:
    """``group``: keepalived's usual LVS-NAT pair, VI_EXT (the VIP) and VI_INT (the real
    servers' gateway) in a sync group; ``dev``: one instance holding both, the gateway
    VIP with ``dev int``."""
    syncd = "  lvs_sync_daemon int VI_EXT\n" if sync else ""
    head = f"""global_defs {{
  router_id {name}
{syncd}}}
"""
    if layout == "dev":
        vrrp = _instance("VI_EXT", "ext", 51, priority, f"{VIP}/24 dev ext\n    {GW}/24 dev int")
    else:
        vrrp = ("vrrp_sync_group G {\n  group {\n    VI_EXT\n    VI_INT\n  }\n}\n"
                + _instance("VI_EXT", "ext", 51, priority, f"{VIP}/24")
                + _instance("VI_INT", "int", 52, priority, f"{GW}/24"))
    return head + vrrp + f"""virtual_server {VIP} {PORT} {{
  lvs_sched rr
  lvs_method NAT
  protocol TCP
  real_server {RS} {PORT} {{
  }}
}}
"""


def _instance(name: str, dev: str, vrid: int, priority: int, vips: str) -> str:
    return f"""vrrp_instance {name} {{
  state BACKUP
  interface {dev}
  virtual_router_id {vrid}
  priority {priority}
  advert_int 1
  virtual_ipaddress {{
    {vips}
  }}
}}
"""


@pytest.fixture
def lab() -> Iterator[dict[str, str]]:
    require_root()
    require(Path("/proc/net/ip_vs").exists(), "ip_vs is not loaded")
    require_tool("ipvsadm")
    names = {r: f"{PFX}{r}" for r in ("sw", "cl", "d1", "d2", "rs")}
    with Registry() as reg:
        for ns in names.values():
            reg.add_netns(ns)
        sw = names["sw"]
        reg.add_bridge(sw, "brc")
        reg.add_bridge(sw, "brr")
        for role, dev, port, bridge in (("cl", "eth0", "c0", "brc"), ("d1", "ext", "c1", "brc"),
                                        ("d2", "ext", "c2", "brc"), ("d1", "int", "r1", "brr"),
                                        ("d2", "int", "r2", "brr"), ("rs", "eth0", "r0", "brr")):
            reg.add_veth(names[role], dev, sw, port)
            reg.set_master(sw, port, bridge)
        reg.add_address(names["cl"], "eth0", "10.0.0.2/24")
        reg.add_address(names["rs"], "eth0", f"{RS}/24")
        reg.add_route(names["rs"], "default", via=GW)
        for i, role in ((11, "d1"), (12, "d2")):
            reg.add_address(names[role], "ext", f"10.0.0.{i}/24")
            reg.add_address(names[role], "int", f"192.168.70.{i}/24")
            reg.sysctl(names[role], "net.ipv4.ip_forward", "1")
        yield names


class Echo:
    """A line echo server in the real servers' namespace (threads)."""

    def __init__(self, ns: str) -> None:
        self.srv = socket_in(ns)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((RS, PORT))
        self.srv.listen(64)
        self.srv.settimeout(0.2)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except (TimeoutError, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        with conn:
            while not self.stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                try:
                    conn.sendall(data)
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.srv.close()
        for t in self.threads:
            t.join(timeout=5)


@dataclass
class Stream:
    """One client connection: a line every 100 ms, each read back."""

    sock: socket.socket
    echoes: list[float] = field(default_factory=list)
    error: str | None = None

    def run(self, stop: threading.Event) -> None:
        # longer than a slow takeover plus TCP's retransmission backoff
        self.sock.settimeout(30)
        buf = b""
        n = 0
        try:
            while not stop.is_set():
                n += 1
                self.sock.sendall(f"{n}\n".encode())
                while b"\n" not in buf:
                    chunk = self.sock.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed by the peer")
                    buf += chunk
                _line, buf = buf.split(b"\n", 1)
                self.echoes.append(time.monotonic())
                time.sleep(0.1)
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def stall(self) -> float:
        gaps = [b - a for a, b in zip(self.echoes, self.echoes[1:], strict=False)]
        return max(gaps, default=0.0)


def _wait(cond: Callable[[], bool], what: str, logs: list[Path], poll: float = 1.0) -> float:
    """Seconds until ``cond``.  Each poll starts processes (ip, ipvsadm), which cost the
    guest's one emulated CPU tenths of a second the daemons under test need: once a
    second, but every 0.2 s for the takeover, which is measured."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < WAIT_S:
        if cond():
            return time.monotonic() - t0
        time.sleep(poll)
    tails = "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                      for p in logs if p.exists())
    raise AssertionError(f"{what} not within {WAIT_S:.0f} s\n{tails}")


def _out(ns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=60).stdout


def _has_vip(ns: str) -> bool:
    return f"{VIP}/" in _out(ns, "ip", "-4", "addr", "show", "dev", "ext")


def _has_service(ns: str) -> bool:
    return f"{RS}:{PORT}" in _out(ns, "ipvsadm", "-Ln")


def _synced(ns: str) -> int:
    return sum(1 for line in _out(ns, "ipvsadm", "-Lnc").splitlines()
               if "ESTABLISHED" in line and f"{VIP}:{PORT}" in line)


def _backup_hearing(impl: str, ns: str, log: Path, proc: subprocess.Popen[bytes]) -> bool:
    if impl == "keepalived":
        return "(VI_EXT) Entering BACKUP STATE" in log.read_text(errors="replace")
    from tests.netns.daemon_fixtures import Daemon

    try:
        st = Daemon(proc, log.parent, log.stem, ns).status(timeout=5)
    except (OSError, ValueError):
        return False
    insts = st.get("vrrp") or []
    return bool(insts) and all(i["data"]["state_name"] == "BACKUP"
                               and i["stats"]["advert_rcvd"] > 0 for i in insts)


def _argv(impl: str, dir: Path, name: str, conf_path: Path) -> list[str]:
    if impl == "keepalived":
        return [require_tool("keepalived"), "-n", "-l", "-D", "-f", str(conf_path),
                "-p", str(dir / f"{name}.pid"), "-r", str(dir / f"{name}_vrrp.pid"),
                "-c", str(dir / f"{name}_check.pid")]
    from tests.netns.daemon_fixtures import daemon_argv

    return daemon_argv(dir, name, conf_path)


def _start(impl: str, ns: str, dir: Path, name: str, text: str) -> subprocess.Popen[bytes]:
    path = dir / f"{name}.conf"
    path.write_text(text)
    with (dir / f"{name}.log").open("wb") as out:
        return subprocess.Popen(["ip", "netns", "exec", ns, *_argv(impl, dir, name, path)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=REPO,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


# The gw-dev layout (conf(..., layout="dev")): the real servers' gateway VIP written
# "dev int" inside the ext instance.  keepalived announces each VIP on its own
# interface; hafast did so only on the instance's (the connections stalled 58 s, until
# the real server's neighbour entry went stale) until PacketAnnouncer learned the VIP's
# link.  Its arm here passed from then on (takeover 3.0 s, 4/4 kept, stalls 3.45 s, in
# the VM on 2026-12-07) and cost 125-145 s of the guest's one CPU a run, the suite's
# critical path; the link each VIP is announced on is asserted on the host by
# tests/netns/test_garp_links.py, so the arm is left out of the suite.  Run it with
# HAFAST_SYNCD_GW_DEV=1.
ARMS = [("hafast", True, "group"), ("hafast", False, "group"), ("keepalived", True, "group")]
IDS = ["hafast-sync", "hafast-nosync", "keepalived-sync"]
if os.environ.get("HAFAST_SYNCD_GW_DEV") == "1":
    ARMS.append(("hafast", True, "dev"))
    IDS.append("hafast-sync-gw-dev")


@pytest.mark.parametrize(("impl", "sync", "layout"), ARMS, ids=IDS)
def test_connections_survive_the_master_kill(lab: dict[str, str], tmp_path: Path,
                                             impl: str, sync: bool, layout: str) -> None:
    if impl == "keepalived":
        require_tool("keepalived")
    logs = [tmp_path / "d1.log", tmp_path / "d2.log"]
    echo = Echo(lab["rs"])
    procs: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    streams: list[Stream] = []
    threads: list[threading.Thread] = []
    try:
        procs.append(_start(impl, lab["d1"], tmp_path, "d1", conf("d1", 150, sync, layout)))
        _wait(lambda: _has_vip(lab["d1"]) and _has_service(lab["d1"]), "d1 MASTER", logs)
        procs.append(_start(impl, lab["d2"], tmp_path, "d2", conf("d2", 100, sync, layout)))
        _wait(lambda: _has_service(lab["d2"]), "d2's virtual server", logs)
        # d2's VRRP must be running (a BACKUP hearing d1) before the kill: the takeover
        # is measured from there
        _wait(lambda: _backup_hearing(impl, lab["d2"], tmp_path / "d2.log", procs[1]),
              "d2 BACKUP", logs)
        if sync:
            _wait(lambda: "backup sync daemon" in _out(lab["d2"], "ipvsadm", "-L", "--daemon"),
                  "d2's backup sync daemon", logs)
        for _ in range(CONNS):
            s = socket_in(lab["cl"])
            s.settimeout(30)
            s.connect((VIP, PORT))
            streams.append(Stream(s))
        for st in streams:
            t = threading.Thread(target=st.run, args=(stop,), daemon=True)
            t.start()
            threads.append(t)
        _wait(lambda: all(len(st.echoes) >= 10 for st in streams), "echoes through the VIP",
              logs)
        listed = 0
        if sync:
            _wait(lambda: _synced(lab["d2"]) >= CONNS, "the connections synced to d2", logs)
            listed = _synced(lab["d2"])
        t_kill = time.monotonic()
        _kill(procs[0])
        for dev in ("ext", "int"):
            subprocess.run(["ip", "-n", lab["d1"], "link", "set", dev, "down"], check=True,
                           timeout=60)
        takeover = _wait(lambda: _has_vip(lab["d2"]), "d2 taking the VIP", logs, poll=0.2)
        time.sleep(AFTER_S)
        stop.set()
        for t in threads:
            t.join(timeout=40)
        kept = [st for st in streams if st.error is None and st.echoes
                and st.echoes[-1] > t_kill + takeover]
        stalls = [round(st.stall(), 2) for st in streams]
        print(f"\n{impl} sync={sync} {layout}: takeover {takeover:.1f} s; "
              f"kept {len(kept)}/{CONNS}; "
              f"listed on d2 before the kill {listed}; longest stalls {stalls}; "
              f"errors {[st.error for st in streams if st.error]}")
        if sync:
            assert len(kept) == CONNS, [st.error for st in streams]
            # no stall much beyond the takeover (TCP's retransmission backoff on top)
            assert max(stalls) < takeover + 8.0, stalls
        else:
            assert kept == [], "connections survived without lvs_sync_daemon"
            assert all(st.error for st in streams)
    finally:
        stop.set()
        for st in streams:
            st.sock.close()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    pass
                _kill(p)
        echo.close()
        for role in ("d1", "d2"):
            subprocess.run(["ip", "netns", "exec", lab[role], "ipvsadm", "-C"],
                           capture_output=True, timeout=60)
