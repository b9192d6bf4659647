"""The VRRP instance shell with a fake link, in-memory VIPs and a manual clock.

Adverts travel through the real codec (``encode_ipv4`` then ``decode_ipv4`` with
each receiver's expectations, on the twin picked by ``twin_flavour``), so these
tests cover the shell's use of the codec as well as its action handling.
Nothing sleeps and nothing needs privileges.
"""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

import pytest

from hafast._core.vrrp_constants import AUTH_NONE, AUTH_PASS, auth_data_from_pass
from hafast.config.loader import load_text
from hafast.config.model import VirtualAddress
from hafast.lib.notify import Notifier, NotifyScripts, fifo_line
from hafast.net.vip import MemoryVips, parse_route
from hafast.vrrp.build import plan_instances
from hafast.vrrp.fsm import AdvertReceived, State
from hafast.vrrp.instance import (
    COUNTER_NAMES,
    Instance,
    InstanceSpec,
    ManualTimers,
    NullAnnouncer,
)
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.sync_group import SyncGroup
from hafast.vrrp.timers import master_down_interval_us, skew_time_us
from hafast.vrrp.tracking import contribution, file_contribution
from tests.conftest import load_twin

SEC = 1_000_000
GROUP = bytes([224, 0, 0, 18])
VIP = VirtualAddress("10.0.0.100", 24, 4)


@dataclass
class FakeLink:
    """A shared segment: what one instance sends, the others decode and receive."""

    codec: ModuleType
    members: list[tuple[Instance, dict[str, object]]] = field(default_factory=list)
    wire: list[bytes] = field(default_factory=list)
    tamper: dict[str, object] = field(default_factory=dict)

    def join(self, inst: Instance, src: bytes, *, auth: str | None = None,
             version: int = 2, adver_int: int = 1, vips: tuple[bytes, ...] = ()) -> None:
        tx = {"version": version, "adver_int": adver_int, "src": src,
              "auth_type": AUTH_PASS if auth else AUTH_NONE,
              "auth_data": auth_data_from_pass(auth) if auth else b"",
              "vips": vips or inst.spec.packed_vips}
        inst.sender = _Sender(self, inst, tx)
        self.members.append((inst, tx))

    def deliver(self, sender: Instance, tx: dict[str, object], priority: int) -> None:
        t = {**tx, **self.tamper.get(sender.name, {})}  # type: ignore[dict-item]
        pkt = self.codec.encode_ipv4(
            t["version"], 51, priority, t["vips"], t["adver_int"], src=t["src"],
            dst=GROUP, auth_type=t["auth_type"], auth_data=t["auth_data"])
        self.wire.append(pkt)
        for inst, rx in self.members:
            if inst is sender or (inst.state is State.INITIALIZE and not inst.transitions):
                continue
            kw: dict[str, object] = {"version": rx["version"]}
            if rx["version"] == 2:
                kw.update(auth_type=rx["auth_type"], adver_int=rx["adver_int"])
                if rx["auth_type"] == AUTH_PASS:
                    kw["auth_data"] = rx["auth_data"]
            inst.on_advert(self.codec.decode_ipv4(pkt, **kw))


@dataclass
class _Sender:
    link: FakeLink
    inst: Instance
    tx: dict[str, object]

    def send(self, priority: int) -> bool:
        self.link.deliver(self.inst, self.tx, priority)
        return True


def _spec(name: str, priority: int, src: int, **params: object) -> InstanceSpec:
    p = VrrpParams(priority=priority, src_addr=src, garp_master_delay_us=0,
                   **params)  # type: ignore[arg-type]
    return InstanceSpec(name=name, ifname="eth0", family=4, params=p, vips=(VIP,),
                        routes=(parse_route(("10.9.0.0/16", "via", "10.0.0.254")),))


def _inst(spec: InstanceSpec, clock: ManualTimers, vips: MemoryVips | None = None) -> Instance:
    return Instance(spec, timers=clock, vips=vips or MemoryVips(), announcer=NullAnnouncer(),
                    notifier=None)


@pytest.fixture
def codec(twin_flavour: str) -> ModuleType:
    return load_twin("vrrp_codec", twin_flavour)


def test_alone_it_becomes_master_installs_vips_and_advertises(codec: ModuleType) -> None:
    clock, vips = ManualTimers(), MemoryVips()
    a = _inst(_spec("A", 100, 0x0A000001), clock, vips)
    link = FakeLink(codec)
    link.join(a, bytes([10, 0, 0, 1]))
    a.start()
    assert a.state is State.BACKUP
    clock.advance(master_down_interval_us(2, 100, SEC) - 1)
    assert a.state is State.BACKUP and not link.wire
    clock.advance(1)
    assert a.state is State.MASTER
    assert ("eth0", "10.0.0.100/24") in vips.installed and vips.routes
    assert a.announcer.bursts == [(1, 5)]
    clock.advance(3 * SEC)
    assert len(link.wire) == 4  # one on takeover, then one per second
    assert a.counters["advert_sent"] == 4 and a.counters["become_master"] == 1
    assert set(a.counters) == set(COUNTER_NAMES)


