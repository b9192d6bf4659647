"""The pure pool policy on a manual clock: every keepalived pool option.

Events carry their own time (``at``); nothing sleeps, nothing touches a kernel.
"""

from __future__ import annotations

import pytest

from hafast.config import model as m
from hafast.config.loader import load_text
from hafast.lib.events import DOWN, UP, WEIGHT, ServerEvent
from hafast.lvs.backend import SVC_F_PERSISTENT, SVC_F_SCHED1, SVC_F_SCHED2, Dest, ServiceKey
from hafast.lvs.policy import FifoLine, Outcome, PoolPolicy, RunScript, service_keys

VIP = "192.168.201.15"


class Clock:
    """Manual clock: the time each event is stamped with."""

    def __init__(self) -> None:
        self.now = 0.0

    def tick(self, seconds: float = 1.0) -> float:
        self.now += seconds
        return self.now


def config(body: str, *, rss: str | None = None, head: str = "") -> m.Config:
    if rss is None:
        rss = "\n".join(f"  real_server 10.1.0.{i} 8080 {{ weight {w}\n TCP_CHECK {{ }}\n }}"
                        for i, w in ((1, 1), (2, 2), (3, 3)))
    text = f"{head}\nvirtual_server {VIP} 80 {{\n protocol TCP\n{body}\n{rss}\n}}\n"
    res = load_text(text)
    assert not res.errors, res.errors
    return res.config


def vs_key(cfg: m.Config, i: int = 0) -> tuple[object, ...]:
    return cfg.virtual_servers[i].key


def ev(cfg: m.Config, clock: Clock, rs: str, state: str, weight: int = 1, i: int = 0,
       port: int | None = 8080) -> ServerEvent:
    return ServerEvent(vs_key(cfg, i), (rs, port), state, weight, "test", clock.tick())


SVC = ServiceKey(4, "TCP", VIP, 80)


def weights(p: PoolPolicy, key: ServiceKey = SVC) -> dict[str, int]:
    return {a: d.weight for (a, _), d in p.pool.dests[key].items()}


def lines(out: Outcome) -> list[str]:
    return [a.line for a in out.actions if isinstance(a, FifoLine)]


def scripts(out: Outcome) -> list[tuple[str, ...]]:
    return [a.argv for a in out.actions if isinstance(a, RunScript)]


def test_start_puts_every_live_server_in_with_its_weight() -> None:
    cfg = config("lvs_sched wrr")
    p = PoolPolicy(cfg)
    out = p.start()
    assert out.changed == {SVC}
    assert weights(p) == {"10.1.0.1": 1, "10.1.0.2": 2, "10.1.0.3": 3}
    assert p.pool.services[SVC].scheduler == "wrr"
    assert all(d.method == "NAT" and d.port == 8080 for d in p.pool.dests[SVC].values())
    # no rs_init_notifies: no RS lines; keepalived 2.2.7 reports the quorum met
    assert lines(out) == [f"VS [{VIP}]:tcp:80 UP"]


@pytest.mark.usefixtures("programs_exist")
def test_down_removes_and_up_puts_back_with_notifies_in_keepalived_format() -> None:
    cfg = config("", rss='''
  real_server 10.1.0.1 8080 { notify_up "/bin/up 1"
     notify_down "/bin/down 1"
     TCP_CHECK { } }
  real_server 10.1.0.2 8080 { TCP_CHECK { } }''')
    clock = Clock()
    p = PoolPolicy(cfg)
    p.start()
    out = p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))
    assert weights(p) == {"10.1.0.2": 1}
    assert lines(out) == [f"RS [10.1.0.1]:tcp:8080 [{VIP}]:tcp:80 DOWN"]
    assert scripts(out) == [("/bin/down", "1")]
    assert out.changed == {SVC}
    # A repeated DOWN changes nothing.
    again = p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))
    assert again.actions == [] and again.changed == set()
    out = p.on_event(ev(cfg, clock, "10.1.0.1", UP))
    assert weights(p) == {"10.1.0.1": 1, "10.1.0.2": 1}
    assert lines(out) == [f"RS [10.1.0.1]:tcp:8080 [{VIP}]:tcp:80 UP"]
    assert scripts(out) == [("/bin/up", "1")]


