"""Issue 14: track_group, hafast against keepalived 2.2.7 on the same config, side by side.

Each kind runs alone in a lab of its own (r1: VI_1 on eth0, MASTER by itself), with a
veth pair trk0/trk1 in r1 that carries the static entries.  What keepalived 2.2.7 does
(vrrp_static_track.c, keepalived_netlink.c netlink_route_filter/netlink_rule_filter,
vrrp_if.c interface_up), and so what both must do:

- someone deleting a static route or rule of a family a track_group is used with:
  it is added again at once ("Restoring deleted static route"), tracked or not; the
  instance stays MASTER (no FAULT: the group tracks the link, not the route);
- an IPv6 static route (no IPv6 entry names a group) deleted: nobody restores it;
- a static address deleted: restored (keepalived always follows addresses), unless
  written no_track;
- trk0 losing its carrier (trk1 down): VI_1, a member of the group, goes FAULT (the
  route's interface is tracked at weight 0); carrier back: MASTER again;
- trk0 set down (the kernel drops its routes) and up: FAULT, then MASTER, and the
  static routes on trk0 are back (IPv6 too: interface_up restores them all).

Observed through a notify FIFO (each state) and ``ip route``/``ip rule``; timing
margins are seconds, for a machine shared with other netns runs.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.test_vrrp_startup_delay import FifoLines
from tests.netns.vrrp_fixtures import KEEPALIVED, VIP4, VrrpLab, labs_per_kind

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

KINDS = ("hafast", "keepalived")


def conf(fifo: str) -> str:
    return f"""global_defs {{
  router_id r1
  vrrp_garp_master_delay 0
  notify_fifo {fifo}
}}
track_group TG {{
  group {{ VI_1 }}
}}
static_ipaddress {{
  10.84.0.1/24 dev trk0
  10.84.1.1/24 dev trk0 no_track
}}
static_routes {{
  10.89.0.0/16 dev trk0 track_group TG
  10.88.0.0/16 dev trk0 table 300
  fd89::/64 dev trk0
}}
static_rules {{
  from 10.86.0.0/16 iif trk0 table 300 priority 100 track_group TG
}}
vrrp_instance VI_1 {{
  state MASTER
  interface eth0
  virtual_router_id 61
  priority 150
  advert_int 1
  virtual_ipaddress {{
    {VIP4}/24
  }}
}}
"""


@pytest.fixture
def labs() -> Iterator[dict[str, VrrpLab]]:
    require_root()
    require_tool(KEEPALIVED)
    with labs_per_kind("tg", KINDS, [("trk0", "trk1")]) as made:
        yield made


def held(lab: VrrpLab) -> dict[str, bool]:
    """Which static entries r1's kernel holds."""
    ns = lab.ns("r1")

    def out(*argv: str) -> str:
        return run_in(ns, list(argv), check=False).stdout

    main, t300 = out("ip", "route"), out("ip", "route", "show", "table", "300")
    addrs = out("ip", "-4", "-o", "addr", "show", "dev", "trk0")
    return {"addr": " 10.84.0.1/24 " in addrs, "addr_nt": " 10.84.1.1/24 " in addrs,
            "route": "10.89.0.0/16 dev trk0" in main,
            "route300": "10.88.0.0/16 dev trk0" in t300,
            "route6": "fd89::/64 dev trk0" in out("ip", "-6", "route"),
            "rule": "100:\tfrom 10.86.0.0/16 iif trk0 lookup 300" in out("ip", "rule")}


def states(fifo: FifoLines) -> list[str]:
    return [ln.split()[2] for _t, ln in fifo.lines if ln.startswith('INSTANCE "VI_1"')]


def wait_all(labs: dict[str, VrrpLab], cond: Callable[[str], bool], timeout: float,
             what: str) -> None:
    for kind, lab in labs.items():
        lab.wait_for(functools.partial(cond, kind), timeout, f"{kind}: {what}")


def sh(labs: dict[str, VrrpLab], *argv: str) -> None:
    for lab in labs.values():
        run_in(lab.ns("r1"), list(argv))


