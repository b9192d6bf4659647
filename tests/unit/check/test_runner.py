"""The runner on a manual clock: retry arithmetic, deadlines, alpha, all-checkers-
must-pass, events, warmup spread, counters, logging.  No sockets, no sleeping."""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.check.api import NO_ATTEMPT, TIMEOUT, Attempt, Done, ProbeKind, ProbeResult, Target
from hafast.check.runner import CheckState, RateLimit, Runner, ServerHealth, settle
from hafast.config import model as m
from hafast.lib.events import DOWN, UP, WEIGHT, ServerEvent
from tests.conftest import load_twin
from tests.unit.check.fakeloop import FakeLoop

S = 1_000_000
VS = ("addr", "10.0.0.1", 80, "TCP")
RS = ("10.1.0.1", 80)


# --------------------------------------------------------------------------- pure core


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        # up, retry 2: two retries spaced by delay_before_retry, then DOWN
        ("FFF", [(200, None), (200, None), (1000, False)]),
        # a success in the middle resets the retry count
        ("FFSFF", [(200, None), (200, None), (1000, None), (200, None), (200, None)]),
        # down: no retries, every delay_loop, UP on the first success
        ("FFFFFS", [(200, None), (200, None), (1000, False), (1000, None), (1000, None),
                    (1000, True)]),
    ],
)
def test_settle_table(outcomes: str, expected: list[tuple[int, bool | None]]) -> None:
    state = CheckState(up=True)
    got = [settle(state, c == "S", 2, 1000, 200) for c in outcomes]
    assert got == expected


def test_settle_alpha_starts_down_and_first_success_is_up() -> None:
    state = CheckState(up=False)
    assert settle(state, False, 3, 1000, 200) == (1000, None)  # down: no retries
    assert settle(state, True, 3, 1000, 200) == (1000, True)


def test_settle_retry_zero_goes_down_at_once() -> None:
    state = CheckState(up=True)
    assert settle(state, False, 0, 1000, 200) == (1000, False)


def test_server_health_needs_every_checker() -> None:
    h = ServerHealth(VS, RS, 3)
    a, b = object(), object()
    h.attach(True)
    h.attach(True)
    assert h.up
    ev = h.apply(a, True, False, None, "TCP_CHECK refused", 1.0)
    assert ev is not None and ev.state == DOWN and ev.reason == "TCP_CHECK refused"
    assert h.apply(b, True, False, None, "MISC_CHECK exit", 2.0) is None  # already down
    assert h.apply(a, False, True, None, "", 3.0) is None  # still one checker down
    ev = h.apply(b, False, True, None, "", 4.0)
    assert ev is not None and ev.state == UP and ev.weight == 3 and ev.reason == ""
    ev = h.apply(b, True, True, 7, "", 5.0)
    assert ev is not None and ev.state == WEIGHT and ev.weight == 7
    assert h.apply(b, True, True, 7, "", 6.0) is None
    ev = h.apply(a, True, True, 5, "", 7.0)
    assert ev is not None and ev.weight == 5  # the lowest dynamic weight wins
    ev = h.apply(a, True, True, None, "", 8.0)
    assert ev is not None and ev.weight == 7


def test_rate_limit_counts_suppressed_lines() -> None:
    now = [0.0]
    r = RateLimit(2, 1.0, clock=lambda: now[0])
    assert [r.allow() for _ in range(5)] == [True, True, False, False, False]
    assert r.suppressed == 3
    now[0] = 1.5
    assert r.allow() and r.suppressed == 0


# --------------------------------------------------------------------------- the shell


class Scripted(ProbeKind):
    """Answers from a script: 'S' success, 'F' refused at once, 'M' no socket (the
    worker's open-files limit), 'H' hang (never
    answers, so the deadline decides), after ``latency`` seconds of loop time."""

    keyword = "SCRIPTED"
    script: Callable[[int], str] = staticmethod(lambda n: "S")

    def __init__(self, spec: Any, target: Target, loop: Any, latency: float = 0.01) -> None:
        super().__init__(spec, target, loop)
        self.latency = latency
        self.starts: list[float] = []
        self.cancels = 0
        self.weights: dict[int, int] = {}

    def start(self, done: Done) -> Attempt:
        n = len(self.starts)
        self.starts.append(self.loop.time())
        what = self.script(n)
        if what == "H":
            return _Cancel(self)
        result = ProbeResult(True, weight=self.weights.get(n)) if what == "S" else \
            ProbeResult(False, "fd-limit", "socket: EMFILE") if what == "M" else \
            ProbeResult(False, "refused", "scripted")
        handle = self.loop.call_later(self.latency, done, result)
        return _Cancel(self, handle)


