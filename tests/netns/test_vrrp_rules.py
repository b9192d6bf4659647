"""Issue 14: virtual_rules (and the routes beside them), hafast against keepalived 2.2.7.

r1 runs one VRRPv3 instance alone, so it becomes MASTER; the same configuration
runs once under hafast's VRRP daemon and once under Debian's keepalived, each in a
lab of its own.  What each leaves in the kernel is read back with ``ip rule`` (both
families), ``ip route show table N`` and ``ip addr``, normalised, after MASTER and
after a graceful stop, and the two must be identical: the same rules with the same
preferences (those keepalived numbers itself too), options, protocol and order.
A line keepalived skips (``inet6`` steps over the word after it) is skipped by both.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import KEEPALIVED, VIP4, VrrpLab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

STARTUP_S = 8.0
TABLES = (200, 201, 300)

RULES = """\
    from 10.77.0.100/32 table 200 priority 200
    to 10.91.0.0/16 table 200 fwmark 5/0xff iif eth0 oif eth0 tos 0x10 priority 201
    from fd77::100/128 table 200 priority 202
    fwmark 7 table 200 priority 211 inet6
    inet6 from fd77::101/128 table 200 priority 212
    ipproto tcp dport 80-80 sport 1024-65000 table 200 priority 203
    not to 10.92.0.0/16 blackhole priority 204
    uidrange 1000-2000 table 202 priority 205 no_track
    from 10.93.0.0/16 goto 300 priority 206
    to 10.94.0.0/16 table 201 suppress_prefixlength 8 realms 3/4
    to 10.95.0.0/16 lookup 6000 priority 207 protocol 18
    from all table 201
    to fd99::/64 prohibit
    to 10.96.0.0/16 type unreachable priority 208
    from 10.97.0.0/16 nop priority 209
    l3mdev priority 210
"""


def conf(rules: str = RULES, statics: str = "") -> str:
    return f"""global_defs {{
  router_id r1
  vrrp_garp_master_delay 0
}}
{statics}
vrrp_instance VI_1 {{
  state MASTER
  interface eth0
  virtual_router_id 61
  priority 150
  version 3
  advert_int 0.3
  virtual_ipaddress {{
    {VIP4}/24
  }}
  virtual_routes {{
    10.90.0.0/16 via 10.77.0.254 table 200
  }}
  virtual_rules {{
{rules}  }}
}}
"""


@pytest.fixture
def labs() -> Iterator[dict[str, VrrpLab]]:
    require_root()
    require_tool(KEEPALIVED)
    made: dict[str, VrrpLab] = {}
    try:
        for n, kind in enumerate(("hafast", "keepalived")):
            made[kind] = VrrpLab(f"vr{n}{time.monotonic_ns() % 10000}").build()
        yield made
    finally:
        for lab in made.values():
            lab.close()


def snapshot(lab: VrrpLab) -> dict[str, list[str]]:
    """What the kernel holds in r1, normalised: no lifetimes, no link-local or
    MAC-derived addresses, sorted where the kernel's order is not the point."""
    ns = lab.ns("r1")

    def out(*argv: str) -> list[str]:
        # an empty table does not exist: ip route says so and lists nothing
        return [line.rstrip() for line in run_in(ns, list(argv), check=False).stdout
                .splitlines() if line.strip()]

    snap = {"rule4": out("ip", "-4", "rule"), "rule6": out("ip", "-6", "rule")}
    for t in TABLES:
        snap[f"route{t}"] = sorted(out("ip", "route", "show", "table", str(t)))
    addrs = []
    for line in out("ip", "-o", "addr", "show"):
        if " fe80:" in line:
            continue
        line = re.sub(r"\\\s+valid_lft.*", "", line)
        addrs.append(re.sub(r"\s+", " ", line))
    snap["addr"] = sorted(addrs)
    return snap


def run(lab: VrrpLab, kind: str, text: str, settle: str = "210:") -> tuple[
        dict[str, list[str]], dict[str, list[str]], str]:
    """Start ``kind`` on ``text``; the kernel's state once MASTER (and ``settle``, a
    line of ``ip rule``, is there), and after a graceful stop; and its log."""
    router = lab.start("r1", kind, text)
    lab.wait_holder("r1", STARTUP_S)
    lab.wait_for(lambda: any(settle in x for x in snapshot(lab)["rule4"]), 3.0,
                 f"{kind}: rule {settle}")
    time.sleep(0.3)  # anything still to come would show as a difference
    master = snapshot(lab)
    log = router.log_text()
    lab.stop(router)
    return master, snapshot(lab), log


def test_virtual_rules_as_keepalived(labs: dict[str, VrrpLab]) -> None:
    got = {kind: run(lab, kind, conf()) for kind, lab in labs.items()}
    ha_master, ha_stopped, _ = got["hafast"]
    ka_master, ka_stopped, ka_log = got["keepalived"]
    assert ha_master == ka_master, ka_log[-3000:]
    assert ha_stopped == ka_stopped
    # the comparison is not vacuous: the rules were there, and went
    assert len(ha_master["rule4"]) >= 3 + 12 and len(ha_master["rule6"]) >= 2 + 3
    # keepalived's numbers for rules without a preference: per family, in reading order
    assert "16384:\tfrom all to 10.94.0.0/16 lookup 201 suppress_prefixlength 8 realms 3/4 " \
        "proto keepalived" in ha_master["rule4"]
    assert "16383:\tfrom all lookup 201 proto keepalived" in ha_master["rule4"]
    assert "16384:\tfrom all to fd99::/64 prohibit proto keepalived" in ha_master["rule6"]
    assert len(ha_stopped["rule4"]) == 3 and not ha_stopped["route200"]
