"""KEEPALIVED-MIB traps over AgentX (issue 15, ``enable_traps``), side by side with
Debian's keepalived 2.2.7.

One namespace runs net-snmp's ``snmpd --master=agentx`` with ``trap2sink`` to an
``snmptrapd`` in the same namespace (its own config, ``disableAuthorization yes``,
numeric OIDs, one line per trap).  hafast and then keepalived run the same config:
VI_1 (``state BACKUP``) goes BACKUP then MASTER; VI_2 starts in FAULT on a
track_file, and the test clears the file so it goes BACKUP then MASTER.  The
vrrpInstanceStateChange traps each daemon caused must be the same, instance by
instance and in order: trap OID, varbind OIDs and values (sysUpTime left out); so
must RFC 2787's vrrpTrapNewMaster (``enable_snmp_rfcv2``), one per new master.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hafast.lab.netns import Registry
from hafast.status.snmp_mib import (
    SNMP_TRAP_OID,
    SYS_UPTIME,
    VRRP_INSTANCE_STATE_CHANGE,
    VRRP_TRAP_NEW_MASTER,
)
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import start_daemon
from tests.netns.vrrp_fixtures import KEEPALIVED

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

NS = f"snmpt{os.getpid() % 100000}"
PEER = f"snmptp{os.getpid() % 100000}"
TRAPD = "udp:127.0.0.1:16262"


def dotted(oid: tuple[int, ...]) -> str:
    return "." + ".".join(map(str, oid))


Trap = tuple[tuple[str, str], ...]


def conf(agentx: Path, tfile: Path) -> str:
    return f"""global_defs {{
  router_id snmplab
  vrrp_garp_master_delay 0
  enable_snmp_vrrp
  enable_traps
  enable_snmp_rfcv2
  snmp_socket unix:{agentx}
  script_user root
}}
vrrp_track_file tf {{
  file {tfile}
  weight 0
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 150
  advert_int 1
  virtual_ipaddress {{
    10.79.1.100/24
  }}
}}
vrrp_instance VI_2 {{
  interface eth0
  virtual_router_id 52
  priority 100
  advert_int 1
  track_file {{
    tf
  }}
  virtual_ipaddress {{
    10.79.1.101/24
  }}
}}
"""


@pytest.fixture
def lab() -> Iterator[tuple[Registry, Path]]:
    require_root()
    for tool in ("snmpd", "snmptrapd"):
        require_tool(tool)
    tmp = Path(tempfile.mkdtemp(prefix="hafast-snmptrap-"))
    reg = Registry()
    try:
        reg.add_netns(NS)
        reg.add_netns(PEER)
        reg.add_veth(NS, "eth0", PEER, "p0")
        reg.add_address(NS, "eth0", "10.79.1.1/24")
        env = dict(os.environ, SNMP_PERSISTENT_DIR=str(tmp / "persist"), MIBS="")
        (tmp / "snmptrapd.conf").write_text("disableAuthorization yes\n")
        with (tmp / "traps.log").open("wb") as out:
            # one line per trap: "TRAP oid = TYPE: value|oid = TYPE: value|..."
            reg.spawn(NS, ["snmptrapd", "-f", "-Lo", "-C", "-c", str(tmp / "snmptrapd.conf"),
                           "-On", "-F", "TRAP %V|%v\n", "-p", str(tmp / "snmptrapd.pid"),
                           TRAPD], stdout=out, stderr=subprocess.DEVNULL, env=env)
        (tmp / "snmpd.conf").write_text(
            f"agentXSocket unix:{tmp}/agentx\nagentXPerms 0700 0700\n"
            f"rocommunity public 127.0.0.1\ntrap2sink {TRAPD.removeprefix('udp:')} public\n")
        with (tmp / "snmpd.log").open("wb") as log:
            reg.spawn(NS, ["snmpd", "-f", "-Lo", "-C", "-c", str(tmp / "snmpd.conf"),
                           "--master=agentx", "-p", str(tmp / "snmpd.pid"),
                           "udp:127.0.0.1:161"], stdout=log, stderr=subprocess.STDOUT,
                      env=env)
        deadline = time.monotonic() + 10
        # snmpd's coldStart trap says both daemons are up
        while not (tmp / "agentx").exists() or "TRAP" not in (tmp / "traps.log").read_text():
            assert time.monotonic() < deadline, (tmp / "snmpd.log").read_text()
            time.sleep(0.05)
        yield reg, tmp
    finally:
        reg.close()
        shutil.rmtree(tmp, ignore_errors=True)


def traps_of(log: Path, since: int, trap_oid: tuple[int, ...]) -> list[Trap]:
    """The ``trap_oid`` traps after byte ``since`` of the log; each trap's varbinds as
    (oid, "TYPE: value"), sysUpTime dropped."""
    out: list[Trap] = []
    text = log.read_bytes()[since:].decode(errors="replace")
    for line in text.splitlines():
        if not line.startswith("TRAP "):
            continue
        vbs = []
        for part in line[5:].split("|"):
            name, sep, value = part.partition(" = ")
            if sep and name.strip() != dotted(SYS_UPTIME):
                vbs.append((name.strip(), value.strip()))
        if dict(vbs).get(dotted(SNMP_TRAP_OID)) == f"OID: {dotted(trap_oid)}":
            out.append(tuple(vbs))
    return out


def state_traps(log: Path, since: int) -> dict[str, list[Trap]]:
    """vrrpInstanceStateChange traps after byte ``since`` of the log, by instance name."""
    out: dict[str, list[Trap]] = {}
    for vbs in traps_of(log, since, VRRP_INSTANCE_STATE_CHANGE):
        iname = next(v for k, v in vbs if k.endswith(".3.1.2"))
        out.setdefault(iname.split(": ", 1)[1].strip('"'), []).append(tuple(vbs))
    return out


def states(traps: dict[str, list[Trap]], name: str) -> list[str]:
    return [dict(t).get(next(k for k, _ in t if k.endswith(".3.1.4")), "")
            for t in traps.get(name, [])]


def wait_for(what: str, ok: Callable[[], bool], log: Callable[[], str]) -> None:
    deadline = time.monotonic() + 30
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}\n{log()[-3000:]}")
        time.sleep(0.3)


def run_scenario(tmp: Path, tfile: Path, since: int,
                 log: Callable[[], str]) -> tuple[dict[str, list[Trap]], list[Trap]]:
    """From the daemon's start (the trap log was ``since`` bytes long): VI_1 to MASTER,
    VI_2 in FAULT; then clear the track_file and wait for VI_2 to become MASTER.
    The state change traps caught meanwhile, and the vrrpTrapNewMaster ones."""
    traps = tmp / "traps.log"
    wait_for("VI_1 MASTER and VI_2 FAULT traps",
             lambda: states(state_traps(traps, since), "VI_1")[-1:] == ["INTEGER: 2"]
             and states(state_traps(traps, since), "VI_2")[-1:] == ["INTEGER: 3"], log)
    tfile.write_text("0\n")
    wait_for("VI_2 MASTER trap",
             lambda: states(state_traps(traps, since), "VI_2")[-1:] == ["INTEGER: 2"], log)
    time.sleep(1.5)  # anything late would show up as a difference
    return state_traps(traps, since), traps_of(traps, since, VRRP_TRAP_NEW_MASTER)


def test_vrrp_state_change_traps_match_keepalived(lab: tuple[Registry, Path]) -> None:
    reg, tmp = lab
    tfile = tmp / "tf"
    tfile.write_text("1\n")
    text = conf(tmp / "agentx", tfile)

    since = (tmp / "traps.log").stat().st_size
    hafast = start_daemon(tmp / "hafast", text, ns=NS)
    try:
        h_traps, h_rfc = run_scenario(tmp, tfile, since, hafast.log_text)
    finally:
        assert hafast.stop() == 0, hafast.log_text()[-3000:]

    require_tool(KEEPALIVED)
    tfile.write_text("1\n")
    kdir = tmp / "keepalived"
    kdir.mkdir()
    (kdir / "k.conf").write_text(text)
    klog = kdir / "k.log"
    since = (tmp / "traps.log").stat().st_size
    with klog.open("wb") as out:
        keep = reg.spawn(NS, [KEEPALIVED, "-n", "-l", "-D", "-P", "-f", str(kdir / "k.conf"),
                              "-p", str(kdir / "k.pid"), "-r", str(kdir / "kv.pid"),
                              "-c", str(kdir / "kc.pid")], stdout=out, stderr=subprocess.STDOUT)
    try:
        k_traps, k_rfc = run_scenario(tmp, tfile, since, lambda: klog.read_text(errors="replace"))
    finally:
        keep.terminate()
        keep.wait(20)

    print("hafast", h_traps)
    print("keepalived", k_traps)
    assert states(k_traps, "VI_1") == ["INTEGER: 1", "INTEGER: 2"]
    assert states(k_traps, "VI_2") == ["INTEGER: 3", "INTEGER: 1", "INTEGER: 2"]
    assert h_traps == k_traps
    print("hafast", h_rfc)
    print("keepalived", k_rfc)
    # vrrpOperMasterIpAddr.<ifindex>.<vrid> = the address on eth0, VI_1 then VI_2
    assert len(k_rfc) == 2
    assert h_rfc == k_rfc
