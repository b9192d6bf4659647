"""KEEPALIVED-MIB over AgentX (issue 15), side by side with Debian's keepalived 2.2.7.

One namespace runs net-snmp's ``snmpd --master=agentx`` with its own config (the
AgentX socket in a temp dir, ``rocommunity public`` on localhost, its persistent
files in the temp dir too).  hafast (the full daemon: the subagent lives in the
parent) and then keepalived run the same config with ``enable_snmp_vrrp`` and
``snmp_socket unix:PATH``; once the three instances (one preempting, one with
``nopreempt`` and ``advert_int 2``, an address owner without ``state``) are MASTER,
``snmpwalk`` of the global group and of vrrpInstanceTable must give the same OIDs,
types and values for everything hafast serves (``version`` says which daemon it is,
so only its type is compared).  hafast's walk is also fetched with GetBulk
(``snmpbulkwalk``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.lab.netns import Registry, run_in
from hafast.status.snmp_mib import GLOBAL, INSTANCE_COLUMNS, VRRP_INSTANCE_ENTRY
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import start_daemon
from tests.netns.vrrp_fixtures import KEEPALIVED

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

NS = f"snmp{os.getpid() % 100000}"
PEER = f"snmpp{os.getpid() % 100000}"
TABLE = ".".join(map(str, VRRP_INSTANCE_ENTRY[:-1]))
KEEPALIVED_MIB = ".".join(map(str, GLOBAL[:-1]))


def conf(agentx: Path) -> str:
    return f"""global_defs {{
  router_id snmplab
  vrrp_garp_master_delay 0
  enable_snmp_vrrp
  snmp_socket unix:{agentx}
  script_user root
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 150
  advert_int 1
  virtual_ipaddress {{
    10.79.0.100/24
  }}
}}
vrrp_instance VI_2 {{
  state BACKUP
  interface eth0
  virtual_router_id 52
  priority 100
  advert_int 2
  nopreempt
  virtual_ipaddress {{
    10.79.0.101/24
  }}
}}
vrrp_instance VI_3 {{
  interface eth0
  virtual_router_id 53
  priority 255
  virtual_ipaddress {{
    10.79.0.102/24
  }}
}}
"""


@pytest.fixture
def lab() -> Iterator[tuple[Registry, Path]]:
    require_root()
    for tool in ("snmpd", "snmpwalk", "snmpbulkwalk"):
        require_tool(tool)
    tmp = Path(tempfile.mkdtemp(prefix="hafast-snmp-"))
    reg = Registry()
    try:
        reg.add_netns(NS)
        reg.add_netns(PEER)
        reg.add_veth(NS, "eth0", PEER, "p0")
        reg.add_address(NS, "eth0", "10.79.0.1/24")
        (tmp / "snmpd.conf").write_text(
            f"agentXSocket unix:{tmp}/agentx\nagentXPerms 0700 0700\n"
            "rocommunity public 127.0.0.1\n")
        log = (tmp / "snmpd.log").open("wb")
        # SNMP_PERSISTENT_DIR: snmpd would otherwise save its state in /var/lib/snmp
        reg.spawn(NS, ["snmpd", "-f", "-Lo", "-C", "-c", str(tmp / "snmpd.conf"),
                       "--master=agentx", "-p", str(tmp / "snmpd.pid"), "udp:127.0.0.1:161"],
                  stdout=log, stderr=subprocess.STDOUT,
                  env=dict(os.environ, SNMP_PERSISTENT_DIR=str(tmp / "persist")))
        log.close()
        deadline = time.monotonic() + 10
        while not (tmp / "agentx").exists():
            assert time.monotonic() < deadline, (tmp / "snmpd.log").read_text()
            time.sleep(0.05)
        yield reg, tmp
    finally:
        reg.close()
        shutil.rmtree(tmp, ignore_errors=True)


def walk(oid: str, tool: str = "snmpwalk") -> dict[str, tuple[str, str]]:
    """``{oid: (type, value)}``; enumerations as numbers (-Oe), OIDs numeric (-On)."""
    out = run_in(NS, [tool, "-v2c", "-c", "public", "-On", "-Oe", "-t", "3", "127.0.0.1",
                      oid], check=False).stdout
    got: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        name, sep, rest = line.partition(" = ")
        if not sep or not name.startswith("."):
            continue
        kind, colon, value = rest.partition(": ")
        got[name[1:]] = (kind, value) if colon else ("STRING", rest)  # '""': empty
    return got


def both_master() -> dict[str, tuple[str, str]] | None:
    rows = walk(TABLE)
    states = [v for k, v in rows.items() if k.startswith(f"{TABLE}.1.4.")]
    return rows if len(states) == 3 and all(v == ("INTEGER", "2") for v in states) else None


def wait_walk(log: Path) -> dict[str, tuple[str, str]]:
    deadline = time.monotonic() + 30
    while (rows := both_master()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no MASTER rows in {walk(TABLE)}\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    return rows


def served(rows: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    cols = {f"{TABLE}.1.{c}." for c in INSTANCE_COLUMNS}
    return {k: v for k, v in rows.items() if k[:k.rindex(".") + 1] in cols}


def test_vrrp_instance_table_matches_keepalived(lab: tuple[Registry, Path]) -> None:
    reg, tmp = lab
    text = conf(tmp / "agentx")

    hafast = start_daemon(tmp / "hafast", text, ns=NS)
    try:
        h_rows = wait_walk(hafast.log)
        h_global = walk(".".join(map(str, GLOBAL)))
        h_bulk = walk(KEEPALIVED_MIB, "snmpbulkwalk")
    finally:
        assert hafast.stop() == 0, hafast.log_text()[-3000:]

    require_tool(KEEPALIVED)
    kdir = tmp / "keepalived"
    kdir.mkdir()
    (kdir / "k.conf").write_text(text)
    klog = kdir / "k.log"
    with klog.open("wb") as out:
        keep = reg.spawn(NS, [KEEPALIVED, "-n", "-l", "-D", "-P", "-f", str(kdir / "k.conf"),
                              "-p", str(kdir / "k.pid"), "-r", str(kdir / "kv.pid"),
                              "-c", str(kdir / "kc.pid")], stdout=out, stderr=subprocess.STDOUT)
    try:
        k_rows = wait_walk(klog)
        k_global = walk(".".join(map(str, GLOBAL)))
    finally:
        keep.terminate()
        keep.wait(20)

    version = ".".join(map(str, (*GLOBAL, 1, 0)))
    rid = ".".join(map(str, (*GLOBAL, 2, 0)))
    assert h_global[version][0] == k_global[version][0] == "STRING"
    assert h_global[version][1].startswith('"hafast v'), h_global
    assert h_global[rid] == k_global[rid] == ("STRING", '"snmplab"')
    print("hafast", served(h_rows))
    assert served(h_rows) == served(k_rows)
    assert len(served(h_rows)) == 3 * len(INSTANCE_COLUMNS)
    assert {k: v for k, v in h_bulk.items() if k.startswith(TABLE)} == h_rows
