"""Issue 14: virtual_rules (and the routes beside them), static_ipaddress, static_routes
and static_rules, hafast against keepalived 2.2.7.

r1 runs one VRRPv3 instance alone, so it becomes MASTER; the same configuration
runs once under hafast's VRRP daemon and once under Debian's keepalived, each in a
lab of its own.  What each leaves in the kernel is read back with ``ip rule`` (both
families), ``ip route show table N`` and ``ip addr``, normalised, after MASTER and
after a graceful stop, and the two must be identical: the same rules with the same
preferences (those keepalived numbers itself too), options, protocol and order.
A line keepalived skips (``inet6`` steps over the word after it) is skipped by both.
The statics are there whatever the instance's state and go at stop; a static route
the kernel refuses is logged and counted, and nothing else changes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import KEEPALIVED, VIP4, VrrpLab, labs_per_kind

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

STARTUP_S = 8.0
TABLES = (200, 201, 300)

STATICS = """\
static_ipaddress {
  10.88.0.1/24 dev eth0
  fd88::1/64 dev eth0
  10.88.1.1/24 label eth0:st
}
static_routes {
  10.89.0.0/16 via 10.77.0.254 dev eth0 table 300
  blackhole 10.87.0.0/16 table 300
  10.85.0.0/16 via 10.250.0.1 dev eth0 table 300
}
static_rules {
  from 10.88.0.0/24 table 300 priority 100
  to 10.86.0.0/16 table 300
  from fd88::/64 table 300 priority 101
}
"""

RULES = """\
    from 10.77.0.100/32 table 200 priority 200
    to 10.91.0.0/16 table 200 fwmark 5/0xff iif eth0 oif eth0 tos 0x10 priority 201
    from fd77::100/128 table 200 priority 202
    fwmark 7 table 200 priority 211 inet6
    inet6 from fd77::101/128 table 200 priority 212
    ipproto tcp dport 80-80 sport 1024-65000 table 200 priority 203
    not to 10.92.0.0/16 table 203 priority 204
    to 10.92.0.0/16 blackhole priority 213
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
    with labs_per_kind("vr", ("hafast", "keepalived")) as made:
        yield made


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


def test_statics_as_keepalived(labs: dict[str, VrrpLab]) -> None:
    got = {kind: run(lab, kind, conf(statics=STATICS)) for kind, lab in labs.items()}
    ha_master, ha_stopped, ha_log = got["hafast"]
    ka_master, ka_stopped, ka_log = got["keepalived"]
    assert ha_master == ka_master, ka_log[-3000:]
    assert ha_stopped == ka_stopped
    assert "100:\tfrom 10.88.0.0/24 lookup 300 proto keepalived" in ha_master["rule4"]
    # the static rule was read first: keepalived's 16384 is its
    assert "16384:\tfrom all to 10.86.0.0/16 lookup 300 proto keepalived" in ha_master["rule4"]
    assert any(" 10.88.1.1/24 " in a and "eth0:st" in a for a in ha_master["addr"])
    assert any("10.89.0.0/16 via 10.77.0.254" in r for r in ha_master["route300"])
    assert not any("10.85.0.0" in r for r in ha_master["route300"])  # refused by both
    assert "cannot add route 10.85.0.0/16" in ha_log
    assert not ha_stopped["route300"] and len(ha_stopped["rule4"]) == 3
    assert not any("10.88." in a or "fd88::" in a for a in ha_stopped["addr"])


def test_statics_whatever_the_state(labs: dict[str, VrrpLab]) -> None:
    """r2 holds the VIP at a higher priority: r1 is BACKUP, and has its statics; a
    refused static route is counted, and r1 keeps running as BACKUP."""
    lab = labs["hafast"]
    lab.start("r2", "hafast", conf(rules="").replace("priority 150", "priority 200"))
    lab.wait_holder("r2", STARTUP_S)
    router = lab.start("r1", "hafast", conf(rules="", statics=STATICS))
    lab.wait_for(lambda: any(" 10.88.0.1/24 " in a for a in snapshot(lab)["addr"]), 5.0,
                 "r1's static address")
    time.sleep(1.5)  # past r1's Master_Down_Interval: it would have taken the VIP by now
    snap = snapshot(lab)
    assert lab.holders() == ["r2"]
    assert "100:\tfrom 10.88.0.0/24 lookup 300 proto keepalived" in snap["rule4"]
    assert any("blackhole 10.87.0.0/16" in r for r in snap["route300"])
    st = stats(lab)
    assert st["statics_refused"] == {"route": 1}
    assert router.proc.poll() is None
    lab.stop(router)
    snap = snapshot(lab)
    assert not snap["route300"] and len(snap["rule4"]) == 3
    assert not any("10.88." in a for a in snap["addr"])


