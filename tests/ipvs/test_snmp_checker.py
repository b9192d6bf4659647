"""KEEPALIVED-MIB's checker tables over AgentX (issue 15, ``enable_snmp_checker``) side
by side with Debian's keepalived 2.2.7, run INSIDE the IPVS VM: keepalived's checker
process refuses to start without IPVS, which the host kernel lacks.

One ``snmpd --master=agentx`` on the guest's loopback serves both daemons in turn:
keepalived ``-C`` then hafast ``-C`` on the same config, two virtual servers with two
TCP_CHECKed real servers each (a Python listener on 127.0.0.2, nothing on 127.0.0.3),
the second with a sorry server.  Once the dead real servers are seen dead, a walk of
the checker subtree (virtualServerTable, realServerTable, lvsSyncDaemonEnabled) must
give the same OIDs, types and values; nothing is excluded (no traffic goes through
IPVS, so keepalived's counters are the zeros hafast serves).  The TCG guest runs Python
about 20x slower than the host: every wait is bounded, and every process started here
is ended by its PID.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require, require_root, require_tool
from tests.ipvs.side_by_side import KEEPALIVED, start, stop
from tests.netns.snmp_fixtures import parse_walk

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

pytestmark = [pytest.mark.ipvs, pytest.mark.timeout(300)]

LIVE, DEAD = "127.0.0.2", "127.0.0.3"
CHECK = "1.3.6.1.4.1.9586.100.5.3"
RS_TABLE = f"{CHECK}.4"
# realServerStatus per <vs>.<rs> once the checks have run (VS 2's 1 is its sorry server)
SETTLED = {f"{RS_TABLE}.1.6.1.1": ("INTEGER", "1"), f"{RS_TABLE}.1.6.1.2": ("INTEGER", "2"),
           f"{RS_TABLE}.1.6.2.2": ("INTEGER", "1"), f"{RS_TABLE}.1.6.2.3": ("INTEGER", "2")}


def config(agentx: Path) -> str:
    check = "    TCP_CHECK {\n      connect_timeout 1\n      retry 0\n      delay_loop 1\n    }\n"
    return f"""global_defs {{
  router_id lab-vm
  script_user root
  enable_snmp_checker
  snmp_socket unix:{agentx}
}}
virtual_server 10.9.9.1 80 {{
  protocol TCP
  lb_algo rr
  lb_kind NAT
  delay_loop 2
  real_server {LIVE} 8080 {{
    weight 3
{check}  }}
  real_server {DEAD} 8080 {{
    notify_down "/bin/true down"
{check}  }}
}}
virtual_server 10.9.9.2 8081 {{
  protocol TCP
  lb_algo wlc
  lb_kind NAT
  persistence_timeout 30
  quorum 2
  sorry_server 127.0.0.4 8080
  real_server {LIVE} 8080 {{
    uthreshold 100
    inhibit_on_failure
{check}  }}
  real_server {DEAD} 8080 {{
{check}  }}
}}
"""


def walk(oid: str) -> dict[str, tuple[str, str]]:
    """``{oid: (type, value)}``, numeric OIDs and enumerations."""
    out = subprocess.run(["snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Oe", "-t", "5",
                          "127.0.0.1", oid], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, MIBS="")).stdout
    return parse_walk(out)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Path]:
    require_root()
    require_tool(KEEPALIVED)
    for tool in ("snmpd", "snmpbulkwalk", "ipvsadm"):
        require_tool(tool)
    require(os.path.exists("/proc/net/ip_vs"), "needs IPVS")
    for addr in (LIVE, DEAD):
        subprocess.run(["ip", "addr", "add", f"{addr}/8", "dev", "lo"], capture_output=True)
    (tmp_path / "snmpd.conf").write_text(
        f"agentXSocket unix:{tmp_path}/agentx\nagentXPerms 0700 0700\n"
        "rocommunity public 127.0.0.1\n")
    with (tmp_path / "snmpd.log").open("wb") as log:
        snmpd = subprocess.Popen(
            ["snmpd", "-f", "-Lo", "-C", "-c", str(tmp_path / "snmpd.conf"),
             "--master=agentx", "-p", str(tmp_path / "snmpd.pid"), "udp:127.0.0.1:161"],
            stdout=log, stderr=subprocess.STDOUT,
            env=dict(os.environ, SNMP_PERSISTENT_DIR=str(tmp_path / "persist"), MIBS=""))
    listener = socket.socket()
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "agentx").exists():
            assert snmpd.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "snmpd.log").read_text()
            time.sleep(0.1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LIVE, 8080))
        listener.listen(64)
        yield tmp_path
    finally:
        listener.close()
        snmpd.terminate()
        try:
            snmpd.wait(10)
        except subprocess.TimeoutExpired:
            snmpd.kill()
            snmpd.wait(5)
        subprocess.run(["ipvsadm", "-C"], capture_output=True)


def tables(kind: str, d: Path, limit_s: float) -> tuple[dict[str, tuple[str, str]], float]:
    """``kind``'s two tables once its real servers settled, and how long that took."""
    conf = d / f"{kind}.conf"
    conf.write_text(config(d / "agentx"))
    t0 = time.monotonic()
    proc = start(kind, d, conf)
    try:
        deadline = t0 + limit_s
        while (got := walk(f"{RS_TABLE}.1.6")) != SETTLED:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"{kind}: {got}\n" + (d / f"{kind}.log").read_text(
                    errors="replace")[-3000:])
            time.sleep(0.5)
        settled = time.monotonic() - t0
        rows = walk(CHECK)
    finally:
        stop(proc)
        subprocess.run(["ipvsadm", "-C"], capture_output=True)
    return rows, settled


def test_checker_tables_match_keepalived(lab: Path) -> None:
    t0 = time.monotonic()
    ka, ka_s = tables("keepalived", lab, 30)
    ha, ha_s = tables("hafast", lab, 90)
    print(f"keepalived settled in {ka_s:.1f} s, hafast in {ha_s:.1f} s, "
          f"test {time.monotonic() - t0:.1f} s; {len(ka)} keepalived rows")
    only_ka = {k: v for k, v in ka.items() if k not in ha}
    only_ha = {k: v for k, v in ha.items() if k not in ka}
    differ = {k: (ka[k], ha[k]) for k in ka.keys() & ha.keys() if ka[k] != ha[k]}
    print(f"only keepalived: {only_ka}\nonly hafast: {only_ha}\ndiffer (ka, ha): {differ}")
    assert len(ka) > 300  # both tables, both virtual servers, the scalar
    assert (only_ka, only_ha, differ) == ({}, {}, {})
