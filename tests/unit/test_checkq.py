"""The check engine's timer queue, both twins (``twin_flavour``): lanes (a FIFO per
fixed delay) and the heap fire in time order behind one loop timer, a replaced
entry neither fires nor wakes the loop, the grid is late never early, a raising
callback is logged and the batch goes on, references are released; and the
differential test drives both twins with the same operations."""

from __future__ import annotations

import gc
import heapq
import logging
import sys
import time
from types import ModuleType, SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_twin
from tests.unit.check.fakeloop import FakeLoop


@pytest.fixture
def checkq(twin_flavour: str) -> ModuleType:
    return load_twin("checkq", twin_flavour)


class Recorder:
    """Stands in for a Check: records when its timer fired; may run an action."""

    def __init__(self, name: str, fired: list[tuple[float, str]], loop: FakeLoop) -> None:
        self.name, self.fired, self.loop = name, fired, loop
        self.token = 0
        self.action: object = None

    def on_timer(self) -> None:
        self.fired.append((self.loop.now, self.name))
        if callable(self.action):
            self.action()


def test_the_compiled_twin_is_the_one_under_test(checkq: ModuleType, twin_flavour: str) -> None:
    assert checkq.__name__.endswith("_" + twin_flavour)
    assert checkq.TimerQueue.GRAIN == 0.01 and checkq.TimerQueue.BUDGET == 0.005


def test_lanes_and_heap_fire_in_time_order_with_one_loop_timer(checkq: ModuleType) -> None:
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop)
    fired: list[tuple[float, str]] = []
    a, b, c, d = (Recorder(n, fired, loop) for n in "abcd")
    q.after(0.5, a)
    q.after(0.2, b)
    q.at(0.3, c)
    q.after(0.5, d)
    assert loop.pending() == 1 and len(q) == 4
    assert sorted(q.lanes) == [0.2, 0.5] and [e[2] for e in q.heap] == [c]
    loop.advance(1.0)
    assert [n for _, n in fired] == ["b", "c", "a", "d"]
    assert [t for t, _ in fired] == [0.2, 0.3, 0.5, 0.5]
    assert q.handle is None and len(q) == 0
    assert (a.token, b.token, c.token, d.token) == (0, 0, 0, 0)


def test_a_replaced_entry_does_not_fire_nor_wake_the_loop(checkq: ModuleType) -> None:
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop)
    fired: list[tuple[float, str]] = []
    a, b = Recorder("a", fired, loop), Recorder("b", fired, loop)
    q.after(0.1, a)
    q.after(1.0, a)  # replaces the first
    q.at(0.2, b)
    q.at(2.0, b)  # replaces the first, in the heap
    loop.advance(0.5)
    assert fired == []
    assert q.armed_at == 1.0  # the stale entries were dropped, not armed for
    loop.advance(2.0)
    assert fired == [(1.0, "a"), (2.0, "b")]


def test_a_token_reset_by_its_owner_cancels(checkq: ModuleType) -> None:
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop, grain=0)
    fired: list[tuple[float, str]] = []
    a = Recorder("a", fired, loop)
    q.after(0.1, a)
    a.token = 0  # what Check.expire/_done/stop do
    loop.advance(1.0)
    assert fired == [] and len(q) == 0 and q.handle is None


def test_clear_empties_lanes_and_heap(checkq: ModuleType) -> None:
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop)
    fired: list[tuple[float, str]] = []
    a, b = Recorder("a", fired, loop), Recorder("b", fired, loop)
    q.after(0.1, a)
    q.at(0.2, b)
    q.clear()
    loop.advance(1.0)
    assert fired == [] and len(q) == 0 and a.token == 0 and b.token == 0
    assert loop.pending() == 0 and not q.heap and not q.lanes
    q.after(0.1, a)  # usable after a clear
    loop.advance(1.0)
    assert [n for _, n in fired] == ["a"]


def test_the_loop_timer_wakes_on_the_grain_grid_late_never_early(checkq: ModuleType) -> None:
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop, grain=0.01)
    fired: list[tuple[float, str]] = []
    a, b, c = (Recorder(n, fired, loop) for n in "abc")
    q.at(0.0123, a)
    q.at(0.0171, b)  # the same grid cell: one wake-up
    q.at(0.0305, c)
    assert q.armed_at == 0.02
    loop.advance(1.0)
    assert [(round(t, 9), n) for t, n in fired] == [(0.02, "a"), (0.02, "b"), (0.04, "c")]
    q0 = checkq.TimerQueue(loop, grain=0)  # no grid: the entry's own time
    q0.at(1.0123, a)
    assert q0.armed_at == 1.0123