def test_weight_event_changes_the_weight_only() -> None:
    clock = Clock()
    cfg = config("")
    p = PoolPolicy(cfg)
    p.start()
    out = p.on_event(ev(cfg, clock, "10.1.0.2", WEIGHT, weight=7))
    assert weights(p)["10.1.0.2"] == 7
    assert out.actions == [] and out.changed == {SVC}


def test_inhibit_on_failure_keeps_a_dead_server_at_weight_zero() -> None:
    clock = Clock()
    cfg = config("inhibit_on_failure")
    p = PoolPolicy(cfg)
    p.start()
    p.on_event(ev(cfg, clock, "10.1.0.3", DOWN, 3))
    assert weights(p) == {"10.1.0.1": 1, "10.1.0.2": 2, "10.1.0.3": 0}
    p.on_event(ev(cfg, clock, "10.1.0.3", UP, 3))
    assert weights(p)["10.1.0.3"] == 3


@pytest.mark.usefixtures("programs_exist")
def test_quorum_lost_and_regained_runs_the_scripts_and_fifo_lines() -> None:
    clock = Clock()
    cfg = config('quorum 4\n quorum_up "/bin/qup"\n quorum_down "/bin/qdown"')
    p = PoolPolicy(cfg)
    p.start()  # 1+2+3 = 6 >= 4
    assert p.quorum(vs_key(cfg))
    out = p.on_event(ev(cfg, clock, "10.1.0.3", DOWN, 3))  # 3 < 4: lost
    assert not p.quorum(vs_key(cfg))
    assert lines(out) == [f"RS [10.1.0.3]:tcp:8080 [{VIP}]:tcp:80 DOWN", f"VS [{VIP}]:tcp:80 DOWN"]
    assert scripts(out) == [("/bin/qdown",)]
    # No sorry server: the live servers stay in the pool.
    assert weights(p) == {"10.1.0.1": 1, "10.1.0.2": 2}
    out = p.on_event(ev(cfg, clock, "10.1.0.3", UP, 3))
    assert p.quorum(vs_key(cfg))
    assert lines(out)[-1] == f"VS [{VIP}]:tcp:80 UP" and scripts(out) == [("/bin/qup",)]


def test_hysteresis_lost_below_quorum_minus_and_regained_at_quorum_plus() -> None:
    clock = Clock()
    # weights 1,2,3 = 6; quorum 4, hysteresis 1: lost below 3, regained at 5.
    cfg = config("quorum 4\n hysteresis 1")
    p = PoolPolicy(cfg)
    p.start()
    p.on_event(ev(cfg, clock, "10.1.0.3", DOWN, 3))  # 3: not below 3, still up
    assert p.quorum(vs_key(cfg))
    p.on_event(ev(cfg, clock, "10.1.0.1", DOWN, 1))  # 2 < 3: lost
    assert not p.quorum(vs_key(cfg))
    p.on_event(ev(cfg, clock, "10.1.0.1", UP, 1))  # 3 < 5: still down
    assert not p.quorum(vs_key(cfg))
    p.on_event(ev(cfg, clock, "10.1.0.3", UP, 3))  # 6 >= 5: regained
    assert p.quorum(vs_key(cfg))


def test_quorum_starts_down_below_quorum_plus_hysteresis_and_zero_always_loses() -> None:
    clock = Clock()
    # weights 1+2+3 = 6; quorum 5, hysteresis 2: starting needs 7 (set_quorum_states).
    cfg = config("quorum 5\n hysteresis 2")
    p = PoolPolicy(cfg)
    p.start()
    assert not p.quorum(vs_key(cfg))
    cfg2 = config("quorum 1", rss="real_server 10.1.0.1 8080 { TCP_CHECK { } }")
    p2 = PoolPolicy(cfg2)
    p2.start()
    assert p2.quorum(vs_key(cfg2))
    p2.on_event(ev(cfg2, clock, "10.1.0.1", DOWN))
    assert not p2.quorum(vs_key(cfg2))


