"""The diff, the memory backend, and the manager shell over it (adopt, flush, reload,
stop, keep, notifies, FIFO lines, failures)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from hafast.config import model as m
from hafast.config.loader import load_text
from hafast.lib.events import DOWN, UP, ServerEvent
from hafast.lvs.backend import (
    ADD_DEST,
    ADD_SERVICE,
    DEL_DEST,
    DEL_SERVICE,
    EDIT_DEST,
    EDIT_SERVICE,
    Dest,
    Pool,
    Service,
    ServiceKey,
    Timeouts,
    diff,
    netmask_prefix,
)
from hafast.lvs.manager import PoolManager, make_backend
from hafast.lvs.memory import MemoryBackend

VIP = "10.0.0.1"
SVC = ServiceKey(4, "TCP", VIP, 80)


def svc(key: ServiceKey = SVC, sched: str = "wlc") -> Service:
    return Service(key, sched)


def pool(*entries: tuple[Service, list[Dest]]) -> Pool:
    p = Pool()
    for s, ds in entries:
        p.add(s, ds)
    return p


# --------------------------------------------------------------------------- diff


def test_diff_is_minimal() -> None:
    a = Dest("10.1.0.1", 80, 1)
    b = Dest("10.1.0.2", 80, 1)
    have = pool((svc(), [a, b]))
    want = pool((svc(), [a, Dest("10.1.0.2", 80, 0), Dest("10.1.0.3", 80, 1)]))
    ops = [(c.op, c.dest.address if c.dest else None) for c in diff(have, want)]
    assert sorted(ops) == [(ADD_DEST, "10.1.0.3"), (EDIT_DEST, "10.1.0.2")]
    assert diff(want, want) == []


def test_diff_service_edit_and_removal_of_a_whole_service_is_one_change() -> None:
    other = ServiceKey(4, "UDP", VIP, 53)
    have = pool((svc(), [Dest("10.1.0.1", 80)]), (svc(other), [Dest("10.1.0.1", 53)] * 1))
    want = pool((svc(sched="rr"), [Dest("10.1.0.1", 80)]))
    changes = diff(have, want)
    assert [c.op for c in changes] == [EDIT_SERVICE, DEL_SERVICE]
    assert changes[-1].service.key == other  # removals last


def test_diff_leaves_services_it_does_not_own() -> None:
    foreign = ServiceKey(4, "TCP", "10.9.9.9", 80)
    have = pool((svc(foreign), [Dest("1.1.1.1", 80)]))
    assert diff(have, Pool(), owned={SVC}) == []
    assert [c.op for c in diff(have, Pool())] == [DEL_SERVICE]


def test_diff_limited_to_keys() -> None:
    k2 = ServiceKey(4, "TCP", VIP, 81)
    want = pool((svc(), [Dest("10.1.0.1", 80)]), (svc(k2), []))
    assert [c.service.key for c in diff(Pool(), want, keys={k2})] == [k2]


_dests = st.dictionaries(
    st.sampled_from([f"10.1.0.{i}" for i in range(6)]),
    st.tuples(st.integers(0, 3), st.sampled_from(["NAT", "DR"])), max_size=6)
_pools = st.dictionaries(st.sampled_from([80, 81, 82]), st.tuples(
    st.sampled_from(["rr", "wlc"]), _dests), max_size=3)


def _mk(spec: dict[int, tuple[str, dict[str, tuple[int, str]]]]) -> Pool:
    p = Pool()
    for port, (sched, ds) in spec.items():
        p.add(Service(ServiceKey(4, "TCP", VIP, port), sched),
              [Dest(a, 80, w, meth) for a, (w, meth) in ds.items()])
    return p


@settings(max_examples=200, deadline=None)
@given(_pools, _pools)
def test_applying_the_diff_gives_the_wanted_pool(a: dict, b: dict) -> None:  # type: ignore[type-arg]
    have, want = _mk(a), _mk(b)
    p = have.copy()
    p.apply(diff(have, want))
    assert p == want
    assert diff(p, want) == []


def test_netmask_prefix() -> None:
    assert netmask_prefix("255.255.0.0", 4) == 16
    assert netmask_prefix("/48", 6) == 48
    assert netmask_prefix(None, 6) == 128


# --------------------------------------------------------------------------- manager


def cfg(text: str) -> m.Config:
    res = load_text(text)
    assert not res.errors, res.errors
    return res.config


BASE = f"""
virtual_server {VIP} 80 {{
  protocol TCP
  lvs_sched rr
  quorum 2
  sorry_server 10.9.0.9 80
  real_server 10.1.0.1 80 {{ TCP_CHECK {{ }} }}
  real_server 10.1.0.2 80 {{ TCP_CHECK {{ }} }}
}}
"""


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def addrs(backend: MemoryBackend, key: ServiceKey = SVC) -> dict[str, int]:
    return {a: d.weight for (a, _), d in backend.pool.dests.get(key, {}).items()}


def test_manager_start_event_stop() -> None:
    async def body() -> None:
        config = cfg(BASE)
        b = MemoryBackend()
        mgr = PoolManager(config, b, run_scripts=False)
        n = await mgr.start()
        assert n == 3 and addrs(b) == {"10.1.0.1": 1, "10.1.0.2": 1}
        vs = config.virtual_servers[0].key
        mgr.on_event(ServerEvent(vs, ("10.1.0.1", 80), DOWN, 1, "x", 1.0))
        await mgr.wait_idle()
        # 1 < quorum 2: the sorry server replaces the pool.
        assert addrs(b) == {"10.9.0.9": 1}
        mgr.on_event(ServerEvent(vs, ("10.1.0.1", 80), UP, 1, "", 2.0))
        await mgr.wait_idle()
        assert addrs(b) == {"10.1.0.1": 1, "10.1.0.2": 1}
        assert mgr.applied == b.pool
        await mgr.stop()
        assert b.pool.services == {}

    run(body())


def test_manager_keeps_only_recent_actions_and_records_a_whole_batch() -> None:
    """A long-running daemon must not keep every notify line of every flap; a caller
    that needs a call's whole batch (the quorum mails) records it."""
    from hafast.lvs import manager as manager_module

    async def body() -> None:
        config = cfg(BASE)
        mgr = PoolManager(config, MemoryBackend(), run_scripts=False)
        mgr.actions = manager_module.deque(maxlen=4)
        await mgr.start()
        vs = config.virtual_servers[0].key
        with mgr.recording() as batch:
            for i in range(20):
                state = DOWN if i % 2 == 0 else UP
                mgr.on_event(ServerEvent(vs, ("10.1.0.2", 80), state, 1, "x", float(i)))
        lines = [getattr(a, "line", "") for a in batch]
        assert lines.count(f"RS [10.1.0.2]:tcp:80 [{VIP}]:tcp:80 DOWN") == 10
        assert len(mgr.actions) == 4 and list(mgr.actions) == batch[-4:]
        held = len(batch)
        mgr.on_event(ServerEvent(vs, ("10.1.0.2", 80), DOWN, 1, "x", 30.0))
        assert len(batch) == held  # the recording ended with its block
        await mgr.stop()

    run(body())