class _Cancel:
    def __init__(self, kind: Scripted, handle: Any = None) -> None:
        self.kind, self.handle = kind, handle

    def cancel(self) -> None:
        self.kind.cancels += 1
        if self.handle is not None:
            self.handle.cancel()


def spec(**kw: Any) -> m.TcpCheck:
    base = dict(connect_timeout_us=300_000, retry=2, delay_before_retry_us=200_000,
                delay_loop_us=500_000, warmup_us=0)
    base.update(kw)
    return m.TcpCheck(**base)  # type: ignore[arg-type]


@pytest.fixture
def loop() -> FakeLoop:
    return FakeLoop()


@pytest.fixture
def events() -> list[ServerEvent]:
    return []


def make(loop: FakeLoop, events: list[ServerEvent], script: str | Callable[[int], str],
         sp: m.Checker | None = None, **kw: Any) -> tuple[Runner, Scripted, ServerHealth]:
    runner = Runner(loop, events.append, rng=random.Random(1), **kw)
    kind = Scripted(sp or spec(), Target("10.1.0.1", 80), loop)
    if isinstance(script, str):
        text = script
        kind.script = lambda n: text[n] if n < len(text) else text[-1]
    else:
        kind.script = script
    health = ServerHealth(VS, RS, 1)
    runner.add(kind, [health])
    return runner, kind, health


def test_hang_is_cancelled_at_the_deadline_and_retried(loop: FakeLoop,
                                                       events: list[ServerEvent]) -> None:
    # retry 2, delay_before_retry 0.2, connect_timeout 0.3, delay_loop 0.5
    runner, kind, _ = make(loop, events, "H")
    t0 = loop.now
    runner.start()
    loop.advance(5.0)
    # attempts at 0, then +0.3 timeout +0.2 retry = 0.5, 1.0; DOWN at 1.3; then every
    # 0.3 + 0.5 = 0.8 s while down (no retries)
    starts = [round(s - t0, 6) for s in kind.starts]
    assert starts[:5] == [0.0, 0.5, 1.0, 1.8, 2.6]
    assert kind.cancels == len(kind.starts) - (1 if runner.checks[0].pending else 0)
    assert [e.state for e in events] == [DOWN]
    assert events[0].at - t0 == pytest.approx(0.3 + 2 * (0.2 + 0.3))
    assert events[0].reason == "SCRIPTED timeout"
    assert runner.counters["fail:timeout"] == len(kind.starts) - 1


def test_down_then_up_within_one_delay_loop(loop: FakeLoop, events: list[ServerEvent]) -> None:
    healthy_from = [999]

    def script(n: int) -> str:
        return "S" if n >= healthy_from[0] else "F"

    runner, kind, health = make(loop, events, script)
    t0 = loop.now
    runner.start()
    loop.advance(0.3)
    assert not events  # two attempts failed (0, 0.21), a retry is pending
    loop.advance(0.2)
    assert [e.state for e in events] == [DOWN] and not health.up
    assert events[0].at - t0 == pytest.approx(3 * 0.01 + 2 * 0.2)
    assert events[0].reason == "SCRIPTED refused"
    healthy_from[0] = len(kind.starts)
    recovered = loop.now
    loop.advance(0.6)
    assert [e.state for e in events] == [DOWN, UP] and health.up
    assert events[1].at - recovered <= 0.5 + 0.01 + 1e-9


def test_alpha_starts_down_and_goes_up_on_first_success(loop: FakeLoop,
                                                        events: list[ServerEvent]) -> None:
    runner, kind, health = make(loop, events, "S", spec(alpha=True))
    assert not health.up
    runner.start()
    loop.advance(0.1)
    assert [e.state for e in events] == [UP]
    assert len(kind.starts) == 1