def test_sorry_server_replaces_the_pool_when_quorum_is_lost() -> None:
    clock = Clock()
    cfg = config("quorum 4\n sorry_server 10.9.0.9 8081")
    p = PoolPolicy(cfg)
    p.start()
    assert "10.9.0.9" not in weights(p)
    p.on_event(ev(cfg, clock, "10.1.0.3", DOWN, 3))
    # keepalived: the live servers leave, the sorry server (weight 1) comes in.
    assert weights(p) == {"10.9.0.9": 1}
    assert p.pool.dests[SVC][("10.9.0.9", 8081)].port == 8081
    p.on_event(ev(cfg, clock, "10.1.0.3", UP, 3))
    assert weights(p) == {"10.1.0.1": 1, "10.1.0.2": 2, "10.1.0.3": 3}


def test_sorry_server_inhibit_keeps_it_at_weight_zero() -> None:
    clock = Clock()
    cfg = config("quorum 4\n sorry_server 10.9.0.9 8081\n sorry_server_inhibit")
    p = PoolPolicy(cfg)
    p.start()
    assert weights(p)["10.9.0.9"] == 0
    p.on_event(ev(cfg, clock, "10.1.0.3", DOWN, 3))
    assert weights(p) == {"10.9.0.9": 1}
    p.on_event(ev(cfg, clock, "10.1.0.3", UP, 3))
    assert weights(p)["10.9.0.9"] == 0 and weights(p)["10.1.0.3"] == 3


def test_sorry_server_with_inhibit_on_failure_keeps_real_servers_at_zero() -> None:
    clock = Clock()
    cfg = config("quorum 4\n sorry_server 10.9.0.9 8081\n inhibit_on_failure")
    p = PoolPolicy(cfg)
    p.start()
    p.on_event(ev(cfg, clock, "10.1.0.3", DOWN, 3))
    assert weights(p) == {"10.1.0.1": 0, "10.1.0.2": 0, "10.1.0.3": 0, "10.9.0.9": 1}


def test_sorry_server_lvs_method() -> None:
    clock = Clock()
    cfg = config("quorum 9\n sorry_server 10.9.0.9\n sorry_server_lvs_method DR")
    p = PoolPolicy(cfg)
    out = p.start()  # 6 < 9: starts down, the sorry server is in at once
    assert lines(out) == [f"VS [{VIP}]:tcp:80 DOWN"]
    d = p.pool.dests[SVC][("10.9.0.9", 80)]
    assert (d.method, d.weight) == ("DR", 1)
    assert weights(p) == {"10.9.0.9": 1}
    p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))
    assert weights(p) == {"10.9.0.9": 1}


def test_alpha_starts_down_and_comes_in_on_first_success() -> None:
    clock = Clock()
    cfg = config("alpha")
    p = PoolPolicy(cfg)
    p.start()
    assert weights(p) == {}
    assert not p.quorum(vs_key(cfg))
    out = p.on_event(ev(cfg, clock, "10.1.0.2", UP, 2))
    assert weights(p) == {"10.1.0.2": 2}
    assert lines(out) == [f"RS [10.1.0.2]:tcp:8080 [{VIP}]:tcp:80 UP", f"VS [{VIP}]:tcp:80 UP"]


def test_start_takes_the_engine_snapshot() -> None:
    cfg = config("")
    p = PoolPolicy(cfg)
    p.start({(vs_key(cfg), ("10.1.0.1", 8080)): (False, 1),
             (vs_key(cfg), ("10.1.0.2", 8080)): (True, 5)})
    assert weights(p) == {"10.1.0.2": 5, "10.1.0.3": 3}


