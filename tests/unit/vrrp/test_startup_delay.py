"""keepalived's ``vrrp_startup_delay`` (global_defs), as 2.2.7 runs it.

keepalived (vrrp_daemon.c start_vrrp) sets ``vrrp_delayed_start_time`` once per VRRP
process start, never on reload; vrrp_scheduler.c ``vrrp_init_instance_sands`` then
arms every BACKUP timer from that instant instead of from now while it lies ahead.
Instances enter BACKUP at once (and notify it), adverts are read and processed
meanwhile; the address owner waits silently as a backup with a 1 µs timer.
"""

from __future__ import annotations

from dataclasses import replace

from hafast.config.loader import load_text
from hafast.lib.notify import NotifyScripts
from hafast.net.vip import MemoryVips
from hafast.vrrp.from_config import startup_delay_us
from hafast.vrrp.fsm import (
    AdvertReceived,
    FaultCleared,
    FaultRaised,
    MasterDownTimerFired,
    Notify,
    StartTimer,
    Startup,
    State,
    TimerKind,
    VrrpMachine,
)
from hafast.vrrp.instance import Instance, InstanceSpec, ManualTimers, NullAnnouncer
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.timers import master_down_interval_us, skew_time_min_us, skew_time_us

SEC = 1_000_000
LOCAL = 0x0A000005
PEER = 0x0A000002
DELAY = 5 * SEC
MD = TimerKind.MASTER_DOWN


def _down(p: VrrpParams) -> int:
    return master_down_interval_us(p.version, p.priority, p.adver_int_us, 3)


def _machine(**kw: object) -> VrrpMachine:
    base: dict[str, object] = {"priority": 100, "src_addr": LOCAL}
    base.update(kw)
    return VrrpMachine(VrrpParams(**base))  # type: ignore[arg-type]


def test_backup_at_once_but_its_first_timer_runs_from_the_end_of_the_delay() -> None:
    m = _machine()
    actions = m.handle(Startup(0, DELAY))
    assert m.state.state is State.BACKUP
    assert actions == (StartTimer(MD, DELAY + _down(m.params)), Notify(State.BACKUP, 100))
    # Without a delay (and once it is over) nothing changes.
    m2 = _machine()
    assert m2.handle(Startup(0))[0] == StartTimer(MD, _down(m2.params))
    m3 = _machine()
    assert m3.handle(Startup(DELAY, DELAY))[0] == StartTimer(MD, DELAY + _down(m3.params))


def test_the_owner_waits_silently_and_is_master_when_the_delay_ends() -> None:
    m = _machine(priority=255)
    assert m.handle(Startup(SEC, SEC + DELAY)) == (StartTimer(MD, SEC + DELAY),)
    assert m.state.state is State.BACKUP
    actions = m.handle(MasterDownTimerFired(SEC + DELAY, SEC + DELAY))
    assert m.state.state is State.MASTER
    assert Notify(State.MASTER, 255) in actions


def test_state_master_keeps_its_short_first_timer_after_the_delay() -> None:
    m = _machine(initial_master=True)
    p = m.params
    short = p.adver_int_us + skew_time_min_us(p.version, p.adver_int_us)
    assert m.handle(Startup(0, DELAY))[0] == StartTimer(MD, DELAY + short)


def test_a_master_heard_during_the_delay_rearms_from_the_end_of_it() -> None:
    m = _machine()
    m.handle(Startup(0, DELAY))
    actions = m.handle(AdvertReceived(2 * SEC, 200, PEER))
    assert actions == (StartTimer(MD, DELAY + _down(m.params)),)
    assert m.state.master_src == PEER
    # A master that stops (priority 0) during the delay: Skew_Time after it.
    skew = skew_time_us(m.params.version, 100, m.params.adver_int_us)
    assert m.handle(AdvertReceived(3 * SEC, 0, PEER)) == (StartTimer(MD, DELAY + skew),)
    # After the delay the RFC's arithmetic is back.
    at = 9 * SEC
    assert m.handle(AdvertReceived(at, 200, PEER)) == (StartTimer(MD, at + _down(m.params)),)


def test_a_discarded_lower_advert_during_the_delay_pushes_the_takeover_later() -> None:
    # keepalived 2.2.7 re-arms what was left of the timer from the end of the delay
    # (vrrp_state_backup's ignore_advert, then vrrp_init_instance_sands).
    m = _machine()
    m.handle(Startup(0, DELAY))
    first = DELAY + _down(m.params)
    assert m.handle(AdvertReceived(1 * SEC, 50, PEER)) == (
        StartTimer(MD, DELAY + first - SEC),)
    pushed = m.state.master_down_at
    assert pushed == 2 * DELAY + _down(m.params) - SEC
    # Once the delay is over a lower advert is discarded as the RFC says.
    assert m.handle(AdvertReceived(DELAY, 50, PEER)) == ()
    assert m.state.master_down_at == pushed
    m.handle(MasterDownTimerFired(pushed, pushed))
    assert m.state.state is State.MASTER