def test_alpha_failure_stays_down_without_retries_its_first_result_said_once(
        loop: FakeLoop, events: list[ServerEvent]) -> None:
    runner, kind, health = make(loop, events, "F", spec(alpha=True))
    runner.start()
    loop.advance(1.2)
    # keepalived reports an alpha checker's first result though nothing changed;
    # the pool policy decides what that notifies
    assert [(e.state, e.reason, e.at - 1000) for e in events] == [
        (DOWN, "SCRIPTED refused", pytest.approx(0.01))]
    assert not health.up
    assert len(kind.starts) == 3  # 0, 0.51, 1.02: delay_loop apart


@pytest.mark.parametrize(("alpha", "script", "states"), [
    (True, "S", [UP]),  # a transition, as before
    (False, "S", []),  # a first success of a server already up: nothing
    (False, "FFF", [DOWN]),  # up, retries, then the transition
    (True, "FS", [DOWN, UP]),  # the first result, then the transition
])
def test_only_an_alpha_checkers_first_failure_is_said_without_a_change(
        loop: FakeLoop, events: list[ServerEvent], alpha: bool, script: str,
        states: list[str]) -> None:
    runner, _, _ = make(loop, events, script, spec(alpha=alpha))
    runner.start()
    loop.advance(1.2)
    assert [e.state for e in events] == states


def test_an_alpha_check_seeded_up_goes_down_as_a_transition(
        loop: FakeLoop, events: list[ServerEvent]) -> None:
    # a restarted worker seeds its checks from the parent's last known health
    runner, _, health = make(loop, events, "F", spec(alpha=True, retry=0))
    check = runner.checks[0]
    check.state.up, health.failing, health.up = True, 0, True
    runner.start()
    loop.advance(0.1)
    assert [e.state for e in events] == [DOWN] and not health.up


def test_a_shared_alpha_checks_first_failure_is_said_to_every_health(
        loop: FakeLoop, events: list[ServerEvent]) -> None:
    runner = Runner(loop, events.append, rng=random.Random(1))
    h1, h2 = ServerHealth(VS, RS, 1), ServerHealth(("addr", "10.0.0.2", 80, "TCP"), RS, 1)
    kind = Scripted(spec(alpha=True), Target("10.1.0.1", 80), loop)
    kind.script = lambda n: "F"
    runner.add(kind, [h1, h2])
    runner.start()
    loop.advance(1.2)
    assert sorted((str(e.virtual_server[1]), e.state) for e in events) == [
        ("10.0.0.1", DOWN), ("10.0.0.2", DOWN)]


def test_fd_limit_is_rescheduled_not_counted_against_the_server(
        loop: FakeLoop, events: list[ServerEvent], caplog: pytest.LogCaptureFixture) -> None:
    # retry 0: one counted failure would take the server down at once
    runner, kind, health = make(loop, events, "MMMMF", spec(retry=0))
    t0 = loop.now
    with caplog.at_level(logging.WARNING, "hafast"):
        runner.start()
        loop.advance(2.3)
    starts = [round(s - t0, 6) for s in kind.starts]
    assert starts == [0.0, 0.51, 1.02, 1.53, 2.04]  # a delay_loop apart, no retries
    assert [e.state for e in events] == [DOWN] and not health.up  # only the real 'F'
    assert runner.counters["fail:fd-limit"] == 4
    lines = [r.getMessage() for r in caplog.records if "RLIMIT_NOFILE" in r.getMessage()]
    assert len(lines) == 1 and "rescheduled in delay_loop" in lines[0]  # rate-limited


def test_emfile_is_the_fd_limit_reason() -> None:
    import errno

    from hafast.check.tcp import failure

    assert failure(errno.EMFILE).reason == failure(errno.ENFILE).reason == "fd-limit"


def test_all_checkers_must_pass(loop: FakeLoop, events: list[ServerEvent]) -> None:
    runner = Runner(loop, events.append, rng=random.Random(1))
    health = ServerHealth(VS, RS, 1)
    good = Scripted(spec(), Target("10.1.0.1", 80), loop)
    bad = Scripted(spec(retry=0), Target("10.1.0.1", 80), loop)
    state = {"bad": "F"}
    bad.script = lambda n: state["bad"]
    runner.add(good, [health])
    runner.add(bad, [health])
    runner.start()
    loop.advance(0.1)
    assert [e.state for e in events] == [DOWN]
    state["bad"] = "S"
    loop.advance(1.0)
    assert [e.state for e in events] == [DOWN, UP]