def test_rs_init_notifies_reports_every_server_that_starts_alive() -> None:
    # keepalived 2.2.7 init_service_rs notifies only the servers it makes alive; an
    # alpha one is reported by its checker's first result
    cfg = config("", rss="real_server 10.1.0.1 8080 { TCP_CHECK { alpha } }\n"
                         "real_server 10.1.0.2 8080 { TCP_CHECK { } }")
    p = PoolPolicy(cfg, rs_init_notifies=True)
    out = p.start()
    assert lines(out) == [f"RS [10.1.0.2]:tcp:8080 [{VIP}]:tcp:80 UP", f"VS [{VIP}]:tcp:80 UP"]
    first = p.on_event(ev(cfg, Clock(), "10.1.0.1", DOWN))
    assert lines(first) == [f"RS [10.1.0.1]:tcp:8080 [{VIP}]:tcp:80 DOWN"]


@pytest.mark.usefixtures("programs_exist")
def test_omega_runs_the_notifiers_on_shutdown() -> None:
    cfg = config('omega\n quorum_down "/bin/qdown"', rss='''
  real_server 10.1.0.1 8080 { notify_down "/bin/d1"
     TCP_CHECK { } }''')
    p = PoolPolicy(cfg)
    p.start()
    out = p.stop()
    assert scripts(out) == [("/bin/d1",), ("/bin/qdown",)]
    assert lines(out) == [f"RS [10.1.0.1]:tcp:8080 [{VIP}]:tcp:80 DOWN", f"VS [{VIP}]:tcp:80 DOWN"]
    plain = PoolPolicy(config('quorum_down "/bin/qdown"'))
    plain.start()
    assert plain.stop().actions == []  # without omega, a shutdown is silent


@pytest.mark.usefixtures("programs_exist")
def test_ha_suspend_keeps_the_pool_out_while_the_vip_is_absent() -> None:
    clock = Clock()
    cfg = config('ha_suspend\n quorum_down "/bin/qdown"', rss='''
  real_server 10.1.0.1 8080 { notify_down "/bin/d1"
     TCP_CHECK { } }
  real_server 10.1.0.2 8080 { TCP_CHECK { } }''')
    p = PoolPolicy(cfg, vips_present=["10.9.9.9"])  # a BACKUP: the VIP is elsewhere
    assert p.start().changed == set() and p.pool.counts() == (0, 0)
    # results while suspended count for nothing now...
    out = p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))
    assert out.changed == set() and out.actions == [] and p.ignored == 1
    # ...and the latest is applied, with its notifies, once the VIP arrives
    out = p.set_vip(VIP, True)
    assert out.changed == {SVC} and weights(p) == {"10.1.0.2": 1}
    assert scripts(out) == [("/bin/d1",)]
    # BACKUP again: the whole service is withdrawn, silently
    out = p.set_vip(VIP, False)
    assert out.changed == {SVC} and SVC not in p.pool.services and out.actions == []
    assert p.set_vip(VIP, False).changed == set()  # already out
    p.on_event(ev(cfg, clock, "10.1.0.1", UP))
    p.on_event(ev(cfg, clock, "10.1.0.2", DOWN))
    p.on_event(ev(cfg, clock, "10.1.0.2", UP))
    out = p.set_vip(VIP, True)
    assert weights(p) == {"10.1.0.1": 1, "10.1.0.2": 1}
    assert lines(out) == [f"RS [10.1.0.1]:tcp:8080 [{VIP}]:tcp:80 UP"]  # 10.1.0.2 never left


