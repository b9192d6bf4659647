"""The engine's fast paths keep the contract: the timer lanes (FIFO per fixed delay)
fire in time order beside the heap, the steady-state shortcut in ``Runner.settled``
says what ``settle`` says, and TCP_CHECK's one epoll per loop settles connects,
refusals and cancels like the per-socket writer did."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from hafast.check import tcp
from hafast.check.api import NO_ATTEMPT, Attempt, Done, ProbeKind, ProbeResult, Target
from hafast.check.runner import Check, Runner, TimerQueue
from hafast.check.worker import new_loop
from hafast.config import model as m
from tests.conftest import load_twin
from tests.unit.check.fakeloop import FakeLoop

S = 1_000_000


class Recorder:
    """Stands in for a Check in the queue: records when its timer fired."""

    def __init__(self, name: str, fired: list[tuple[float, str]], loop: FakeLoop) -> None:
        self.name, self.fired, self.loop = name, fired, loop
        self.token = 0

    def on_timer(self) -> None:
        self.fired.append((self.loop.now, self.name))


def test_lanes_and_heap_fire_in_time_order_with_one_loop_timer() -> None:
    loop = FakeLoop(start=0.0)
    q = TimerQueue(loop)
    fired: list[tuple[float, str]] = []
    a, b, c, d = (Recorder(n, fired, loop) for n in "abcd")
    q.after(0.5, a)  # type: ignore[arg-type]
    q.after(0.2, b)  # type: ignore[arg-type]
    q.at(0.3, c)  # type: ignore[arg-type]
    q.after(0.5, d)  # type: ignore[arg-type]
    assert loop.pending() == 1
    loop.advance(1.0)
    assert [n for _, n in fired] == ["b", "c", "a", "d"]
    assert [t for t, _ in fired] == [0.2, 0.3, 0.5, 0.5]
    assert q.handle is None and len(q) == 0


def test_a_replaced_lane_entry_does_not_fire_nor_wake_the_loop() -> None:
    loop = FakeLoop(start=0.0)
    q = TimerQueue(loop)
    fired: list[tuple[float, str]] = []
    a = Recorder("a", fired, loop)
    q.after(0.1, a)  # type: ignore[arg-type]
    q.after(1.0, a)  # type: ignore[arg-type]  # replaces the first
    loop.advance(0.5)
    assert fired == []
    assert q.armed_at == 1.0  # the stale 0.1 entry was dropped, not armed for
    loop.advance(1.0)
    assert fired == [(1.0, "a")]


def test_clear_empties_lanes_and_heap() -> None:
    loop = FakeLoop(start=0.0)
    q = TimerQueue(loop)
    fired: list[tuple[float, str]] = []
    a, b = Recorder("a", fired, loop), Recorder("b", fired, loop)
    q.after(0.1, a)  # type: ignore[arg-type]
    q.at(0.2, b)  # type: ignore[arg-type]
    q.clear()
    loop.advance(1.0)
    assert fired == [] and len(q) == 0 and a.token == 0 and b.token == 0


def test_steady_success_keeps_delay_loop_pacing_from_completion() -> None:
    # keepalived's tcp_epilog: the next start is delay_loop after the RESULT.
    loop = FakeLoop(start=0.0)
    runner = Runner(loop)
    spec = m.TcpCheck(connect_timeout_us=S, retry=1, delay_before_retry_us=S,
                      delay_loop_us=S, warmup_us=0)
    starts: list[float] = []

    class Slow(ProbeKind):
        keyword = "SLOW"

        def start(self, done: Done) -> Attempt:
            starts.append(loop.now)
            loop.call_later(0.25, done, ProbeResult(True))
            return NO_ATTEMPT

    check: Check = runner.add(Slow(spec, Target("10.0.0.1", 80), loop), [])
    runner.start()
    loop.advance(4.0)
    assert starts == [0.0, 1.25, 2.5, 3.75]
    assert runner.counters["ok"] == 4 and check.state.up and check.state.has_run
    runner.stop()


# --------------------------------------------------------------------------- TCP_CHECK


def _run(loop: Any, kind: tcp.TcpKind) -> ProbeResult:
    fut = loop.create_future()
    kind.start(lambda r: fut.done() or fut.set_result(r))
    result: ProbeResult = loop.run_until_complete(fut)
    return result


@contextlib.contextmanager
def listener() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def test_tcp_kinds_share_one_connector_per_loop_and_release_it() -> None:
    loop = new_loop()
    try:
        with listener() as port:
            kinds = [tcp.TcpKind(m.TcpCheck(), Target("127.0.0.1", port), loop)
                     for _ in range(3)]
            assert all(_run(loop, k).ok for k in kinds)
            assert len({id(k.connector) for k in kinds}) == 1
            conn = kinds[0].connector
            assert conn is not None and conn.users == 3 and not conn.waiting
            for k in kinds:
                k.close()
            assert conn.connects.closed and not tcp._connectors.holds(loop)
    finally:
        loop.close()


def test_tcp_refused_and_cancel_through_the_connector() -> None:
    loop = new_loop()
    try:
        with listener() as port:
            pass  # closed again: the port now refuses
        kind = tcp.TcpKind(m.TcpCheck(), Target("127.0.0.1", port), loop)
        assert _run(loop, kind).reason == "refused"
        with listener() as port:
            kind2 = tcp.TcpKind(m.TcpCheck(), Target("127.0.0.1", port), loop)
            got: list[ProbeResult] = []
            attempt = kind2.start(got.append)
            attempt.cancel()
            attempt.cancel()  # twice is harmless
            loop.run_until_complete(loop.create_task(_tick()))
            assert got == []
            assert kind2.connector is not None and not kind2.connector.waiting
        kind.close()
        kind2.close()
    finally:
        loop.close()


async def _tick() -> None:
    import asyncio

    for _ in range(3):
        await asyncio.sleep(0.01)


def test_a_connect_started_in_a_batch_on_a_reused_number_is_not_settled_by_it() -> None:
    # ConnectSet.ready closes the whole batch first; a callback's new connect may get
    # one of those numbers back at once and must wait for its own event.
    import select as _select

    loop = FakeLoop()
    conn = tcp.Connector(loop)
    try:
        with listener() as port:
            got: list[tuple[str, bool]] = []
            kinds = [tcp.TcpKind(m.TcpCheck(), Target("127.0.0.1", port), loop)
                     for _ in range(3)]
            for k in kinds:
                k.connector = conn
            new: list[Any] = []

            def first(r: ProbeResult) -> None:
                got.append(("first", r.ok))
                new.append(kinds[2].start(lambda r: got.append(("new", r.ok))))

            kinds[0].start(first)
            kinds[1].start(lambda r: got.append(("second", r.ok)))
            import time as _time

            _time.sleep(0.05)  # both handshakes done (loopback: at once)
            conn.ready()
            assert sorted(got) == [("first", True), ("second", True)]
            assert len(new) == 1 and isinstance(new[0], tcp.Connecting)
            assert list(conn.waiting.values()) == new and conn.connects.pending == 1
            _select.select([conn.connects.fileno()], [], [], 1.0)
            conn.ready()
            assert ("new", True) in got and not conn.waiting
    finally:
        conn.close()


def test_the_loop_timer_wakes_on_the_grain_grid_late_never_early() -> None:
    loop = FakeLoop(start=0.0)
    q = TimerQueue(loop, grain=0.01)
    fired: list[tuple[float, str]] = []
    a, b, c = (Recorder(n, fired, loop) for n in "abc")
    q.at(0.0123, a)  # type: ignore[arg-type]
    q.at(0.0171, b)  # type: ignore[arg-type]  # the same grid cell: one wake-up
    q.at(0.0305, c)  # type: ignore[arg-type]
    assert q.armed_at == 0.02
    loop.advance(1.0)
    assert [(round(t, 9), n) for t, n in fired] == [(0.02, "a"), (0.02, "b"), (0.04, "c")]
    q0 = TimerQueue(loop, grain=0)  # no grid: the entry's own time
    q0.at(1.0123, a)  # type: ignore[arg-type]
    assert q0.armed_at == 1.0123


# --------------------------------------------------------------------------- PING_CHECK


class FakeEcho:
    """Stands in for IcmpBatch: records what is sent (and under which names);
    replies, errors and expiries when told, by address."""

    def __init__(self, family: int) -> None:
        self.sent: list[str] = []
        self.flying: dict[str, list[Any]] = {}
        self.replies: list[tuple[str, int, int]] = []
        self.bad: set[str] = set()
        self.room = 1 << 30

    @property
    def pending(self) -> int:
        return sum(len(v) for v in self.flying.values())

    def fileno(self) -> int:
        return 999

    def send(self, targets: list[str], now_ns: int, timeout_ns: int,
             names: list[Any] | None = None) -> int:
        if any(t in self.bad for t in targets):
            raise ValueError("not an address")
        n = min(len(targets), self.room)
        self.room -= n
        for i, t in enumerate(targets[:n]):
            self.sent.append(t)
            self.flying.setdefault(t, []).append(t if names is None else names[i])
        return n

    def drain(self, now_ns: int, max_messages: int = 65536,
              replies: list[Any] | None = None) -> list[tuple[Any, int, int]]:
        out = []
        for address, kind, value in self.replies:
            name = self.flying[address].pop(0)
            if kind == 0 and replies is not None:
                replies.append(name)
            else:
                out.append((name, kind, value))
        self.replies = []
        return out

    def expire(self, now_ns: int) -> list[Any]:
        out = [n for names in self.flying.values() for n in names]
        self.flying.clear()
        return out

    def close(self) -> None:
        return None


def test_echo_pool_one_echo_per_attempt_and_a_cancel_drops_only_its_result(
        twin_flavour: str) -> None:
    from hafast.check import icmp

    core = load_twin("icmp_batch", twin_flavour)
    loop = FakeLoop()
    engine = FakeEcho(2)
    pool = core.EchoPool(loop, 2, icmp.OK, icmp.TIMEOUT, icmp._failure, engine)
    try:
        got: dict[str, list[ProbeResult]] = {k: [] for k in "abcde"}
        wa = pool.submit("10.0.0.1", got["a"].append, 10**9)
        wb = pool.submit("10.0.0.1", got["b"].append, 10**9)
        pool.submit("10.0.0.2", got["c"].append, 10**9)
        we = pool.submit("10.0.0.3", got["e"].append, 10**9)
        we.cancel()  # before the batch went out: never sent
        loop.advance(0)
        assert engine.sent == ["10.0.0.1", "10.0.0.1", "10.0.0.2"]  # one per attempt
        wa.cancel()
        engine.replies = [("10.0.0.1", core.REPLY, 0), ("10.0.0.1", core.REPLY, 0),
                          ("10.0.0.2", core.UNREACHABLE, 0x0301)]
        pool.readable()
        assert got["a"] == [] and got["b"] == [icmp.OK] and got["e"] == []
        assert got["c"][0].reason == "unreachable" and "type 3 code 1" in got["c"][0].detail
        wb.cancel()  # after its result: harmless
        pool.submit("10.0.0.4", got["d"].append, 10**9)
        loop.advance(0)
        pool.sweep()  # the engine says it expired
        assert got["d"] == [icmp.TIMEOUT]
    finally:
        pool.close()


def test_echo_pool_fails_a_bad_address_alone_and_offers_the_rest_again(
        twin_flavour: str) -> None:
    from hafast.check import icmp

    core = load_twin("icmp_batch", twin_flavour)
    loop = FakeLoop()
    engine = FakeEcho(2)
    engine.bad.add("bogus")
    engine.room = 2
    pool = core.EchoPool(loop, 2, icmp.OK, icmp.TIMEOUT, icmp._failure, engine)
    try:
        got: list[ProbeResult] = []
        for a in ("10.0.0.1", "bogus", "10.0.0.2", "10.0.0.3"):
            pool.submit(a, got.append, 10**9)
        loop.advance(0)
        assert [r.reason for r in got] == ["address"]
        assert engine.sent == ["10.0.0.1", "10.0.0.2"]  # the socket took two
        engine.room = 10
        loop.advance(0.01)  # RESEND_S later: the rest goes out
        assert engine.sent == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    finally:
        pool.close()


def test_tcp_a_connect_that_fails_at_once_leaves_nothing_behind() -> None:
    import os

    loop = new_loop()
    try:
        fds = len(os.listdir("/proc/self/fd"))
        kind = tcp.TcpKind(m.TcpCheck(), Target("300.1.2.3", 80), loop)  # does not parse
        got: list[ProbeResult] = []
        assert kind.start(got.append) is NO_ATTEMPT
        assert len(got) == 1 and not got[0].ok and "connect" in got[0].detail
        assert kind.connector is not None and not kind.connector.waiting
        assert kind.connector.connects.pending == 0
        kind.close()
        assert len(os.listdir("/proc/self/fd")) == fds
    finally:
        loop.close()