def test_dynamic_weight_events(loop: FakeLoop, events: list[ServerEvent]) -> None:
    runner, kind, _ = make(loop, events, "S")
    kind.weights = {1: 5, 2: 5, 3: 9}
    runner.start()
    loop.advance(2.2)
    assert [(e.state, e.weight) for e in events] == [(WEIGHT, 5), (WEIGHT, 9), (WEIGHT, 1)]


def test_shared_check_feeds_every_health(loop: FakeLoop, events: list[ServerEvent]) -> None:
    runner = Runner(loop, events.append, rng=random.Random(1))
    h1, h2 = ServerHealth(VS, RS, 1), ServerHealth(("addr", "10.0.0.2", 80, "TCP"), RS, 1)
    kind = Scripted(spec(retry=0), Target("10.1.0.1", 80), loop)
    kind.script = lambda n: "F"
    runner.add(kind, [h1, h2])
    runner.start()
    loop.advance(0.1)
    assert sorted(str(e.virtual_server[1]) for e in events) == ["10.0.0.1", "10.0.0.2"]


def test_warmup_spreads_first_attempts() -> None:
    loop = FakeLoop()
    runner = Runner(loop, None, rng=random.Random(7))
    sp = spec(warmup_us=None, delay_loop_us=S)
    kinds = []
    for i in range(10_000):
        k = Scripted(sp, Target(f"10.{i >> 8}.{i & 255}.1", 80), loop)
        runner.add(k, [ServerHealth(VS, (k.target.address, 80), 1)])
        kinds.append(k)
    t0 = loop.now
    runner.start()
    loop.advance(1.0)
    firsts = [k.starts[0] - t0 for k in kinds]
    assert all(0 <= f <= 1.0 for f in firsts)
    per_10ms = [0] * 101
    for f in firsts:
        per_10ms[int(f * 100)] += 1
    assert max(per_10ms) < 300  # ~100 expected per 10 ms; never one burst
    runner.stop()
    assert loop.pending() == 0


def test_warmup_zero_starts_now_and_explicit_warmup_bounds(loop: FakeLoop) -> None:
    runner = Runner(loop, None, rng=random.Random(3))
    a = Scripted(spec(warmup_us=0), Target("10.1.0.1", 80), loop)
    b = Scripted(spec(warmup_us=100_000, delay_loop_us=10 * S), Target("10.1.0.2", 80), loop)
    for k in (a, b):
        runner.add(k, [ServerHealth(VS, (k.target.address, 80), 1)])
    t0 = loop.now
    runner.start()
    loop.advance(0.11)
    assert a.starts[0] == t0
    assert 0 <= b.starts[0] - t0 <= 0.1


def test_stop_cancels_timers_and_attempts(loop: FakeLoop, events: list[ServerEvent]) -> None:
    runner, kind, _ = make(loop, events, "H")
    runner.start()
    loop.advance(0.1)
    assert runner.checks[0].pending
    runner.stop()
    assert kind.cancels == 1 and loop.pending() == 0


class Raises(ProbeKind):
    keyword = "RAISES"

    def start(self, done: Done) -> Attempt:
        raise RuntimeError("boom")


class Twice(ProbeKind):
    keyword = "TWICE"

    def start(self, done: Done) -> Attempt:
        done(ProbeResult(False, "refused"))
        done(ProbeResult(True))
        return NO_ATTEMPT


def test_a_raising_kind_is_a_failure_not_a_crash(loop: FakeLoop,
                                                events: list[ServerEvent]) -> None:
    runner = Runner(loop, events.append, rng=random.Random(1))
    runner.add(Raises(spec(retry=0), Target("10.1.0.1", 80), loop),
               [ServerHealth(VS, RS, 1)])
    runner.start()
    loop.advance(0.01)
    assert [e.state for e in events] == [DOWN] and runner.counters["fail:error"] == 1