def test_pair_elects_higher_priority_and_graceful_stop_hands_over(codec: ModuleType) -> None:
    clock = ManualTimers()
    va, vb = MemoryVips(), MemoryVips()
    a = _inst(_spec("A", 100, 0x0A000001), clock, va)
    b = _inst(_spec("B", 90, 0x0A000002), clock, vb)
    link = FakeLink(codec)
    link.join(a, bytes([10, 0, 0, 1]), auth="1111")
    link.join(b, bytes([10, 0, 0, 2]), auth="1111")
    b.start()
    a.start()
    clock.advance(5 * SEC)
    assert (a.state, b.state) == (State.MASTER, State.BACKUP)
    assert va.installed and not vb.installed
    assert b.counters["advert_rcvd"] > 0
    a.stop()
    assert a.counters["pri_zero_sent"] == 1 and not va.installed
    assert b.counters["pri_zero_rcvd"] == 1
    # RFC 3768 §6.4.2: priority 0 -> Master_Down_Timer = Skew_Time.
    clock.advance(skew_time_us(2, 90, SEC))
    assert b.state is State.MASTER and vb.installed


def test_higher_priority_advert_makes_master_step_down(codec: ModuleType) -> None:
    clock = ManualTimers()
    vb = MemoryVips()
    a = _inst(_spec("A", 100, 0x0A000001), clock)
    b = _inst(_spec("B", 90, 0x0A000002), clock, vb)
    link = FakeLink(codec)
    link.join(a, bytes([10, 0, 0, 1]))
    link.join(b, bytes([10, 0, 0, 2]))
    b.start()
    clock.advance(4 * SEC)
    assert b.state is State.MASTER
    a.start()
    clock.advance(4 * SEC)
    assert (a.state, b.state) == (State.MASTER, State.BACKUP)
    assert b.counters["release_master"] == 1 and not vb.installed


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ({"auth_data": auth_data_from_pass("2222")}, "auth_failure"),
        ({"auth_type": AUTH_NONE, "auth_data": b""}, "authtype_mismatch"),
        ({"adver_int": 2}, "advert_interval_err"),
        ({"vips": (bytes([10, 0, 0, 99]),)}, "addr_list_err"),
    ],
)
def test_mismatched_adverts_are_counted_and_ignored(
    codec: ModuleType, tamper: dict[str, object], reason: str
) -> None:
    clock = ManualTimers()
    a = _inst(_spec("A", 100, 0x0A000001), clock)
    b = _inst(_spec("B", 90, 0x0A000002), clock)
    link = FakeLink(codec, tamper={"A": tamper})
    link.join(a, bytes([10, 0, 0, 1]), auth="1111")
    link.join(b, bytes([10, 0, 0, 2]), auth="1111")
    a.start()
    b.start()
    clock.advance(6 * SEC)
    # B never hears a valid advert: both are master (split brain), B counted why.
    assert (a.state, b.state) == (State.MASTER, State.MASTER)
    assert b.counters[reason] > 0 and b.rejects[reason] == b.counters[reason]
    assert b.counters["advert_rcvd"] == 0


def test_version_mismatch_counted_by_reason(codec: ModuleType) -> None:
    clock = ManualTimers()
    a = _inst(_spec("A", 100, 0x0A000001), clock)
    b = _inst(_spec("B", 90, 0x0A000002, version=3, adver_int_us=SEC), clock)
    link = FakeLink(codec)
    link.join(a, bytes([10, 0, 0, 1]))
    link.join(b, bytes([10, 0, 0, 2]), version=3, adver_int=100)
    a.start()
    b.start()
    clock.advance(5 * SEC)
    assert b.rejects.get("version_err", 0) > 0 and a.rejects.get("version_err", 0) > 0


def test_stale_timer_is_ignored_and_restart_replaces() -> None:
    clock = ManualTimers()
    a = _inst(_spec("A", 100, 1), clock)
    a.start()
    clock.advance(SEC)
    # A higher-priority advert re-arms the Master_Down_Timer; the first deadline
    # still sits on the clock and must be ignored when it fires.
    a.feed(AdvertReceived(clock.now_us(), 200, 2))
    clock.advance(3 * SEC)
    assert a.state is State.BACKUP
    clock.advance(master_down_interval_us(2, 100, SEC))
    assert a.state is State.MASTER and a.counters["become_master"] == 1


def test_fault_and_weight_from_trackers() -> None:
    clock = ManualTimers()
    vips = MemoryVips()
    a = _inst(_spec("A", 100, 1), clock, vips)
    a.start()
    clock.advance(4 * SEC)
    assert a.state is State.MASTER
    a.set_weight("script:chk", -20)
    assert a.priority == 80
    a.raise_fault("interface:eth0")
    assert a.state is State.FAULT and not vips.installed
    a.clear_fault("interface:eth0")
    assert a.state is State.BACKUP


