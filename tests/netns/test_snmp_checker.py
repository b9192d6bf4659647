"""KEEPALIVED-MIB's checker part over AgentX (issue 15, ``enable_snmp_checker``): the
whole daemon (``--pool-backend memory``, no IPVS on the host kernel) under a real
``snmpd --master=agentx``.

Two virtual servers with two TCP_CHECKed real servers each, one listening in a peer
namespace and one refusing, and a third on a virtual_server_group, some of them with an
``snmp_name``.  snmpwalk and snmpbulkwalk of the virtualServerGroup, its member,
virtualServer and realServer tables must show keepalived's columns (checked against
keepalived 2.2.7 itself in tests/ipvs/test_snmp_checker.py, which needs IPVS): every value the pure
builder (hafast.status.snmp_check) makes from the daemon's own status, with the types
net-snmp reads off the wire.  Then the listener goes away and snmptrapd must catch
realServerStateChange (the real server dead) and virtualServerQuorumStateChange.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.config.loader import load_text
from hafast.lab.netns import Registry, run_in, socket_in
from hafast.status import agentx as ax
from hafast.status.snmp_check import (
    CHECK,
    RS_STATE_CHANGE,
    VS_QUORUM_STATE_CHANGE,
    check_rows,
)
from hafast.status.snmp_mib import SNMP_TRAP_OID
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import start_daemon
from tests.netns.snmp_fixtures import parse_walk, start_traps

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

NS = f"snmpc{os.getpid() % 100000}"
PEER = f"snmpcp{os.getpid() % 100000}"
TRAPD = "udp:127.0.0.1:16263"
DOTTED_CHECK = ".".join(map(str, CHECK))
UP, DOWN = "10.79.5.2", "10.79.5.3"  # UP listens on 8080 and 8081, DOWN refuses


def conf(agentx: Path) -> str:
    def vs(vip: str, port: int, quorum: int, name: str = "", head: str = "") -> str:
        rss = "".join(f"""  real_server {ip} {port} {{
    weight 2
{f"    snmp_name {name}-{ip}{chr(10)}" if name else ""}    TCP_CHECK {{
      connect_timeout 1
    }}
  }}
