"""Issue 14: ``timer_expired_backup`` on the wire, Debian's keepalived 2.2.7 as the peer.

r1 (priority 200, ``nopreempt``) is MASTER; r2 runs keepalived 2.2.7 (priority 100,
``nopreempt``) as BACKUP.  r1's VRRP process is stopped (SIGSTOP) for longer than
r2's Master_Down_Interval, so r2 takes over, then continued.  Without the option r1
comes back advertising priority 200 and r2 yields: the VIP returns to r1, whether
r1 runs keepalived 2.2.7 or hafast (the side-by-side control).  With
``timer_expired_backup`` (keepalived 2.3+, so hafast only) r1 sees that its last
advert is older than r2 needed to take over and goes BACKUP: the VIP stays on r2.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import KEEPALIVED, VrrpLab, conf

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

PREFIX = f"te{os.getpid() % 100000}"
STOPPED_S = 6.0  # > r2's 3 * 1 s + 0.609 s
SETTLE_S = 4.0


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool(KEEPALIVED)
    with VrrpLab(PREFIX) as built:
        yield built


def r1_conf(kind: str, option: str) -> str:
    text = conf(kind, priority=200, nopreempt=True)
    return text.replace("  virtual_ipaddress {", f"{option}  virtual_ipaddress {{")


def stall(lab: VrrpLab, kind: str, option: str = "") -> list[str]:
    r1 = lab.start("r1", kind, r1_conf(kind, option))
    lab.wait_holder("r1", 8.0)
    lab.start("r2", "keepalived", conf("keepalived", priority=100, nopreempt=True))
    time.sleep(2.0)  # r2 hears r1 and is BACKUP
    assert lab.holders() == ["r1"]
    pid = r1.vrrp_pid
    os.kill(pid, signal.SIGSTOP)
    try:
        lab.wait_for(lambda: lab.has_vip("r2"), STOPPED_S, "r2 taking over")
        time.sleep(STOPPED_S - 4.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(SETTLE_S)
    return lab.holders()


@pytest.mark.parametrize("kind", ["hafast", "keepalived"])
def test_without_it_the_stalled_master_takes_the_vip_back(lab: VrrpLab, kind: str) -> None:
    assert stall(lab, kind) == ["r1"]


def test_with_it_the_stalled_master_returns_as_backup(lab: VrrpLab) -> None:
    assert stall(lab, "hafast", "  timer_expired_backup\n") == ["r2"]
    assert "timer_expired_backup" in lab.routers["r1"].log_text()
