"""``timer_expired_backup`` (keepalived 2.3; 2.2.7 has no such keyword).

vrrp.c ``vrrp_thread_timeout_handler``, run before the events of a loop turn that
came late: a MASTER with ``nopreempt`` whose last advert went out at least
``3 * advert_int + skew(HIGHEST_OTHER_PRIORITY)`` ago goes BACKUP (no priority 0,
VIPs removed) rather than win the election back from whoever took over meanwhile.
Without a value the other priority is 254; without ``nopreempt`` it is reset.
"""

from __future__ import annotations

import pytest

from hafast.config.loader import load_text
from hafast.vrrp.from_config import params_for
from hafast.vrrp.fsm import (
    AdverTimerFired,
    AdvertReceived,
    CancelTimer,
    MasterDownTimerFired,
    Notify,
    RemoveVips,
    SendAdvert,
    StartTimer,
    Startup,
    State,
    TimerKind,
    VrrpMachine,
    Warn,
)
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.timers import skew_time_us

SEC = 1_000_000
LOCAL = 0x0A000009
PEER = 0x0A000002


@pytest.mark.parametrize(("lines", "expected", "said"), [
    ("timer_expired_backup\n nopreempt", 254, ""),
    ("timer_expired_backup 150\n nopreempt", 150, ""),
    ("timer_expired_backup 150", 0, "(V) expired_timer_backup requires nopreempt - resetting"),
    ("nopreempt", 0, ""),
])
def test_resolved_as_keepalived_does(lines: str, expected: int, said: str) -> None:
    res = load_text("vrrp_instance V {\n interface lo\n virtual_router_id 7\n"
                    f" {lines}\n virtual_ipaddress {{\n  10.0.0.1\n }}\n}}\n")
    inst = res.config.vrrp_instances[0]
    assert params_for(inst, res.config.global_defs).timer_expired_backup == expected
    assert [d.message for d in res.diagnostics] == ([said] if said else [])


def _master(hop: int, nopreempt: bool = True) -> VrrpMachine:
    m = VrrpMachine(VrrpParams(priority=200, src_addr=LOCAL, nopreempt=nopreempt,
                               timer_expired_backup=hop, garp_master_delay_us=0))
    m.handle(Startup(0))
    at = m.state.master_down_at
    assert at is not None
    m.handle(MasterDownTimerFired(at, at))
    assert m.state.state is State.MASTER
    return m


def _limit(m: VrrpMachine, hop: int) -> int:
    # last advert + 3 intervals + the skew of the quickest other router
    assert m.state.adver_at is not None
    last = m.state.adver_at - SEC
    return last + 3 * SEC + skew_time_us(2, hop, SEC)


def test_a_late_master_goes_backup_instead_of_advertising() -> None:
    m = _master(254)
    limit = _limit(m, 254)
    actions = m.handle(AdverTimerFired(limit, m.state.adver_at))
    assert m.state.state is State.BACKUP
    assert actions[0] == Warn("timer_expired_backup")
    assert CancelTimer(TimerKind.ADVER) in actions and RemoveVips() in actions
    assert not any(isinstance(a, SendAdvert) for a in actions)  # no priority 0 either
    assert Notify(State.BACKUP, 200) in actions
    assert isinstance(actions[-2], StartTimer) and actions[-2].kind is TimerKind.MASTER_DOWN


def test_a_little_late_is_still_master() -> None:
    m = _master(254)
    limit = _limit(m, 254)
    actions = m.handle(AdverTimerFired(limit - 1, m.state.adver_at))
    assert m.state.state is State.MASTER and actions[0] == SendAdvert(200)


def test_the_other_priority_sets_how_late() -> None:
    m = _master(100)  # a priority-100 router waits 3 s + 0.609 s
    limit = _limit(m, 100)
    assert limit - _limit(_master(254), 254) == skew_time_us(2, 100, SEC) - skew_time_us(
        2, 254, SEC)
    m.handle(AdverTimerFired(limit - 1, m.state.adver_at))
    assert m.state.state is State.MASTER


def test_the_new_masters_advert_after_a_stall_keeps_us_backup() -> None:
    # keepalived checks before it reads the adverts queued during the stall: the
    # lower-priority router that took over stays master (nopreempt).
    m = _master(254)
    actions = m.handle(AdvertReceived(_limit(m, 254), 100, PEER))
    assert m.state.state is State.BACKUP and m.state.master_src == PEER
    assert not any(isinstance(a, SendAdvert) for a in actions)
    # Without the option the master forces a new election and stays master.
    plain = _master(0)
    actions = plain.handle(AdvertReceived(_limit(plain, 254), 100, PEER))
    assert plain.state.state is State.MASTER and SendAdvert(200) in actions


def test_only_with_nopreempt() -> None:
    m = _master(254, nopreempt=False)
    m.handle(AdverTimerFired(_limit(m, 254) + SEC, m.state.adver_at))
    assert m.state.state is State.MASTER