""" for ip in (UP, DOWN))
        return f"""virtual_server {head or f"{vip} {port}"} {{
{f"  snmp_name {name}{chr(10)}" if name else ""}  delay_loop 1
  lb_algo rr
  lb_kind NAT
  protocol TCP
  quorum {quorum}
{rss}}}
"""
    return f"""global_defs {{
  router_id snmpcheck
  enable_snmp_checker
  enable_traps
  snmp_socket unix:{agentx}
}}
virtual_server_group grp {{
  10.79.5.102 8080
  10.79.5.110-111 8080
}}
{vs("10.79.5.100", 8080, 2, "web")}{vs("10.79.5.101", 8081, 4)}\
{vs("", 8080, 1, head="group grp")}"""


def walk(oid: str, tool: str = "snmpwalk") -> dict[str, tuple[str, str]]:
    """``{oid: (type, value)}``, numeric OIDs and enumerations."""
    out = run_in(NS, [tool, "-v2c", "-c", "public", "-On", "-Oe", "-t", "3", "127.0.0.1",
                      oid], check=False).stdout
    return parse_walk(out)


# how net-snmp's snmpwalk names each AgentX type
NET_SNMP_TYPE = {ax.INTEGER: "INTEGER", ax.GAUGE32: "Gauge32", ax.COUNTER32: "Counter32",
                 ax.COUNTER64: "Counter64"}


def expected(vb: ax.VarBind) -> tuple[str, str]:
    if vb.type == ax.OCTET_STRING:
        assert isinstance(vb.value, bytes)
        # net-snmp's sprint_octet_string: hex once a byte is neither printable nor space
        if any(not (32 <= b < 127 or b in b"\t\n\v\f\r") for b in vb.value):
            return "Hex-STRING", " ".join(f"{b:02X}" for b in vb.value) + " "
        return "STRING", f'"{vb.value.decode()}"'
    return NET_SNMP_TYPE[vb.type], str(vb.value)


@pytest.fixture
def lab() -> Iterator[tuple[Registry, Path]]:
    require_root()
    for tool in ("snmpd", "snmptrapd", "snmpwalk", "snmpbulkwalk"):
        require_tool(tool)
    tmp = Path(tempfile.mkdtemp(prefix="hafast-snmpcheck-"))
    reg = Registry()
    try:
        reg.add_netns(NS)
        reg.add_netns(PEER)
        reg.add_veth(NS, "eth0", PEER, "p0")
        reg.add_address(NS, "eth0", "10.79.5.1/24")
        reg.add_address(PEER, "p0", f"{UP}/24")
        reg.add_address(PEER, "p0", f"{DOWN}/24")
        start_traps(reg, NS, tmp, TRAPD, ("-Oe",))
        yield reg, tmp
    finally:
        reg.close()
        if os.environ.get("KEEP_TMP") is None:
            shutil.rmtree(tmp, ignore_errors=True)


def listeners() -> list[socket.socket]:
    out = []
    for port in (8080, 8081):
        s = socket_in(PEER)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((UP, port))
        s.listen(64)
        out.append(s)
    return out


def traps(tmp: Path, trap_oid: tuple[int, ...]) -> list[dict[str, str]]:
    out = []
    for line in (tmp / "traps.log").read_text(errors="replace").splitlines():
        if not line.startswith("TRAP "):
            continue
        vbs = {}
        for part in line[5:].split("|"):
            name, sep, value = part.partition(" = ")
            if sep:
                vbs[name.strip().lstrip(".")] = value.strip()
        if vbs.get(".".join(map(str, SNMP_TRAP_OID))) == "OID: ." + ".".join(map(str, trap_oid)):
            out.append(vbs)
    return out


def test_checker_tables_and_traps(lab: tuple[Registry, Path]) -> None:
    _reg, tmp = lab
    text = conf(tmp / "agentx")
    cfg = load_text(text).config
    socks = listeners()
    daemon = start_daemon(tmp / "hafast", text, ns=NS, extra=["--pool-backend", "memory"])
    try:
        status = f"{DOTTED_CHECK}.4.1.6"
        want = {f"{status}.1.1": ("INTEGER", "1"), f"{status}.1.2": ("INTEGER", "2"),
                f"{status}.2.1": ("INTEGER", "1"), f"{status}.2.2": ("INTEGER", "2"),
                f"{status}.3.1": ("INTEGER", "1"), f"{status}.3.2": ("INTEGER", "2")}
        deadline = time.monotonic() + 40
        while {k: v for k, v in walk(status).items()} != want:
            assert time.monotonic() < deadline, (walk(status), daemon.log_text()[-3000:])
            time.sleep(0.5)
        pools = daemon.status()["pools"]
        rows = walk(DOTTED_CHECK)
        expect = {".".join(map(str, vb.name)): expected(vb) for vb in check_rows(cfg, pools)}
        assert rows == expect
        bulk = walk(DOTTED_CHECK, "snmpbulkwalk")
        assert bulk == expect
        # a few of keepalived's values spelled out
        assert rows[f"{DOTTED_CHECK}.6.1.0"] == ("INTEGER", "2")  # no lvs_sync_daemon
        vs, rs = f"{DOTTED_CHECK}.3.1", f"{DOTTED_CHECK}.4.1"
        assert rows[f"{vs}.6.1"] == ("Hex-STRING", "0A 4F 05 64 ")
        assert rows[f"{vs}.7.2"] == ("Gauge32", "8081")
        assert rows[f"{vs}.20.1"] == ("Gauge32", "2") and rows[f"{vs}.21.1"] == ("Gauge32", "1")
        assert rows[f"{vs}.23.1"] == ("INTEGER", "1")  # quorum 2 met by weight 2
        assert rows[f"{vs}.23.2"] == ("INTEGER", "2")  # quorum 4 not met
        assert rows[f"{rs}.7.1.1"] == ("INTEGER", "2")
        assert rows[f"{rs}.13.1.2"] == ("Gauge32", "1")
        assert rows[f"{vs}.30.1"] == ("Counter64", "0")
        assert rows[f"{vs}.71.1"] == ("STRING", '"web"') and f"{vs}.71.2" not in rows
        assert rows[f"{rs}.55.1.1"] == ("STRING", f'"web-{UP}"')
        assert rows[f"{vs}.2.3"] == ("INTEGER", "3") and rows[f"{vs}.3.3"] == ("STRING", '"grp"')
        group, member = f"{DOTTED_CHECK}.1.1", f"{DOTTED_CHECK}.2.1"
        assert rows[f"{group}.2.1"] == ("STRING", '"grp"')
        assert rows[f"{member}.2.1.1"] == ("INTEGER", "2")  # ip(2)
        assert rows[f"{member}.5.1.1"] == ("Hex-STRING", "0A 4F 05 66 ")
        assert rows[f"{member}.2.1.2"] == ("INTEGER", "3")  # ipRange(3)
        assert rows[f"{member}.7.1.2"] == ("Hex-STRING", "0A 4F 05 6F ")
        assert rows[f"{member}.8.1.2"] == ("Gauge32", "8080")

        # the first virtual server's live real server goes down
        for s in socks:
            s.close()
        deadline = time.monotonic() + 30
        while not any(t.get(f"{rs}.6") == "INTEGER: 2" and t.get(f"{rs}.4") ==
                      "Hex-STRING: 0A 4F 05 02" and t.get(f"{vs}.7") == "Gauge32: 8080"
                      for t in traps(tmp, RS_STATE_CHANGE)):
            assert time.monotonic() < deadline, ((tmp / "traps.log").read_text()[-3000:],
                                                 daemon.log_text()[-3000:])
            time.sleep(0.3)
        got = next(t for t in traps(tmp, RS_STATE_CHANGE)
                   if t.get(f"{rs}.4") == "Hex-STRING: 0A 4F 05 02"
                   and t.get(f"{vs}.7") == "Gauge32: 8080")
        assert got[f"{rs}.5"] == "Gauge32: 8080"
        assert got[f"{vs}.21"] == "Gauge32: 0" and got[f"{vs}.20"] == "Gauge32: 2"
        assert got["1.3.6.1.4.1.9586.100.5.1.2.0"] == 'STRING: "snmpcheck"'
        # ... and takes its virtual server's quorum down with it
        deadline = time.monotonic() + 10
        while not any(t.get(f"{vs}.23") == "INTEGER: 2" and t.get(f"{vs}.7") == "Gauge32: 8080"
                      for t in traps(tmp, VS_QUORUM_STATE_CHANGE)):
            assert time.monotonic() < deadline, (tmp / "traps.log").read_text()[-3000:]
            time.sleep(0.3)
        assert walk(f"{vs}.23.1") == {f"{vs}.23.1": ("INTEGER", "2")}
    finally:
        for s in socks:
            s.close()
        assert daemon.stop() == 0, daemon.log_text()[-3000:]
