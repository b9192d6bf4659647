"""A real server's event changes only its own destination in the pool
(:meth:`hafast.lvs.policy.PoolPolicy._sync_one`), and the pool it leaves is the one a
full rebuild (:meth:`~hafast.lvs.policy.PoolPolicy.dests_of`) would make, for every
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
        want = p.dests_of(vst)
        for svc in vst.services:
            got = p.pool.dests[svc.key]
            assert got == want, (svc.key, got, want)
            if maglev_fleet(vst.vs):
                assert list(got) == list(want), "a Maglev fleet's order moved"


_events = st.lists(st.tuples(st.integers(0, len(SERVERS) - 1), st.sampled_from((DOWN, UP, WEIGHT)),
                             st.integers(0, 5)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from(sorted(SHAPES)), events=_events)
def test_each_event_leaves_the_pool_a_full_rebuild_would_make(
        shape: str, events: list[tuple[int, str, int]]) -> None:
    cfg = _config(shape)
    p = PoolPolicy(cfg)
    p.start()
    vs = cfg.virtual_servers[0]
    for at, (i, state, weight) in enumerate(events):
        rs = vs.real_servers[i]
        p.on_event(ServerEvent(vs.key, rs.key, state, weight if state == WEIGHT else rs.weight,
                               "x" if state == DOWN else "", float(at)))
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