def test_manager_adopts_the_kernel_and_leaves_foreign_services() -> None:
    async def body() -> None:
        config = cfg(BASE)
        foreign = svc(ServiceKey(4, "TCP", "10.8.8.8", 80))
        # The kernel already holds our service, right, plus one stray destination,
        # and a service someone else made.
        pre = pool((svc(SVC, "rr"), [Dest("10.1.0.1", 80), Dest("10.1.0.2", 80),
                                     Dest("10.7.7.7", 80)]), (foreign, [Dest("1.1.1.1", 80)]))
        b = MemoryBackend(pre)
        mgr = PoolManager(config, b, run_scripts=False)
        await mgr.start()
        assert [(c.op, c.dest.address if c.dest else None) for c in b.log] == [
            (DEL_DEST, "10.7.7.7")]
        assert foreign.key in b.pool.services
        await mgr.stop()
        assert set(b.pool.services) == {foreign.key}

    run(body())


def test_manager_flush_and_keep_on_stop_and_timeouts() -> None:
    async def body() -> None:
        config = cfg("global_defs { lvs_flush }\n" + BASE)
        foreign = svc(ServiceKey(4, "TCP", "10.8.8.8", 80))
        b = MemoryBackend(pool((foreign, [])))
        mgr = PoolManager(config, b, keep=True, run_scripts=False,
                          timeouts=Timeouts(900, 120, 300))
        await mgr.start()
        assert foreign.key not in b.pool.services  # lvs_flush empties the table
        assert b.timeouts == Timeouts(900, 120, 300)
        await mgr.stop()
        assert SVC in b.pool.services  # keep (--dont-release-ipvs)

    run(body())


