"""Issue 14: promote_secondaries, hafast against keepalived 2.2.7.

keepalived sets ``net.ipv4.conf.eth0.promote_secondaries`` to 1 when it builds an
instance that asks for it, and back to 0 at exit, but only if it was the one that
set it: a 1 the administrator set stays 1.  Each kind runs on the same config in a
lab of its own; the sysctl is read before, while MASTER, and after a graceful stop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import KEEPALIVED, VIP4, VrrpLab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

KINDS = ["hafast", "keepalived"]
KEY = "net.ipv4.conf.eth0.promote_secondaries"
CONF = f"""global_defs {{
  router_id r1
}}
vrrp_instance VI_1 {{
  state MASTER
  interface eth0
  virtual_router_id 62
  priority 150
  version 3
  advert_int 0.3
  promote_secondaries
  virtual_ipaddress {{
    {VIP4}/24
  }}
}}
"""


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    with VrrpLab(f"ps{time.monotonic_ns() % 100000}") as built:
        yield built


def sysctl(lab: VrrpLab) -> str:
    return run_in(lab.ns("r1"), ["sysctl", "-n", KEY]).stdout.strip()


@pytest.mark.parametrize("before", ["0", "1"])
@pytest.mark.parametrize("kind", KINDS)
def test_promote_secondaries_as_keepalived(lab: VrrpLab, kind: str, before: str) -> None:
    if kind == "keepalived":
        require_tool(KEEPALIVED)
    run_in(lab.ns("r1"), ["sysctl", "-qw", f"{KEY}={before}"])
    router = lab.start("r1", kind, CONF)
    lab.wait_holder("r1", 8.0)
    assert sysctl(lab) == "1"
    lab.stop(router)
    # set back only if it was the daemon that set it
    assert sysctl(lab) == before
