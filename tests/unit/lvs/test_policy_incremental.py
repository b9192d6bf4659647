"""A real server's event changes only its own destination in the pool
(:meth:`hafast.lvs.policy.PoolPolicy._sync_one`) and the live weight by its own
change (``VsState.set_health``); the pool it leaves is the one a full rebuild
(:meth:`~hafast.lvs.policy.PoolPolicy.dests_of`) would make, for every
shape of virtual server: plain, inhibit_on_failure, a Maglev fleet (whose order
counts), a group of several services, a sorry server and a quorum (those two take
the full path), a fwmark virtual server (destination port 0)."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from hafast.config import model as m
from hafast.config.loader import load_text
from hafast.lib.events import DOWN, UP, WEIGHT, ServerEvent
from hafast.lvs.policy import PoolPolicy, maglev_fleet

SERVERS = ("10.1.0.21", "10.1.0.10", "10.1.0.9", "10.1.0.23")


def _rss(extra: str = "") -> str:
    return "".join(f"  real_server {a} 80 {{\n    weight {i + 1}\n{extra}"
                   f"    TCP_CHECK {{ }}\n  }}\n" for i, a in enumerate(SERVERS))


SHAPES = {
    "plain": f"virtual_server 192.0.2.1 80 {{\n  protocol TCP\n  lvs_sched wrr\n{_rss()}}}\n",
    "inhibit": "virtual_server 192.0.2.1 80 {\n  protocol TCP\n"
               + _rss("    inhibit_on_failure\n") + "}\n",
    "maglev": "virtual_server 192.0.2.1 80 {\n  protocol TCP\n  lvs_sched mh\n"
              "  lvs_method DR\n  announce {\n    prefix 192.0.2.1/32\n  }\n" + _rss() + "}\n",
    "group": "virtual_server_group G {\n  192.0.2.1 80\n  192.0.2.2 80\n  192.0.2.3 80\n}\n"
             "virtual_server group G {\n  protocol TCP\n" + _rss() + "}\n",
    "sorry": "virtual_server 192.0.2.1 80 {\n  protocol TCP\n  sorry_server 10.9.0.1 80\n"
             + _rss() + "}\n",
    "quorum": "virtual_server 192.0.2.1 80 {\n  protocol TCP\n  quorum 5\n  hysteresis 1\n"
              + _rss() + "}\n",
    "fwmark": "virtual_server fwmark 7 {\n  protocol TCP\n" + _rss() + "}\n",
}


def _config(shape: str) -> m.Config:
    res = load_text(SHAPES[shape])
    assert not res.errors, res.errors
    return res.config


def _rebuilt_matches(p: PoolPolicy) -> None:
    for vst in p.vss.values():
        assert vst.live_weight() == sum(r.weight for r in vst.rss.values() if r.alive)
        want = p.dests_of(vst)
        for svc in vst.services:
            got = p.pool.dests[svc.key]
            assert got == want, (svc.key, got, want)
            if maglev_fleet(vst.vs):
                assert list(got) == list(want), "a Maglev fleet's order moved"


_events = st.lists(st.tuples(st.integers(0, len(SERVERS) - 1),
                             st.sampled_from((DOWN, UP, WEIGHT, "reload")), st.integers(0, 5)),
                   max_size=30)


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from(sorted(SHAPES)), events=_events)
def test_each_event_leaves_the_pool_a_full_rebuild_would_make(
        shape: str, events: list[tuple[int, str, int]]) -> None:
    cfg = _config(shape)
    p = PoolPolicy(cfg)
    p.start()
    vs = cfg.virtual_servers[0]
    for at, (i, state, weight) in enumerate(events):
        if state == "reload":  # the same file again: health (and live weight) carried over
            cfg = _config(shape)
            p.reload(cfg)
            _rebuilt_matches(p)
            vs = cfg.virtual_servers[0]
            continue
        rs = vs.real_servers[i]
        p.on_event(ServerEvent(vs.key, rs.key, state, weight if state == WEIGHT else rs.weight,
                               "x" if state == DOWN else "", float(at)))
        _rebuilt_matches(p)
    p.stop()
    _rebuilt_matches(p)


def test_an_event_in_a_large_virtual_server_does_not_rebuild_it() -> None:
    """The scaling property itself: 100 failures in a virtual server of 2,000 real
    servers make no rebuild of its destinations (each was 2,000 Dests)."""
    n = 2000
    rss = "".join(f"  real_server 10.1.{i // 250}.{i % 250 + 1} 80 {{\n    TCP_CHECK {{ }}\n  }}\n"
                  for i in range(n))
    res = load_text(f"virtual_server 192.0.2.1 80 {{\n  protocol TCP\n{rss}}}\n")
    assert not res.errors
    vs = res.config.virtual_servers[0]
    p = PoolPolicy(res.config)
    p.start()
    rebuilt = []
    full = p.dests_of
    p.dests_of = lambda st: rebuilt.append(st) or full(st)  # type: ignore[method-assign]
    for rs in vs.real_servers[:100]:
        out = p.on_event(ServerEvent(vs.key, rs.key, DOWN, 1, "x", 1.0))
        assert len(out.changed) == 1
    assert rebuilt == []
    assert len(next(iter(p.pool.dests.values()))) == n - 100
    for rs in vs.real_servers[:100]:
        p.on_event(ServerEvent(vs.key, rs.key, UP, 1, "", 2.0))
    assert rebuilt == []
    p.dests_of = full  # type: ignore[method-assign]
    _rebuilt_matches(p)


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from(sorted(SHAPES)), events=_events,
       batches=st.lists(st.integers(1, 4), min_size=30, max_size=30))
def test_the_kernel_follows_events_diffed_by_their_destinations_alone(
        shape: str, events: list[tuple[int, str, int]], batches: list[int]) -> None:
    """PoolManager with the memory backend: events in batches of 1-4 before each sync,
    reloads among them; the kernel's diff looks only at the destinations the events
    named (Outcome.only) where it can, and the kernel always ends as the pool."""
    import asyncio

    from hafast.lvs.manager import PoolManager
    from hafast.lvs.memory import MemoryBackend

    async def body() -> None:
        cfg = _config(shape)
        backend = MemoryBackend()
        mgr = PoolManager(cfg, backend, run_scripts=False)
        await mgr.start()
        vs = cfg.virtual_servers[0]
        pending = 0
        for at, (i, state, weight) in enumerate(events):
            if state == "reload":
                cfg = _config(shape)
                await mgr.reload(cfg)
                vs = cfg.virtual_servers[0]
            else:
                rs = vs.real_servers[i]
                mgr.on_event(ServerEvent(vs.key, rs.key, state,
                                         weight if state == WEIGHT else rs.weight,
                                         "x" if state == DOWN else "", float(at)))
            pending += 1
            if pending >= batches[at]:
                pending = 0
                await mgr.wait_idle()
                assert backend.pool == mgr.policy.pool
                assert mgr.applied == backend.pool
        await mgr.wait_idle()
        assert backend.pool == mgr.policy.pool
        await mgr.stop()

    asyncio.run(body())


def test_a_change_of_anything_outweighs_destination_hints_whatever_the_order() -> None:
    """Outcome and the manager's pending set: once a service changed in any way in a
    batch, its diff is whole, even if destination hints come before or after."""
    from hafast.lvs.backend import ServiceKey
    from hafast.lvs.manager import PoolManager
    from hafast.lvs.memory import MemoryBackend
    from hafast.lvs.policy import Outcome

    k = ServiceKey(4, "TCP", "192.0.2.1", 80)
    a, b = ("10.1.0.1", 80), ("10.1.0.2", 80)
    out = Outcome()
    out.dest([k], a)
    out.dest([k], b)
    assert out.only == {k: {a, b}}
    out.full([k])
    out.dest([k], a)
    assert out.changed == {k} and out.only == {}
    merged = Outcome()
    merged.dest([k], a)
    merged.merge(out)
    assert merged.only == {}

    mgr = PoolManager(_config("plain"), MemoryBackend(), run_scripts=False)

    class Busy:  # a sync under way: handle() only adds to what is pending
        def done(self) -> bool:
            return False

    mgr._sync_task = Busy()  # type: ignore[assignment]
    hinted = Outcome()
    hinted.dest([k], a)
    whole = Outcome()
    whole.full([k])
    mgr.handle(hinted)
    assert mgr._pending.only == {k: {a}}
    mgr.handle(whole)
    mgr.handle(hinted)
    assert mgr._pending.changed == {k} and mgr._pending.only == {}
