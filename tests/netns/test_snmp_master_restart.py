"""An AgentX master (net-snmp's snmpd) that goes away and comes back (issue 15, bad
input): the daemon keeps running, its VIP stays where it is, the subagent says once
that the master went and once that it cannot reach it (not once per retry), and the
MIB is served again once snmpd is back, without a restart of hafast.

One namespace, one VRRP instance (MASTER alone on its link), ``enable_snmp_vrrp``
with ``snmp_socket unix:PATH``; snmpd is killed (SIGKILL: no AgentX Close), stays
away for more than two of the subagent's retry intervals, and is started again on
the same socket path.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.lab.netns import Registry, run_in
from hafast.status.snmp import RETRY_S
from hafast.status.snmp_mib import VRRP_INSTANCE_ENTRY
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import start_daemon
from tests.netns.snmp_fixtures import start_snmpd

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

NS = f"snmpr{os.getpid() % 100000}"
PEER = f"snmprp{os.getpid() % 100000}"
STATE = ".".join(map(str, VRRP_INSTANCE_ENTRY[:-1])) + ".1.4.1"  # vrrpInstanceState.1
VIP = "10.78.0.100"


def conf(agentx: Path) -> str:
    return f"""global_defs {{
  router_id snmprestart
  vrrp_garp_master_delay 0
  enable_snmp_vrrp
  snmp_socket unix:{agentx}
}}
vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 61
  priority 150
  advert_int 1
  virtual_ipaddress {{
    {VIP}/24
  }}
}}
"""


class Snmpd:
    """snmpd in the namespace (tests/netns/snmp_fixtures.py); start() again after
    kill() comes back on the same socket path."""

    def __init__(self, reg: Registry, tmp: Path) -> None:
        self.reg, self.tmp = reg, tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_snmpd(self.reg, NS, self.tmp)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)  # ours, by PID
        self.proc.wait(10)
        # a killed snmpd leaves its socket file behind; the next one replaces it
        (self.tmp / "agentx").unlink(missing_ok=True)


@pytest.fixture
def lab() -> Iterator[tuple[Registry, Path]]:
    require_root()
    for tool in ("snmpd", "snmpget"):
        require_tool(tool)
    tmp = Path(tempfile.mkdtemp(prefix="hafast-snmpr-"))
    reg = Registry()
    try:
        reg.add_netns(NS)
        reg.add_netns(PEER)
        reg.add_veth(NS, "eth0", PEER, "p0")
        reg.add_address(NS, "eth0", "10.78.0.1/24")
        yield reg, tmp
    finally:
        reg.close()
        shutil.rmtree(tmp, ignore_errors=True)


def state() -> str | None:
    """vrrpInstanceState of instance 1 as snmpd answers it (None: no answer)."""
    out = run_in(NS, ["snmpget", "-v2c", "-c", "public", "-On", "-Oe", "-Ov", "-t", "1",
                      "-r", "0", "127.0.0.1", STATE], check=False).stdout.strip()
    return out.partition(": ")[2] or None


def wait_state(want: str, timeout: float, why: str) -> float:
    t0 = time.monotonic()
    while (got := state()) != want:
        assert time.monotonic() - t0 < timeout, f"{why}: vrrpInstanceState {got!r}"
        time.sleep(0.25)
    return time.monotonic() - t0


def holds_vip() -> bool:
    return f"{VIP}/24" in run_in(NS, ["ip", "-4", "addr", "show", "dev", "eth0"]).stdout


def test_the_subagent_comes_back_with_the_master_and_nothing_else_moves(
        lab: tuple[Registry, Path]) -> None:
    reg, tmp = lab
    snmpd = Snmpd(reg, tmp)
    snmpd.start()
    daemon = start_daemon(tmp / "hafast", conf(tmp / "agentx"), ns=NS)
    try:
        wait_state("2", 30, "MASTER served")  # master(2)
        assert holds_vip()
        pids = {w: daemon.worker_pid(w) for w in ("vrrp",)}

        snmpd.kill()
        away = 2 * RETRY_S + 1  # at least two failed retries while it is gone
        deadline = time.monotonic() + away
        while time.monotonic() < deadline:
            assert daemon.proc.poll() is None, daemon.log_text()[-3000:]
            assert holds_vip(), "the VIP left while snmpd was away"
            time.sleep(0.5)
        assert state() is None  # nobody answers on 161: the test did take snmpd away

        snmpd.start()
        took = wait_state("2", RETRY_S + 10, "served again after snmpd came back")
        print(f"served again {took:.1f} s after snmpd's restart (retry every {RETRY_S} s)")
        assert holds_vip()
        assert daemon.proc.poll() is None
        assert {w: daemon.worker_pid(w) for w in ("vrrp",)} == pids, "a worker restarted"
        text = daemon.log_text()
        assert text.count("closed the session; retrying") == 1, text[-3000:]
        # the outage is said once, however many retries failed meanwhile
        assert text.count("retrying every") == 1, text[-3000:]
    finally:
        assert daemon.stop() == 0, daemon.log_text()[-3000:]