def test_ha_suspend_unknown_addresses_suspend_nothing_and_spellings_match() -> None:
    cfg = config("ha_suspend")
    p = PoolPolicy(cfg)  # nobody said which addresses are here
    p.start()
    assert SVC in p.pool.services and not p.vss[vs_key(cfg)].suspended
    cfg6 = load_text("virtual_server 2001:db8::1 80 {\n ha_suspend\n protocol TCP\n"
                     " real_server 2001:db8::10 80 { }\n}\n").config
    p6 = PoolPolicy(cfg6, vips_present=["2001:DB8:0:0::1"])
    p6.start()
    assert p6.pool.counts() == (1, 1)
    p6.set_vip("2001:db8::1", False)
    assert p6.pool.counts() == (0, 0)


def test_ha_suspend_group_runs_while_any_member_address_is_here() -> None:
    cfg = load_text("""
virtual_server_group G {
  10.0.0.1 80
  10.0.0.2 80
}
virtual_server group G {
  ha_suspend
  protocol TCP
  real_server 10.1.0.1 8080 { }
}
""").config
    p = PoolPolicy(cfg, vips_present=[])
    p.start()
    assert p.pool.counts() == (0, 0)
    p.set_vip("10.0.0.2", True)
    assert p.pool.counts() == (2, 2)
    p.set_vip("10.0.0.1", True)
    p.set_vip("10.0.0.2", False)
    assert p.pool.counts() == (2, 2)
    assert p.set_vip("10.0.0.1", False).changed and p.pool.counts() == (0, 0)


def test_ha_suspend_survives_a_reload() -> None:
    clock = Clock()
    cfg = config("ha_suspend")
    p = PoolPolicy(cfg, vips_present=[])
    p.start()
    p.on_event(ev(cfg, clock, "10.1.0.3", DOWN))
    new = config("ha_suspend\n lvs_sched rr")  # rebuilt, still suspended
    out = p.reload(new)
    assert p.pool.counts() == (0, 0) and SVC in out.changed
    p.set_vip(VIP, True)
    assert weights(p) == {"10.1.0.1": 1, "10.1.0.2": 2}  # the held DOWN was kept
    # a reload that names the addresses present recomputes every suspension
    out = p.reload(new, vips_present=[])
    assert out.changed == {SVC} and p.pool.counts() == (0, 0)


@pytest.mark.usefixtures("programs_exist")
def test_pool_scripts_run_as_their_user_or_script_user() -> None:
    clock = Clock()
    cfg = config('quorum_down "/bin/qdown" nobody nogroup',
                 rss='''
  real_server 10.1.0.1 8080 { notify_down "/bin/d1"
     TCP_CHECK { } }''', head="global_defs {\n script_user daemon\n}")
    p = PoolPolicy(cfg)
    p.start()
    out = p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))
    who = [(a.argv, a.user, a.group) for a in out.actions if isinstance(a, RunScript)]
    assert who == [(("/bin/d1",), "daemon", None), (("/bin/qdown",), "nobody", "nogroup")]
    plain = PoolPolicy(config('quorum_down "/bin/qdown"'))
    plain.start()
    for rs in ("10.1.0.1", "10.1.0.2", "10.1.0.3"):
        out = plain.on_event(ev(cfg, clock, rs, DOWN))
    assert [(a.user, a.group) for a in out.actions if isinstance(a, RunScript)] == \
        [(None, None)]


def test_thresholds_persistence_and_scheduler_flags_reach_the_pool() -> None:
    cfg = config("lvs_sched sh\n persistence_timeout 30\n persistence_granularity 255.255.255.0\n"
                 " lvs_method DR",
                 rss="real_server 10.1.0.1 8080 { uthreshold 100\n lthreshold 10 }")
    p = PoolPolicy(cfg, service_flags={vs_key(cfg): ("sh-port", "sh-fallback")})
    p.start()
    svc = p.pool.services[SVC]
    assert (svc.scheduler, svc.timeout, svc.netmask) == ("sh", 30, 24)
    assert svc.flags == SVC_F_PERSISTENT | SVC_F_SCHED1 | SVC_F_SCHED2
    d = p.pool.dests[SVC][("10.1.0.1", 8080)]
    assert (d.uthreshold, d.lthreshold, d.method) == (100, 10, "DR")