def test_a_wake_up_yields_after_its_budget_and_the_rest_runs_at_the_next_turn(
    checkq: ModuleType,
) -> None:
    """Issue 16: 5,000 checks due at once ran in one callback, the loop's other
    timers 0.6 s late.  A wake-up stops once BUDGET has passed; the entries still
    due are armed for the next turn (not rounded up to the grid), in order."""
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop, grain=0.01)
    fired: list[tuple[float, str]] = []
    items = [Recorder(f"r{i}", fired, loop) for i in range(12)]
    each = q.BUDGET / 2.5  # three callbacks outlast the budget, whatever the clock does

    def slow() -> None:
        end = time.monotonic() + each
        while time.monotonic() < end:
            pass

    for r in items:
        r.action = slow
        q.after(0.5, r)
    def one_wake_up() -> int:  # the loop's next callback alone
        before = len(fired)
        while loop._heap[0][2].cancelled:
            heapq.heappop(loop._heap)
        when, _, h = heapq.heappop(loop._heap)
        loop.now = max(loop.now, when)
        h.callback(*h.args)
        return len(fired) - before

    assert q.armed_at == 0.5
    wakes = [one_wake_up()]
    assert 1 <= wakes[0] <= 3 and q.armed_at == 0.5  # the rest is due now: no grid
    while len(fired) < len(items):
        wakes.append(one_wake_up())
    assert [n for _, n in fired] == [r.name for r in items]
    assert all(1 <= w <= 3 for w in wakes) and len(wakes) >= 4
    assert loop.now == 0.5
    assert q.handle is None and len(q) == 0


def test_the_queue_reports_how_late_its_entries_ran(checkq: ModuleType) -> None:
    """take_late(): the worst lateness of an entry run since the last call, the
    engine lag the loop's own timers no longer show once a wake-up yields."""
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop, grain=0)
    fired: list[tuple[float, str]] = []
    a, b, c = (Recorder(n, fired, loop) for n in "abc")
    q.after(0.5, a)
    q.at(0.6, b)
    q.after(0.9, c)
    assert q.take_late() == 0.0
    loop.now = 0.8  # the loop was held up: a and b run late, c is not due yet
    q._run()
    assert [n for _, n in fired] == ["a", "b"]
    assert q.take_late() == pytest.approx(0.3) and q.take_late() == 0.0
    loop.advance_to(2.0)  # c on time
    assert q.take_late() == pytest.approx(0.0)


def test_a_raising_callback_is_logged_and_the_batch_goes_on(
    checkq: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop, grain=0)
    fired: list[tuple[float, str]] = []
    a, b = Recorder("a", fired, loop), Recorder("b", fired, loop)

    def boom() -> None:
        raise RuntimeError("consumer bug")

    a.action = boom
    q.after(0.1, a)
    q.after(0.1, b)
    with caplog.at_level(logging.ERROR, logger="hafast.check"):
        loop.advance(1.0)
    assert [n for _, n in fired] == ["a", "b"]
    assert "a: timer callback raised" in caplog.text


def test_a_callback_rearming_itself_fires_once_per_period(checkq: ModuleType) -> None:
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop, grain=0)
    fired: list[tuple[float, str]] = []
    a = Recorder("a", fired, loop)
    a.action = lambda: q.after(0.25, a)
    q.after(0.25, a)
    loop.advance(1.0)
    assert [t for t, _ in fired] == [0.25, 0.5, 0.75, 1.0]
    q.clear()


def test_clear_from_a_callback_stops_the_batch(checkq: ModuleType) -> None:
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop, grain=0)
    fired: list[tuple[float, str]] = []
    a, b, c = (Recorder(n, fired, loop) for n in "abc")
    a.action = q.clear  # Runner.stop from an event consumer
    q.after(0.1, a)
    q.after(0.1, b)
    q.at(0.1, c)
    loop.advance(1.0)
    assert [n for _, n in fired] == ["a"]
    assert len(q) == 0 and q.handle is None and loop.pending() == 0