def test_a_second_done_is_ignored(loop: FakeLoop, events: list[ServerEvent]) -> None:
    runner = Runner(loop, events.append, rng=random.Random(1))
    runner.add(Twice(spec(retry=0), Target("10.1.0.1", 80), loop), [ServerHealth(VS, RS, 1)])
    runner.start()
    loop.advance(0.01)
    assert [e.state for e in events] == [DOWN]
    assert runner.counters["attempts"] == 1


class SilentOk(Scripted):
    keyword = "SILENT"

    def on_deadline(self) -> ProbeResult:
        return ProbeResult(True)


def test_on_deadline_lets_a_kind_call_silence_success(loop: FakeLoop,
                                                      events: list[ServerEvent]) -> None:
    runner = Runner(loop, events.append, rng=random.Random(1))
    kind = SilentOk(spec(), Target("10.1.0.1", 80), loop)
    kind.script = lambda n: "H"
    runner.add(kind, [ServerHealth(VS, RS, 1)])
    runner.start()
    loop.advance(3.0)
    assert not events and runner.counters["ok"] >= 3 and kind.cancels >= 3
    assert TIMEOUT.reason == "timeout"


@pytest.mark.parametrize("log_all", [False, True])
def test_log_all_failures(loop: FakeLoop, events: list[ServerEvent], log_all: bool,
                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hafast.check")
    runner, _kind, _ = make(loop, events, "F", spec(log_all_failures=log_all))
    runner.start()
    loop.advance(0.95)
    lines = [r.getMessage() for r in caplog.records]
    per_attempt = [x for x in lines if " failed: refused" in x]
    assert len(per_attempt) == (3 if log_all else 0)
    assert sum("checker DOWN" in x for x in lines) == 1


def test_global_log_all_failures(loop: FakeLoop, events: list[ServerEvent],
                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hafast.check")
    runner, _, _ = make(loop, events, "F", log_all_failures=True)
    runner.start()
    loop.advance(0.95)
    assert sum(" failed: refused" in r.getMessage() for r in caplog.records) == 3


def test_a_raising_event_consumer_does_not_stop_the_checks(
        loop: FakeLoop, caplog: pytest.LogCaptureFixture) -> None:
    def boom(event: ServerEvent) -> None:
        raise RuntimeError("consumer bug")

    runner = Runner(loop, boom, rng=random.Random(1))
    kind = Scripted(spec(retry=0), Target("10.1.0.1", 80), loop, latency=0.0)
    flips = "FSFSFS"
    kind.script = lambda n: flips[n % len(flips)]  # type: ignore[method-assign]
    runner.add(kind, [ServerHealth(VS, RS, 1)])
    runner.start()
    loop.advance(3.0)
    assert len(kind.starts) >= 5
    assert "event consumer raised" in caplog.text


def test_timer_queue_keeps_one_loop_timer(loop: FakeLoop) -> None:
    runner = Runner(loop, None, rng=random.Random(5))
    for i in range(500):
        k = Scripted(spec(warmup_us=None, delay_loop_us=S), Target(f"10.9.{i >> 8}.{i & 255}",
                                                                   80), loop)
        runner.add(k, [ServerHealth(VS, (k.target.address, 80), 1)])
    runner.start()
    for _ in range(30):
        loop.advance(0.1)
        assert loop.pending() <= 1 + 500  # the queue's one timer + the scripted latencies
        assert runner.timers.handle is not None
    runner.stop()
    assert loop.pending() == 0 and not runner.timers.heap


class LateLoop(FakeLoop):
    """Every callback runs ``lag`` seconds after it was due, as a busy loop's do."""

    lag = 0.004

    def advance_to(self, t: float) -> None:
        while self._heap and self._heap[0][0] + self.lag <= t:
            when, _, h = heapq.heappop(self._heap)
            if h.cancelled:
                continue
            self.now = max(self.now, when + self.lag)
            h.callback(*h.args)
        self.now = max(self.now, t)


def test_grid_lateness_does_not_add_up_over_a_retry_chain() -> None:
    # connect_timeout 0.3, retry 2, delay_before_retry 0.2: three deadlines, two
    # retries.  Each wake-up is up to one grain (10 ms) + the lag late; a retry counts
    # from when its deadline was due, so only the starts' lateness remains (one per
    # attempt), not a deadline's AND a start's per retry.
    loop = LateLoop()
    events: list[ServerEvent] = []
    runner, kind, _ = make(loop, events, "H")
    runner.start()
    loop.advance(3.0)
    assert [e.state for e in events] == [DOWN]
    first = kind.starts[0]
    grain = runner.timers.grain
    assert events[0].at - first <= 1.3 + 3 * grain + 1e-6
    # never early: each attempt got its whole connect_timeout, each retry its delay
    assert kind.starts[1] - first >= 0.5 and kind.starts[2] - kind.starts[1] >= 0.5
    assert events[0].at - kind.starts[2] >= 0.3


# --------------------------------------------------------------------------- the twins

def _trace(flavour: str, script: str, alpha: bool) -> tuple[list[Any], list[float], dict[str, int],
                                                             list[int]]:
    """One scripted story on the runner with checkq's ``flavour`` (Check, TimerQueue,
    Latency): the events, the start times, the counters and the latency histogram."""
    mod = load_twin("checkq", flavour)
    loop = LateLoop()
    events: list[ServerEvent] = []
    with pytest.MonkeyPatch.context() as mp:
        import hafast.check.runner as runner_mod

        mp.setattr(runner_mod, "TimerQueue", mod.TimerQueue)
        mp.setattr(Runner, "check_class", mod.Check)
        lat = mod.Latency((0.005, 0.05, 0.5))
        runner = Runner(loop, events.append, rng=random.Random(3), latency=lat)
        kind = Scripted(spec(alpha=alpha, warmup_us=None), Target("10.1.0.1", 80), loop)
        kind.script = lambda n: script[n] if n < len(script) else script[-1]
        kind.weights = {4: 7}
        runner.add(kind, [ServerHealth(VS, RS, 1)])
        runner.start()
        loop.advance(12.0)
        runner.stop()
    return ([(e.state, e.weight, e.reason, round(e.at, 6)) for e in events],
            [round(t, 6) for t in kind.starts], dict(runner.counters), list(lat.buckets))


@pytest.mark.compiled
@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize("script", ["S", "SSFFFSSSS", "HHHSSFSHHHHS", "FSFSFSSSSSS"])
def test_compiled_check_and_twin_tell_the_same_story(script: str, alpha: bool) -> None:
    # Check (the attempt's life and the steady-state settle) is compiled beside a
    # pure twin: the same script must give the same events, starts, counters and
    # latency histogram to the microsecond.
    assert _trace("c", script, alpha) == _trace("py", script, alpha)


def test_latency_records_every_attempt(twin_flavour: str) -> None:
    mod = load_twin("checkq", twin_flavour)
    loop = FakeLoop()
    lat = mod.Latency((0.005, 0.05, 0.5))
    with pytest.MonkeyPatch.context() as mp:
        import hafast.check.runner as runner_mod

        mp.setattr(runner_mod, "TimerQueue", mod.TimerQueue)
        mp.setattr(Runner, "check_class", mod.Check)
        runner = Runner(loop, None, rng=random.Random(1), latency=lat)
        kind = Scripted(spec(), Target("10.1.0.1", 80), loop, latency=0.01)
        kind.script = lambda n: "SH"[n % 2]  # 10 ms answers and 0.3 s deadlines
        runner.add(kind, [ServerHealth(VS, RS, 1)])
        runner.start()
        loop.advance(5.0)
        runner.stop()
    d = lat.as_dict()
    assert d["count"] == runner.counters["attempts"] > 4
    buckets = dict(d["buckets"])
    assert buckets[0.005] == 0
    assert buckets[0.05] == runner.counters["ok"]  # the 10 ms answers
    assert buckets[0.5] == d["count"]  # and the 0.3 s deadlines
    assert d["sum"] == pytest.approx(0.01 * runner.counters["ok"]
                                     + 0.3 * runner.counters["fail:timeout"])


def test_a_kind_reports_to_the_check_itself(twin_flavour: str) -> None:
    """``done`` is the check (callable), not a bound method kept per check (64 bytes
    each, issue 16): what the kind is handed settles the attempt."""
    mod = load_twin("checkq", twin_flavour)
    loop = FakeLoop()
    handed: list[Any] = []

    class Keeping(Scripted):
        def start(self, done: Done) -> Attempt:
            handed.append(done)
            return super().start(done)

    with pytest.MonkeyPatch.context() as mp:
        import hafast.check.runner as runner_mod

        mp.setattr(runner_mod, "TimerQueue", mod.TimerQueue)
        mp.setattr(Runner, "check_class", mod.Check)
        runner = Runner(loop, None, rng=random.Random(1))
        kind = Keeping(spec(), Target("10.1.0.1", 80), loop, latency=0.01)
        check = runner.add(kind, [ServerHealth(VS, RS, 1)])
        runner.start()
        loop.advance(3.0)
        runner.stop()
    assert handed and all(d is check for d in handed) and check.done is check
    assert runner.counters["attempts"] == len(handed)


def test_steady_tally_is_folded_into_the_counters_once(loop: FakeLoop,
                                                       events: list[ServerEvent]) -> None:
    runner, kind, _ = make(loop, events, "SSSFS")
    runner.start()
    loop.advance(1.0)
    first = dict(runner.counters)
    assert dict(runner.counters) == first  # reading twice counts nothing twice
    loop.advance(3.0)
    n = len(kind.starts) - (1 if runner.checks[0].pending else 0)
    assert runner.counters["attempts"] == n
    assert runner.counters["ok"] + runner.counters["fail:refused"] == n
    assert runner.timers.steady == 0


def _settled_by(path: str, flavour: str, up: bool, retry_it: int, weight: int | None,
                result: ProbeResult) -> tuple[object, ...]:
    """One result for a check in the given state, through the check's own ``done``
    (``path`` "done": the twin's shortcut when it applies) or straight to the
    runner's ``settled`` (the one state logic): the state, events, counters and
    the next timer it leaves."""
    mod = load_twin("checkq", flavour)
    loop = FakeLoop()
    events: list[ServerEvent] = []
    with pytest.MonkeyPatch.context() as mp:
        import hafast.check.runner as runner_mod

        mp.setattr(runner_mod, "TimerQueue", mod.TimerQueue)
        mp.setattr(Runner, "check_class", mod.Check)
        runner = Runner(loop, events.append)
        check = runner.add(Scripted(spec(), Target("10.1.0.1", 80), loop), [])
    runner.running = True  # (no start: no warmup timer in the way)
    check.up, check.retry_it, check.weight = up, retry_it, weight
    health = ServerHealth(VS, RS, 1)
    check.feed(health)
    health.apply(check, up, up, weight, "", 0.0)  # the health knows the weight too
    check.pending = True  # an attempt under way
    if path == "done":
        check.done(result)
    else:
        check.pending = False
        runner.settled(check, result)
    timers = runner.timers
    return ((check.up, check.has_run, check.retry_it, check.weight, check.last_reason),
            [(e.state, e.weight, e.reason) for e in events], dict(runner.counters),
            {d: [w for w, _, _ in lane] for d, lane in timers.lanes.items() if lane},
            [w for w, _, _ in timers.heap], check.pending)


@pytest.mark.parametrize("twin_flavour", ["c", "py"])
@settings(max_examples=150, deadline=None)
@given(up=st.booleans(), retry_it=st.integers(0, 2), weight=st.sampled_from([None, 3, 7]),
       ok=st.booleans(), new_weight=st.sampled_from([None, 3, 7]))
def test_each_twins_steady_shortcut_is_what_settle_says(
    twin_flavour: str, up: bool, retry_it: int, weight: int | None, ok: bool,
    new_weight: int | None,
) -> None:
    # The state logic is the runner's alone; a twin's Check settles only the steady
    # success itself.  Whatever the state and result, going through the check's
    # done must leave what the runner's settle would.
    if not up:
        retry_it = 0  # (a check that is down never retries)
    result = ProbeResult(True, weight=new_weight) if ok else ProbeResult(False, "refused")
    args = (twin_flavour, up, retry_it, weight, result)
    assert _settled_by("done", *args) == _settled_by("settled", *args)
