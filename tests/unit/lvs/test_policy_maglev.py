"""A Maglev fleet's pool (``lvs_sched mh`` + ``announce``): every director must add the
same destinations in the same order, and keep it, so their Maglev tables agree
(hafast/lvs/policy.py's docstring; the VM test is tests/ipvs/test_fleet_maglev.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from hafast.config import model as m
from hafast.config.loader import load_text
from hafast.fleet.runner import maglev_warnings
from hafast.lib.events import DOWN, UP, ServerEvent
from hafast.lvs.backend import (
    ADD_DEST,
    DEL_DEST,
    EDIT_DEST,
    Change,
    Dest,
    Pool,
    ServiceKey,
    diff,
    ordered_dests,
)
from hafast.lvs.manager import PoolManager
from hafast.lvs.memory import MemoryBackend
from hafast.lvs.policy import PoolPolicy, build_service

VIP = "192.0.2.100"
SVC = ServiceKey(4, "TCP", VIP, 80)
# written out of order, 10.1.0.9 before 10.1.0.10 only numerically
SERVERS = ("10.1.0.21", "10.1.0.10", "10.1.0.9", "10.1.0.23")


def config(sched: str = "mh", announce: bool = True, order: tuple[str, ...] = SERVERS,
           extra: str = "", weights: dict[str, int] | None = None) -> m.Config:
    weights = weights or {}
    rss = "".join(f"  real_server {a} 80 {{\n    weight {weights.get(a, 1)}\n"
                  f"    TCP_CHECK {{ }}\n  }}\n" for a in order)
    ann = f"  announce {{\n    prefix {VIP}/32\n  }}\n" if announce else ""
    res = load_text(f"virtual_server {VIP} 80 {{\n  protocol TCP\n  lvs_sched {sched}\n"
                    f"  mh-port\n  lvs_method DR\n{extra}{ann}{rss}}}\n")
    assert not res.errors, res.errors
    return res.config


def added(changes: list[Change]) -> list[str]:
    return [c.dest.address for c in changes if c.op == ADD_DEST and c.dest is not None]


def ops(changes: list[Change]) -> list[tuple[str, str, int]]:
    return [(c.op, c.dest.address, c.dest.weight) for c in changes if c.dest is not None]


def event(cfg: m.Config, rs: str, state: str, at: float) -> ServerEvent:
    return ServerEvent(cfg.virtual_servers[0].key, (rs, 80), state, 1, "test", at)


NUMERIC = ["10.1.0.9", "10.1.0.10", "10.1.0.21", "10.1.0.23"]


def test_destinations_are_added_sorted_whatever_the_config_order() -> None:
    for order in (SERVERS, tuple(reversed(SERVERS))):
        p = PoolPolicy(config(order=order))
        p.start()
        assert added(diff(Pool(), p.pool)) == NUMERIC


def test_a_dead_real_server_stays_at_weight_zero_and_keeps_its_place() -> None:
    cfg = config()
    p = PoolPolicy(cfg)
    p.start()
    kernel = Pool()
    kernel.apply(diff(kernel, p.pool))
    p.on_event(event(cfg, "10.1.0.10", DOWN, 1.0))
    down = diff(kernel, p.pool)
    assert ops(down) == [(EDIT_DEST, "10.1.0.10", 0)]
    kernel.apply(down)
    p.on_event(event(cfg, "10.1.0.10", UP, 2.0))
    up = diff(kernel, p.pool)
    assert ops(up) == [(EDIT_DEST, "10.1.0.10", 1)]
    assert not any(c.op in (ADD_DEST, DEL_DEST) for c in down + up)


def test_alpha_servers_start_in_at_weight_zero_in_order() -> None:
    """With alpha each director would otherwise add its servers in the order their
    first checks happened to pass."""
    cfg = config(extra="  alpha\n")
    p = PoolPolicy(cfg)
    p.start()
    assert added(diff(Pool(), p.pool)) == NUMERIC
    assert {d.weight for d in p.pool.dests[SVC].values()} == {0}


@pytest.mark.parametrize(("sched", "announce"), [("mh", False), ("wlc", True)])
def test_other_services_keep_keepalived_order_and_removal(sched: str, announce: bool) -> None:
    cfg = config(sched=sched, announce=announce)
    p = PoolPolicy(cfg)
    p.start()
    assert added(diff(Pool(), p.pool)) == list(SERVERS)
    p.on_event(event(cfg, "10.1.0.10", DOWN, 1.0))
    assert ("10.1.0.10", 80) not in p.pool.dests[SVC]


def test_sloppy_tcp_warning() -> None:
    seen: list[str] = []

    def read(path: str) -> str | None:
        seen.append(path)
        return "0"

    [text] = maglev_warnings(config(), read)
    assert seen == ["/proc/sys/net/ipv4/vs/sloppy_tcp"]
    assert "sloppy_tcp is 0" in text and f"{VIP} 80" in text
    assert maglev_warnings(config(), lambda path: "1") == []
    assert maglev_warnings(config(), lambda path: None) == []  # no ip_vs: no judgement
    assert maglev_warnings(config(sched="wlc"), read) == []
    assert maglev_warnings(config(announce=False), read) == []


# ------------------------------------------------------------- the kernel's list order


def fresh(cfg: m.Config) -> list[tuple[str, int]]:
    """The kernel's list (head first) on a director started with ``cfg``."""
    async def body() -> list[tuple[str, int]]:
        b = MemoryBackend()
        mgr = PoolManager(cfg, b, run_scripts=False)
        await mgr.start()
        return b.listed(SVC)

    return asyncio.run(body())


