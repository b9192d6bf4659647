"""icmp_batch against the kernel: real raw sockets in a namespace pair, both twins.

The farm (tests/netns/icmp_farm.py) makes whole ranges answer in a server
namespace; every socket is created inside the prober namespace.
"""

from __future__ import annotations

import errno
import select
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import load_twin, require_root, require_tool
from tests.netns.icmp_farm import (
    DEAD4,
    DEAD6,
    LIVE4,
    LIVE6,
    UNREACH4,
    UNREACH6,
    IcmpFarm,
    hosts,
)

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def farm() -> Iterator[IcmpFarm]:
    require_root()
    require_tool("ip")
    require_tool("nft")
    with IcmpFarm() as made:
        yield made


@pytest.fixture
def ib(twin_flavour: str) -> ModuleType:
    return load_twin("icmp_batch", twin_flavour)


def _engine(farm: IcmpFarm, ib: ModuleType, family: int = 2, **kw: Any) -> Any:
    with farm.in_prober():
        return ib.IcmpBatch(family, **kw)


def _send_all(eng: Any, targets: Sequence[str], timeout_ns: int) -> None:
    queue = list(targets)
    for _ in range(1000):  # bounded: the socket buffer empties within a few rounds
        if not queue:
            return
        del queue[: eng.send(queue, time.monotonic_ns(), timeout_ns)]
        time.sleep(0.001)
    raise AssertionError(f"could not send {len(queue)} probes")


def _collect(engines: Sequence[Any], limit_s: float = 5.0) -> dict[Any, tuple[list, list]]:
    """Drain and expire until nothing is in flight; return per engine (results, expired)."""
    out: dict[Any, tuple[list, list]] = {eng: ([], []) for eng in engines}
    poller = select.poll()
    for eng in engines:
        poller.register(eng.fileno(), select.POLLIN)
    stop = time.monotonic() + limit_s
    while time.monotonic() < stop and any(eng.pending for eng in engines):
        poller.poll(20)
        now = time.monotonic_ns()
        for eng in engines:
            out[eng][0].extend(eng.drain(now))
            out[eng][1].extend(eng.expire(now))
    for eng in engines:
        out[eng][0].extend(eng.drain(time.monotonic_ns()))
    return out


def _check_tick(ib: ModuleType, results: list, expired: list, live: list, dead: list) -> None:
    replies = Counter(addr for addr, kind, _ in results if kind == ib.REPLY)
    assert all(kind == ib.REPLY for _, kind, _ in results), results[:5]
    assert replies == Counter(live), "every live address answers exactly once"
    for _, _, rtt in results:
        assert 0 < rtt < 2 * SECOND
    assert sorted(expired) == sorted(dead), "the unassigned addresses time out"


