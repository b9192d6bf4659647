"""A master's VIP, virtual route or rule deleted by someone else (hafast.vrrp.vipwatch,
fsm.VipDeleted): keepalived 2.2.7's set_vrrp_backup, and the matching of its
address_is_ours / route_is_ours / rule_is_ours."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from typing import cast

from hafast.config.iproute import RouteSpec, parse_route
from hafast.config.iprule import parse_rule
from hafast.config.loader import load_text
from hafast.config.model import SyncGroup as SyncGroupSpec
from hafast.config.model import VirtualAddress
from hafast.net.routewatch import DeletedAddress, DeletedRoute
from hafast.net.rules import deletion_key
from hafast.net.vip import MemoryVips
from hafast.vrrp import fsm
from hafast.vrrp.fsm import State, TimerKind
from hafast.vrrp.instance import Instance, InstanceSpec, ManualTimers, NullAnnouncer
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.sync_group import SyncGroup
from hafast.vrrp.timers import skew_time_us
from hafast.vrrp.vipwatch import VipWatch

LO = socket.if_nametoindex("lo")
NO_LOOP = cast(asyncio.AbstractEventLoop, None)  # families() and the matching need none
ADV = 1_000_000


def _master(name: str = "A", **spec: object) -> tuple[Instance, ManualTimers, MemoryVips]:
    clock, vips = ManualTimers(), MemoryVips()
    fields: dict[str, object] = {
        "vips": (VirtualAddress("10.0.0.100", 24, 4),
                 VirtualAddress("10.0.0.101", 24, 4, options=("no_track",))),
        "routes": (parse_route(("10.91.0.0/16", "dev", "lo")),
                   parse_route(("10.92.0.0/16", "dev", "lo", "no_track")),
                   parse_route(("blackhole", "10.93.0.0/16")),
                   parse_route(("10.96.0.0/16", "dev", "lo", "metric", "7"))),
        "rules": (parse_rule("from 10.94.0.0/16 table 100 priority 200".split())[0],
                  parse_rule("from 10.95.0.0/16 table 100 priority 201 no_track".split())[0]),
        **spec}
    p = VrrpParams(priority=150, src_addr=0x0A000001, garp_master_delay_us=0,
                   adver_int_us=ADV)
    inst = Instance(InstanceSpec(name=name, ifname="lo", family=4, params=p,
                                 **fields),  # type: ignore[arg-type]
                    timers=clock, vips=vips, announcer=NullAnnouncer(), notifier=None)
    inst.start()
    clock.advance(4 * ADV)
    assert inst.state is State.MASTER
    vips.log.clear()
    return inst, clock, vips


def _watch(*insts: Instance) -> VipWatch:
    watch = VipWatch(NO_LOOP, lambda: insts)
    assert watch.families() == ({4}, {4}, {4})
    return watch


def _route(dst: str, plen: int, *, oif: int = LO, metric: int = 0, proto: int = 18
           ) -> DeletedRoute:
    return DeletedRoute(4, dst, plen, 254, 0, proto, metric, oif)


def test_the_fsm_steps_down_with_priority_0_and_a_skew_time_timer() -> None:
    p = VrrpParams(priority=150, src_addr=1, adver_int_us=ADV)
    m = fsm.VrrpMachine(p)
    m.handle(fsm.Startup(0))
    m.handle(fsm.MasterDownTimerFired(m.state.master_down_at or 0))
    assert m.state.state is State.MASTER
    actions = m.handle(fsm.VipDeleted(5 * ADV, "VIP 10.0.0.100"))
    assert m.state.state is State.BACKUP
    at = 5 * ADV + skew_time_us(p.version, 150, ADV)
    assert fsm.SendAdvert(0) in actions and fsm.RemoveVips() in actions
    assert fsm.StartTimer(TimerKind.MASTER_DOWN, at) in actions
    assert actions[-1] == fsm.Notify(State.BACKUP, 150)
    # not master: nothing to lose
    assert m.handle(fsm.VipDeleted(5 * ADV + 1, "x")) == ()


def test_a_deleted_vip_makes_the_master_step_down_and_come_back() -> None:
    inst, clock, vips = _master()
    watch = _watch(inst)
    watch._addr_deleted(DeletedAddress("10.0.0.100", LO + 1000))  # another interface
    watch._addr_deleted(DeletedAddress("10.0.0.101", LO))  # no_track
    watch._addr_deleted(DeletedAddress("10.0.0.7", LO))  # not ours
    assert inst.state is State.MASTER and vips.log == []
    watch._addr_deleted(DeletedAddress("10.0.0.100", LO))
    assert inst.state is State.BACKUP and watch.stepped_down == 1
    assert vips.log[0][0] == "remove"
    # a backup's deletions (its own, as it left) are not followed
    watch._addr_deleted(DeletedAddress("10.0.0.100", LO))
    assert watch.stepped_down == 1
    clock.advance(skew_time_us(2, 150, ADV))
    assert inst.state is State.MASTER
    assert [s for _t, s in inst.transitions[-2:]] == [State.BACKUP, State.MASTER]


def test_routes_match_as_route_is_ours() -> None:
    inst, _clock, _vips = _master()
    watch = _watch(inst)
    for d in (_route("10.92.0.0", 16),  # no_track
              _route("10.93.0.0", 16, oif=0),  # no dev: keepalived cannot track it
              _route("10.91.0.0", 16, proto=3),  # not keepalived's
              _route("10.91.0.0", 16, oif=LO + 1000),  # another interface
              _route("10.96.0.0", 16),  # another metric
              _route("10.91.0.0", 24)):
        watch._route_deleted(d)
    assert inst.state is State.MASTER
    watch._route_deleted(_route("10.96.0.0", 16, metric=7))
    assert inst.state is State.BACKUP


def test_rules_match_unless_no_track() -> None:
    inst, _clock, _vips = _master()
    watch = _watch(inst)
    untracked = deletion_key(parse_rule(
        "from 10.95.0.0/16 table 100 priority 201 no_track".split())[0])
    assert untracked is not None
    watch._rule_deleted(untracked)
    assert inst.state is State.MASTER
    tracked = deletion_key(parse_rule("from 10.94.0.0/16 table 100 priority 200".split())[0])
    assert tracked is not None
    watch._rule_deleted(tracked)
    assert inst.state is State.BACKUP


def test_the_first_instance_with_the_route_decides() -> None:
    """route_is_ours stops at the first instance with the line, master or not."""
    a, _c1, _v1 = _master("A")
    b, _c2, _v2 = _master("B")
    a.feed(fsm.VipDeleted(a.timers.now_us(), "test"))  # A is BACKUP now
    watch = _watch(a, b)
    watch._route_deleted(_route("10.91.0.0", 16))
    assert (a.state, b.state) == (State.BACKUP, State.MASTER)


def test_nothing_to_follow_without_tracked_entries() -> None:
    inst, _clock, _vips = _master(vips=(), routes=(RouteSpec("10.1.0.0/16"),), rules=())
    assert VipWatch(NO_LOOP, lambda: (inst,)).families() == (
        set(), set(), set())


def test_no_track_on_a_virtual_route_is_read() -> None:
    cfg = load_text("vrrp_instance V { interface lo\n virtual_router_id 7\n"
                    " virtual_ipaddress { 10.0.0.1/24 }\n"
                    " virtual_routes { 10.92.0.0/16 dev lo no_track\n"
                    "   blackhole 10.93.0.0/16 }\n }\n")
    assert not cfg.errors, cfg.errors
    route = parse_route(cfg.config.vrrp_instances[0].virtual_routes[0])
    assert route.no_track and not route.tracked


def test_a_sync_group_steps_down_together_without_a_fault() -> None:
    a, clock, _v1 = _master("A")
    b = Instance(replace(a.spec, name="B"), timers=clock, vips=MemoryVips(),
                 announcer=NullAnnouncer(), notifier=None)
    b.start()
    clock.advance(4 * ADV)
    group = SyncGroup(SyncGroupSpec(name="G", group=("A", "B")), [a, b])
    group.state = State.MASTER
    watch = VipWatch(NO_LOOP, lambda: (a, b), lambda: (group,))
    watch._addr_deleted(DeletedAddress("10.0.0.100", LO))
    assert (a.state, b.state, group.state) == (State.BACKUP, State.BACKUP, State.BACKUP)
    assert State.FAULT not in [s for _t, s in b.transitions]
    clock.advance(skew_time_us(2, 150, ADV))
    assert (a.state, b.state) == (State.MASTER, State.MASTER)
