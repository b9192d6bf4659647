"""Issue 14: no_accept / vrrp_strict filter with keepalived 2.2.7's nftables tables.

r1 runs two VRRPv3 instances alone (IPv4: two VIPs; IPv6: a global VIP, an excluded
one and a link-local one), so both become MASTER; the same configuration runs once
under hafast's VRRP daemon and once under Debian's keepalived (built with nftables,
without iptables), each in a lab of its own (the two at the same time).  ``nft -j
list ruleset`` is read back once both are master and after a graceful stop,
normalised (no handles, counters zeroed, set elements sorted, tables keyed by family
so the order in which the two instances became master does not matter), and must be
identical: the same tables, chains, priorities, sets and rules.  A ping to the VIPs
from a third namespace is dropped by both without Accept_Mode, answered with it.
When a higher-priority peer takes the VIPs, both empty their sets and keep their
tables.  (keepalived writes its fe80::/10 test as two comparisons and hafast as a
prefix: nft lists both as the prefix, so the rulesets compare equal; the kernel's
expressions differ there only.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hafast.lab.netns import run_in
from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import KEEPALIVED, VIP4, VIP6, VrrpLab, labs_per_kind

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

STARTUP_S = 8.0


def conf(glob: str = "", inst: str = "no_accept") -> str:
    return f"""global_defs {{
  router_id r1
  vrrp_garp_master_delay 0
{glob}
}}
vrrp_instance VI_4 {{
  state BACKUP
  interface eth0
  virtual_router_id 61
  priority 150
  version 3
  advert_int 0.3
  {inst}
  virtual_ipaddress {{
    {VIP4}/24
    10.77.0.101/32
  }}
}}
vrrp_instance VI_6 {{
  state BACKUP
  interface eth0
  virtual_router_id 62
  priority 150
  version 3
  advert_int 0.3
  {inst}
  virtual_ipaddress {{
    {VIP6}/64
  }}
  virtual_ipaddress_excluded {{
    fd77::200/64
    fe80::1:100/64
  }}
}}
"""


@pytest.fixture
def labs() -> Iterator[dict[str, VrrpLab]]:
    require_root()
    require_tool(KEEPALIVED)
    require_tool("nft")
    require_tool("fping")
    with labs_per_kind("na", ("hafast", "keepalived")) as made:
        yield made


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        out = {k: _strip(v) for k, v in obj.items() if k != "handle"}
        if "counter" in out and isinstance(out["counter"], dict):
            out["counter"] = {"packets": 0, "bytes": 0}
        if "elem" in out:
            out["elem"] = sorted(out["elem"], key=lambda e: json.dumps(e, sort_keys=True))
        return out
    if isinstance(obj, list):
        return [_strip(x) for x in obj]
    return obj


def ruleset(lab: VrrpLab) -> dict[str, list[Any]]:
    """``nft -j list ruleset`` in r1, per table (``family name``), handles dropped."""
    out = run_in(lab.ns("r1"), ["nft", "-j", "list", "ruleset"]).stdout
    tables: dict[str, list[Any]] = {}
    for obj in json.loads(out)["nftables"]:
        (kind, body), = obj.items()
        if kind == "metainfo":
            continue
        key = f"{body['family']} {body['name'] if kind == 'table' else body['table']}"
        tables.setdefault(key, []).append(_strip(obj))
    return tables


def reached(labs: dict[str, VrrpLab], tries: int) -> dict[str, dict[str, bool]]:
    """Per lab, per VIP: did one of ``tries`` pings from the client get an answer
    (``VrrpLab.client_ping``'s probe)?  The probes of one round run at once: a
    dropped one waits out its whole timeout, and these tests expect drops."""
    got = {kind: dict.fromkeys((VIP4, VIP6), False) for kind in labs}
    for _ in range(tries):
        probes = {(kind, vip): subprocess.Popen(
                      ["ip", "netns", "exec", lab.ns("cl"), "fping", "-c", "1", "-t", "500",
                       vip], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for kind, lab in labs.items() for vip in (VIP4, VIP6)
                  if not got[kind][vip]}
        for (kind, vip), proc in probes.items():
            got[kind][vip] = proc.wait(30) == 0
    return got


def run(labs: dict[str, VrrpLab], text: str, filtered: bool) -> dict[str, tuple[
        dict[str, list[Any]], dict[str, bool], dict[str, list[Any]], str]]:
    """Start each kind on ``text`` in its own lab, at once; per kind the ruleset once
    both instances are master (and hold their VIPs in the sets), what a client's ping
    reached, the ruleset after a graceful stop, and the log."""
    routers = {kind: lab.start("r1", kind, text) for kind, lab in labs.items()}
    for kind, lab in labs.items():
        lab.wait_holder("r1", STARTUP_S)
        lab.wait_holder("r1", STARTUP_S, vip=VIP6)
        if filtered:
            lab.wait_for(lambda lab=lab: "fd77::200" in json.dumps(ruleset(lab))  # type: ignore[misc]
                         and "10.77.0.101" in json.dumps(ruleset(lab)), 3.0,
                         f"{kind}: the sets")
    time.sleep(0.3)  # anything still to come would show as a difference
    masters = {kind: ruleset(lab) for kind, lab in labs.items()}
    pings = reached(labs, 2 if filtered else 3)
    got = {}
    for kind, lab in labs.items():
        log = routers[kind].log_text()
        lab.stop(routers[kind])
        got[kind] = (masters[kind], pings[kind], ruleset(lab), log)
    return got


# case: (global_defs lines, instance lines, what the ruleset must show: table names,
# chain priority, the link-local set, counters)
CASES = {
    "no_accept": ("", "no_accept", ("keepalived", -1, "vips_link_local", False)),
    "vrrp_strict": ("  vrrp_strict", "", ("keepalived", -1, "vips_link_local", False)),
    "named_priority_counters_ifindex": (
        "  nftables hafast_t\n  nftables_priority -7\n  nftables_counters\n  nftables_ifindex",
        "no_accept", ("hafast_t", -7, "vips_link_local", True)),
    # on a build without iptables: the table keepalived, priority -1 (reset), a warning
    "vrrp_iptables": ("  nftables_priority 5\n  vrrp_iptables IN OUT", "no_accept",
                      ("keepalived", -1, "vips_link_local", False)),
    "priority_after_nftables": ("  nftables\n  nftables_priority 5", "no_accept",
                                ("keepalived", 5, "vips_link_local", False)),
    "priority_reset_by_nftables": ("  nftables_priority 5\n  nftables", "no_accept",
                                   ("keepalived", -1, "vips_link_local", False)),
    # a link-local VIP on the primary interface, not tracked: matched by name
    "dont_track_primary": ("", "no_accept\n  dont_track_primary",
                           ("keepalived", -1, "vips_link_local_name", False)),
    "dont_track_primary_ifindex": ("  nftables_ifindex", "no_accept\n  dont_track_primary",
                                   ("keepalived", -1, "vips_link_local", False)),
}


def _shows(master: dict[str, list[Any]], table: str, prio: int, ll_set: str,
           counters: bool) -> None:
    assert sorted(master) == [f"ip {table}", f"ip6 {table}"]
    chains = [o["chain"] for objs in master.values() for o in objs if "chain" in o]
    assert {c.get("prio") for c in chains if "hook" in c} == {prio}
    sets = [o["set"]["name"] for o in master[f"ip6 {table}"] if "set" in o]
    assert sets == ["vips", "neighbor-discovery", ll_set]
    assert ('"counter"' in json.dumps(master)) == counters


@pytest.mark.parametrize("case", sorted(CASES))
def test_tables_as_keepalived(labs: dict[str, VrrpLab], case: str) -> None:
    glob, inst, shows = CASES[case]
    got = run(labs, conf(glob, inst), True)
    ha_master, ha_pings, ha_stopped, ha_log = got["hafast"]
    ka_master, ka_pings, ka_stopped, ka_log = got["keepalived"]
    assert ha_master == ka_master, ka_log[-2000:] + ha_log[-2000:]
    # the comparison is not vacuous: both families' tables, as asked, with the VIPs
    _shows(ha_master, *shows)
    text = json.dumps(ha_master)
    for vip in (VIP4, "10.77.0.101", VIP6, "fd77::200", "fe80::1:100"):
        assert vip in text
    assert ha_pings == ka_pings == {VIP4: False, VIP6: False}
    assert ha_stopped == ka_stopped == {}


@pytest.mark.parametrize("inst", ["accept", "priority 255"])
def test_accept_mode_makes_no_table(labs: dict[str, VrrpLab], inst: str) -> None:
    """vrrp_strict (and the nftables keywords) with accept, or for the address owner
    (RFC 5798 §6.4.3 binds only a master that does not own the addresses): no table,
    the VIPs answer."""
    text = conf("  vrrp_strict\n  nftables\n  nftables_counters", inst)
    got = run(labs, text, False)
    for kind, (master, pings, stopped, log) in got.items():
        assert master == stopped == {}, (kind, log[-2000:])
        assert pings == {VIP4: True, VIP6: True}, kind


def test_backup_keeps_the_tables_empty_as_keepalived(labs: dict[str, VrrpLab]) -> None:
    """r1 master without Accept_Mode, then r2 (keepalived, accept, higher priority)
    takes both VIPs: r1 leaves MASTER, its sets are emptied and its tables stay, the
    VIPs answer from r2; hafast and keepalived leave the same ruleset in r1."""
    def text(lab: VrrpLab) -> str:
        return json.dumps(ruleset(lab))

    # both kinds at once, each in its own lab
    got = {}
    routers = {kind: lab.start("r1", kind, conf()) for kind, lab in labs.items()}
    for kind, lab in labs.items():
        lab.wait_holder("r1", STARTUP_S)
        lab.wait_holder("r1", STARTUP_S, vip=VIP6)
        lab.wait_for(lambda lab=lab: "fd77::200" in text(lab), 3.0,  # type: ignore[misc]
                     f"{kind}: the sets")
    for lab in labs.values():
        lab.start("r2", "keepalived", conf(inst="").replace("priority 150", "priority 200"))
    for kind, lab in labs.items():
        lab.wait_holder("r2", STARTUP_S)
        lab.wait_holder("r2", STARTUP_S, vip=VIP6)
        lab.wait_for(lambda lab=lab: "10.77.0.101" not in text(lab)  # type: ignore[misc]
                     and "fd77::200" not in text(lab), 3.0, f"{kind}: the sets emptied")
    time.sleep(0.3)
    for kind, lab in labs.items():
        got[kind] = ruleset(lab)
        assert any(lab.client_ping(VIP4) for _ in range(3)), kind
        lab.stop(routers[kind])
        assert ruleset(lab) == {}, kind
        lab.stop(lab.routers["r2"])
    assert got["hafast"] == got["keepalived"]
    assert sorted(got["hafast"]) == ["ip keepalived", "ip6 keepalived"]
    sets = [o["set"] for objs in got["hafast"].values() for o in objs if "set" in o]
    assert [s["name"] for s in sets if "elem" in s] == ["neighbor-discovery"]


def test_reload(labs: dict[str, VrrpLab]) -> None:
    """SIGHUP while master.  A new table name waits for the next start under both (the
    tables made stay, with their members).  A reload to ``accept`` is where hafast
    differs on purpose: keepalived 2.2.7 keeps dropping traffic to the VIPs until the
    instance next leaves MASTER (it drops the rule only for an instance it recorded as
    filtered, and the reloaded one is not); hafast unblocks them at once, as the new
    config asks.  keepalived even leaves both tables, members and all, after its stop
    then (hafast deletes them)."""
    # both kinds at once, each in its own lab: the fixed waits below serve both
    got: dict[str, list[dict[str, list[Any]]]] = {kind: [] for kind in labs}
    routers = {kind: lab.start("r1", kind, conf()) for kind, lab in labs.items()}
    for kind, lab in labs.items():
        lab.wait_holder("r1", STARTUP_S)
        lab.wait_holder("r1", STARTUP_S, vip=VIP6)
        lab.wait_for(lambda lab=lab: "fd77::200" in json.dumps(ruleset(lab)),  # type: ignore[misc]
                     3.0, f"{kind}: the sets")
    for glob, inst in (("  nftables other", "no_accept"), ("", "accept")):
        for kind, lab in labs.items():
            (lab.tmp / "r1.conf").write_text(conf(glob, inst))
            os.kill(routers[kind].proc.pid, signal.SIGHUP)
        time.sleep(2.0)  # a reload logs no line both daemons share to wait for
        for kind, lab in labs.items():
            assert lab.holders() == ["r1"], kind
            got[kind].append(ruleset(lab))
    for kind, lab in labs.items():
        lab.stop(routers[kind])
        got[kind].append(ruleset(lab))
    assert got["hafast"][0] == got["keepalived"][0]
    assert got["hafast"][2] == {}
    assert got["keepalived"][2] == got["keepalived"][1]
    assert sorted(got["hafast"][0]) == ["ip keepalived", "ip6 keepalived"]
    assert "10.77.0.101" in json.dumps(got["hafast"][0])
    assert "10.77.0.101" in json.dumps(got["keepalived"][1])  # keepalived: still dropped
    assert "10.77.0.101" not in json.dumps(got["hafast"][1])  # hafast: as the config says