def test_track_group_as_keepalived(labs: dict[str, VrrpLab]) -> None:
    fifos = {k: FifoLines(labs[k].tmp / f"notify-{k}.fifo") for k in KINDS}
    try:
        for kind in KINDS:
            labs[kind].start("r1", kind, conf(str(fifos[kind].path)))
        wait_all(labs, lambda k: states(fifos[k])[-1:] == ["MASTER"], 15.0, "MASTER")
        all_in = {"addr": True, "addr_nt": True, "route": True, "route300": True,
                  "route6": True, "rule": True}
        for kind, lab in labs.items():
            assert held(lab) == all_in, kind

        # Deleted by someone else: restored (IPv4 followed), the instance untouched.
        sh(labs, "ip", "route", "del", "10.89.0.0/16", "dev", "trk0")
        sh(labs, "ip", "route", "del", "10.88.0.0/16", "dev", "trk0", "table", "300")
        sh(labs, "ip", "rule", "del", "priority", "100")
        sh(labs, "ip", "-6", "route", "del", "fd89::/64", "dev", "trk0")
        sh(labs, "ip", "addr", "del", "10.84.0.1/24", "dev", "trk0")
        sh(labs, "ip", "addr", "del", "10.84.1.1/24", "dev", "trk0")
        gone = dict(all_in, route6=False, addr_nt=False)
        wait_all(labs, lambda k: held(labs[k]) == gone, 5.0,
                 "the IPv4 static routes, the rule and the address restored")
        time.sleep(2.0)  # a late restore of the IPv6 route, or a FAULT, would show now
        for kind, lab in labs.items():
            assert held(lab) == gone, kind
            assert states(fifos[kind]) == ["BACKUP", "MASTER"] or \
                states(fifos[kind]) == ["MASTER"], (kind, fifos[kind].lines)
            assert lab.has_vip("r1"), kind
        seen = {k: len(states(fifos[k])) for k in KINDS}

        # trk0 loses its carrier: the group's instance faults; back: MASTER.
        sh(labs, "ip", "link", "set", "trk1", "down")
        wait_all(labs, lambda k: states(fifos[k])[seen[k]:] == ["FAULT"], 10.0, "FAULT")
        for kind, lab in labs.items():
            lab.wait_for(functools.partial(lambda lb: not lb.has_vip("r1"), lab), 5.0,
                         f"{kind}: VIP gone")
        sh(labs, "ip", "link", "set", "trk1", "up")
        wait_all(labs, lambda k: states(fifos[k])[seen[k]:] == ["FAULT", "BACKUP", "MASTER"],
                 15.0, "BACKUP then MASTER")
        seen = {k: len(states(fifos[k])) for k in KINDS}

        # trk0 set down takes its routes with it; up: they are added again (all of
        # them: keepalived's interface_up restores every static route on the link).
        sh(labs, "ip", "link", "set", "trk0", "down")
        wait_all(labs, lambda k: states(fifos[k])[seen[k]:] == ["FAULT"], 10.0, "FAULT")
        wait_all(labs, lambda k: not held(labs[k])["route"], 5.0, "routes flushed")
        sh(labs, "ip", "link", "set", "trk0", "up")
        wait_all(labs, lambda k: states(fifos[k])[seen[k]:] == ["FAULT", "BACKUP", "MASTER"],
                 15.0, "BACKUP then MASTER")
        wait_all(labs, lambda k: held(labs[k]) == dict(all_in, addr_nt=False), 5.0,
                 "every static entry back (not the no_track address)")

        # At stop both remove their statics.
        for lab in labs.values():
            lab.stop(lab.routers["r1"])
        for kind, lab in labs.items():
            assert not any(held(lab).values()), kind
    finally:
        for f in fifos.values():
            f.close()


def test_a_reload_that_drops_the_group_stops_the_tracking(labs: dict[str, VrrpLab]) -> None:
    """SIGHUP with the route's track_group gone: the route stays, VI_1 no longer
    tracks trk0 (hafast rebuilds an instance whose track-group interfaces changed)."""
    fifos = {k: FifoLines(labs[k].tmp / f"notify-{k}.fifo") for k in KINDS}
    try:
        for kind in KINDS:
            labs[kind].start("r1", kind, conf(str(fifos[kind].path)))
        wait_all(labs, lambda k: states(fifos[k])[-1:] == ["MASTER"], 15.0, "MASTER")
        for kind, lab in labs.items():
            text = conf(str(fifos[kind].path)).replace(
                "10.89.0.0/16 dev trk0 track_group TG", "10.89.0.0/16 dev trk0").replace(
                " track_group TG\n", "\n")
            (lab.tmp / "r1.conf").write_text(text)
            os.kill(lab.routers["r1"].proc.pid, signal.SIGHUP)
        time.sleep(3.0)
        seen = {k: len(states(fifos[k])) for k in KINDS}
        sh(labs, "ip", "link", "set", "trk1", "down")
        time.sleep(5.0)
        for kind, lab in labs.items():
            assert states(fifos[kind])[seen[kind]:] == [], (kind, fifos[kind].lines)
            assert lab.has_vip("r1") and held(lab)["route"], kind
    finally:
        for f in fifos.values():
            f.close()
