"""track_group (issue 14): keepalived 2.2.7's static track groups.

The group's instances track the interface of each static address, route (``dev``) and
rule (``iif``) naming it (hafast.vrrp.build); once a family's static route (rule) names
a group, a deleted static route (rule) of that family is added again
(hafast.net.statics, hafast.net.routewatch); an interface coming up gets its static
addresses and routes back.  The netns side-by-side test is tests/netns/test_track_group.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from hafast.config.iproute import parse_route
from hafast.config.iprule import parse_rule
from hafast.config.loader import load_text
from hafast.config.model import Config, TrackRef
from hafast.lib import netlink
from hafast.net.routewatch import (
    _HDR,
    FRA_PROTOCOL,
    FRA_TABLE,
    RTA_DST,
    DeletedAddress,
    DeletedRoute,
    deletions,
    rule_key,
)
from hafast.net.rules import RTM_DELRULE
from hafast.net.statics import Statics, _key_of
from hafast.net.vip import MemoryVips
from hafast.vrrp.build import plan_instances, static_track_interfaces

CONF = """\
global_defs {
  default_interface eth9
}
track_group TG {
  group { V1 V2 }
}
static_ipaddress {
  10.84.0.1/24 track_group TG
  10.84.1.1/24 dev eth3
}
static_routes {
  10.89.0.0/16 dev eth1 track_group TG
  10.88.0.0/16 dev eth1 table 300
  10.87.0.0/16 via 10.77.0.254
  fd89::/64 dev eth1
}
static_rules {
  from 10.86.0.0/16 iif eth2 table 300 priority 100 track_group TG
  from 10.85.0.0/16 table 300 priority 101
  from 10.83.0.0/16 table 300 priority 102 no_track
}
vrrp_instance V1 {
  interface eth0
  virtual_router_id 1
  no_virtual_ipaddress
  track_interface {
    eth1 weight 10
  }
}
vrrp_instance V2 {
  interface eth0
  virtual_router_id 2
  no_virtual_ipaddress
}
vrrp_instance V3 {
  interface eth0
  virtual_router_id 3
  no_virtual_ipaddress
}
"""


def config(text: str = CONF) -> Config:
    res = load_text(text)
    assert res.errors == [], res.errors
    return res.config


def test_members_track_the_interfaces_at_weight_0() -> None:
    cfg = config()
    assert [(g.name, g.group) for g in cfg.track_groups] == [("TG", ("V1", "V2"))]
    assert static_track_interfaces(cfg) == {"V1": ("eth9", "eth1", "eth2"),
                                            "V2": ("eth9", "eth1", "eth2")}
    plans = {p.spec.name: p for p in plan_instances(cfg)}
    # keepalived keeps one entry per interface, the unweighted one
    assert plans["V1"].track_interface == (TrackRef("eth1", 0), TrackRef("eth9", 0),
                                           TrackRef("eth2", 0))
    assert plans["V3"].track_interface == ()


class FakeLinks:
    def __init__(self) -> None:
        self.watchers: dict[str, list[Callable[[bool], None]]] = {}

    def watch(self, ifname: str, cb: Callable[[bool], None]) -> bool:
        self.watchers.setdefault(ifname, []).append(cb)
        return True

    def set(self, ifname: str, up: bool) -> None:
        for cb in self.watchers.get(ifname, []):
            cb(up)


def deleted(dst: str, plen: int, table: int = 254, proto: int = 18) -> DeletedRoute:
    return DeletedRoute(6 if ":" in dst else 4, dst, plen, table, 0, proto)


def test_a_deleted_static_route_or_rule_is_added_again() -> None:
    mem, links = MemoryVips(), FakeLinks()
    statics = Statics(backend=mem, linkwatch=links)
    statics.apply(config())
    mem.log.clear()
    # IPv4 routes are followed (one names a group), with a dev; the table counts
    statics._route_deleted(deleted("10.89.0.0", 16))
    statics._route_deleted(deleted("10.88.0.0", 16, table=300))
    statics._route_deleted(deleted("10.88.0.0", 16))  # not in main: not ours
    statics._route_deleted(deleted("10.87.0.0", 16))  # no dev: keepalived cannot track it
    statics._route_deleted(deleted("fd89::", 64))  # no IPv6 route names a group
    statics._route_deleted(deleted("10.89.0.0", 16, proto=4))  # someone else's
    assert mem.log == [("reinstate", "10.89.0.0/16"), ("reinstate", "10.88.0.0/16")]
    mem.log.clear()
    for line in ("from 10.86.0.0/16 iif eth2 table 300 priority 100 track_group TG",
                 "from 10.85.0.0/16 table 300 priority 101",
                 "from 10.83.0.0/16 table 300 priority 102 no_track"):
        key = _key_of(parse_rule(line.split(), static=True)[0])
        assert key is not None
        statics._rule_deleted(key)
    assert [w for _k, w in mem.log] == [
        "from 10.86.0.0/16 priority 100 iif eth2 lookup 300",
        "from 10.85.0.0/16 priority 101 lookup 300"]
    assert statics.restored == {"route": 2, "rule": 2}
    mem.log.clear()
    # an interface coming up gets its static addresses and routes back
    links.set("eth1", True)
    links.set("eth9", True)
    links.set("eth1", False)
    assert [e for e in mem.log if e[0] == "reinstate"] == [
        ("reinstate", "10.89.0.0/16"), ("reinstate", "10.88.0.0/16"),
        ("reinstate", "fd89::/64"), ("reinstate", "10.84.0.1/24")]
    statics.release()
    mem.log.clear()
    statics._route_deleted(deleted("10.89.0.0", 16))  # our own deletions at stop
    links.set("eth1", True)
    assert mem.log == []


def test_nothing_followed_without_a_group() -> None:
    mem = MemoryVips()
    statics = Statics(backend=mem)
    statics.apply(config(CONF.replace(" track_group TG", "")))
    statics._route_deleted(deleted("10.89.0.0", 16))
    statics._rule_deleted(_key_of(parse_rule(
        "from 10.85.0.0/16 table 300 priority 101".split(), static=True)[0]))  # type: ignore[arg-type]
    assert ("reinstate", "10.89.0.0/16") not in mem.log
    assert statics.restored == {}


def test_a_kernel_rule_deletion_matches_with_the_kernels_extra_attributes() -> None:
    rule = parse_rule("from 10.86.0.0/16 iif eth2 table 300 priority 100".split(),
                      static=True)[0]
    ours = _key_of(rule)
    assert ours is not None
    # the kernel's notification: FRA_TABLE with the number, and attributes of its own
    body = _HDR.pack(socket.AF_INET, 0, 16, 0, 252, 0, 0, 1, 0)
    for kind, payload in sorted(ours.attrs):
        body += netlink.attr(kind, payload)
    body += netlink.attr(FRA_TABLE, (300).to_bytes(4, "little"))
    body += netlink.attr(14, (0xFFFFFFFF).to_bytes(4, "little"))  # FRA_SUPPRESS_PREFIXLEN
    got = list(deletions(netlink.pack_message(RTM_DELRULE, 0, 0, body)))
    assert len(got) == 1 and ours.matches(got[0])  # type: ignore[arg-type]
    other = _key_of(parse_rule("from 10.86.0.0/16 iif eth2 table 300 priority 99".split(),
                               static=True)[0])
    assert other is not None and not other.matches(got[0])  # type: ignore[arg-type]
    # a rule marked with another protocol is not keepalived's: not reported
    foreign = body.replace(netlink.attr(FRA_PROTOCOL, bytes([18])),
                           netlink.attr(FRA_PROTOCOL, bytes([4])))
    assert foreign != body
    assert list(deletions(netlink.pack_message(RTM_DELRULE, 0, 0, foreign))) == []
    assert rule_key(b"\x02") is None


def test_route_deletions_are_parsed_with_the_table_attribute() -> None:
    body = _HDR.pack(socket.AF_INET6, 64, 0, 0, 252, 18, 0, 1, 0)
    body += netlink.attr(RTA_DST, socket.inet_pton(socket.AF_INET6, "fd89::"))
    body += netlink.attr(15, (1000).to_bytes(4, "little"))
    assert list(deletions(netlink.pack_message(25, 0, 0, body))) == [
        DeletedRoute(6, "fd89::", 64, 1000, 0, 18)]
    assert parse_route(("default", "via", "fd00::1", "dev", "eth1")).family == 6


def test_a_reload_that_changes_only_the_group_leaves_the_entries() -> None:
    mem = MemoryVips()
    statics = Statics(backend=mem)
    statics.apply(config())
    mem.log.clear()
    statics.apply(config(CONF.replace(" track_group TG", "")))
    assert [e for e in mem.log if e[0] == "remove"] == []
    assert parse_route(("10.89.0.0/16", "dev", "eth1")) in mem.routes
    # and the members no longer track the interfaces
    assert static_track_interfaces(config(CONF.replace(" track_group TG", ""))) == {}


def test_track_group_on_an_instance_address_is_ignored_as_keepalived_does() -> None:
    res = load_text("vrrp_instance V {\n interface eth0\n virtual_router_id 1\n"
                    " virtual_ipaddress {\n  10.0.0.1/24 track_group TG\n }\n}\n", file="k.conf")
    assert [(d.line, d.severity, d.message.split(" (")[0]) for d in res.diagnostics] == [
        (5, "warning", "Unknown configuration entry 'track_group' for ip address - ignoring")]


def test_a_deleted_static_address_is_added_again_unless_no_track() -> None:
    mem = MemoryVips()
    statics = Statics(backend=mem)
    statics.apply(config("global_defs {\n default_interface lo\n}\nstatic_ipaddress {\n"
                         " 10.84.0.1/24\n fd84::1/64 dev lo\n 10.84.1.1/24 no_track\n}\n"))
    mem.log.clear()
    for address in ("10.84.0.1", "fd84:0::1", "10.84.1.1"):
        statics._addr_deleted(DeletedAddress(address, socket.if_nametoindex("lo")))
    statics._addr_deleted(DeletedAddress("10.84.0.1", 0))  # on another link
    assert [e for e in mem.log if e[0] == "reinstate"] == [
        ("reinstate", "10.84.0.1/24"), ("reinstate", "fd84::1/64")]
    addr_del = bytes([socket.AF_INET, 24, 0, 0]) + (1).to_bytes(4, "little")
    addr_del += netlink.attr(2, bytes([10, 84, 0, 1]))  # IFA_LOCAL
    assert list(deletions(netlink.pack_message(21, 0, 0, addr_del))) == [
        DeletedAddress("10.84.0.1", 1)]
