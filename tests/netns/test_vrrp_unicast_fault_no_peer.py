"""Issue 14: ``unicast_fault_no_peer`` side by side with Debian's keepalived 2.2.7.

r1 runs one instance with ``unicast_fault_no_peer`` and the same config under hafast's
VRRP daemon and keepalived; the states are read off ``vrrp_notify_fifo``:

* no ``unicast_peer``: FAULT at start (keepalived's config fault), no VIP and no
  advert on the wire for longer than a Master_Down_Interval, where without the
  keyword the instance would fall back to multicast and be MASTER after 3.6 s;
* a peer listed (r2, silent): the keyword changes nothing, MASTER alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.test_vrrp_startup_delay import FifoLines
from tests.netns.vrrp_fixtures import ADDR4, KEEPALIVED, VrrpLab, conf

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

PREFIX = f"uf{os.getpid() % 100000}"
KINDS = ["hafast", "keepalived"]
WATCH_S = 5.0  # > 3 * 1 s + skew: a backup would be MASTER by then


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    with VrrpLab(PREFIX) as built:
        yield built


def r1_conf(kind: str, fifo: Path, peer: bool) -> str:
    text = conf(kind, priority=100, extra_global=f"  vrrp_notify_fifo {fifo}")
    unicast = "  unicast_fault_no_peer\n"
    if peer:
        unicast += f"  unicast_src_ip {ADDR4['r1']}\n  unicast_peer {{\n    {ADDR4['r2']}\n  }}\n"
    return text.replace("  virtual_ipaddress {", f"{unicast}  virtual_ipaddress {{")


def adverts_seen(lab: VrrpLab, seconds: float) -> str:
    """VRRP packets r2 sees on the link during ``seconds``."""
    res = run_in(lab.ns("r2"), ["timeout", str(seconds), "tcpdump", "-n", "-l", "-c", "1",
                                "-i", "eth0", "ip proto 112"], check=False)
    return res.stdout.strip()


@pytest.mark.parametrize("kind", KINDS)
def test_no_peer_is_fault_for_good(lab: VrrpLab, kind: str) -> None:
    if kind == "keepalived":
        require_tool(KEEPALIVED)
    require_tool("tcpdump")
    fifo = FifoLines(lab.tmp / f"notify-{kind}.fifo")
    try:
        lab.start("r1", kind, r1_conf(kind, fifo.path, peer=False))
        lab.wait_for(lambda: fifo.first("FAULT") is not None, 5.0, "FAULT")
        assert adverts_seen(lab, WATCH_S) == ""
        assert not lab.has_vip("r1")
    finally:
        fifo.close()
    assert [ln for _, ln in fifo.lines] == ['INSTANCE "VI_1" FAULT 100']


@pytest.mark.parametrize("kind", KINDS)
def test_with_a_peer_nothing_changes(lab: VrrpLab, kind: str) -> None:
    if kind == "keepalived":
        require_tool(KEEPALIVED)
    require_tool("tcpdump")
    fifo = FifoLines(lab.tmp / f"notify-{kind}.fifo")
    try:
        lab.start("r1", kind, r1_conf(kind, fifo.path, peer=True))
        # from BACKUP, not from the start: a loaded CI machine took seconds to start
        # hafast's interpreter, which is not what this test is about
        lab.wait_for(lambda: fifo.first("BACKUP") is not None, 30.0, "BACKUP")
        lab.wait_holder("r1", 8.0)
        lab.wait_for(lambda: fifo.first("MASTER") is not None, 2.0, "MASTER")
        backup, master = fifo.first("BACKUP"), fifo.first("MASTER")
        assert backup is not None and master is not None
        assert master - backup > 3.0  # master_down: 3 adverts of 1 s and the skew
        # The same capture sees a master's adverts (to the peer).
        assert f"{ADDR4['r1']} > {ADDR4['r2']}: VRRPv2" in adverts_seen(lab, 3.0)
    finally:
        fifo.close()
    assert [ln for _, ln in fifo.lines] == ['INSTANCE "VI_1" BACKUP 100',
                                            'INSTANCE "VI_1" MASTER 100']
