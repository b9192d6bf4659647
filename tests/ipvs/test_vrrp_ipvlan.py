"""use_ipvlan beside keepalived 2.2.7 (issue 14), run INSIDE the IPVS VM.

The host kernel has no ipvlan; the VM's stock Debian kernel has (the module loads
when the first link is made).  tests/netns/test_ipvs_vm_boot.py boots the VM once and
runs every module of tests/ipvs there; on the host this module is skipped.

Two directors on one bridge, each with ``use_ipvlan`` on its ``eth0``, and a client::

    d1:eth0 (hafast), d2:eth0 (keepalived), cl:eth0 --br0 (namespace sw)

One config for both (but the priority and the ipvlan's own address), ``nopreempt``
so that a backup that hears the master stays backup.  keepalived starts alone and
becomes master; hafast (the higher priority) starts and stays backup: it hears
keepalived's adverts through its ipvlan (its status counts them).  keepalived stops,
hafast takes the VIP; keepalived starts again and stays backup: it hears hafast's.
hafast stops, keepalived takes the VIP back.  Compared: the ipvlan's ``ip -d link``
line (kind, mode l2, flags, name, its parent's MAC, up), its addresses (its own only),
``disable_ipv6`` and the parent's ARP settings, where each master puts the VIP (on the
parent, not the ipvlan: keepalived 2.2.7 moves VIPs onto a macvlan only), the client's
neighbour entry for the VIP (the master's MAC); each deletes its ipvlan at stop.
One run (about 60 s in the VM): the suite shares one boot with a time limit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, require_root, require_tool

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

from hafast.lab.netns import Registry

pytestmark = pytest.mark.ipvs

PFX = f"iv{os.getpid() % 10000}"
VIP = "10.0.0.100"
OWN = {"d1": "10.0.0.11", "d2": "10.0.0.12"}  # each ipvlan's own address
PRIO = {"d1": 150, "d2": 100}
DEV, WORDS, FLAGS = "vrrp.51", "{own}/24 private", "private"  # keepalived's default name
PARENT_LAST = {"d1": 11, "d2": 12}  # the parents' own addresses, 192.168.77.N
WAIT_S = 120.0  # the VM runs Python ~20x slower: generous, bounded waits


def conf(role: str, words: str) -> str:
    return f"""global_defs {{
  router_id {role}
  vrrp_garp_master_delay 0
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority {PRIO[role]}
  nopreempt
  advert_int 1
  use_ipvlan {words.format(own=OWN[role])}
  virtual_ipaddress {{
    {VIP}/24
  }}
}}
"""


@pytest.fixture
def lab() -> Iterator[dict[str, str]]:
    require_root()
    names = {r: f"{PFX}{r}" for r in ("sw", "d1", "d2", "cl")}
    with Registry() as reg:
        for ns in names.values():
            reg.add_netns(ns)
        reg.add_bridge(names["sw"], "br0")
        for role, port in (("d1", "p1"), ("d2", "p2"), ("cl", "p0")):
            reg.add_veth(names[role], "eth0", names["sw"], port)
            reg.set_master(names["sw"], port, "br0")
        for role, last in PARENT_LAST.items():
            reg.add_address(names[role], "eth0", f"192.168.77.{last}/24")
        reg.add_address(names["cl"], "eth0", "10.0.0.2/24")
        yield names


def _ip(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True,
                          timeout=60).stdout


def _mac(ns: str, dev: str) -> str:
    m = re.search(r"link/ether (\S+)", _ip(ns, "-o", "link", "show", "dev", dev))
    return m.group(1) if m else ""


def _link(ns: str, dev: str) -> str:
    """The ipvlan's ``ip -d link`` line with what differs by node taken out: its index,
    and its MAC, which must be its parent's."""
    line = _ip(ns, "-d", "-o", "link", "show", "dev", dev).strip()
    line = line.replace(_mac(ns, "eth0") or "?", "PARENT_MAC")
    return re.sub(r"^\d+: ", "", line)


def _addrs(ns: str, role: str, dev: str) -> list[str]:
    """``ip -o addr`` of ``dev``: family, address, flags; what differs by node (the
    ipvlan's and the parent's own addresses, the link-local) as OWN, PARENT, LL."""
    out = []
    for line in _ip(ns, "-o", "addr", "show", "dev", dev).splitlines():
        text = " ".join(line.split()[2:]).split("\\")[0].strip()
        text = text.replace(f"{OWN[role]}/", "OWN/")
        text = text.replace(f"192.168.77.{PARENT_LAST[role]}/", "PARENT/")
        out.append(re.sub(r"fe80::[0-9a-f:]+/", "LL/", text))
    return sorted(out)


def _has_vip(ns: str, dev: str = "eth0") -> bool:
    return f"{VIP}/" in _ip(ns, "-4", "-o", "addr", "show", "dev", dev)


def _sysctl(ns: str, key: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "cat", f"/proc/sys/{key}"],
                          capture_output=True, text=True, timeout=60).stdout.strip()


@dataclass
class Node:
    impl: str
    role: str
    ns: str
    proc: subprocess.Popen[bytes]
    log: Path


def _start(impl: str, role: str, ns: str, dir: Path, name: str) -> Node:
    path = dir / f"{name}.conf"
    path.write_text(conf(role, WORDS))
    if impl == "keepalived":
        argv = [require_tool("keepalived"), "-n", "-l", "-D", "-f", str(path),
                "-p", str(dir / f"{name}.pid"), "-r", str(dir / f"{name}_vrrp.pid"),
                "-c", str(dir / f"{name}_check.pid")]
    else:
        from tests.netns.daemon_fixtures import daemon_argv

        argv = daemon_argv(dir, name, path)
    log = dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    return Node(impl, role, ns, proc, log)