def test_real_server_without_port_uses_the_virtual_port() -> None:
    cfg = config("", rss="real_server 10.1.0.1 { }")
    p = PoolPolicy(cfg)
    p.start()
    assert list(p.pool.dests[SVC]) == [("10.1.0.1", 80)]


def test_shared_real_server_event_fans_out_to_every_virtual_server() -> None:
    clock = Clock()
    rs = "real_server 10.1.0.1 8080 { TCP_CHECK { connect_timeout 2 } }"
    other = "real_server 10.1.0.2 8080 { TCP_CHECK { connect_timeout 2 } }"
    text = "\n".join(
        f"virtual_server 10.0.0.{i} 80 {{ protocol TCP\n {rs}\n {other} }}" for i in (1, 2, 3))
    text += "\nvirtual_server 10.0.0.4 80 { protocol TCP\n" \
            " real_server 10.1.0.1 8080 { TCP_CHECK { connect_timeout 3 } } }"
    cfg = load_text(text).config
    p = PoolPolicy(cfg)
    p.start()
    # One event, from the engine's single shared check, for the first virtual server...
    out = p.on_event(ServerEvent(cfg.virtual_servers[0].key, ("10.1.0.1", 8080), DOWN, 1, "x",
                                 clock.tick()))
    # ...moves all three that hold the same real server with the same check.
    for i in (1, 2, 3):
        assert list(p.pool.dests[ServiceKey(4, "TCP", f"10.0.0.{i}", 80)]) == [("10.1.0.2", 8080)]
    assert len(out.changed) == 3
    assert len([x for x in lines(out) if x.startswith("RS [10.1.0.1]")]) == 3
    # A different check spec is a different check: 10.0.0.4 keeps its server.
    assert list(p.pool.dests[ServiceKey(4, "TCP", "10.0.0.4", 80)]) == [("10.1.0.1", 8080)]
    # The engine also reports the other virtual servers' health: no second change.
    again = p.on_event(ServerEvent(cfg.virtual_servers[1].key, ("10.1.0.1", 8080), DOWN, 1,
                                   "x", clock.tick()))
    assert again.changed == set() and again.actions == []


def test_virtual_server_group_members_become_services_with_the_same_dests() -> None:
    clock = Clock()
    text = """
virtual_server_group G {
  10.0.0.1-3 80
  10.0.1.0/31 443
  fwmark 7
  fwmark 8 inet6
}
virtual_server group G {
  protocol TCP
  lvs_sched rr
  real_server 10.1.0.1 8080 { TCP_CHECK { } }
  real_server 10.1.0.2 8080 { TCP_CHECK { } }
}"""
    res = load_text(text)
    assert not res.errors, res.errors
    cfg = res.config
    keys = service_keys(cfg.virtual_servers[0], {g.name: g for g in cfg.virtual_server_groups})
    assert keys == [ServiceKey(4, "TCP", "10.0.0.1", 80), ServiceKey(4, "TCP", "10.0.0.2", 80),
                    ServiceKey(4, "TCP", "10.0.0.3", 80), ServiceKey(4, "TCP", "10.0.1.0", 443),
                    ServiceKey(4, "TCP", "10.0.1.1", 443), ServiceKey(4, "", None, 0, 7),
                    ServiceKey(6, "", None, 0, 8)]
    p = PoolPolicy(cfg)
    p.start()
    assert set(p.pool.services) == set(keys)
    out = p.on_event(ServerEvent(cfg.virtual_servers[0].key, ("10.1.0.1", 8080), DOWN, 1, "x",
                                 clock.tick()))
    assert out.changed == set(keys)
    for k in keys:
        assert list(p.pool.dests[k]) == [("10.1.0.2", 8080)]
    # One checker per real server for the whole group: one RS line, not seven.
    assert lines(out) == ["RS [10.1.0.1]:tcp:8080 [G]:0 DOWN"]