def reloaded(first: m.Config, then: m.Config) -> tuple[MemoryBackend, list[str]]:
    """Start with ``first``, reload ``then``: the backend, and the changes the
    reload made."""
    async def body() -> tuple[MemoryBackend, list[str]]:
        b = MemoryBackend()
        mgr = PoolManager(first, b, run_scripts=False)
        await mgr.start()
        b.log.clear()
        await mgr.reload(then)
        # the manager's idea of the kernel's order is the kernel's
        assert list(mgr.applied.dests[SVC].items()) == list(b.pool.dests[SVC].items())
        return b, [f"{c.op} {c.dest.address}" for c in b.log if c.dest is not None]

    return asyncio.run(body())


def test_a_server_added_by_a_reload_lands_where_a_fresh_start_puts_it() -> None:
    """10.1.0.15 sorts between 10.1.0.10 and 10.1.0.21: the two after it are deleted
    and added back behind it (5 changes, the fewest the kernel allows)."""
    then = config(order=(*SERVERS, "10.1.0.15"))
    b, changes = reloaded(config(), then)
    assert b.listed(SVC) == fresh(then) == [
        (a, 80) for a in ("10.1.0.23", "10.1.0.21", "10.1.0.15", "10.1.0.10", "10.1.0.9")]
    assert changes == ["add-dest 10.1.0.15", "del-dest 10.1.0.21", "add-dest 10.1.0.21",
                       "del-dest 10.1.0.23", "add-dest 10.1.0.23"]


def test_a_server_added_last_in_the_order_is_one_add() -> None:
    then = config(order=("10.1.0.99", *SERVERS))
    b, changes = reloaded(config(), then)
    assert b.listed(SVC) == fresh(then)
    assert changes == ["add-dest 10.1.0.99"]


def test_a_reload_that_adds_first_in_the_order_readds_every_other() -> None:
    then = config(order=(*SERVERS, "10.1.0.1"))
    b, changes = reloaded(config(), then)
    assert b.listed(SVC) == fresh(then)
    assert changes[0] == "add-dest 10.1.0.1" and len(changes) == 1 + 2 * len(SERVERS)


def test_a_reload_that_removes_and_adds_keeps_the_order() -> None:
    then = config(order=("10.1.0.21", "10.1.0.22", "10.1.0.9"))
    b, changes = reloaded(config(), then)
    assert b.listed(SVC) == fresh(then)
    # .10 and .23 go; .22 sorts after what stays: one add
    assert changes == ["del-dest 10.1.0.10", "del-dest 10.1.0.23", "add-dest 10.1.0.22"]


def test_a_dead_server_is_readded_at_its_weight_and_set_to_zero() -> None:
    """An add sets the kernel's last_weight, at 0 too: the re-add goes at the
    server's weight and an edit takes it to 0, so it keeps its slots, as on a
    director started with the new config while it is dead."""
    then = config(order=(*SERVERS, "10.1.0.22"))

    async def body() -> tuple[list[Change], MemoryBackend]:
        cfg = config()
        b = MemoryBackend()
        mgr = PoolManager(cfg, b, run_scripts=False)
        await mgr.start()
        mgr.on_event(event(cfg, "10.1.0.23", DOWN, 1.0))
        await mgr.wait_idle()
        b.log.clear()
        await mgr.reload(then)
        return b.log, b

    log, b = asyncio.run(body())
    assert ops(log) == [(ADD_DEST, "10.1.0.22", 1), (DEL_DEST, "10.1.0.23", 0),
                        (ADD_DEST, "10.1.0.23", 1), (EDIT_DEST, "10.1.0.23", 0)]
    assert b.maglev_inputs(SVC) == started(then, dead={"10.1.0.23"}).maglev_inputs(SVC)


# ------------------------------------------ a dead server's slots (the kernel's last_weight)

DEAD = "10.1.0.10"
WEIGHTS = {"10.1.0.9": 2, DEAD: 3, "10.1.0.21": 1, "10.1.0.23": 2}


