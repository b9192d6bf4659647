"""Issue 14: ``owner_ignore_adverts`` on the wire, with Debian's keepalived 2.2.7 as the
other address owner.

r1 is an address owner (priority 255) holding the VIP; r2 then starts keepalived
2.2.7 as a second owner.  keepalived's rule for two owners (RFC 9568 erratum 8298,
vrrp.c ``vrrp_state_master_rx``): an owner that hears another drops to 254 and, the
other now outranking it, yields.  r2 becomes master at once and r1 hears it first,
so without the option the VIP moves to r2, whether r1 runs keepalived or hafast
(the side-by-side control).  With ``owner_ignore_adverts`` (keepalived 2.3.3+;
2.2.7 does not know the keyword, so only hafast runs it) r1 never hears r2: it
stays MASTER at 255, r2 hears r1's next advert, drops to 254 and yields, and the
VIP stays on r1.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import KEEPALIVED, VrrpLab, conf

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

PREFIX = f"oi{os.getpid() % 100000}"
SETTLE_S = 6.0  # > Master_Down_Interval at 1 s adverts: whoever lost is backup by then


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool(KEEPALIVED)
    with VrrpLab(PREFIX) as built:
        yield built


def owner_conf(kind: str, extra: str = "") -> str:
    text = conf(kind, priority=255).replace("state BACKUP", "state MASTER")
    return text.replace("  virtual_ipaddress {", f"{extra}  virtual_ipaddress {{")


def settle(lab: VrrpLab, role: str) -> None:
    lab.wait_holder(role, 10.0)
    time.sleep(SETTLE_S)
    assert lab.holders() == [role], lab.holders()


@pytest.mark.parametrize("kind", ["hafast", "keepalived"])
def test_two_owners_without_it_the_larger_address_wins(lab: VrrpLab, kind: str) -> None:
    lab.start("r1", kind, owner_conf(kind))
    lab.wait_holder("r1", 5.0)
    lab.start("r2", "keepalived", owner_conf("keepalived"))
    settle(lab, "r2")
    if kind == "keepalived":
        assert "both configured as address owner" in lab.routers["r1"].log_text()


def test_an_owner_with_it_keeps_the_vip(lab: VrrpLab) -> None:
    r1 = lab.start("r1", "hafast", owner_conf("hafast", "  owner_ignore_adverts\n"))
    lab.wait_holder("r1", 5.0)
    lab.start("r2", "keepalived", owner_conf("keepalived"))
    lab.wait_for(lambda: "both configured as address owner" in lab.routers["r2"].log_text(),
                 5.0, "keepalived dropping to 254")
    settle(lab, "r1")
    assert "both configured as address owner" in lab.routers["r2"].log_text()
    assert "since we are address owner" in r1.log_text()