def test_fwmark_virtual_server() -> None:
    cfg = load_text("virtual_server fwmark 5 { lvs_method DR\n"
                    " real_server 10.1.0.1 { } }").config
    p = PoolPolicy(cfg)
    p.start()
    key = ServiceKey(4, "", None, 0, 5)
    assert p.pool.dests[key] == {("10.1.0.1", 0): Dest("10.1.0.1", 0, 1, "DR")}


def test_ipv6_virtual_server() -> None:
    cfg = load_text("virtual_server fd00::1 443 { protocol TCP\n persistence_timeout 60\n"
                    " real_server fd01::2 443 { } }").config
    p = PoolPolicy(cfg)
    p.start()
    key = ServiceKey(6, "TCP", "fd00::1", 443)
    assert p.pool.services[key].netmask == 128
    assert list(p.pool.dests[key]) == [("fd01::2", 443)]


def test_reload_keeps_health_and_changes_only_what_changed() -> None:
    clock = Clock()
    cfg = config("")
    p = PoolPolicy(cfg)
    p.start()
    p.on_event(ev(cfg, clock, "10.1.0.1", DOWN))
    cfg2 = config("", rss="\n".join(
        f"  real_server 10.1.0.{i} 8080 {{ weight {w}\n TCP_CHECK {{ }}\n }}"
        for i, w in ((1, 1), (2, 5), (4, 1))))
    p.reload(cfg2)
    # 10.1.0.1 stays dead (keepalived: "do not re-add failed RS instantly on reload"),
    # 10.1.0.2 takes the new weight, 10.1.0.3 is gone, 10.1.0.4 is new and up.
    assert weights(p) == {"10.1.0.2": 5, "10.1.0.4": 1}


def test_unknown_event_is_counted_and_ignored() -> None:
    clock = Clock()
    cfg = config("")
    p = PoolPolicy(cfg)
    p.start()
    out = p.on_event(ServerEvent(("addr", "1.1.1.1", 1, "TCP"), ("x", 1), DOWN, 1, "", clock.now))
    assert out.changed == set() and p.ignored == 1


def test_reload_of_an_unchanged_virtual_server_reports_nothing_changed() -> None:
    clock = Clock()
    text = "\n".join(
        f"virtual_server 10.0.0.{i} 80 {{ protocol TCP\n"
        f" real_server 10.1.0.1 8080 {{ weight {i} }} }}" for i in (1, 2, 3))
    cfg = load_text(text).config
    p = PoolPolicy(cfg)
    p.start()
    p.on_event(ServerEvent(cfg.virtual_servers[0].key, ("10.1.0.1", 8080), DOWN, 1, "x",
                           clock.tick()))
    before = dict(p.vss)
    out = p.reload(load_text(text.replace("weight 3", "weight 4")).config)
    assert out.changed == {ServiceKey(4, "TCP", "10.0.0.3", 80)}
    assert p.vss[cfg.virtual_servers[0].key] is before[cfg.virtual_servers[0].key]
    assert p.pool.dests[ServiceKey(4, "TCP", "10.0.0.1", 80)] == {}  # still down
    assert p.pool.dests[ServiceKey(4, "TCP", "10.0.0.3", 80)][("10.1.0.1", 8080)].weight == 4
    # A virtual server that goes away leaves the pool.
    out = p.reload(load_text(text.split("\nvirtual_server 10.0.0.3")[0]).config)
    assert out.changed == {ServiceKey(4, "TCP", "10.0.0.3", 80)}
    assert ServiceKey(4, "TCP", "10.0.0.3", 80) not in p.pool.services


