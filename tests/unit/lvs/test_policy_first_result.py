"""An alpha checker's first result, keepalived's way (issue 15).

keepalived 2.2.7 (check/ipwrapper.c update_svr_checker_state) notifies a checker's
first result even when it changes nothing, if the checker is alpha: an alpha real
server that never comes up writes ``RS ... DOWN`` and runs its ``notify_down`` once,
with no kernel and no quorum change.  The check engine publishes that first result
(hafast/check/runner.py ``_first_down``); the pool policy decides what it notifies.
Seen side by side in the IPVS VM (tests/ipvs/test_quorum_notify.py).
"""

from __future__ import annotations

import random

import pytest

from hafast.check.api import NO_ATTEMPT, Attempt, Done, ProbeKind, ProbeResult
from hafast.check.engine import Engine
from hafast.check.runner import Runner
from hafast.check.side import seed_engine
from hafast.config import model as m
from hafast.lib.events import DOWN, UP, ServerEvent
from hafast.lvs.policy import PoolPolicy, RsMoved
from tests.unit.check.fakeloop import FakeLoop
from tests.unit.lvs.test_policy import (
    SVC,
    VIP,
    Clock,
    config,
    ev,
    lines,
    scripts,
    vs_key,
    weights,
)

pytestmark = pytest.mark.usefixtures("programs_exist")

RS1 = f"RS [10.1.0.1]:tcp:8080 [{VIP}]:tcp:80"
ALPHA_RS = '''
  real_server 10.1.0.1 8080 { notify_down "/bin/down 1"
     notify_up "/bin/up 1"
     TCP_CHECK { } }
  real_server 10.1.0.2 8080 { TCP_CHECK { } }'''


def test_an_alpha_servers_first_failure_is_notified_once_and_moves_nothing() -> None:
    clock = Clock()
    cfg = config('alpha\n quorum_up "/bin/qup"\n quorum_down "/bin/qdown"', rss=ALPHA_RS)
    p = PoolPolicy(cfg)
    assert p.start().actions == []
    out = p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))
    assert lines(out) == [f"{RS1} DOWN"]
    assert scripts(out) == [("/bin/down", "1")]
    assert [(t.rs.address, t.alive) for t in out.actions if isinstance(t, RsMoved)] == [
        ("10.1.0.1", False)]  # what the mails read: the same transition list
    assert out.changed == set() and weights(p) == {}
    assert not p.quorum(vs_key(cfg))
    # Said once: the next failures (or the engine's other virtual servers) say nothing.
    again = p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))
    assert again.actions == [] and again.changed == set()
    # And it still comes in on its first success.
    up = p.on_event(ev(cfg, clock, "10.1.0.1", UP))
    assert lines(up) == [f"{RS1} UP", f"VS [{VIP}]:tcp:80 UP"]
    assert weights(p) == {"10.1.0.1": 1}


def test_after_a_transition_a_repeated_down_says_nothing() -> None:
    clock = Clock()
    cfg = config("alpha", rss=ALPHA_RS)
    p = PoolPolicy(cfg)
    p.start()
    p.on_event(ev(cfg, clock, "10.1.0.1", UP))
    assert lines(p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))) == [
        f"{RS1} DOWN", f"VS [{VIP}]:tcp:80 DOWN"]
    assert p.on_event(ev(cfg, clock, "10.1.0.1", DOWN)).actions == []


def test_with_a_sorry_server_and_with_inhibit_nothing_moves_either() -> None:
    clock = Clock()
    rss = ALPHA_RS.replace('notify_down "/bin/down 1"', "inhibit_on_failure")
    cfg = config("alpha\n sorry_server 10.9.0.9 8080", rss=rss)
    p = PoolPolicy(cfg)
    p.start()
    before = dict(p.pool.dests[SVC])
    out = p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))
    assert lines(out) == [f"{RS1} DOWN"]
    assert out.changed == set() and p.pool.dests[SVC] == before
    assert weights(p) == {"10.1.0.1": 0, "10.9.0.9": 1}


def test_a_shared_check_notifies_each_virtual_server_once() -> None:
    # keepalived has one checker per virtual server, each with its first result;
    # hafast's engine checks the shared server once and says it for each health.
    clock = Clock()
    rs = "real_server 10.1.0.1 8080 { TCP_CHECK { } }"
    cfg = config("", rss="", head="\n".join(
        f"virtual_server 10.0.0.{i} 80 {{ protocol TCP\n alpha\n {rs} }}" for i in (1, 2)))
    p = PoolPolicy(cfg)
    p.start()
    out = p.on_event(ev(cfg, clock, "10.1.0.1", DOWN, i=0))
    assert sorted(lines(out)) == [f"RS [10.1.0.1]:tcp:8080 [10.0.0.{i}]:tcp:80 DOWN"
                                  for i in (1, 2)]
    assert p.on_event(ev(cfg, clock, "10.1.0.1", DOWN, i=1)).actions == []


