"""KEEPALIVED-MIB, VRRP-MIB (RFC 2787) and VRRPV3-MIB (RFC 6527) over AgentX (issue 15),
side by side with Debian's keepalived 2.2.7.

One namespace runs net-snmp's ``snmpd --master=agentx`` with its own config (the
AgentX socket in a temp dir, ``rocommunity public`` on localhost, its persistent
files in the temp dir too).  hafast (the full daemon: the subagent lives in the
parent) and then keepalived run the same config with ``enable_snmp_vrrp``,
``enable_snmp_rfcv2``, ``enable_snmp_rfcv3`` and ``snmp_socket unix:PATH``; once the
five instances (VRRPv2: one preempting, one with ``nopreempt`` and ``advert_int 2``,
an address owner without ``state``; VRRPv3: IPv4 with two addresses, IPv6) are
MASTER, each MIB is walked once per daemon (the module's fixture), and:

* KEEPALIVED-MIB: the global group and vrrpInstanceTable give the same OIDs, types
  and values for everything hafast serves (``version`` says which daemon it is, so
  only its type is compared); hafast's walk is also fetched with GetBulk;
* VRRP-MIB and VRRPV3-MIB: the same OIDs with the same types and values, counters
  and TimeTicks by type only.  keepalived 2.2.7 lists only the first row of
  vrrpOperTable and vrrpRouterStatsTable (an operator precedence slip, fixed
  upstream since): hafast's other rows there are the only ones keepalived may lack.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.lab.netns import Registry, run_in
from hafast.status.snmp_mib import GLOBAL, INSTANCE_COLUMNS, VRRP_INSTANCE_ENTRY
from hafast.status.snmp_rfc import (
    VRRP_MIB,
    VRRP_OPER_ENTRY,
    VRRP_ROUTER_STATS_ENTRY,
    VRRPV3_MIB,
)
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import start_daemon
from tests.netns.snmp_fixtures import parse_walk, spawn_keepalived, start_snmpd
from tests.netns.vrrp_fixtures import KEEPALIVED

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

NS = f"snmp{os.getpid() % 100000}"
PEER = f"snmpp{os.getpid() % 100000}"
TABLE = ".".join(map(str, VRRP_INSTANCE_ENTRY[:-1]))
KEEPALIVED_MIB = ".".join(map(str, GLOBAL[:-1]))
RFC2787 = ".".join(map(str, VRRP_MIB))
RFC6527 = ".".join(map(str, VRRPV3_MIB))
INSTANCES = 5
# values that count or time: compared by type only
VOLATILE = ("Counter32", "Counter64", "Timeticks")

Walk = dict[str, tuple[str, str]]


def conf(agentx: Path) -> str:
    return f"""global_defs {{
  router_id snmplab
  vrrp_garp_master_delay 0
  enable_snmp_vrrp
  enable_snmp_rfcv2
  enable_snmp_rfcv3
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
vrrp_instance VI_4 {{
  state BACKUP
  interface eth0
  version 3
  virtual_router_id 54
  priority 120
  advert_int 0.5
  virtual_ipaddress {{
    10.79.0.111/24
    10.79.0.110/24
  }}
}}
vrrp_instance VI_5 {{
  state BACKUP
  interface eth0
  version 3
  virtual_router_id 55
  priority 110
  advert_int 1
  virtual_ipaddress {{
    fd00:79::100/64
  }}
}}
"""


@pytest.fixture(scope="module")
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
        start_snmpd(reg, NS, tmp)
        deadline = time.monotonic() + 10
        # VI_5 (IPv6) needs eth0's link-local address, which is tentative until DAD ends
        while "scope link" not in run_in(NS, ["ip", "-6", "addr", "show", "dev", "eth0",
                                              "-tentative"], check=False).stdout:
            assert time.monotonic() < deadline + 10, "no IPv6 link-local address on eth0"
            time.sleep(0.1)
        yield reg, tmp
    finally:
        reg.close()
        shutil.rmtree(tmp, ignore_errors=True)


def walk(oid: str, tool: str = "snmpwalk") -> dict[str, tuple[str, str]]:
    """``{oid: (type, value)}``; enumerations as numbers (-Oe), OIDs numeric (-On)."""
    out = run_in(NS, [tool, "-v2c", "-c", "public", "-On", "-Oe", "-t", "3", "127.0.0.1",
                      oid], check=False).stdout
    return parse_walk(out)


def both_master() -> dict[str, tuple[str, str]] | None:
    rows = walk(TABLE)
    states = [v for k, v in rows.items() if k.startswith(f"{TABLE}.1.4.")]
    return rows if len(states) == INSTANCES and all(
        v == ("INTEGER", "2") for v in states) else None


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


@pytest.fixture(scope="module")
def walks(lab: tuple[Registry, Path]) -> dict[str, dict[str, Walk]]:
    """Every walk, per daemon: ``{"hafast": {what: rows}, "keepalived": {...}}``."""
    reg, tmp = lab
    text = conf(tmp / "agentx")
    out: dict[str, dict[str, Walk]] = {}

    def each(rows: Walk) -> dict[str, Walk]:
        return {"table": rows, "global": walk(".".join(map(str, GLOBAL))),
                "rfc2787": walk(RFC2787), "rfc6527": walk(RFC6527)}

    hafast = start_daemon(tmp / "hafast", text, ns=NS)
    try:
        out["hafast"] = each(wait_walk(hafast.log))
        out["hafast"]["bulk"] = walk(KEEPALIVED_MIB, "snmpbulkwalk")
        out["hafast"]["bulk6527"] = walk(RFC6527, "snmpbulkwalk")
    finally:
        assert hafast.stop() == 0, hafast.log_text()[-3000:]

    require_tool(KEEPALIVED)
    keep, klog = spawn_keepalived(reg, NS, text, tmp / "keepalived")
    try:
        out["keepalived"] = each(wait_walk(klog))
    finally:
        keep.terminate()
        keep.wait(20)
    for what in ("rfc2787", "rfc6527"):
        print(what, "OIDs: hafast", len(out["hafast"][what]),
              "keepalived", len(out["keepalived"][what]))
    return out


def test_vrrp_instance_table_matches_keepalived(walks: dict[str, dict[str, Walk]]) -> None:
    h, k = walks["hafast"], walks["keepalived"]
    version = ".".join(map(str, (*GLOBAL, 1, 0)))
    rid = ".".join(map(str, (*GLOBAL, 2, 0)))
    assert h["global"][version][0] == k["global"][version][0] == "STRING"
    assert h["global"][version][1].startswith('"hafast v'), h["global"]
    assert h["global"][rid] == k["global"][rid] == ("STRING", '"snmplab"')
    assert served(h["table"]) == served(k["table"])
    assert len(served(h["table"])) == INSTANCES * len(INSTANCE_COLUMNS)
    assert {key: v for key, v in h["bulk"].items() if key.startswith(TABLE)} == h["table"]


def comparable(rows: Walk) -> Walk:
    return {key: (kind, "" if kind in VOLATILE else value) for key, (kind, value) in rows.items()}


def row_of(oid: str, entries: tuple[str, ...]) -> tuple[str, tuple[int, ...]] | None:
    """(column, index) of a row of one of ``entries``' tables, else None."""
    for entry in entries:
        if oid.startswith(entry + "."):
            col, _, index = oid[len(entry) + 1:].partition(".")
            return f"{entry}.{col}", tuple(map(int, index.split(".")))
    return None


def test_vrrp_mib_rfc2787_matches_keepalived(walks: dict[str, dict[str, Walk]]) -> None:
    h = comparable(walks["hafast"]["rfc2787"])
    k = comparable(walks["keepalived"]["rfc2787"])
    assert k, "keepalived served no VRRP-MIB"
    assert {key: h.get(key) for key in k} == k
    # the three VRRPv2 IPv4 instances only (VI_4 and VI_5 are VRRPv3)
    oper = ".".join(map(str, VRRP_OPER_ENTRY))
    assert sorted(key.rsplit(".", 1)[1] for key in h if key.startswith(f"{oper}.3.")) == [
        "51", "52", "53"]
    # keepalived's walk stops after a table's first row; nothing else may be missing
    tables = tuple(".".join(map(str, e)) for e in (VRRP_OPER_ENTRY, VRRP_ROUTER_STATS_ENTRY))
    firsts = {row[0]: row[1] for key in k if (row := row_of(key, tables)) is not None}
    for key in h.keys() - k.keys():
        row = row_of(key, tables)
        assert row is not None and row[0] in firsts and row[1] > firsts[row[0]], key


def test_vrrpv3_mib_rfc6527_matches_keepalived(walks: dict[str, dict[str, Walk]]) -> None:
    h = comparable(walks["hafast"]["rfc6527"])
    k = comparable(walks["keepalived"]["rfc6527"])
    assert k, "keepalived served no VRRPV3-MIB"
    assert h == k
    assert comparable(walks["hafast"]["bulk6527"]) == h