def test_sync_group_members_follow_fault_and_master() -> None:
    clock = ManualTimers()
    a = _inst(_spec("A", 100, 1), clock)
    b = _inst(replace(_spec("B", 100, 1), name="B"), clock)
    from hafast.config.model import SyncGroup as SyncGroupSpec

    group = SyncGroup(SyncGroupSpec("G", ("A", "B")), [a, b])
    a.start()
    b.start()
    clock.advance(4 * SEC)
    assert (a.state, b.state) == (State.MASTER, State.MASTER)
    assert group.state is State.MASTER
    a.raise_fault("interface:eth0")
    assert (a.state, b.state) == (State.FAULT, State.FAULT)
    a.clear_fault("interface:eth0")
    assert (a.state, b.state) == (State.BACKUP, State.BACKUP)


def test_stop_in_every_state_never_raises() -> None:
    for prep in (lambda a, c: None, lambda a, c: c.advance(4 * SEC),
                 lambda a, c: a.raise_fault("x")):
        clock = ManualTimers()
        a = _inst(_spec("A", 100, 1), clock)
        a.start()
        prep(a, clock)
        a.stop()
        assert a.state is State.INITIALIZE
        clock.advance(10 * SEC)
        assert a.state is State.INITIALIZE


def test_tracker_weight_rules() -> None:
    assert contribution(False, 0) == (True, 0)
    assert contribution(True, 0) == (False, 0)
    assert contribution(True, 10) == (False, 10) and contribution(False, 10) == (False, 0)
    assert contribution(False, -20) == (False, -20) and contribution(True, -20) == (False, 0)
    assert file_contribution(5, 2) == (False, 10)
    assert file_contribution(-200, 2) == (True, 0)


@pytest.mark.usefixtures("programs_exist")
def test_from_config_maps_the_seed_instance() -> None:
    text = """
global_defs { vrrp_garp_master_delay 1 }
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 1
  authentication { auth_type PASS
  auth_pass 1111 }
  virtual_ipaddress { 192.168.77.100/24 dev eth0 label eth0:1 }
  notify /usr/local/bin/notify.sh
}
"""
    res = load_text(text)
    assert res.ok, res.diagnostics
    plan = plan_instances(res.config)[0]
    ch, spec = plan.channel, plan.spec
    assert (ch.vrid, ch.version, ch.adver_int, ch.auth_type) == (51, 2, 1, AUTH_PASS)
    assert ch.auth_data == b"1111\0\0\0\0" and ch.group == GROUP and ch.peers == ()
    assert ch.addresses == (bytes([192, 168, 77, 100]),)
    assert spec.params.initial_master and spec.params.priority == 100
    assert spec.params.garp_master_delay_us == SEC
    assert spec.scripts.notify == ("/usr/local/bin/notify.sh",)
    assert spec.vips[0].label == "eth0:1"


def test_notifier_writes_fifo_lines_in_order_and_runs_scripts(tmp_path: Path) -> None:
    fifo = tmp_path / "notify.fifo"
    out = tmp_path / "args"
    script = tmp_path / "n.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {out}\n')
    script.chmod(0o755)

    async def body() -> list[bytes]:
        loop = asyncio.get_running_loop()
        n = Notifier(loop, [str(fifo)])
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        scripts = NotifyScripts(notify=(str(script),))
        n.state_change("INSTANCE", "VI_1", "BACKUP", 100, scripts)
        n.state_change("INSTANCE", "VI_1", "MASTER", 100, scripts)
        for _ in range(200):
            if out.exists() and len(out.read_text().splitlines()) == 2:
                break
            await asyncio.sleep(0.01)
        data = os.read(reader, 4096)
        os.close(reader)
        n.close()
        return data.splitlines(keepends=True)

    lines = asyncio.run(body())
    assert lines == [fifo_line("INSTANCE", "VI_1", "BACKUP", 100),
                     fifo_line("INSTANCE", "VI_1", "MASTER", 100)]
    assert sorted(out.read_text().splitlines()) == ["INSTANCE VI_1 BACKUP 100",
                                                    "INSTANCE VI_1 MASTER 100"]


def test_timerfd_timers_fire_in_order_and_honour_cancel() -> None:
    from hafast.vrrp.instance import TimerfdTimers

    async def body() -> list[str]:
        loop = asyncio.get_running_loop()
        t = TimerfdTimers(loop)
        fired: list[str] = []
        now = t.now_us()
        t.call_at(now + 30_000, lambda: fired.append("c"))
        t.call_at(now + 10_000, lambda: fired.append("a"))
        t.call_at(now + 20_000, lambda: fired.append("x")).cancel()
        t.call_at(now + 15_000, lambda: fired.append("b"))
        t.call_at(now - 5, lambda: fired.append("past"))
        await asyncio.sleep(0.08)
        assert t.now_us() >= now + 30_000
        t.close()
        return fired

    assert asyncio.run(body()) == ["past", "a", "b", "c"]