def test_a_reload_says_it_again_only_for_new_checkers() -> None:
    clock = Clock()
    rss = ALPHA_RS + "\n  real_server 10.1.0.3 8080 { TCP_CHECK { } }"
    cfg = config("alpha", rss=rss)
    p = PoolPolicy(cfg)
    p.start()
    p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))
    p.on_event(ev(cfg, clock, "10.1.0.3", DOWN))
    # the same configuration, then one whose virtual server is rebuilt (a new
    # scheduler) with 10.1.0.3's checker changed and a new alpha server 10.1.0.4
    p.reload(config("alpha", rss=rss))
    assert p.on_event(ev(cfg, clock, "10.1.0.1", DOWN)).actions == []
    cfg2 = config("alpha\n lb_algo wrr", rss=ALPHA_RS + (
        "\n  real_server 10.1.0.3 8080 { TCP_CHECK { connect_timeout 2 } }"
        "\n  real_server 10.1.0.4 8080 { TCP_CHECK { } }"))
    p.reload(cfg2)
    said = [lines(p.on_event(ev(cfg2, clock, a, DOWN))) for a in ("10.1.0.1", "10.1.0.3",
                                                                   "10.1.0.4")]
    assert said == [[], [f"RS [10.1.0.3]:tcp:8080 [{VIP}]:tcp:80 DOWN"],
                    [f"RS [10.1.0.4]:tcp:8080 [{VIP}]:tcp:80 DOWN"]]


def test_ha_suspend_holds_the_first_result_until_the_address_arrives() -> None:
    clock = Clock()
    cfg = config("alpha\n ha_suspend", rss=ALPHA_RS)
    p = PoolPolicy(cfg, vips_present=[])
    p.start()
    assert p.on_event(ev(cfg, clock, "10.1.0.1", DOWN)).actions == []
    out = p.set_vip(VIP, True)
    assert lines(out) == [f"{RS1} DOWN"]


def test_a_real_server_without_checkers_is_in_at_once_under_alpha() -> None:
    # keepalived: alpha marks checkers down until they run; with none there is
    # nothing to wait for (init_service_rs adds it, num_failed_checkers 0)
    cfg = config("alpha", rss="real_server 10.1.0.1 8080 { weight 2 }\n"
                              "real_server 10.1.0.2 8080 { TCP_CHECK { } }")
    p = PoolPolicy(cfg)
    out = p.start()
    assert weights(p) == {"10.1.0.1": 2}
    assert lines(out) == [f"VS [{VIP}]:tcp:80 UP"]


# --------------------------------------------------------------------------- engine + policy


class Refused(ProbeKind):
    keyword = "TCP_CHECK"

    def start(self, done: Done) -> Attempt:
        done(ProbeResult(False, "refused"))
        return NO_ATTEMPT


def _engine(cfg: m.Config, loop: FakeLoop, sink: list[ServerEvent]) -> Engine:
    return Engine(cfg, loop, sink.append, kinds={"TCP_CHECK": Refused},
                  runner=Runner(loop, None, rng=random.Random(2)))


def test_engine_and_policy_the_check_worker_rebuilt_on_reload_says_nothing_new() -> None:
    cfg = config("alpha\n delay_loop 1", rss="real_server 10.1.0.1 8080 {\n"
                 " TCP_CHECK { connect_timeout 0.3\n retry 0 } }")
    p = PoolPolicy(cfg)
    p.start()
    loop, events = FakeLoop(), list[ServerEvent]()
    eng = _engine(cfg, loop, events)
    eng.start()
    loop.advance(3.5)
    said = [p.on_event(e) for e in events]
    assert [lines(o) for o in said] == [[f"{RS1} DOWN"]]  # three failures, one line
    assert all(o.changed == set() for o in said)
    eng.stop()
    # the check worker's reload: a new engine seeded with the parent's health
    events.clear()
    seed = {(vk, rk): (r.alive, r.weight) for vk, st in p.vss.items()
            for rk, r in st.rss.items()}
    eng = _engine(cfg, loop, events)
    seed_engine(eng, seed)
    eng.start()
    loop.advance(3.5)
    assert len(events) == 1  # the new check's first result...
    assert p.on_event(events[0]).actions == []  # ...was said before the reload
    eng.stop()
