"""A tracker that has not reported yet at start (keepalived's script "init" state):
the FSM's FaultPending, the instance's hold, and the sync group's wait, with what
each announces (the netns side-by-side test is tests/netns/test_vrrp_start_trackers.py).
"""

from __future__ import annotations

from typing import Any

from hafast.config.model import SyncGroup as SyncGroupSpec
from hafast.net.vip import MemoryVips
from hafast.vrrp.fsm import (
    FaultCleared,
    FaultPending,
    FaultRaised,
    Notify,
    Startup,
    State,
    VrrpMachine,
)
from hafast.vrrp.instance import Instance, InstanceSpec, ManualTimers, NullAnnouncer
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.sync_group import SyncGroup

SEC = 1_000_000


class Said:
    """A notifier that keeps (kind, name, state) in order."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str]] = []

    def state_change(self, kind: str, name: str, state: str, priority: int,
                     scripts: Any = None) -> None:
        self.lines.append((kind, name, state))


def _inst(name: str, clock: ManualTimers, said: Said) -> Instance:
    spec = InstanceSpec(name=name, ifname="eth0", family=4,
                        params=VrrpParams(priority=100, src_addr=1, garp_master_delay_us=0),
                        vips=())
    return Instance(spec, timers=clock, vips=MemoryVips(), announcer=NullAnnouncer(),
                    notifier=said)  # type: ignore[arg-type]


def test_fsm_waits_silently_then_the_first_report_is_announced() -> None:
    m = VrrpMachine(VrrpParams(priority=100))
    assert m.handle(FaultPending(0, "script:chk")) == ()
    assert m.handle(Startup(0)) == ()
    assert m.state.state is State.FAULT
    assert m.handle(FaultRaised(SEC, "script:chk")) == (Notify(State.FAULT, 100),)
    assert m.state.faults == {"script:chk"} and not m.state.pending

    m = VrrpMachine(VrrpParams(priority=100))
    m.handle(FaultPending(0, "script:chk"))
    m.handle(Startup(0))
    assert Notify(State.BACKUP, 100) in m.handle(FaultCleared(SEC, "script:chk"))
    assert m.state.state is State.BACKUP


def test_fsm_a_known_fault_is_announced_at_startup_and_not_again() -> None:
    m = VrrpMachine(VrrpParams(priority=100))
    m.handle(FaultRaised(0, "interface:eth0"))
    m.handle(FaultPending(0, "script:chk"))
    assert m.handle(Startup(0)) == (Notify(State.FAULT, 100),)
    assert m.handle(FaultRaised(SEC, "script:chk")) == ()
    m.handle(FaultCleared(2 * SEC, "interface:eth0"))
    assert m.state.state is State.FAULT  # the script still fails


def test_fsm_pending_after_startup_is_ignored() -> None:
    m = VrrpMachine(VrrpParams(priority=100))
    m.handle(Startup(0))
    assert m.handle(FaultPending(SEC, "script:new")) == ()
    assert m.state.state is State.BACKUP and not m.state.pending


def _group(said: Said) -> tuple[ManualTimers, Instance, Instance, Instance]:
    clock = ManualTimers()
    vi1, vi2, vi3 = (_inst(n, clock, said) for n in ("VI_1", "VI_2", "VI_3"))
    vi1.hold("script:chk")
    vi3.hold("script:chk")
    SyncGroup(SyncGroupSpec("G1", ("VI_1", "VI_2")), [vi1, vi2], notifier=said)  # type: ignore[arg-type]
    for i in (vi1, vi2, vi3):
        i.start()
    return clock, vi1, vi2, vi3


def test_group_a_first_failure_says_fault_for_the_member_and_the_group_only() -> None:
    said = Said()
    _, vi1, vi2, vi3 = _group(said)
    assert said.lines == [] and {i.state for i in (vi1, vi2, vi3)} == {State.FAULT}
    vi1.raise_fault("script:chk")
    vi3.raise_fault("script:chk")
    assert said.lines == [("INSTANCE", "VI_1", "FAULT"), ("GROUP", "G1", "FAULT"),
                          ("INSTANCE", "VI_3", "FAULT")]
    vi1.clear_fault("script:chk")
    assert said.lines[3:] == [("INSTANCE", "VI_1", "BACKUP"), ("INSTANCE", "VI_2", "BACKUP"),
                              ("GROUP", "G1", "BACKUP")]


def test_group_a_first_success_says_backup_for_each_then_the_group() -> None:
    said = Said()
    _, vi1, _vi2, vi3 = _group(said)
    vi1.clear_fault("script:chk")
    vi3.clear_fault("script:chk")
    assert said.lines == [("INSTANCE", "VI_1", "BACKUP"), ("INSTANCE", "VI_2", "BACKUP"),
                          ("GROUP", "G1", "BACKUP"), ("INSTANCE", "VI_3", "BACKUP")]


def test_group_two_waiting_members_wait_for_each_other() -> None:
    said = Said()
    clock = ManualTimers()
    a, b = _inst("A", clock, said), _inst("B", clock, said)
    a.hold("script:a")
    b.hold("script:b")
    SyncGroup(SyncGroupSpec("G", ("A", "B")), [a, b], notifier=said)  # type: ignore[arg-type]
    a.start()
    b.start()
    a.clear_fault("script:a")
    assert said.lines == [] and a.state is State.FAULT
    b.clear_fault("script:b")
    assert sorted(said.lines) == [("GROUP", "G", "BACKUP"), ("INSTANCE", "A", "BACKUP"),
                                  ("INSTANCE", "B", "BACKUP")]


def test_a_resumed_instance_does_not_wait() -> None:
    said = Said()
    inst = _inst("VI_1", ManualTimers(), said)
    inst.hold("script:chk")
    inst.resume(State.BACKUP, adopt=False)
    assert inst.state is State.BACKUP and said.lines == []


def test_a_stopping_group_moves_no_member() -> None:
    """keepalived's notify_shutdown: STOP for each instance, then the group; a member
    held in FAULT by the group does not pass through BACKUP on the way out."""
    said = Said()
    clock = ManualTimers()
    a, b = _inst("A", clock, said), _inst("B", clock, said)
    group = SyncGroup(SyncGroupSpec("G", ("A", "B")), [a, b], notifier=said)  # type: ignore[arg-type]
    a.start()
    b.start()
    a.raise_fault("interface:eth0")
    said.lines.clear()
    group.stopping = True
    a.stop()
    b.stop()
    assert said.lines == [("INSTANCE", "A", "STOP"), ("INSTANCE", "B", "STOP"),
                          ("GROUP", "G", "STOP")]