@pytest.mark.parametrize(("line", "left"), [
    ("", {"10.8.8.8"}),  # each configured service deleted, the foreign one stays
    ("lvs_flush_on_stop", set()),  # the whole table flushed
    ("lvs_flush_onstop", set()),
    ("lvs_flush_on_stop VS", {"10.8.8.8"}),
    ("lvs_flush_onstop VS", {"10.8.8.8"}),
])
def test_manager_lvs_flush_on_stop(line: str, left: set[str]) -> None:
    async def body() -> None:
        config = cfg(f"global_defs {{\n {line}\n}}\n" + BASE)
        foreign = svc(ServiceKey(4, "TCP", "10.8.8.8", 80))
        b = MemoryBackend(pool((foreign, [Dest("1.1.1.1", 80)])))
        mgr = PoolManager(config, b, run_scripts=False)
        await mgr.start()
        assert set(b.pool.services) == {foreign.key, SVC}
        await mgr.stop()
        assert {k.address for k in b.pool.services} == left

    run(body())


def test_manager_reload_touches_only_what_changed() -> None:
    async def body() -> None:
        b = MemoryBackend()
        config = cfg(BASE)
        mgr = PoolManager(config, b, run_scripts=False)
        await mgr.start()
        b.log.clear()
        n = await mgr.reload(cfg(BASE.replace("real_server 10.1.0.2 80 {",
                                              "real_server 10.1.0.2 80 { weight 4\n")))
        assert n == 1 and [str(c) for c in b.log] == [
            f"edit-dest [{VIP}]:tcp:80 -> 10.1.0.2:80 w4"]
        b.log.clear()
        assert await mgr.reload(cfg(BASE.replace("real_server 10.1.0.2 80 {",
                                                 "real_server 10.1.0.2 80 { weight 4\n"))) == 0
        # A virtual server that goes away is removed with one change.
        n = await mgr.reload(cfg(BASE.replace(f"{VIP} 80", f"{VIP} 81")))
        ops = sorted(c.op for c in b.log)
        assert ops == sorted([ADD_SERVICE, ADD_DEST, ADD_DEST, DEL_SERVICE])
        await mgr.stop()

    run(body())


def test_manager_recovers_from_a_failed_change_by_reading_the_kernel() -> None:
    async def body() -> None:
        config = cfg(BASE)
        b = MemoryBackend()
        mgr = PoolManager(config, b, run_scripts=False)
        await mgr.start()
        # Someone deletes our service behind our back; the next event still works.
        b.pool.services.pop(SVC)
        b.pool.dests.pop(SVC)
        vs = config.virtual_servers[0].key
        mgr.on_event(ServerEvent(vs, ("10.1.0.1", 80), DOWN, 1, "x", 1.0))
        await mgr.wait_idle()
        assert mgr.errors == 1
        assert addrs(b) == {"10.9.0.9": 1}
        await mgr.stop()

    run(body())


def test_manager_writes_the_lvs_notify_fifo_and_runs_scripts(tmp_path: Path) -> None:
    fifo = tmp_path / "lvs.fifo"
    marker = tmp_path / "quorum-down"
    text = BASE.replace("quorum 2", f'quorum 2\n  quorum_down "/bin/touch {marker}"')

    async def body() -> list[bytes]:
        config = cfg(f'global_defs {{ lvs_notify_fifo {fifo} }}\n' + text)
        b = MemoryBackend()
        mgr = PoolManager(config, b)
        await mgr.start()
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            vs = config.virtual_servers[0].key
            mgr.on_event(ServerEvent(vs, ("10.1.0.2", 80), DOWN, 1, "x", 1.0))
            await mgr.wait_idle()
            for _ in range(200):  # the script is reaped by the loop; bounded wait
                if marker.exists():
                    break
                await asyncio.sleep(0.01)
            data = os.read(reader, 4096)
        finally:
            os.close(reader)
            await mgr.stop()
        return data.splitlines()

    got = run(body())
    # keepalived 2.2.7 writes the quorum met at start too (update_quorum_state(init))
    assert got == [f"VS [{VIP}]:tcp:80 UP".encode(),
                   f"RS [10.1.0.2]:tcp:80 [{VIP}]:tcp:80 DOWN".encode(),
                   f"VS [{VIP}]:tcp:80 DOWN".encode()]
    assert marker.exists()