def test_live_answer_once_dead_time_out_beside_another_engine_and_fping(
    farm: IcmpFarm, ib: ModuleType
) -> None:
    fping = require_tool("fping")
    live, dead = hosts(LIVE4, 250), hosts(DEAD4, 50)
    targets = live + dead
    # Another process pinging the same addresses all through our ticks.
    proc = subprocess.Popen(
        farm.exec_prober(fping, "-q", "-c", "40", "-p", "20", "-i", "1", *live[:20]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first, second = _engine(farm, ib), _engine(farm, ib)
        with first, second:
            assert first.identifier != second.identifier
            _send_all(first, targets, SECOND // 2)
            _send_all(second, list(reversed(targets)), SECOND // 2)
            got = _collect([first, second])
            for eng in (first, second):
                results, expired = got[eng]
                _check_tick(ib, results, expired, live, dead)
                stats = eng.stats()
                assert stats["replies"] == len(live) and stats["timeouts"] == len(dead)
                assert stats["sent"] == len(targets)
                assert stats["foreign"] >= len(live), "the other engine's replies"
                assert stats["mismatch"] == 0 and stats["bad_checksum"] == 0
                assert eng.pending == 0
            before = first.stats()
            proc.wait(timeout=30)
            assert first.drain(time.monotonic_ns()) == [], "nothing of fping's is ours"
            after = first.stats()
            ignored = ("foreign", "stale", "mismatch")
            assert sum(after[k] - before[k] for k in ignored) > 0, "fping's replies seen"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_second_tick_reuses_the_engine(farm: IcmpFarm, ib: ModuleType) -> None:
    live, dead = hosts(LIVE4, 100, first=100), hosts(DEAD4, 10, first=100)
    with _engine(farm, ib, max_inflight=200) as eng:
        for _ in range(3):
            _send_all(eng, live + dead, SECOND // 4)
            results, expired = _collect([eng])[eng]
            _check_tick(ib, results, expired, live, dead)
        assert eng.capacity == 200
        assert eng.stats()["mismatch"] == 0


def test_ipv6_live_answer_dead_time_out(farm: IcmpFarm, ib: ModuleType) -> None:
    live, dead = hosts(LIVE6, 200), hosts(DEAD6, 20)
    with _engine(farm, ib, ib.AF_INET6) as eng:
        assert eng.family == ib.AF_INET6
        _send_all(eng, live + dead, SECOND // 2)
        results, expired = _collect([eng])[eng]
        _check_tick(ib, results, expired, live, dead)


def test_unreachable_and_send_errors_are_reported(farm: IcmpFarm, ib: ModuleType) -> None:
    unreachable = hosts(UNREACH4, 8)
    no_route = "10.99.0.1"  # the prober has no route there: sendmmsg fails for it alone
    live = hosts(LIVE4, 4, first=200)
    with _engine(farm, ib) as eng:
        taken = eng.send([live[0], no_route, *unreachable, *live[1:]], time.monotonic_ns(), SECOND)
        assert taken == 2 + len(unreachable) + len(live) - 1
        results, expired = _collect([eng])[eng]
        assert expired == []
        by_addr = {addr: (kind, value) for addr, kind, value in results}
        assert len(by_addr) == len(results) == 1 + len(unreachable) + len(live)
        assert by_addr[no_route] == (ib.SEND_ERROR, errno.ENETUNREACH)
        for addr in unreachable:  # RFC 792: type 3, code 1 host unreachable
            assert by_addr[addr] == (ib.UNREACHABLE, 0x0301)
        for addr in live:
            assert by_addr[addr][0] == ib.REPLY
        stats = eng.stats()
        assert stats["send_errors"] == 1 and stats["unreachables"] == len(unreachable)


def test_ipv6_unreachable_is_reported(farm: IcmpFarm, ib: ModuleType) -> None:
    unreachable = hosts(UNREACH6, 6)
    live = hosts(LIVE6, 3, first=200)
    with _engine(farm, ib, ib.AF_INET6) as eng:
        _send_all(eng, unreachable + live, SECOND)
        results, expired = _collect([eng])[eng]
        assert expired == []
        by_addr = {addr: (kind, value) for addr, kind, value in results}
        for addr in unreachable:  # RFC 4443 §3.1: type 1, code 3 address unreachable
            assert by_addr[addr] == (ib.UNREACHABLE, 0x0103)
        for addr in live:
            assert by_addr[addr][0] == ib.REPLY


def test_reply_after_expiry_is_stale_not_taken(farm: IcmpFarm, ib: ModuleType) -> None:
    live = hosts(LIVE4, 20, first=50)
    with _engine(farm, ib) as eng:
        now = time.monotonic_ns()
        assert eng.send(live, now, 0) == len(live)
        assert sorted(eng.expire(now)) == sorted(live)  # deadline now: all overdue
        time.sleep(0.2)
        assert eng.drain(time.monotonic_ns()) == []
        assert eng.stats()["stale"] == len(live)


def test_reused_sequence_is_not_misattributed(farm: IcmpFarm, ib: ModuleType) -> None:
    a, b = hosts(LIVE4, 2, first=30)
    with _engine(farm, ib, max_inflight=1) as eng:
        # a's probe expires at once; its reply waits in the socket buffer while b's
        # probe takes the same (only) sequence number.
        now = time.monotonic_ns()
        assert eng.send([a], now, 0) == 1
        assert eng.send([b], now, SECOND) == 0, "table full"
        assert eng.expire(now) == [a]
        time.sleep(0.1)
        assert eng.send([b], time.monotonic_ns(), SECOND) == 1
        results, _ = _collect([eng])[eng]
        assert [(addr, kind) for addr, kind, _ in results] == [(b, ib.REPLY)]
        assert eng.stats()["mismatch"] == 1
        # The same address again on the same sequence: the late reply's token differs.
        now = time.monotonic_ns()
        eng.send([a], now, 0)
        eng.expire(now)
        time.sleep(0.1)
        eng.send([a], time.monotonic_ns(), SECOND)
        results, _ = _collect([eng])[eng]
        assert [(addr, kind) for addr, kind, _ in results] == [(a, ib.REPLY)]
        assert eng.stats()["stale"] == 1


def test_probe_table_is_bounded(farm: IcmpFarm, ib: ModuleType) -> None:
    live = hosts(LIVE4, 25, first=150)
    with _engine(farm, ib, max_inflight=10) as eng:
        assert eng.send(live, time.monotonic_ns(), SECOND) == 10
        assert (eng.pending, eng.capacity) == (10, 0)
        results, _ = _collect([eng])[eng]
        assert sorted(a for a, _, _ in results) == sorted(live[:10])
        assert (eng.pending, eng.capacity) == (0, 10)


def test_bad_address_raises_before_sending(farm: IcmpFarm, ib: ModuleType) -> None:
    with _engine(farm, ib) as eng:
        with pytest.raises(ValueError):
            eng.send([hosts(LIVE4, 1)[0], "not-an-address"], time.monotonic_ns(), SECOND)
        with pytest.raises(ValueError):
            eng.send(["fd00::1"], time.monotonic_ns(), SECOND)  # wrong family
        with pytest.raises(ValueError):
            eng.send(["10.201.1.1\0junk"], time.monotonic_ns(), SECOND)
        with pytest.raises(ValueError):
            eng.send([b"10.201.1.1"], time.monotonic_ns(), SECOND)  # text only
        assert eng.pending == 0 and eng.stats()["sent"] == 0
    with pytest.raises(ValueError):
        eng.send(hosts(LIVE4, 1), time.monotonic_ns(), SECOND)  # closed


def test_ping_many(farm: IcmpFarm, ib: ModuleType) -> None:
    live = hosts(LIVE4, 10, first=80) + hosts(LIVE6, 5, first=80)
    dead = hosts(DEAD4, 3, first=80) + hosts(DEAD6, 2, first=80)
    with farm.in_prober():
        got = ib.ping_many(live + dead, 0.5)
    assert set(got) == set(live + dead)
    for addr in live:
        rtt = got[addr]
        assert rtt is not None and 0 < rtt < 0.5, (addr, rtt)
    assert all(got[addr] is None for addr in dead)


_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("send"),
            st.integers(0, 150),  # live targets
            st.integers(0, 5),  # blackholed targets
            st.sampled_from([0, 30_000_000, SECOND]),
        ),
        st.tuples(st.just("drain")),
        st.tuples(st.just("expire")),
        st.tuples(st.just("wait")),
    ),
    max_size=25,
)


@given(ops=_OPS, max_inflight=st.integers(1, 300))  # the table grows from 64 slots
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_probe_has_exactly_one_outcome(
    farm: IcmpFarm, ib: ModuleType, ops: list[tuple[Any, ...]], max_inflight: int
) -> None:
    """Random interleavings of send/drain/expire: the probe table never leaks or
    double-frees a slot, and each probe taken ends as exactly one result."""
    taken: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    replies: list[str] = []
    offset = 0
    with _engine(farm, ib, max_inflight=max_inflight) as eng:
        for op in ops:
            if op[0] == "send":
                _, n_live, n_dead, timeout_ns = op
                batch = hosts(LIVE4, n_live, first=1 + offset % 200)
                batch += hosts(DEAD4, n_dead, first=1 + offset % 200)
                offset += 7
                n = eng.send(batch, time.monotonic_ns(), timeout_ns)
                assert 0 <= n <= min(len(batch), max_inflight)
                taken.update(batch[:n])
            elif op[0] == "drain":
                got = eng.drain(time.monotonic_ns())
                replies.extend(addr for addr, kind, _ in got if kind == ib.REPLY)
                outcomes.update(addr for addr, _, _ in got)
            elif op[0] == "expire":
                outcomes.update(eng.expire(time.monotonic_ns()))
            else:
                time.sleep(0.005)
            assert eng.pending + eng.capacity == max_inflight
        results, expired = _collect([eng])[eng]
        replies.extend(addr for addr, kind, _ in results if kind == ib.REPLY)
        outcomes.update(addr for addr, _, _ in results)
        outcomes.update(expired)
        outcomes.update(eng.expire(time.monotonic_ns() + 10 * SECOND))
        assert outcomes == taken
        assert (eng.pending, eng.capacity) == (0, max_inflight)
        # A blackholed address never answers: a reply credited to one would be a late
        # reply of another address misattributed through a reused sequence number.
        assert not set(replies) & set(hosts(DEAD4, 256, first=0))


def test_names_stand_for_addresses_and_replies_go_to_the_list(
        farm: IcmpFarm, ib: ModuleType) -> None:
    # send(..., names): every outcome names the probe by the object given for it;
    # drain(..., replies): a REPLY only appends that name (EchoPool's steady path).
    unreachable = hosts(UNREACH4, 2)
    no_route = "10.99.0.1"
    live, dead = hosts(LIVE4, 6, first=210), hosts(DEAD4, 3, first=10)
    targets = [*live, *unreachable, no_route, *dead]
    names = [object() for _ in targets]
    name_of = dict(zip(names, targets, strict=True))
    with _engine(farm, ib) as eng:
        with pytest.raises(ValueError):
            eng.send(targets, time.monotonic_ns(), SECOND, names[:-1])
        assert eng.send(targets, time.monotonic_ns(), SECOND // 2, names) == len(targets)
        replies: list[Any] = []
        results: list[Any] = []
        expired: list[Any] = []
        stop = time.monotonic() + 5
        while eng.pending and time.monotonic() < stop:
            select.select([eng.fileno()], [], [], 0.02)
            results += eng.drain(time.monotonic_ns(), 65536, replies)
            expired += eng.expire(time.monotonic_ns())
        results += eng.drain(time.monotonic_ns(), 65536, replies)
    assert sorted(name_of[n] for n in replies) == sorted(live)
    kinds = {name_of[n]: kind for n, kind, _ in results}
    assert kinds == {**dict.fromkeys(unreachable, ib.UNREACHABLE), no_route: ib.SEND_ERROR}
    assert sorted(name_of[n] for n in expired) == sorted(dead)