def test_faults_during_the_delay() -> None:
    m = _machine()
    m.handle(Startup(0, DELAY))
    m.handle(FaultRaised(SEC, "eth0"))
    assert m.state.state is State.FAULT
    # keepalived vrrp_state_leave_fault: back to BACKUP, timer from the delay's end.
    assert m.handle(FaultCleared(2 * SEC, "eth0"))[0] == StartTimer(MD, DELAY + _down(m.params))
    # The owner in FAULT at start (wantstate FAULT in keepalived 2.2.7) leaves it as a
    # BACKUP too, its timer from the delay's end.
    o = _machine(priority=255)
    o.handle(FaultRaised(0, "eth0"))
    o.handle(Startup(0, DELAY))
    assert o.handle(FaultCleared(SEC, "eth0"))[0] == StartTimer(MD, DELAY + _down(o.params))
    assert o.state.state is State.BACKUP


class _Recorder:
    def __init__(self) -> None:
        self.states: list[str] = []

    def state_change(self, kind: str, name: str, state: str, priority: int,
                     scripts: NotifyScripts) -> None:
        self.states.append(state)


def _instance(priority: int = 100) -> tuple[Instance, _Recorder]:
    p = VrrpParams(priority=priority, src_addr=LOCAL, garp_master_delay_us=0)
    spec = InstanceSpec(name="VI_1", ifname="eth0", family=4, params=p)
    rec = _Recorder()
    inst = Instance(spec, timers=ManualTimers(), vips=MemoryVips(),
                    announcer=NullAnnouncer(), notifier=rec)  # type: ignore[arg-type]
    inst.delayed_until_us = DELAY
    return inst, rec


def test_the_instance_passes_the_delay_and_becomes_master_after_it() -> None:
    inst, rec = _instance()
    inst.start()
    assert inst.state is State.BACKUP and rec.states == ["BACKUP"]
    timers: ManualTimers = inst.timers  # type: ignore[assignment]
    timers.advance(DELAY + _down(inst.spec.params) - 1)
    assert inst.state is State.BACKUP
    timers.advance(1)
    assert inst.state is State.MASTER and rec.states == ["BACKUP", "MASTER"]


def test_a_master_resumed_after_a_worker_restart_is_not_held_by_the_delay() -> None:
    # The parent's never-two-masters guard (hafast.app.vipguard) lets a restarted
    # worker keep its VIPs only if it advertises again before the peer's takeover:
    # the delay must not hold a resumed master back.
    for priority in (100, 255):
        inst, rec = _instance(priority)
        inst.resume(State.MASTER)
        assert inst.state is State.MASTER and inst.timers.now_us() == 0
        assert rec.states == []


def test_the_keyword_loads_without_a_diagnostic() -> None:
    res = load_text("global_defs {\n vrrp_startup_delay 5.5\n}\n"
                    "vrrp_instance V {\n interface lo\n virtual_router_id 7\n}\n")
    assert res.config.global_defs.vrrp_startup_delay_us == 5_500_000
    assert not [d for d in res.diagnostics if "vrrp_startup_delay" in d.message]


def test_delay_after_boot_is_what_is_left_of_it_or_the_startup_delay() -> None:
    # keepalived 2.3 (global_parser.c): the longer of the two; 2.2.7 knows only
    # vrrp_startup_delay.
    res = load_text("global_defs {\n vrrp_delay_after_boot 120\n vrrp_startup_delay 5\n}\n"
                    "vrrp_instance V {\n interface lo\n virtual_router_id 7\n}\n")
    gd = res.config.global_defs
    assert not [d for d in res.diagnostics if "delay" in d.message]
    assert gd.vrrp_delay_after_boot_us == 120 * SEC
    assert startup_delay_us(gd, 100 * SEC) == 20 * SEC  # booted 100 s ago: 20 s left
    assert startup_delay_us(gd, 118 * SEC) == 5 * SEC  # the startup delay is longer
    assert startup_delay_us(gd, 3600 * SEC) == 5 * SEC  # a restart long after boot
    assert startup_delay_us(replace(gd, vrrp_startup_delay_us=0), 3600 * SEC) == 0