def _stop(node: Node) -> None:
    """SIGTERM (the graceful stop that deletes the ipvlan), then the group by PID."""
    if node.proc.poll() is None:
        node.proc.send_signal(signal.SIGTERM)
        try:
            node.proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(node.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    node.proc.wait(30)


def _wait(cond: Callable[[], bool], what: str, nodes: list[Node]) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < WAIT_S:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.2)
    tails = "\n".join(f"== {n.role} ({n.impl})\n{n.log.read_text(errors='replace')[-2500:]}"
                      for n in nodes if n.log.exists())
    raise AssertionError(f"{what} not within {WAIT_S:.0f} s\n{tails}")


def _neigh_mac(ns: str) -> str:
    subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "5", VIP],
                   capture_output=True, timeout=60)
    m = re.search(r"lladdr (\S+)", _ip(ns, "neigh", "show", VIP))
    return m.group(1) if m else ""


def _hafast_backup_hearing(node: Node) -> bool:
    from tests.netns.daemon_fixtures import Daemon

    try:
        st = Daemon(node.proc, node.log.parent, node.log.stem, node.ns).status(timeout=5)
    except (OSError, ValueError):
        return False
    insts = st.get("vrrp") or []
    return bool(insts) and all(i["data"]["state_name"] == "BACKUP"
                               and i["stats"]["advert_rcvd"] > 0 for i in insts)


def _ipvlan_view(ns: str, role: str) -> tuple[list[str], list[str]]:
    return _addrs(ns, role, DEV), _addrs(ns, role, "eth0")


def test_ipvlan_as_keepalived_makes_it(lab: dict[str, str], tmp_path: Path) -> None:
    require_tool("keepalived")
    d1, d2, cl = lab["d1"], lab["d2"], lab["cl"]
    nodes: list[Node] = []
    try:
        nodes.append(_start("keepalived", "d2", d2, tmp_path, "ka1"))
        _wait(lambda: _has_vip(d2), "keepalived master alone", nodes)
        as_master = {"keepalived": _ipvlan_view(d2, "d2")}
        assert _neigh_mac(cl) == _mac(d2, "eth0")

        # hafast, higher but nopreempt, stays backup: it hears keepalived on its ipvlan.
        nodes.append(_start("hafast", "d1", d1, tmp_path, "hafast"))
        _wait(lambda: _hafast_backup_hearing(nodes[1]), "hafast backup, hearing keepalived",
              nodes)
        assert _has_vip(d2) and not _has_vip(d1)
        links = {"hafast": _link(d1, DEV), "keepalived": _link(d2, DEV)}
        print(f"\nhafast:     {links['hafast']}\nkeepalived: {links['keepalived']}")
        assert links["hafast"] == links["keepalived"]
        assert re.match(rf"{re.escape(DEV)}@eth0: <[^>]*\bUP\b", links["hafast"]), links
        assert "link/ether PARENT_MAC " in links["hafast"], links
        assert re.search(rf"\bipvlan\s+mode l2 {FLAGS}\b", links["hafast"]), links
        # keepalived sets disable_ipv6 on an IPv4 instance's ipvlan, and no IPv4 sysctl
        # on it or its parent (set_interface_parameters is for macvlans)
        for ns in (d1, d2):
            assert _sysctl(ns, f"net/ipv6/conf/{DEV}/disable_ipv6") == "1"
            assert _sysctl(ns, "net/ipv4/conf/eth0/arp_ignore") == "0"
            assert _sysctl(ns, f"net/ipv4/conf/{DEV}/arp_ignore") == "0"
        assert [a.split()[:2] for a in _addrs(d1, "d1", DEV)] == [["inet", "OWN/24"]]

        # keepalived stops (its ipvlan goes): hafast takes the VIP.
        _stop(nodes[0])
        _wait(lambda: _has_vip(d1), "hafast taking the VIP", nodes)
        assert DEV not in _ip(d2, "-o", "link", "show"), "keepalived left its ipvlan"
        as_master["hafast"] = _ipvlan_view(d1, "d1")
        assert _neigh_mac(cl) == _mac(d1, "eth0")

        # keepalived again, lower: it hears hafast's adverts, so it stays backup past
        # its Master_Down_Interval (3.6 s here; waited for 8 s).
        nodes.append(_start("keepalived", "d2", d2, tmp_path, "ka2"))
        _wait(lambda: "Entering BACKUP STATE" in nodes[2].log.read_text(errors="replace"),
              "keepalived backup", nodes)
        time.sleep(8.0)
        assert "Entering MASTER STATE" not in nodes[2].log.read_text(errors="replace")
        assert _has_vip(d1) and not _has_vip(d2)

        # hafast stops (its ipvlan goes): keepalived takes the VIP back.
        _stop(nodes[1])
        _wait(lambda: _has_vip(d2), "keepalived taking the VIP back", nodes)
        assert DEV not in _ip(d1, "-o", "link", "show"), "hafast left its ipvlan"
        assert _neigh_mac(cl) == _mac(d2, "eth0")
        print(f"as master: {as_master}")
        assert as_master["hafast"] == as_master["keepalived"]
        on_ipvlan, on_parent = as_master["hafast"]
        assert [a.split()[:2] for a in on_ipvlan] == [["inet", "OWN/24"]]
        assert [a.split()[:2] for a in on_parent if a.startswith("inet ")] == [
            ["inet", f"{VIP}/24"], ["inet", "PARENT/24"]]
        _stop(nodes[2])
        assert DEV not in _ip(d2, "-o", "link", "show"), "keepalived left its ipvlan"
    finally:
        for node in nodes:
            _stop(node)
