"""Reload diff: keep / adopt / add / remove by identity."""

from __future__ import annotations

from hafast.config import model as m
from hafast.config.diff import changed_fields, diff, diff_checkers
from hafast.config.loader import load_text
from hafast.config.support import UNSUPPORTED

BASE = """
vrrp_script chk {
  script /bin/true
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 1
  priority 100
}
vrrp_instance VI_2 {
  interface eth0
  virtual_router_id 2
}
virtual_server 10.0.0.1 80 {
  protocol TCP
  lvs_sched rr
  real_server 10.0.1.1 80 {
    weight 1
    TCP_CHECK {
      connect_timeout 3
    }
  }
  real_server 10.0.1.2 80 {
    TCP_CHECK {
    }
  }
}
virtual_server 10.0.0.2 80 {
  protocol TCP
  real_server 10.0.2.1 80 {
    TCP_CHECK {
    }
  }
}
"""


def _cfg(text: str) -> m.Config:
    res = load_text(text, file="d.conf")
    # a keyword hafast refuses (static_routes while it is not implemented) still builds
    # its model: the diff must see it change
    errors = [d.format() for d in res.errors if d.code != UNSUPPORTED]
    assert not errors, errors
    return res.config


def test_identical_configs_keep_everything() -> None:
    a, b = _cfg(BASE), _cfg(BASE)
    plan = diff(a, b)
    assert not plan.changed
    assert len(plan.vrrp_instances.keep) == 2
    assert len(plan.virtual_servers.keep) == 2
    # kept objects are paired old -> new so runtime state can follow them
    old, new = plan.vrrp_instances.keep[0]
    assert old.name == new.name == "VI_1"


def test_moving_a_block_is_not_a_change() -> None:
    moved = BASE.replace("vrrp_script chk {\n  script /bin/true\n}\n", "") + (
        "vrrp_script chk {\n  script /bin/true\n}\n"
    )
    plan = diff(_cfg(BASE), _cfg("\n\n" + moved))
    assert not plan.changed


def test_instance_setting_change_is_adopt_and_vrid_change_is_replace() -> None:
    new = BASE.replace("priority 100", "priority 90").replace(
        "virtual_router_id 2", "virtual_router_id 3"
    )
    plan = diff(_cfg(BASE), _cfg(new))
    assert [(o.name, n.priority) for o, n in plan.vrrp_instances.adopt] == [("VI_1", 90)]
    assert [i.name for i in plan.vrrp_instances.remove] == ["VI_2"]
    assert [i.name for i in plan.vrrp_instances.add] == ["VI_2"]


def test_one_real_server_changed() -> None:
    new = BASE.replace("weight 1", "weight 5")
    plan = diff(_cfg(BASE), _cfg(new))
    assert len(plan.virtual_servers.keep) == 1
    assert len(plan.virtual_servers.adopt) == 1
    ((vs_old, _vs_new),) = plan.virtual_servers.adopt
    rsp = plan.real_servers[vs_old.key]
    assert [o.address for o, _ in rsp.adopt] == ["10.0.1.1"]
    assert [o.address for o, _ in rsp.keep] == ["10.0.1.2"]
    assert not rsp.add and not rsp.remove
    # the checker of the adopted real server did not change
    assert (vs_old.key, ("10.0.1.1", 80)) not in plan.checkers


def test_real_server_added_and_removed() -> None:
    new = BASE.replace("real_server 10.0.1.2 80", "real_server 10.0.1.3 80")
    plan = diff(_cfg(BASE), _cfg(new))
    ((vs_old, _),) = plan.virtual_servers.adopt
    rsp = plan.real_servers[vs_old.key]
    assert [r.address for r in rsp.add] == ["10.0.1.3"]
    assert [r.address for r in rsp.remove] == ["10.0.1.2"]
    assert [o.address for o, _ in rsp.keep] == ["10.0.1.1"]


def test_virtual_server_identity_includes_protocol() -> None:
    new = BASE.replace(
        "virtual_server 10.0.0.2 80 {\n  protocol TCP",
        "virtual_server 10.0.0.2 80 {\n  protocol UDP",
    )
    plan = diff(_cfg(BASE), _cfg(new))
    assert [v.protocol for v in plan.virtual_servers.add] == ["UDP"]
    assert [v.protocol for v in plan.virtual_servers.remove] == ["TCP"]


def test_virtual_server_setting_change_keeps_real_servers() -> None:
    plan = diff(_cfg(BASE), _cfg(BASE.replace("lvs_sched rr", "lvs_sched wrr")))
    ((vs_old, vs_new),) = plan.virtual_servers.adopt
    assert vs_new.lvs_sched == "wrr"
    assert len(plan.real_servers[vs_old.key].keep) == 2


