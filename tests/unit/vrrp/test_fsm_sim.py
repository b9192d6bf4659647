"""Two or three FSMs on a simulated shared link with a manual clock.

The harness is a tiny discrete-event simulator: one heap of (time, seq, node,
event).  Adverts a node sends reach every other running node ``delay_us``
later; timers are kept per node and per kind exactly as the shell would keep
them (a StartTimer replaces the pending one, CancelTimer drops it), so a timer
event that was cancelled or replaced never reaches the FSM.  Nothing sleeps.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import pytest

from hafast.vrrp.fsm import (
    AdverTimerFired,
    AdvertReceived,
    CancelTimer,
    Event,
    FaultCleared,
    FaultRaised,
    GarpTimerFired,
    MasterDownTimerFired,
    Notify,
    PriorityChanged,
    SendAdvert,
    Shutdown,
    StartTimer,
    Startup,
    State,
    TimerKind,
    VrrpMachine,
    timer_fired,
)
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.timers import centiseconds_to_us, master_down_interval_us, skew_time_us

SEC = 1_000_000


@dataclass
class Node:
    name: str
    machine: VrrpMachine
    up: bool = False  # False = crashed / not started: hears and sends nothing
    timers: dict[TimerKind, int] = field(default_factory=dict)
    transitions: list[tuple[int, State]] = field(default_factory=list)
    sent: list[tuple[int, int]] = field(default_factory=list)  # (time, priority)


class Link:
    """A shared segment: every advert reaches every other running node after ``delay_us``."""

    def __init__(self, *params: VrrpParams, delay_us: int = 1_000, names: str = "ABC") -> None:
        self.delay_us = delay_us
        self.now = 0
        self.nodes = [Node(names[i], VrrpMachine(p)) for i, p in enumerate(params)]
        self._queue: list[tuple[int, int, int, Event]] = []
        self._seq = 0
        self.steps = 0

    # -- scheduling -----------------------------------------------------

    def _push(self, at: int, index: int, event: Event) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, index, event))

    def _deliver(self, index: int, event: Event) -> None:
        node = self.nodes[index]
        for action in node.machine.handle(event):
            if isinstance(action, StartTimer):
                node.timers[action.kind] = action.at_us
                self._push(
                    action.at_us, index, timer_fired(action.kind, action.at_us, action.at_us)
                )
            elif isinstance(action, CancelTimer):
                node.timers.pop(action.kind, None)
            elif isinstance(action, SendAdvert):
                node.sent.append((self.now, action.priority))
                src = node.machine.params.src_addr
                cs = node.machine.params.adver_int_us // 10_000
                for other in range(len(self.nodes)):
                    if other != index:
                        self._push(
                            self.now + self.delay_us,
                            other,
                            AdvertReceived(self.now + self.delay_us, action.priority, src, cs),
                        )
            elif isinstance(action, Notify):
                node.transitions.append((self.now, action.state))

    def run_until(self, until: int, max_steps: int = 200_000) -> None:
        """Process every event up to and including ``until`` (bounded in steps)."""
        while self._queue and self._queue[0][0] <= until:
            self.steps += 1
            assert self.steps < max_steps, "simulation did not quiesce"
            at, _, index, event = heapq.heappop(self._queue)
            self.now = at
            node = self.nodes[index]
            if not node.up:
                continue
            at_us = getattr(event, "at_us", None)
            if isinstance(event, (AdverTimerFired, MasterDownTimerFired, GarpTimerFired)):
                kind = (
                    event.kind
                    if isinstance(event, GarpTimerFired)
                    else TimerKind.ADVER
                    if isinstance(event, AdverTimerFired)
                    else TimerKind.MASTER_DOWN
                )
                if node.timers.get(kind) != at_us:
                    continue  # cancelled or replaced: the shell never fires it
                del node.timers[kind]
            self._deliver(index, event)
        self.now = until

    # -- what the test does to nodes ----------------------------------------

    def start(self, name: str, at: int | None = None) -> None:
        at = self.now if at is None else at
        self.run_until(at)
        node = self.node(name)
        node.up = True
        self._deliver(self.nodes.index(node), Startup(at))

    def crash(self, name: str) -> None:
        """Silent death: no priority-0 advert, timers gone, state frozen."""
        node = self.node(name)
        node.up = False
        node.timers.clear()
        node.machine = VrrpMachine(node.machine.params)

    def shutdown(self, name: str) -> None:
        """Graceful stop: the FSM sends priority 0 if it was master."""
        node = self.node(name)
        self._deliver(self.nodes.index(node), Shutdown(self.now))
        node.up = False
        node.timers.clear()

    def inject(self, name: str, event: Event) -> None:
        self._deliver(self.nodes.index(self.node(name)), event)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def masters(self) -> list[str]:
        return [n.name for n in self.nodes if n.up and n.machine.state.state is State.MASTER]

    def became_master_at(self, name: str, after: int = 0) -> int | None:
        for at, state in self.node(name).transitions:
            if state is State.MASTER and at >= after:
                return at
        return None


def p(priority: int, addr: int, **kw: object) -> VrrpParams:
    return VrrpParams(priority=priority, src_addr=addr, **kw)  # type: ignore[arg-type]


A_ADDR, B_ADDR, C_ADDR = 0x0A000001, 0x0A000002, 0x0A000003


def three(delay_us: int = 1_000, **kw: object) -> Link:
    link = Link(p(200, A_ADDR, **kw), p(100, B_ADDR, **kw), p(50, C_ADDR, **kw), delay_us=delay_us)
    link.start("A", 0)
    link.start("B", 1_000)
    link.start("C", 2_000)
    return link


@pytest.mark.parametrize("version", [2, 3])
def test_one_master_in_steady_state(version: int) -> None:
    link = three(version=version)
    link.run_until(10 * SEC)
    assert link.masters() == ["A"]
    # and it stays that way
    for t in range(11, 30):
        link.run_until(t * SEC)
        assert link.masters() == ["A"]


def test_silent_crash_takeover_after_master_down_interval() -> None:
    link = three()
    link.run_until(10 * SEC + 500_000)
    last_advert = max(t for t, _ in link.node("A").sent)
    link.crash("A")
    link.run_until(20 * SEC)
    assert link.masters() == ["B"]
    took = link.became_master_at("B", 10 * SEC)
    # B's Master_Down_Timer was last reset by A's last advert (+ link delay).
    assert took == last_advert + link.delay_us + master_down_interval_us(2, 100, SEC)
    assert link.became_master_at("C", 10 * SEC) is None


def test_graceful_shutdown_takeover_after_skew_time() -> None:
    link = three()
    link.run_until(10 * SEC + 500_000)
    link.shutdown("A")
    stopped = link.now
    assert link.node("A").sent[-1] == (stopped, 0)
    link.run_until(20 * SEC)
    assert link.masters() == ["B"]
    took = link.became_master_at("B", 10 * SEC)
    assert took == stopped + link.delay_us + skew_time_us(2, 100, SEC)
    assert took is not None and took - stopped < SEC


def test_v3_short_interval_takeover() -> None:
    link = three(version=3, adver_int_us=centiseconds_to_us(10), delay_us=100)
    link.run_until(5 * SEC + 50_000)
    last_advert = max(t for t, _ in link.node("A").sent)
    link.crash("A")
    link.run_until(7 * SEC)
    assert link.masters() == ["B"]
    assert link.became_master_at("B", 5 * SEC) == last_advert + 100 + 360_937


def test_v3_backup_learns_the_master_interval() -> None:
    # A advertises every 50 cs, B is configured for 100 cs: B times out on A's.
    link = Link(
        p(200, A_ADDR, version=3, adver_int_us=500_000),
        p(100, B_ADDR, version=3, adver_int_us=SEC),
        delay_us=100,
    )
    link.start("A", 0)
    link.start("B", 10)
    link.run_until(5 * SEC + 10_000)
    assert link.node("B").machine.state.master_adver_int_us == 500_000
    last_advert = max(t for t, _ in link.node("A").sent)
    link.crash("A")
    link.run_until(10 * SEC)
    assert link.became_master_at("B", 5 * SEC) == last_advert + 100 + master_down_interval_us(
        3, 100, 500_000
    )


def test_preemption_back_by_the_higher_priority() -> None:
    link = three()
    link.run_until(10 * SEC + 500_000)
    link.crash("A")
    link.run_until(20 * SEC)
    assert link.masters() == ["B"]
    link.start("A", 20 * SEC)
    link.run_until(30 * SEC)
    assert link.masters() == ["A"]
    # A (preempting) discards B's lower adverts and takes over after its own
    # Master_Down_Interval from startup.
    assert link.became_master_at("A", 20 * SEC) == 20 * SEC + master_down_interval_us(2, 200, SEC)


def test_nopreempt_keeps_the_lower_master() -> None:
    link = three(nopreempt=True)
    link.run_until(10 * SEC)
    link.crash("A")
    link.run_until(20 * SEC)
    assert link.masters() == ["B"]
    link.start("A", 20 * SEC)
    link.run_until(40 * SEC)
    assert link.masters() == ["B"]


def test_preempt_delay_postpones_the_return() -> None:
    link = Link(p(200, A_ADDR, preempt_delay_us=5 * SEC), p(100, B_ADDR))
    link.start("B", 0)
    link.run_until(10 * SEC)
    assert link.masters() == ["B"]
    link.start("A", 10 * SEC)
    link.run_until(30 * SEC)
    assert link.masters() == ["A"]
    took = link.became_master_at("A", 10 * SEC)
    assert took is not None
    assert took > 10 * SEC + 5 * SEC
    assert took <= 10 * SEC + 5 * SEC + master_down_interval_us(2, 200, SEC) + SEC


def test_equal_priorities_larger_address_wins() -> None:
    link = Link(p(100, A_ADDR), p(100, B_ADDR), p(100, C_ADDR))
    for name in "ABC":
        link.start(name, 0)  # all time out together: a real election
    link.run_until(20 * SEC)
    assert link.masters() == ["C"]


def test_state_master_fast_start_on_a_quiet_link() -> None:
    link = Link(p(100, A_ADDR, initial_master=True), p(150, B_ADDR))
    link.start("A", 0)
    link.run_until(2 * SEC)
    assert link.masters() == ["A"]
    assert link.became_master_at("A") == SEC + 3906
    link.start("B", 2 * SEC)
    link.run_until(10 * SEC)
    assert link.masters() == ["B"]  # keepalived: state MASTER does not mean "stay master"


def test_owner_starts_master_and_a_second_owner_is_resolved() -> None:
    link = Link(p(255, A_ADDR), p(255, B_ADDR))
    link.start("A", 0)
    link.run_until(5 * SEC)
    assert link.masters() == ["A"]
    link.start("B", 5 * SEC)
    link.run_until(20 * SEC)
    assert len(link.masters()) == 1


def test_fault_moves_the_master_and_back() -> None:
    link = three()
    link.run_until(10 * SEC)
    link.inject("A", FaultRaised(link.now, "eth0"))
    link.run_until(15 * SEC)
    assert link.masters() == ["B"]
    assert link.node("A").machine.state.state is State.FAULT
    link.inject("A", FaultCleared(link.now, "eth0"))
    link.run_until(25 * SEC)
    assert link.masters() == ["A"]


def test_tracked_weight_hands_over_and_back() -> None:
    link = Link(p(100, A_ADDR), p(90, B_ADDR))
    link.start("A", 0)
    link.start("B", 0)
    link.run_until(10 * SEC)
    assert link.masters() == ["A"]
    link.inject("A", PriorityChanged(link.now, -20))  # chk script failed
    link.run_until(20 * SEC)
    assert link.masters() == ["B"]
    link.inject("A", PriorityChanged(link.now, 0))
    link.run_until(30 * SEC)
    assert link.masters() == ["A"]


def test_strict_mode_pair_converges() -> None:
    link = Link(p(150, A_ADDR, strict=True), p(100, B_ADDR, strict=True))
    link.start("B", 0)
    link.run_until(5 * SEC)
    link.start("A", 5 * SEC)
    link.run_until(20 * SEC)
    assert link.masters() == ["A"]