@pytest.mark.usefixtures("programs_exist")
def test_start_reports_a_quorum_met_and_a_sorry_quorum_down_as_keepalived() -> None:
    # keepalived 2.2.7: set_quorum_states() weighs before any real server is alive,
    # then update_quorum_state(init): met -> quorum_up + VS UP; not met -> nothing,
    # or with a sorry server quorum_down + VS DOWN.
    scripts_ = 'quorum_up "/bin/qup"\n quorum_down "/bin/qdown"'
    met = PoolPolicy(config(f"quorum 6\n {scripts_}")).start()
    assert lines(met) == [f"VS [{VIP}]:tcp:80 UP"] and scripts(met) == [("/bin/qup",)]
    short = PoolPolicy(config(f"quorum 7\n {scripts_}")).start()
    assert short.actions == []
    hyst = PoolPolicy(config(f"quorum 5\n hysteresis 2\n {scripts_}")).start()
    assert hyst.actions == []  # 6 < 5 + 2
    sorry = PoolPolicy(config(f"quorum 7\n sorry_server 10.9.0.9 80\n {scripts_}")).start()
    assert lines(sorry) == [f"VS [{VIP}]:tcp:80 DOWN"] and scripts(sorry) == [("/bin/qdown",)]
    alpha = PoolPolicy(config(f"alpha\n {scripts_}")).start()
    assert alpha.actions == []  # every server dead until checked, no sorry server


def _vs(n: int, body: str, servers: str, tag: str = "") -> str:
    tag = tag or f"v{n}"
    return (f"virtual_server 10.0.0.{n} 80 {{ protocol TCP\n quorum_up \"/bin/up {tag}\"\n"
            f" quorum_down \"/bin/down {tag}\"\n {body}\n{servers} }}\n")


def _rss(*addrs: str) -> str:
    return "".join(f" real_server {a} 8080 {{ TCP_CHECK {{ }} }}\n" for a in addrs)


@pytest.mark.usefixtures("programs_exist")
def test_reload_reports_quorum_as_keepalived() -> None:
    """keepalived 2.2.7 clear_diff_services then init_services (the same story as the
    IPVS VM's side-by-side test, tests/ipvs/test_quorum_notify.py)."""
    clock = Clock()
    first = (_vs(1, "quorum 1", _rss("10.1.0.1", "10.1.0.2"))
             + _vs(2, "sorry_server 10.9.0.4 8080", _rss("10.1.0.2"))
             + _vs(3, "", _rss("10.1.0.1"))
             + _vs(4, "quorum 2", _rss("10.1.0.1", "10.1.0.2")))
    cfg = load_text(first).config
    p = PoolPolicy(cfg)
    p.start()
    for i in (0, 1, 3):
        p.on_event(ev(cfg, clock, "10.1.0.2", DOWN, i=i))
    assert [p.quorum(vs_key(cfg, i)) for i in range(4)] == [True, False, True, False]
    second = (_vs(1, "quorum 1", _rss("10.1.0.2"), tag="v1-new")
              + _vs(2, "sorry_server 10.9.0.5 8080", _rss("10.1.0.2"))
              + _vs(4, "quorum 2", _rss("10.1.0.1", "10.1.0.2"))
              + _vs(5, "", _rss("10.1.0.1")))
    out = p.reload(load_text(second).config)
    v = "VS [10.0.0.{}]:tcp:80 {}".format
    r = "RS [10.1.0.1]:tcp:8080 [10.0.0.{}]:tcp:80 DOWN".format
    assert lines(out) == [
        # 1 loses its live server: DOWN, the old one's quorum lost (old script),
        # then the new one, from the state before the reload, loses it again
        r(1), v(1, "DOWN"),
        # 3 goes: its live server and its quorum
        r(3), v(3, "DOWN"),
        v(1, "DOWN"),
        v(2, "DOWN"),  # a new sorry server on a quorum that is down
        v(5, "UP"),  # new, met at once
    ]
    assert sorted(scripts(out)) == sorted([("/bin/down", "v1"), ("/bin/down", "v3"),
                                           ("/bin/down", "v1-new"), ("/bin/down", "v2"),
                                           ("/bin/up", "v5")])
    # 4 is unchanged (still down, no sorry server): nothing about it
    again = p.reload(load_text(second).config)
    assert again.actions == []