def started(cfg: m.Config, dead: Iterable[str] | None = (), then_dead: Iterable[str] = (),
            kernel: Pool | None = None) -> MemoryBackend:
    """A director started with ``cfg`` while ``dead`` are down (None: as the config
    starts them), on a ``kernel`` left by an earlier run if given, that then sees
    ``then_dead`` go down."""
    vs = cfg.virtual_servers[0]
    health = None if dead is None else {
        (vs.key, rs.key): (rs.address not in dead, rs.weight) for rs in vs.real_servers}

    async def body() -> MemoryBackend:
        b = MemoryBackend(kernel)
        mgr = PoolManager(cfg, b, run_scripts=False)
        await mgr.start(health)
        for i, a in enumerate(sorted(then_dead)):
            mgr.on_event(event(cfg, a, DOWN, 1.0 + i))
        await mgr.wait_idle()
        assert mgr.applied == mgr.policy.pool  # nothing left to do
        return b

    return asyncio.run(body())


def test_a_director_started_with_a_dead_server_builds_the_table_of_one_that_saw_it_die() -> None:
    """ip_vs_mh shares its table out by last_weight: the director that saw the server
    die edited it to 0 and it kept its 3; one started while it was dead must not add
    it at 0 (no slots), or flows that move between the two change real server."""
    cfg = config(weights=WEIGHTS)
    saw_it = started(cfg, then_dead={DEAD})
    after = started(cfg, dead={DEAD})
    assert saw_it.maglev_inputs(SVC) == after.maglev_inputs(SVC) == [
        (("10.1.0.23", 80), 2), (("10.1.0.21", 80), 1), ((DEAD, 80), 3), (("10.1.0.9", 80), 2)]
    for b in (saw_it, after):
        assert b.pool.dests[SVC][(DEAD, 80)].weight == 0
    assert ops(after.log) == [(ADD_DEST, "10.1.0.9", 2), (ADD_DEST, DEAD, 3),
                              (EDIT_DEST, DEAD, 0), (ADD_DEST, "10.1.0.21", 1),
                              (ADD_DEST, "10.1.0.23", 2)]


def test_alpha_servers_keep_the_slots_of_their_weight_before_their_first_check() -> None:
    alpha = started(config(extra="  alpha\n", weights=WEIGHTS), dead=None)
    assert {d.weight for d in alpha.pool.dests[SVC].values()} == {0}
    assert alpha.maglev_inputs(SVC) == started(
        config(weights=WEIGHTS), then_dead=WEIGHTS).maglev_inputs(SVC)


def test_a_restart_sets_a_dead_servers_last_weight_again() -> None:
    """A kernel whose dead server was added at 0 (an older hafast, or keepalived):
    IPVS cannot read last_weight back, so the adopting start edits it up and down;
    the servers still up are not touched."""
    cfg = config(weights=WEIGHTS)
    vs = cfg.virtual_servers[0]
    kernel = Pool()
    kernel.add(build_service(vs, SVC, vs.sched_flags),
               [Dest(a, 80, 0 if a == DEAD else WEIGHTS[a], "DR") for a in NUMERIC])
    b = started(cfg, dead={DEAD}, kernel=kernel)
    assert b.maglev_inputs(SVC) == started(cfg, then_dead={DEAD}).maglev_inputs(SVC)
    assert ops(b.log) == [(EDIT_DEST, DEAD, 3), (EDIT_DEST, DEAD, 0)]


@pytest.mark.parametrize(("sched", "announce"), [("mh", False), ("wlc", True)])
def test_inhibit_on_failure_adds_a_dead_server_at_zero_as_keepalived(sched: str,
                                                                    announce: bool) -> None:
    cfg = config(sched=sched, announce=announce, extra="  inhibit_on_failure\n",
                 weights=WEIGHTS)
    b = started(cfg, dead={DEAD})
    assert [op for op in ops(b.log) if op[1] == DEAD] == [(ADD_DEST, DEAD, 0)]
    assert dict(b.maglev_inputs(SVC))[(DEAD, 80)] == 0


def test_adopting_a_kernel_in_another_order_puts_it_in_order() -> None:
    """A kernel filled in the config's order (keepalived, or an older hafast) is put
    in order at start, with the fewest changes."""
    cfg = config()
    vs = cfg.virtual_servers[0]
    kernel = Pool()
    kernel.add(build_service(vs, SVC, vs.sched_flags),
               [Dest(a, 80, 1, "DR") for a in SERVERS])  # .21 .10 .9 .23 added in turn

    async def start() -> tuple[MemoryBackend, list[str]]:
        b = MemoryBackend(kernel)
        await PoolManager(cfg, b, run_scripts=False).start()
        return b, [f"{c.op} {c.dest.address}" for c in b.log if c.dest is not None]

    b, changes = asyncio.run(start())
    assert b.listed(SVC) == fresh(cfg)
    # .9 may stay; .10 was added before it, so it goes behind it, and so do the rest
    assert changes == ["del-dest 10.1.0.10", "add-dest 10.1.0.10", "del-dest 10.1.0.21",
                       "add-dest 10.1.0.21", "del-dest 10.1.0.23", "add-dest 10.1.0.23"]


