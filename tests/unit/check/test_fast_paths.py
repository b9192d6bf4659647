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
            assert conn.connects.closed and id(loop) not in tcp._connectors
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
    """Stands in for IcmpBatch: records what is sent; replies when told."""

    pending = 0

    def __init__(self, family: int) -> None:
        self.sent: list[str] = []
        self.replies: list[tuple[str, int, int]] = []

    def fileno(self) -> int:
        return 999

    def send(self, targets: list[str], now_ns: int, timeout_ns: int) -> int:
        self.sent.extend(targets)
        return len(targets)

    def drain(self, now_ns: int) -> list[tuple[str, int, int]]:
        out, self.replies = self.replies, []
        return out

    def expire(self, now_ns: int) -> list[str]:
        return []

    def close(self) -> None:
        return None


def test_echo_waiters_chain_one_echo_per_address_and_cancel_one_of_them(
        monkeypatch: Any) -> None:
    from hafast.check import icmp

    monkeypatch.setattr(icmp.icmp_batch, "IcmpBatch", FakeEcho)
    loop = FakeLoop()
    pool = icmp.EchoPool(loop, 2)
    try:
        got: dict[str, list[ProbeResult]] = {"a": [], "b": [], "c": [], "d": []}
        wa = pool.submit("10.0.0.1", got["a"].append, 10**9)
        wb = pool.submit("10.0.0.1", got["b"].append, 10**9)
        wc = pool.submit("10.0.0.1", got["c"].append, 10**9)
        pool.submit("10.0.0.2", got["d"].append, 10**9)
        loop.advance(0)
        engine: Any = pool.engine
        assert engine.sent == ["10.0.0.1", "10.0.0.2"]  # one echo per address
        wb.cancel()
        wa.cancel()
        engine.replies = [("10.0.0.1", icmp.icmp_batch.REPLY, 0),
                          ("10.0.0.2", icmp.icmp_batch.UNREACHABLE, 0x0301)]
        pool.readable()
        assert got["a"] == [] and got["b"] == [] and got["c"] == [icmp.OK]
        assert got["d"][0].reason == "unreachable" and "type 3 code 1" in got["d"][0].detail
        assert not pool.waiters and not pool.inflight
        wc.cancel()  # after its result: harmless
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