def test_make_backend_names() -> None:
    assert make_backend("memory").name == "memory"
    assert make_backend("ipvs").name == "ipvs"
    try:
        make_backend("bogus")
    except ValueError as exc:
        assert str(exc) == "pool backend 'bogus': expected one of auto, ipvs, nft, memory"
    else:
        raise AssertionError("no error")


def test_manager_ha_suspend_withdraws_and_restores_the_service() -> None:
    text = BASE.replace("lvs_sched rr", "lvs_sched rr\n  ha_suspend")

    async def body() -> list[tuple[str, ...]]:
        config = cfg(text)
        b = MemoryBackend()
        b.pool.add(Service(SVC, "rr"), [Dest("10.1.0.1", 80, 1)])  # left by a past run
        mgr = PoolManager(config, b, run_scripts=False, vips_present=["10.0.0.99"])
        await mgr.start()
        seen = [tuple(sorted(addrs(b)))]  # a BACKUP: nothing in the kernel
        mgr.set_vip(VIP, True)
        await mgr.wait_idle()
        seen.append(tuple(sorted(addrs(b))))
        mgr.set_vip(VIP, False)
        await mgr.wait_idle()
        seen.append(tuple(sorted(addrs(b))))
        assert SVC not in b.pool.services
        await mgr.stop()
        return seen

    assert run(body()) == [(), ("10.1.0.1", "10.1.0.2"), ()]


@pytest.mark.usefixtures("programs_exist")
def test_manager_runs_scripts_as_their_user(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import hafast.lvs.manager as manager

    calls: list[tuple[tuple[str, ...], str | None, str | None]] = []

    def fake(loop, argv, on_exit=None, *, env=None, user=None, group=None):  # type: ignore[no-untyped-def]
        calls.append((tuple(argv), user, group))
        loop.call_soon(on_exit, 0)
        return None

    monkeypatch.setattr(manager, "spawn_reaped", fake)
    text = BASE.replace("quorum 2", 'quorum 2\n  quorum_down "/bin/qd" nobody')
    text = text.replace("real_server 10.1.0.2 80 {", 'real_server 10.1.0.2 80 {\n'
                        '    notify_down "/bin/nd"\n   ')

    async def body() -> None:
        config = cfg("global_defs {\n script_user daemon daemon\n}\n" + text)
        mgr = PoolManager(config, MemoryBackend())
        await mgr.start()
        vs = config.virtual_servers[0].key
        mgr.on_event(ServerEvent(vs, ("10.1.0.2", 80), DOWN, 1, "x", 1.0))
        await mgr.stop()

    run(body())
    # a user without a group is passed on without one: spawn_reaped's script_identity
    # gives it its login group, not the daemon's (tests/unit/core/test_script_user.py)
    assert calls == [(("/bin/nd",), "daemon", "daemon"),
                     (("/bin/qd",), "nobody", None)]


def test_manager_stop_reaps_the_omega_scripts(tmp_path: Path) -> None:
    """Scripts omega starts at stop are reaped before stop() returns (bounded)."""
    marker = tmp_path / "pids"
    text = BASE.replace("quorum 2", f'quorum 2\n  omega\n  quorum_down "/bin/sh -c '
                        f"'echo $$ >> {marker}; sleep 0.3'\"")

    async def body() -> tuple[dict[int, object], bool]:
        mgr = PoolManager(cfg(text), MemoryBackend(), child_wait=10)
        await mgr.start()
        await mgr.stop()
        slow = PoolManager(cfg(text), MemoryBackend(), child_wait=0.05)
        await slow.start()
        await slow.stop()  # gives up waiting, says so
        left = dict(slow.children)
        done = await slow.wait_children(10)
        return left, done

    left, done = run(body())
    pids = [int(x) for x in marker.read_text().split()]
    assert len(pids) == 2 and len(left) == 1 and done
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}")  # reaped: no zombie left
