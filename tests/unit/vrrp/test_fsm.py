"""The VRRP FSM on a manual clock: every state × event, and keepalived's divergences."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hafast.config.loader import load_text
from hafast.vrrp.from_config import params_for
from hafast.vrrp.fsm import (
    AddVips,
    AdverTimerFired,
    AdvertReceived,
    CancelTimer,
    Event,
    FaultCleared,
    FaultPending,
    FaultRaised,
    GarpTimerFired,
    MasterDownTimerFired,
    Notify,
    NotifyMasterRxLowerPri,
    NotifyPriority,
    PriorityChanged,
    RemoveVips,
    SendAdvert,
    SendGratuitous,
    Shutdown,
    StartTimer,
    Startup,
    State,
    TimerKind,
    VrrpMachine,
    VrrpState,
    Warn,
    handles,
    initial_state,
    step,
)
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.timers import master_down_interval_us, skew_time_min_us, skew_time_us

SEC = 1_000_000
LOCAL = 0x0A000005  # 10.0.0.5
LOWER_ADDR = 0x0A000002
HIGHER_ADDR = 0x0A000009

MD = TimerKind.MASTER_DOWN
ADV = TimerKind.ADVER
GD = TimerKind.GARP_DELAY
GL = TimerKind.GARP_LOWER_PRIO


def params(**kw: object) -> VrrpParams:
    base: dict[str, object] = {"priority": 100, "src_addr": LOCAL}
    base.update(kw)
    return VrrpParams(**base)  # type: ignore[arg-type]


def down(p: VrrpParams, priority: int | None = None, mai: int | None = None) -> int:
    return master_down_interval_us(
        p.version,
        p.priority if priority is None else priority,
        p.adver_int_us if mai is None else mai,
        p.down_timer_adverts_effective,
    )


def started(p: VrrpParams, now: int = 0) -> VrrpMachine:
    m = VrrpMachine(p)
    m.handle(Startup(now))
    return m


def master(p: VrrpParams, now: int = 0) -> VrrpMachine:
    """A machine that became master by its Master_Down_Timer at ``now``."""
    m = started(p, 0)
    if m.state.state is not State.MASTER:
        assert m.state.master_down_at is not None
        at = m.state.master_down_at
        m.handle(MasterDownTimerFired(max(now, at), at))
    assert m.state.state is State.MASTER
    return m


def fault(p: VrrpParams) -> VrrpMachine:
    m = started(p)
    m.handle(FaultRaised(1, "eth0"))
    assert m.state.state is State.FAULT
    return m


def adv(now: int, priority: int, src: int | bytes = HIGHER_ADDR, cs: int = 0) -> AdvertReceived:
    return AdvertReceived(now_us=now, priority=priority, src_addr=src, max_adver_int_cs=cs)


# ------------------------------------------------------------ the full table

# RFC 5798 §6.4 (and RFC 3768 §6.4) state tables plus keepalived's Fault: for a
# local priority-100 instance, every state × every event lands in this state.
# The adverts are from a higher (200) / lower (50) priority peer.
EVENTS: dict[str, Event] = {
    "startup": Startup(10 * SEC),
    "shutdown": Shutdown(10 * SEC),
    "master_down": MasterDownTimerFired(10 * SEC),
    "adver_timer": AdverTimerFired(10 * SEC),
    "garp_timer": GarpTimerFired(10 * SEC, TimerKind.GARP_DELAY),
    "advert_higher": adv(10 * SEC, 200),
    "advert_lower": adv(10 * SEC, 50, LOWER_ADDR),
    "advert_zero": adv(10 * SEC, 0),
    "priority_changed": PriorityChanged(10 * SEC, -10),
    "fault_raised": FaultRaised(10 * SEC, "eth1"),
    "fault_cleared": FaultCleared(10 * SEC, "eth0"),
}
INIT, B, M, F = State.INITIALIZE, State.BACKUP, State.MASTER, State.FAULT
EXPECTED: dict[State, dict[str, State]] = {
    INIT: {
        "startup": B,  # §6.4.1 (non-owner)
        "shutdown": INIT,
        "master_down": INIT,
        "adver_timer": INIT,
        "garp_timer": INIT,
        "advert_higher": INIT,
        "advert_lower": INIT,
        "advert_zero": INIT,
        "priority_changed": INIT,
        "fault_raised": INIT,  # remembered; Startup then goes to Fault
        "fault_cleared": INIT,
    },
    B: {
        "startup": B,
        "shutdown": INIT,  # §6.4.2
        "master_down": M,  # §6.4.2
        "adver_timer": B,
        "garp_timer": B,
        "advert_higher": B,  # §6.4.2 reset Master_Down_Timer
        "advert_lower": B,  # §6.4.2 discard (preempt)
        "advert_zero": B,  # §6.4.2 Master_Down_Timer = Skew_Time
        "priority_changed": B,
        "fault_raised": F,
        "fault_cleared": B,
    },
    M: {
        "startup": M,
        "shutdown": INIT,  # §6.4.3 priority 0 advert
        "master_down": M,
        "adver_timer": M,  # §6.4.3
        "garp_timer": M,
        "advert_higher": B,  # §6.4.3
        "advert_lower": M,  # §6.4.3 (keepalived: re-advertise)
        "advert_zero": M,  # §6.4.3 send advert at once
        "priority_changed": M,
        "fault_raised": F,
        "fault_cleared": M,
    },
    F: {
        "startup": F,
        "shutdown": INIT,
        "master_down": F,
        "adver_timer": F,
        "garp_timer": F,
        "advert_higher": F,
        "advert_lower": F,
        "advert_zero": F,
        "priority_changed": F,
        "fault_raised": F,
        "fault_cleared": B,  # the only fault ("eth0") clears
    },
}


def machine_in(state: State, p: VrrpParams) -> VrrpMachine:
    if state is INIT:
        return VrrpMachine(p)
    if state is B:
        return started(p)
    if state is M:
        return master(p)
    return fault(p)


@pytest.mark.parametrize("version", [2, 3], ids=["rfc3768", "rfc5798"])
@pytest.mark.parametrize("event_name", sorted(EVENTS))
@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
def test_every_state_and_event(state: State, event_name: str, version: int) -> None:
    m = machine_in(state, params(version=version))
    before = m.state
    actions = m.handle(EVENTS[event_name])
    assert m.state.state is EXPECTED[state][event_name]
    if not handles(state, type(EVENTS[event_name])):
        assert actions == ()
        assert m.state == before


def test_unhandled_events_are_ignored_without_change() -> None:
    p = params()
    s = initial_state(p)
    for event in (Shutdown(0), MasterDownTimerFired(0), AdverTimerFired(0), adv(0, 200)):
        assert step(p, s, event) == (s, ())


# ------------------------------------------------------------ Initialize


def test_startup_backup() -> None:
    p = params()
    m = VrrpMachine(p)
    actions = m.handle(Startup(7))
    assert actions == (StartTimer(MD, 7 + down(p)), Notify(B, 100))
    assert m.state.state is B
    assert m.state.master_down_at == 7 + 3_609_375
    assert m.state.master_adver_int_us == SEC


def test_startup_owner_goes_master_at_once() -> None:
    # RFC 5798 §6.4.1: priority 255 sends an advert, GARPs and starts Adver_Timer.
    p = params(priority=255)
    m = VrrpMachine(p)
    actions = m.handle(Startup(0))
    assert actions == (
        SendAdvert(255),
        AddVips(accept=True),
        SendGratuitous(5),
        StartTimer(ADV, SEC),
        StartTimer(GD, 5 * SEC),
        Notify(M, 255),
    )
    assert m.state.state is M


def test_owner_ignores_nopreempt() -> None:
    # keepalived clears nopreempt for priority 255.
    m = VrrpMachine(params(priority=255, nopreempt=True))
    m.handle(Startup(0))
    assert m.state.state is M


def test_owner_with_state_backup_waits_its_master_down_interval() -> None:
    # keepalived 2.2.7 vrrp_init_state: only an owner whose wantstate is MASTER
    # (state unset or MASTER) skips Backup; `state BACKUP` waits like anyone.
    p = params(priority=255, initial_backup=True)
    m = VrrpMachine(p)
    actions = m.handle(Startup(0))
    assert actions == (StartTimer(MD, down(p)), Notify(B, 255))
    assert m.state.state is B
    # a lower master is discarded (keepalived: "received lower priority advert"),
    # so the timer runs on and the owner takes over when it fires
    assert m.handle(adv(SEC, 254, LOWER_ADDR)) == ()
    assert m.state.master_down_at == down(p)
    assert m.handle(MasterDownTimerFired(down(p), down(p)))[0] == SendAdvert(255)
    assert m.state.state is M


def test_owner_with_state_backup_defers_to_another_owner() -> None:
    # RFC 5798 §6.4.2: an advert of equal priority resets the Master_Down_Timer.
    p = params(priority=255, initial_backup=True)
    m = started(p)
    assert m.handle(adv(2 * SEC, 255)) == (StartTimer(MD, 2 * SEC + down(p)),)
    assert m.state.state is B


def test_owner_with_state_backup_under_vrrp_startup_delay() -> None:
    # the timer counts from the end of the delay, as any backup's does
    p = params(priority=255, initial_backup=True)
    m = VrrpMachine(p)
    actions = m.handle(Startup(0, delayed_until_us=5 * SEC))
    assert actions == (StartTimer(MD, 5 * SEC + down(p)), Notify(B, 255))


def test_strict_owner_with_state_backup_is_master_at_once() -> None:
    # keepalived: "State MASTER must match being address owner" forces MASTER.
    p = params(priority=255, initial_backup=True, strict=True)
    m = started(p)
    assert m.state.state is M
    assert p.config_warnings()


def test_state_master_non_owner_starts_backup_with_short_timer() -> None:
    # keepalived: `state MASTER` only shortens the first Master_Down_Timer.
    p = params(initial_master=True)
    m = VrrpMachine(p)
    actions = m.handle(Startup(0))
    assert m.state.state is B
    assert actions[0] == StartTimer(MD, SEC + skew_time_min_us(2, SEC))
    m.handle(MasterDownTimerFired(SEC + 3906, SEC + 3906))
    assert m.state.state is M


def test_state_master_under_strict_is_a_plain_backup() -> None:
    p = params(initial_master=True, strict=True)
    actions = VrrpMachine(p).handle(Startup(0))
    assert actions[0] == StartTimer(MD, down(p))


def test_startup_with_a_fault_goes_to_fault() -> None:
    p = params()
    m = VrrpMachine(p)
    assert m.handle(FaultRaised(0, "eth0")) == ()
    assert m.handle(Startup(1)) == (Notify(F, 100),)
    assert m.state.state is F
    assert m.handle(FaultCleared(2, "eth0")) == (StartTimer(MD, 2 + down(p)), Notify(B, 100))


# ------------------------------------------------------------ Backup


def test_backup_shutdown() -> None:
    m = started(params())
    assert m.handle(Shutdown(5)) == (CancelTimer(MD), Notify(INIT, 100))
    assert m.state.state is INIT
    assert m.state.master_down_at is None


def test_backup_master_down_becomes_master() -> None:
    p = params()
    m = started(p)
    at = down(p)
    actions = m.handle(MasterDownTimerFired(at, at))
    # RFC 5798 §6.4.2: the advert first, then the VIPs and their announcements.
    assert actions == (
        SendAdvert(100),
        AddVips(accept=True),
        SendGratuitous(5),
        StartTimer(ADV, at + SEC),
        StartTimer(GD, at + 5 * SEC),
        Notify(M, 100),
    )
    assert m.state.adver_at == at + SEC
    assert m.state.master_down_at is None


def test_stale_master_down_is_ignored() -> None:
    p = params()
    m = started(p)
    m.handle(adv(SEC, 200))  # re-armed to SEC + down
    before = m.state
    assert m.handle(MasterDownTimerFired(down(p), down(p))) == ()
    assert m.state == before


def test_backup_higher_advert_resets_master_down() -> None:
    p = params()
    m = started(p)
    assert m.handle(adv(2 * SEC, 200)) == (StartTimer(MD, 2 * SEC + down(p)),)
    assert m.state.master_src == HIGHER_ADDR
    assert m.state.master_priority == 200


def test_backup_equal_advert_resets_master_down() -> None:
    # RFC 5798 §6.4.2: "greater than or equal to the local Priority".
    p = params()
    m = started(p)
    assert m.handle(adv(2 * SEC, 100, LOWER_ADDR)) == (StartTimer(MD, 2 * SEC + down(p)),)


def test_backup_lower_advert_is_discarded_when_preempting() -> None:
    p = params()
    m = started(p)
    armed = m.state.master_down_at
    assert m.handle(adv(2 * SEC, 50, LOWER_ADDR)) == ()
    assert m.state.master_down_at == armed
    assert m.handle(MasterDownTimerFired(armed or 0, armed))[0] == SendAdvert(100)
    assert m.state.state is M


def test_nopreempt_backup_never_preempts_a_lower_master() -> None:
    p = params(nopreempt=True)
    m = started(p)
    for k in range(1, 30):
        actions = m.handle(adv(k * SEC, 50, LOWER_ADDR))
        assert actions == (StartTimer(MD, k * SEC + down(p)),)
    assert m.state.state is B


def test_backup_priority_zero_sets_skew_time() -> None:
    # RFC 5798 §6.4.2: Master_Down_Timer = Skew_Time.
    p = params()
    m = started(p)
    now = 2 * SEC
    assert m.handle(adv(now, 0)) == (StartTimer(MD, now + skew_time_us(2, 100, SEC)),)
    assert m.state.master_down_at == now + 609_375


def test_backup_v3_learns_master_adver_interval() -> None:
    # RFC 5798 §6.4.2: Master_Adver_Interval := the advert's Max Adver Int and
    # Skew_Time / Master_Down_Interval are recomputed from it.
    p = params(version=3, adver_int_us=SEC)
    m = started(p)
    actions = m.handle(adv(SEC, 200, cs=50))
    assert m.state.master_adver_int_us == 500_000
    expected = 3 * 500_000 + (156 * 50 * 625) // 16
    assert actions == (StartTimer(MD, SEC + expected),)
    # priority 0 then uses the learned interval's skew.
    m.handle(adv(2 * SEC, 0, cs=50))
    assert m.state.master_down_at == 2 * SEC + skew_time_us(3, 100, 500_000)


def test_backup_v2_keeps_its_configured_interval() -> None:
    p = params()
    m = started(p)
    m.handle(adv(SEC, 200, cs=500))
    assert m.state.master_adver_int_us == SEC


def test_v3_master_uses_its_own_interval_again() -> None:
    # keepalived: on becoming master, Master_Adver_Interval returns to ours.
    p = params(version=3)
    m = started(p)
    m.handle(adv(SEC, 200, cs=20))
    at = m.state.master_down_at
    assert at is not None
    actions = m.handle(MasterDownTimerFired(at, at))
    assert StartTimer(ADV, at + SEC) in actions
    assert m.state.master_adver_int_us == SEC


@pytest.mark.parametrize("adverts", [1, 2, 5, 100])
def test_down_timer_adverts(adverts: int) -> None:
    p = params(down_timer_adverts=adverts)
    m = started(p)
    assert m.state.master_down_at == adverts * SEC + 609_375


def test_strict_resets_down_timer_adverts() -> None:
    p = params(down_timer_adverts=1, strict=True)
    assert started(p).state.master_down_at == 3 * SEC + 609_375
    assert any("down_timer_adverts" in w for w in p.config_warnings())


# ------------------------------------------------------------ Master


def test_master_adver_timer() -> None:
    p = params()
    m = master(p)
    at = m.state.adver_at
    assert at is not None
    assert m.handle(AdverTimerFired(at, at)) == (SendAdvert(100), StartTimer(ADV, at + SEC))
    assert m.state.adver_at == at + SEC


def test_stale_adver_timer_is_ignored() -> None:
    m = master(params())
    before = m.state
    assert m.handle(AdverTimerFired(5, 5)) == ()
    assert m.state == before


def test_master_priority_zero_advert_answers_at_once() -> None:
    # RFC 5798 §6.4.3: send an ADVERTISEMENT, reset the Adver_Timer.
    m = master(params())
    now = 20 * SEC
    assert m.handle(adv(now, 0)) == (SendAdvert(100), StartTimer(ADV, now + SEC))
    assert m.state.state is M


def test_master_steps_down_to_higher_priority() -> None:
    p = params()
    m = master(p)
    now = 20 * SEC
    actions = m.handle(adv(now, 200))
    assert actions == (
        CancelTimer(ADV),
        CancelTimer(GD),
        CancelTimer(GL),
        RemoveVips(),
        StartTimer(MD, now + down(p)),
        Notify(B, 100),
    )
    assert m.state.state is B
    assert m.state.adver_at is None


def test_master_v3_step_down_learns_interval() -> None:
    p = params(version=3)
    m = master(p)
    now = 20 * SEC
    actions = m.handle(adv(now, 200, cs=10))
    assert m.state.master_adver_int_us == 100_000
    assert StartTimer(MD, now + master_down_interval_us(3, 100, 100_000)) in actions


def test_equal_priority_larger_address_wins() -> None:
    # RFC 5798 §6.4.3: equal priority and a larger primary address -> Backup.
    m = master(params())
    m.handle(adv(20 * SEC, 100, HIGHER_ADDR))
    assert m.state.state is B


def test_equal_priority_smaller_address_loses() -> None:
    m = master(params())
    actions = m.handle(adv(20 * SEC, 100, LOWER_ADDR))
    assert m.state.state is M
    assert actions[0] == SendAdvert(100)


def test_address_compare_is_numeric_for_bytes_too() -> None:
    m = master(params(src_addr=bytes([10, 0, 0, 5])))
    m.handle(adv(20 * SEC, 100, bytes([10, 0, 0, 4])))
    assert m.state.state is M
    m.handle(adv(21 * SEC, 100, bytes([10, 0, 1, 0])))
    assert m.state.state is B


def test_ipv6_link_local_tie_break() -> None:
    ours = bytes.fromhex("fe800000000000000000000000000001")
    theirs = bytes.fromhex("fe800000000000000000000000000002")
    m = master(params(version=3, src_addr=ours))
    m.handle(adv(20 * SEC, 100, theirs, cs=100))
    assert m.state.state is B


def test_master_hearing_lower_priority_readvertises() -> None:
    # keepalived: "forcing new election" (RFC 5798 says discard).
    m = master(params())
    now = 20 * SEC
    actions = m.handle(adv(now, 50, LOWER_ADDR))
    assert actions == (
        SendAdvert(100),
        SendGratuitous(5),
        StartTimer(TimerKind.GARP_LOWER_PRIO, now + 5 * SEC),
        NotifyMasterRxLowerPri(50, LOWER_ADDR),
    )
    assert m.state.state is M


@pytest.mark.parametrize("kw", [{"lower_prio_no_advert": True}, {"strict": True}])
def test_lower_prio_no_advert(kw: dict[str, bool]) -> None:
    m = master(params(garp_lower_prio_repeat=0, **kw))
    actions = m.handle(adv(20 * SEC, 50, LOWER_ADDR))
    assert actions == (NotifyMasterRxLowerPri(50, LOWER_ADDR),)


def test_strict_sends_no_lower_prio_garps() -> None:
    p = params(strict=True, garp_lower_prio_repeat=3, garp_lower_prio_delay_us=SEC)
    assert any("repeat GARPs" in w for w in p.config_warnings())
    m = master(p)
    assert m.handle(adv(20 * SEC, 50, LOWER_ADDR)) == (NotifyMasterRxLowerPri(50, LOWER_ADDR),)
    assert CancelTimer(GL) not in m.handle(Shutdown(21 * SEC))


def test_higher_prio_send_advert() -> None:
    m = master(params(higher_prio_send_advert=True))
    actions = m.handle(adv(20 * SEC, 200))
    assert actions[0] == SendAdvert(100)
    assert actions[1] == CancelTimer(ADV)
    assert m.state.state is B


def test_strict_ignores_higher_prio_send_advert() -> None:
    m = master(params(higher_prio_send_advert=True, strict=True))
    actions = m.handle(adv(20 * SEC, 200))
    assert SendAdvert(100) not in actions
    assert m.state.state is B


def test_master_shutdown_sends_priority_zero() -> None:
    # RFC 5798 §6.4.3: cancel Adver_Timer, send priority 0, -> Initialize.
    m = master(params())
    actions = m.handle(Shutdown(30 * SEC))
    assert actions == (
        CancelTimer(ADV),
        CancelTimer(GD),
        CancelTimer(GL),
        SendAdvert(0),
        RemoveVips(),
        Notify(INIT, 100),
    )
    assert m.state.state is INIT
    assert m.state.adver_at is None


def test_shutdown_then_startup_again() -> None:
    p = params()
    m = master(p)
    m.handle(Shutdown(30 * SEC))
    assert m.handle(Startup(31 * SEC)) == (StartTimer(MD, 31 * SEC + down(p)), Notify(B, 100))


def test_duplicate_owner_drops_to_254() -> None:
    # keepalived / RFC 9568 erratum 8298: two owners -> ours drops to 254 and
    # the other owner's 255 then wins.
    p = params(priority=255)
    m = master(p)
    actions = m.handle(adv(SEC, 255, HIGHER_ADDR))
    assert actions[0] == Warn("duplicate_address_owner")
    assert m.state.base_priority == 254
    assert m.state.priority == 254
    assert m.state.state is B


def test_equal_priority_from_our_own_address_warns() -> None:
    m = master(params())
    actions = m.handle(adv(SEC * 20, 100, LOCAL))
    assert actions == (Warn("equal_priority_from_own_address"),)
    assert m.state.state is M


def test_owner_processes_adverts_by_default() -> None:
    # keepalived deliberately processes them (lower -> re-advertise).
    m = master(params(priority=255))
    assert m.handle(adv(SEC, 100, LOWER_ADDR))[0] == SendAdvert(255)


@pytest.mark.parametrize("kw", [{"owner_ignore_adverts": True}, {"strict": True}])
def test_owner_ignore_adverts(kw: dict[str, bool]) -> None:
    # RFC 5798 §7.1: the address owner discards adverts.
    m = master(params(priority=255, **kw))
    before = m.state
    for event in (adv(SEC, 100, LOWER_ADDR), adv(SEC, 255, HIGHER_ADDR), adv(SEC, 0)):
        assert m.handle(event) == ()
    assert m.state == before


def test_garp_delay_and_refresh() -> None:
    p = params(garp_master_refresh_us=60 * SEC, garp_master_refresh_repeat=2)
    m = started(p)
    at = down(p)
    actions = m.handle(MasterDownTimerFired(at, at))
    assert StartTimer(TimerKind.GARP_REFRESH, at + 60 * SEC) in actions
    assert m.handle(GarpTimerFired(at + 5 * SEC, GD)) == (SendGratuitous(5),)
    r = at + 60 * SEC
    assert m.handle(GarpTimerFired(r, TimerKind.GARP_REFRESH, r)) == (
        SendGratuitous(2),
        StartTimer(TimerKind.GARP_REFRESH, r + 60 * SEC),
    )
    # a stale refresh is ignored
    assert m.handle(GarpTimerFired(r, TimerKind.GARP_REFRESH, r)) == ()
    # leaving master cancels every GARP timer that may be pending
    actions = m.handle(Shutdown(r + SEC))
    assert CancelTimer(TimerKind.GARP_REFRESH) in actions
    assert CancelTimer(GD) in actions
    assert CancelTimer(TimerKind.GARP_LOWER_PRIO) in actions


def test_garp_master_delay_zero_means_no_second_burst() -> None:
    p = params(garp_master_delay_us=0, garp_lower_prio_repeat=0)
    m = master(p)
    assert all(not (isinstance(a, StartTimer) and a.kind is GD) for a in m.handle(Shutdown(9)))


def test_garp_lower_prio_timer() -> None:
    p = params(garp_lower_prio_repeat=2, garp_lower_prio_delay_us=SEC)
    m = master(p)
    m.handle(adv(20 * SEC, 50, LOWER_ADDR))
    assert m.handle(GarpTimerFired(21 * SEC, TimerKind.GARP_LOWER_PRIO)) == (SendGratuitous(2),)


@pytest.mark.parametrize(
    ("kw", "accept"),
    [
        ({}, True),
        ({"accept": False}, False),
        ({"strict": True}, False),
        ({"strict": True, "accept": True}, False),  # strict v2: no accept mode
        ({"strict": True, "accept": True, "version": 3}, True),
        ({"strict": True, "priority": 255}, True),  # owner always accepts
        ({"accept": False, "priority": 255}, True),
    ],
)
def test_accept_mode(kw: dict[str, object], accept: bool) -> None:
    m = master(params(**kw))
    assert m.state.state is M
    p = m.params
    assert p.accept_effective is accept
    m2 = VrrpMachine(p)
    actions = m2.handle(Startup(0))
    if m2.state.state is B:
        at = m2.state.master_down_at
        actions = m2.handle(MasterDownTimerFired(at or 0, at))
    assert AddVips(accept) in actions


# ------------------------------------------------------------ Fault


def test_backup_fault_and_recovery() -> None:
    p = params()
    m = started(p)
    assert m.handle(FaultRaised(SEC, "eth0")) == (CancelTimer(MD), Notify(F, 100))
    assert m.state.master_down_at is None
    assert m.handle(FaultRaised(SEC, "chk_nginx")) == ()
    assert m.handle(FaultCleared(2 * SEC, "eth0")) == ()
    assert m.state.state is F
    assert m.handle(FaultCleared(2 * SEC, "unknown")) == ()
    assert m.handle(FaultCleared(3 * SEC, "chk_nginx")) == (
        StartTimer(MD, 3 * SEC + down(p)),
        Notify(B, 100),
    )


def test_master_fault_relinquishes() -> None:
    m = master(params())
    actions = m.handle(FaultRaised(20 * SEC, "eth0"))
    assert actions == (
        CancelTimer(ADV),
        CancelTimer(GD),
        CancelTimer(GL),
        SendAdvert(0),
        RemoveVips(),
        Notify(F, 100),
    )
    assert m.state.adver_at is None


def test_owner_leaves_fault_as_backup() -> None:
    # keepalived 2.2.7: down_instance sets wantstate FAULT, so try_up_instance sends
    # the owner back as a backup with a whole Master_Down_Interval
    # (tests/netns/test_vrrp_owner_state_backup.py runs it side by side).
    p = params(priority=255)
    m = fault(p)
    actions = m.handle(FaultCleared(SEC, "eth0"))
    assert m.state.state is B
    assert actions == (StartTimer(MD, SEC + down(p)), Notify(B, 255))
    # a fault at start too (initialise_tracking_priorities, then vrrp_init_state)
    m = VrrpMachine(p)
    m.handle(FaultRaised(0, "eth0"))
    m.handle(Startup(0))
    assert m.handle(FaultCleared(SEC, "eth0"))[0] == StartTimer(MD, SEC + down(p))


def test_owner_leaving_the_starts_silent_fault_is_master_at_once() -> None:
    # keepalived try_up_instance(leaving_init): a tracker not yet reported left the
    # owner's wantstate MASTER
    m = VrrpMachine(params(priority=255))
    m.handle(FaultPending(0, "chk"))
    m.handle(Startup(0))
    assert m.handle(FaultCleared(SEC, "chk"))[0] == SendAdvert(255)
    assert m.state.state is M


def test_fault_v3_resets_learned_interval() -> None:
    p = params(version=3)
    m = started(p)
    m.handle(adv(SEC, 200, cs=10))
    m.handle(FaultRaised(2 * SEC, "eth0"))
    m.handle(FaultCleared(3 * SEC, "eth0"))
    assert m.state.master_adver_int_us == SEC
    assert m.state.master_down_at == 3 * SEC + down(p)


def test_fault_shutdown() -> None:
    m = fault(params())
    assert m.handle(Shutdown(5)) == (Notify(INIT, 100),)


def test_fault_ignores_adverts_and_timers() -> None:
    m = fault(params())
    before = m.state
    for event in (adv(5, 200), adv(5, 0), MasterDownTimerFired(5), AdverTimerFired(5)):
        assert m.handle(event) == ()
    assert m.state == before


# ------------------------------------------------------------ priority changes


@pytest.mark.parametrize(
    ("base", "weight", "effective"),
    [
        (100, 0, 100),
        (100, 50, 150),
        (100, 200, 254),
        (100, -99, 1),
        (100, -500, 1),
        (255, -50, 255),
    ],
)
def test_effective_priority_clamped(base: int, weight: int, effective: int) -> None:
    m = VrrpMachine(params(priority=base))
    m.handle(PriorityChanged(0, weight))
    assert m.state.priority == effective


def test_backup_priority_change_moves_the_deadline() -> None:
    # keepalived vrrp_set_effective_priority: shift by the change in skew.
    p = params()
    m = started(p)
    assert m.handle(PriorityChanged(SEC, 50)) == (
        StartTimer(MD, down(p) - (skew_time_us(2, 100, SEC) - skew_time_us(2, 150, SEC))),
        NotifyPriority(150),
    )
    assert m.state.master_down_at == down(p, priority=150)


def test_same_priority_is_silent() -> None:
    m = started(params())
    assert m.handle(PriorityChanged(SEC, 0)) == ()
    m.handle(PriorityChanged(SEC, 200))
    assert m.handle(PriorityChanged(SEC, 300)) == ()  # still clamped to 254


def test_master_priority_change_is_carried_by_next_advert() -> None:
    m = master(params())
    assert m.handle(PriorityChanged(SEC, -30)) == (NotifyPriority(70),)
    at = m.state.adver_at
    assert m.handle(AdverTimerFired(at or 0, at))[0] == SendAdvert(70)


def test_tracked_priority_drop_lets_backup_preempt() -> None:
    # the master's tracker drops it below the backup: the backup discards the
    # now-lower adverts and its Master_Down_Timer fires.
    p_backup = params(priority=90, src_addr=LOWER_ADDR)
    b = started(p_backup)
    b.handle(adv(SEC, 100, LOCAL))
    b.handle(adv(2 * SEC, 80, LOCAL))  # lower now: discarded
    assert b.state.master_down_at == SEC + down(p_backup)


# ------------------------------------------------------------ preempt_delay


def test_preempt_delay_holds_preemption_after_startup() -> None:
    p = params(preempt_delay_us=10 * SEC)
    m = started(p)
    assert m.state.preempt_until == 10 * SEC
    for k in range(1, 10):  # lower adverts within the delay still count
        assert m.handle(adv(k * SEC, 50, LOWER_ADDR)) == (StartTimer(MD, k * SEC + down(p)),)
    assert m.handle(adv(10 * SEC, 50, LOWER_ADDR)) == ()  # delay over: discard
    at = 9 * SEC + down(p)
    assert m.state.master_down_at == at
    m.handle(MasterDownTimerFired(at, at))
    assert m.state.state is M


def test_preempt_delay_restarts_after_a_higher_master() -> None:
    p = params(preempt_delay_us=4 * SEC)
    m = started(p)
    m.handle(adv(SEC, 200))
    assert m.state.preempt_until is None  # keepalived "stop preempt delay"
    m.handle(adv(20 * SEC, 50, LOWER_ADDR))  # first lower advert starts it
    assert m.state.preempt_until == 24 * SEC
    assert m.handle(adv(23 * SEC, 50, LOWER_ADDR)) == (StartTimer(MD, 23 * SEC + down(p)),)
    assert m.handle(adv(24 * SEC, 50, LOWER_ADDR)) == ()


@pytest.mark.parametrize("kw", [{"strict": True}, {"nopreempt": True}, {"initial_master": True}])
def test_preempt_delay_is_reset_by(kw: dict[str, bool]) -> None:
    p = params(preempt_delay_us=10 * SEC, **kw)
    assert p.preempt_delay_effective_us == 0
    assert p.config_warnings()
    assert started(p).state.preempt_until is None


def test_man_page_example_preempt_delay() -> None:
    # keepalived.conf(5): advert_int 1, priority 128 => ~3.5 s; preempt_delay 2
    # => ~5.5 s: lower adverts keep counting until 2 s after startup, then the
    # 3.5 s Master_Down_Interval runs out from the last one accepted.
    p = params(priority=128, preempt_delay_us=2 * SEC)
    m = started(p)
    phase = 999_000
    k = 0
    while m.state.state is B:
        armed = m.state.master_down_at
        assert armed is not None
        if armed <= phase + k * SEC:
            m.handle(MasterDownTimerFired(armed, armed))
            break
        m.handle(adv(phase + k * SEC, 50, LOWER_ADDR))
        k += 1
    assert m.state.state is M
    became_master = (m.state.adver_at or 0) - SEC
    assert became_master == phase + SEC + 3_500_000
    assert 3_500_000 < became_master <= 5_500_000


# ------------------------------------------------------------ params


@pytest.mark.parametrize(
    "kw",
    [
        {"priority": 0},
        {"priority": 256},
        {"version": 4},
        {"adver_int_us": 1_500_000},
        {"adver_int_us": 256 * SEC},
        {"version": 3, "adver_int_us": 5_000},
        {"version": 3, "adver_int_us": 4096 * 10_000},
        {"down_timer_adverts": 0},
        {"preempt_delay_us": 1001 * SEC},
        {"garp_master_repeat": -1},
        {"garp_lower_prio_repeat": -1},
    ],
)
def test_params_validation(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        params(**kw)


def test_params_v3_centisecond_intervals() -> None:
    assert params(version=3, adver_int_us=10_000).adver_int_us == 10_000
    assert params(version=3, adver_int_us=40_950_000).adver_int_us == 40_950_000


def test_state_is_immutable() -> None:
    s = initial_state(params())
    with pytest.raises(AttributeError):
        s.priority = 5  # type: ignore[misc]
    assert isinstance(replace(s, priority=5), VrrpState)


@pytest.mark.parametrize(("lines", "state", "starts_master", "said"), [
    ("priority 255", "MASTER", True, ""),  # unset: derived from the priority
    ("priority 255\n state MASTER", "MASTER", True, ""),
    ("priority 255\n state BACKUP", "BACKUP", False, "starts as BACKUP and takes over"),
    ("priority 255\n state BACKUP\n strict_mode",
     "MASTER", True, "State MASTER must match being address owner"),
    ("priority 254\n state BACKUP", "BACKUP", False, ""),
    # no priority: keepalived derives it from the state, so this is the owner
    ("state MASTER", "MASTER", True, "makes this instance the address owner"),
])
def test_owner_state_from_config(lines: str, state: str, starts_master: bool,
                                 said: str) -> None:
    # keepalived 2.2.7 vrrp_complete_instance: no state follows the priority;
    # strict mode forces the owner's state to MASTER.
    res = load_text(f"vrrp_instance V {{\n interface lo\n virtual_router_id 7\n {lines}\n"
                    " virtual_ipaddress {\n  10.0.0.1\n }\n}\n")
    inst = res.config.vrrp_instances[0]
    assert inst.state == state
    p = params_for(inst, res.config.global_defs)
    assert p.owner_starts_master is starts_master
    owner_lines = [d.message for d in res.diagnostics if "owner" in d.message]
    assert (said in owner_lines[0]) if said else not owner_lines