def test_checker_timer_change_is_adopt_and_target_change_is_replace() -> None:
    new = BASE.replace("connect_timeout 3", "connect_timeout 4")
    plan = diff(_cfg(BASE), _cfg(new))
    ((vs_old, _),) = plan.virtual_servers.adopt
    cp = plan.checkers[(vs_old.key, ("10.0.1.1", 80))]
    assert len(cp.adopt) == 1 and not cp.add and not cp.remove
    a = m.TcpCheck(connect_port=80)
    b = m.TcpCheck(connect_port=81)
    cp = diff_checkers((a,), (b,))
    assert cp.add == [b] and cp.remove == [a]


def test_two_alike_checkers_stay_apart() -> None:
    a1, a2 = m.TcpCheck(retry=1), m.TcpCheck(retry=2)
    cp = diff_checkers((a1, a2), (a1, m.TcpCheck(retry=3)))
    assert cp.keep == [(a1, a1)]
    assert cp.adopt == [(a2, m.TcpCheck(retry=3))]


def test_global_and_static_changes_are_flagged() -> None:
    plan = diff(_cfg(BASE), _cfg("global_defs {\n router_id x\n}\n" + BASE))
    assert plan.global_defs_changed and plan.changed
    plan = diff(_cfg(BASE), _cfg("static_routes {\n 10.0.0.0/8 via 1.2.3.4\n}\n" + BASE))
    assert plan.static_changed


def test_summary_counts() -> None:
    plan = diff(_cfg(BASE), _cfg(BASE.replace("weight 1", "weight 2")))
    s = plan.summary()
    assert s["virtual_servers"] == {"keep": 1, "adopt": 1, "add": 0, "remove": 0}


def test_generated_farm_one_real_server_changed() -> None:
    """The benchmark's #2318 shape, small: only the touched real server is not kept."""
    from benchmarks.test_bench_config import make_big_config

    old = _cfg(make_big_config(40, 600))
    new = _cfg(make_big_config(40, 600, bump=300))
    plan = diff(old, new)
    assert len(plan.virtual_servers.keep) == 39
    ((vs_old, vs_new),) = plan.virtual_servers.adopt
    rsp = plan.real_servers[vs_old.key]
    assert len(rsp.adopt) == 1 and len(rsp.keep) == len(vs_new.real_servers) - 1
    ((rs_old, rs_new),) = rsp.adopt
    assert (rs_old.weight, rs_new.weight) == (1, 2)
    assert rs_old.checkers == rs_new.checkers


def test_changed_fields_names_what_to_apply() -> None:
    plan = diff(_cfg(BASE), _cfg(BASE.replace("lvs_sched rr", "lvs_sched wrr")))
    ((old, new),) = plan.virtual_servers.adopt
    assert changed_fields(old, new) == ("lvs_sched",)
    moved = _cfg("\n" + BASE).vrrp_instances[0]
    assert changed_fields(_cfg(BASE).vrrp_instances[0], moved) == ()  # where is not compared


def test_fleet_changes_are_in_the_plan_and_its_summary() -> None:
    """bgp_speaker and the announce blocks (by prefix) are in the reload plan, and the
    log's summary counts them for a fleet config (a config without them: as before)."""
    speaker = ("bgp_speaker {\n local_as 65001\n neighbor 10.0.0.1 {\n  remote_as 65000\n"
               " }\n %s\n}\n")
    vs = ("virtual_server 192.0.2.%d 80 {\n protocol TCP\n lvs_sched wlc\n lvs_method DR\n"
          " announce {\n  prefix 192.0.2.%d/32\n  %s\n }\n real_server 10.0.0.2 80 {\n }\n}\n")
    old = _cfg(speaker % "" + vs % (1, 1, "") + vs % (2, 2, ""))
    new = _cfg(speaker % "frr_control run" + vs % (1, 1, "announce_delay 3")
               + vs % (3, 3, ""))
    plan = diff(old, new)
    assert plan.bgp_speaker_changed and plan.changed
    assert plan.announces.counts() == {"keep": 0, "adopt": 1, "add": 1, "remove": 1}
    s = plan.summary()
    assert s["announces"] == {"keep": 0, "adopt": 1, "add": 1, "remove": 1}
    assert s["bgp_speaker"] == {"changed": 1}
    same = diff(old, _cfg(speaker % "" + vs % (1, 1, "") + vs % (2, 2, "")))
    assert not same.changed
    assert same.summary()["announces"] == {"keep": 2, "adopt": 0, "add": 0, "remove": 0}
    assert same.summary()["bgp_speaker"] == {"changed": 0}
    assert "announces" not in diff(_cfg(BASE), _cfg(BASE)).summary()