@pytest.mark.parametrize(("sched", "announce"), [("mh", False), ("wlc", True)])
def test_other_services_add_a_reloaded_server_as_before(sched: str, announce: bool) -> None:
    """Outside a Maglev fleet a reload adds the new server and nothing else, so the
    kernel's list is not a fresh start's (keepalived's behaviour, kept)."""
    then = config(sched=sched, announce=announce, order=(*SERVERS, "10.1.0.15"))
    b, changes = reloaded(config(sched=sched, announce=announce), then)
    assert changes == ["add-dest 10.1.0.15"]
    assert b.listed(SVC)[0] == ("10.1.0.15", 80)


KEYS = [(f"10.1.0.{i}", 80) for i in range(1, 7)]


@given(st.permutations(KEYS), st.sets(st.sampled_from(KEYS)),
       st.permutations(KEYS), st.sets(st.sampled_from(KEYS)), st.sets(st.sampled_from(KEYS)))
@settings(max_examples=300, deadline=None)
def test_ordered_dests_reaches_the_wanted_order_in_the_fewest_changes(
        have_order: list[tuple[str, int]], have_set: set[tuple[str, int]],
        want_order: list[tuple[str, int]], want_set: set[tuple[str, int]],
        reweighed: set[tuple[str, int]]) -> None:
    s = build_service(config().virtual_servers[0], SVC, ())
    have = {k: Dest(k[0], 80) for k in have_order if k in have_set}
    want = {k: Dest(k[0], 80, 2 if k in reweighed else 1) for k in want_order if k in want_set}
    kernel = Pool()
    kernel.add(s, have.values())
    changes = ordered_dests(s, have, want)
    kernel.apply(changes)
    assert list(kernel.dests[SVC].items()) == list(want.items())
    # Written apart from ordered_dests: any prefix of `want` that `have` holds in
    # that order may stay; every later server costs an add, plus a delete if held.
    wk, hk = list(want), [k for k in have if k in want]

    def cost(n: int) -> int:
        return (sum(k not in want for k in have)
                + sum(have[k] != want[k] for k in wk[:n])
                + sum(1 + (k in have) for k in wk[n:]))

    fits = [n for n in range(len(wk) + 1) if [k for k in hk if k in wk[:n]] == wk[:n]]
    assert len(changes) == min(cost(n) for n in fits)


def test_a_reload_that_reweighs_a_dead_server_moves_its_slots() -> None:
    """The weight its slots follow is the config's, on a director that saw it die
    too: a reload that changes it edits the server up to the new weight and back."""
    cfg, then = config(weights=WEIGHTS), config(weights={**WEIGHTS, DEAD: 5})

    async def body() -> tuple[MemoryBackend, list[Change]]:
        b = MemoryBackend()
        mgr = PoolManager(cfg, b, run_scripts=False)
        await mgr.start()
        mgr.on_event(event(cfg, DEAD, DOWN, 1.0))
        await mgr.wait_idle()
        b.log.clear()
        await mgr.reload(then)
        return b, b.log

    b, log = asyncio.run(body())
    assert ops(log) == [(EDIT_DEST, DEAD, 5), (EDIT_DEST, DEAD, 0)]
    assert b.maglev_inputs(SVC) == started(then, dead={DEAD}).maglev_inputs(SVC)


def test_a_server_that_dies_at_a_checkers_weight_keeps_its_configured_slots() -> None:
    """misc_dynamic set 7; the director that saw it die would keep 7's slots after
    an edit to 0 alone, and one started later gives it 3's."""
    cfg = config(weights=WEIGHTS)

    async def body() -> tuple[MemoryBackend, list[Change]]:
        b = MemoryBackend()
        mgr = PoolManager(cfg, b, run_scripts=False)
        await mgr.start()
        mgr.on_event(ServerEvent(cfg.virtual_servers[0].key, (DEAD, 80), UP, 7, "test", 1.0))
        await mgr.wait_idle()
        b.log.clear()
        mgr.on_event(event(cfg, DEAD, DOWN, 2.0))
        await mgr.wait_idle()
        return b, b.log

    b, log = asyncio.run(body())
    assert ops(log) == [(EDIT_DEST, DEAD, 3), (EDIT_DEST, DEAD, 0)]
    assert b.maglev_inputs(SVC) == started(cfg, dead={DEAD}).maglev_inputs(SVC)