def test_a_long_lane_keeps_fifo_order_across_growth(checkq: ModuleType) -> None:
    # Wraps the compiled twin's ring buffer, then grows it while wrapped.
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop, grain=0)
    fired: list[tuple[float, str]] = []
    items = [Recorder(str(i), fired, loop) for i in range(300)]
    for i, r in enumerate(items[:100]):
        loop.now = i * 0.001
        q.after(1.0, r)
    loop.advance_to(1.05)  # the first ~50 fire
    first = len(fired)
    assert 0 < first < 100
    for i, r in enumerate(items[100:]):
        loop.now = 1.05 + i * 0.0001
        q.after(1.0, r)
    loop.advance(5.0)
    assert [int(n) for _, n in fired] == list(range(300))


def test_entries_hold_their_checks_and_release_them(checkq: ModuleType) -> None:
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop, grain=0)
    fired: list[tuple[float, str]] = []
    a, b = Recorder("a", fired, loop), Recorder("b", fired, loop)
    gc.collect()
    base_a, base_b = sys.getrefcount(a), sys.getrefcount(b)
    for _ in range(10):
        q.after(0.1, a)  # nine stale entries, one live
    q.at(0.5, b)
    assert sys.getrefcount(a) == base_a + 10 and sys.getrefcount(b) == base_b + 1
    loop.advance(1.0)
    assert sys.getrefcount(a) == base_a and sys.getrefcount(b) == base_b
    q.after(0.1, a)
    q.at(0.1, b)
    q.clear()
    assert sys.getrefcount(a) == base_a and sys.getrefcount(b) == base_b


def test_a_dropped_queue_releases_its_entries(checkq: ModuleType) -> None:
    loop = FakeLoop(start=0.0)
    q = checkq.TimerQueue(loop, grain=0)
    a = Recorder("a", [], loop)
    base = sys.getrefcount(a)
    q.after(0.1, a)
    q.at(0.2, a)
    del q
    loop._heap.clear()  # the loop's handle held the queue's bound _run
    gc.collect()
    assert sys.getrefcount(a) == base


# --------------------------------------------------------------------------- differential

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("after"), st.integers(0, 7), st.sampled_from([0.05, 0.3, 1.0])),
        st.tuples(st.just("at"), st.integers(0, 7), st.floats(0.0, 3.0)),
        st.tuples(st.just("cancel"), st.integers(0, 7), st.just(0.0)),
        st.tuples(st.just("advance"), st.integers(0, 0), st.floats(0.0, 0.7)),
    ),
    max_size=60,
)


def _drive(mod: ModuleType, ops: list[tuple[str, int, float]]) -> tuple[object, ...]:
    loop = FakeLoop(start=0.0)
    q = mod.TimerQueue(loop)
    fired: list[tuple[float, str]] = []
    items = [Recorder(str(i), fired, loop) for i in range(8)]
    armed = []
    for op, i, x in ops:
        if op == "after":
            q.after(x, items[i])
        elif op == "at":
            q.at(loop.now + x, items[i])
        elif op == "cancel":
            items[i].token = 0
        else:
            loop.advance(x)
        armed.append((q.armed_at, q.handle is None, len(q)))
    loop.advance(10.0)
    return fired, armed, len(q)


@pytest.mark.compiled
@settings(max_examples=150, deadline=None)
@given(ops=_OPS)
def test_both_twins_fire_the_same_timers_at_the_same_times(
    ops: list[tuple[str, int, float]],
) -> None:
    py = load_twin("checkq", "py")
    c = load_twin("checkq", "c")
    assert _drive(c, ops) == _drive(py, ops)


def test_a_check_holds_its_one_health_alone_and_more_in_a_tuple(checkq: ModuleType) -> None:
    """Check.feed (issue 16): one health that is its own one-element collection
    (ServerHealth) is held without a tuple of one; a second makes a tuple; a health
    that is not (a test's stand-in) goes in a tuple from the first.  Iterating
    ``healths`` gives the same healths either way."""
    from hafast.check.runner import ServerHealth

    class Plain:
        def attach(self, up: bool) -> None:
            self.up = up

    loop = FakeLoop()
    runner = SimpleNamespace(loop=loop, timers=checkq.TimerQueue(loop), latency=None)
    a = ServerHealth(("vs",), ("10.0.0.1", 80))
    b = ServerHealth(("vs2",), ("10.0.0.1", 80))
    check = checkq.Check(runner, None)
    check.up = True
    check.feed(a)
    assert check.healths is a and list(check.healths) == [a] and check.healths[0] is a
    check.feed(b)
    assert check.healths == (a, b) and (a.checks, b.checks) == (1, 1)
    plain = Plain()
    other = checkq.Check(runner, None)
    other.up = False
    other.feed(plain)
    assert other.healths == (plain,) and plain.up is False