def stats(lab: VrrpLab) -> dict[str, Any]:
    """hafast's SIGUSR2 stats of r1."""
    path = lab.tmp / "r1.json"
    path.unlink(missing_ok=True)
    os.kill(lab.routers["r1"].proc.pid, signal.SIGUSR2)
    lab.wait_for(lambda: path.exists() and path.stat().st_size > 0, 3.0, "stats file")
    time.sleep(0.05)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


STATICS_RELOADED = """\
static_ipaddress {
  10.88.0.1/24 dev eth0
  10.88.2.1/24 dev eth0
}
static_routes {
  10.89.0.0/16 via 10.77.0.254 dev eth0 table 300
  10.84.0.0/16 via 10.77.0.254 dev eth0 table 300
}
static_rules {
  from 10.88.0.0/24 table 300 priority 100
  from 10.84.0.0/16 table 300 priority 102
}
"""


def test_statics_on_reload_as_keepalived(labs: dict[str, VrrpLab]) -> None:
    """SIGHUP with statics changed: the ones gone are removed, new ones added, kept
    ones untouched (keepalived's clear_diff_static_*), the instance stays MASTER."""
    got = {}
    for kind, lab in labs.items():
        router = lab.start("r1", kind, conf(statics=STATICS))
        lab.wait_holder("r1", STARTUP_S)
        lab.wait_for(lambda lab=lab: any("210:" in x for x in snapshot(lab)["rule4"]), 3.0,
                     "the virtual rules")
        (lab.tmp / "r1.conf").write_text(conf(statics=STATICS_RELOADED))
        os.kill(router.proc.pid, signal.SIGHUP)
        lab.wait_for(lambda lab=lab: any("102:" in x for x in snapshot(lab)["rule4"]), 5.0,
                     f"{kind}: the reloaded static rule")
        time.sleep(0.5)
        got[kind] = snapshot(lab)
        assert lab.holders() == ["r1"]
        lab.stop(router)
    assert got["hafast"] == got["keepalived"]
    snap = got["hafast"]
    assert snap["route300"] == ["10.84.0.0/16 via 10.77.0.254 dev eth0 proto keepalived",
                                "10.89.0.0/16 via 10.77.0.254 dev eth0 proto keepalived"]
    assert snap["route200"] == ["10.90.0.0/16 via 10.77.0.254 dev eth0 proto keepalived"]
    assert not any("10.86.0.0" in r for r in snap["rule4"])
    assert not any("10.88.1.1" in a or "fd88::1" in a for a in snap["addr"])
    assert any("10.88.2.1/24" in a for a in snap["addr"])


def test_full_daemon_as_keepalived(labs: dict[str, VrrpLab], tmp_path: Path) -> None:
    """The same, through ``hafast -f`` (parent, VRRP worker, check worker) rather than
    the VRRP worker alone."""
    from tests.netns.daemon_fixtures import start_daemon

    text = conf(statics=STATICS)
    lab = labs["hafast"]
    daemon = start_daemon(tmp_path, text, ns=lab.ns("r1"))
    try:
        lab.wait_holder("r1", STARTUP_S + 5)
        lab.wait_for(lambda: any("210:" in x for x in snapshot(lab)["rule4"]), 3.0,
                     "hafast: rule 210")
        time.sleep(0.3)
        master = snapshot(lab)
        assert daemon.stop() == 0
        stopped = snapshot(lab)
    finally:
        daemon.close()
    ka_master, ka_stopped, _ = run(labs["keepalived"], "keepalived", text)
    assert master == ka_master, daemon.log_text()[-3000:]
    assert stopped == ka_stopped


def test_a_restarted_daemon_takes_over_what_its_predecessor_left(
        labs: dict[str, VrrpLab]) -> None:
    """SIGKILL leaves the statics and the virtual rules up; the next hafast on the same
    config takes them as its own and removes them at its stop, as keepalived removes
    its leftovers."""
    lab = labs["hafast"]
    lab.start("r1", "hafast", conf(statics=STATICS))
    lab.wait_holder("r1", STARTUP_S)
    lab.wait_for(lambda: any("210:" in x for x in snapshot(lab)["rule4"]), 3.0, "rules")
    lab.crash("r1")  # SIGKILL; the VIP goes as with a dead host
    left = snapshot(lab)
    assert any("210:" in x for x in left["rule4"]) and left["route300"]
    router = lab.start("r1", "hafast", conf(statics=STATICS))
    lab.wait_holder("r1", STARTUP_S)
    time.sleep(0.5)
    lab.stop(router)
    snap = snapshot(lab)
    # The no_track rule carries no protocol: the kernel cannot tell it from an
    # administrator's, so it stays (keepalived deletes it at its next start, an
    # administrator's identical rule too).
    assert snap["rule4"] == ["0:\tfrom all lookup local",
                             "205:\tfrom all uidrange 1000-2000 lookup 202",
                             "32766:\tfrom all lookup main", "32767:\tfrom all lookup default"]
    assert len(snap["rule6"]) == 2
    assert not snap["route300"]
    assert not any("10.88." in a or "fd88::" in a for a in snap["addr"])
