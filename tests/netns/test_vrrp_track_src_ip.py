"""Issue 14: ``track_src_ip`` side by side with Debian's keepalived 2.2.7.

keepalived documents "if the configured src_ip doesn't exist or is removed put the
instance into fault state", but 2.2.7 never does: its netlink handler compares the
removed address with the first bytes of the instance's sockaddr (its family and
port, keepalived_netlink.c ``inaddr_equal(family, &vrrp->saddr, addr)``), so the
test that would down the instance is never true.  hafast accepts the keyword with
a warning and does the same: with ``mcast_src_ip`` removed from the interface and
put back, both stay MASTER and keep advertising from that address.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.test_vrrp_startup_delay import FifoLines
from tests.netns.vrrp_fixtures import KEEPALIVED, SUBNET4, VrrpLab, conf

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

PREFIX = f"ts{os.getpid() % 100000}"
SRC = f"{SUBNET4}.50"


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool("tcpdump")
    with VrrpLab(PREFIX) as built:
        yield built


def adverts_from(lab: VrrpLab, seconds: float) -> list[str]:
    out = run_in(lab.ns("r2"), ["timeout", str(seconds), "tcpdump", "-n", "-l", "-i", "eth0",
                                "ip proto 112"], check=False).stdout
    return [ln for ln in out.splitlines() if f"IP {SRC} > 224.0.0.18: VRRPv2" in ln]


@pytest.mark.parametrize("kind", ["hafast", "keepalived"])
def test_a_removed_source_address_changes_nothing(lab: VrrpLab, kind: str) -> None:
    if kind == "keepalived":
        require_tool(KEEPALIVED)
    ns = lab.ns("r1")
    run_in(ns, ["ip", "addr", "add", f"{SRC}/24", "dev", "eth0"])
    fifo = FifoLines(lab.tmp / f"notify-{kind}.fifo")
    try:
        text = conf(kind, priority=100, extra_global=f"  vrrp_notify_fifo {fifo.path}")
        extra = f"  mcast_src_ip {SRC}\n  track_src_ip\n"
        lab.start("r1", kind, text.replace("  virtual_ipaddress {",
                                           f"{extra}  virtual_ipaddress {{"))
        lab.wait_holder("r1", 8.0)
        run_in(ns, ["ip", "addr", "del", f"{SRC}/24", "dev", "eth0"])
        assert len(adverts_from(lab, 3.0)) >= 2  # still MASTER, still from SRC
        run_in(ns, ["ip", "addr", "add", f"{SRC}/24", "dev", "eth0"])
        time.sleep(1.0)
        assert lab.holders() == ["r1"]
    finally:
        fifo.close()
    assert [ln for _, ln in fifo.lines] == ['INSTANCE "VI_1" BACKUP 100',
                                            'INSTANCE "VI_1" MASTER 100']
