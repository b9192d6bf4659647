"""virtual_rules, static_rules, static_routes, virtual_routes at load: each line's
diagnostic at its own line, keepalived's level, and keepalived's preference numbers
written into the rules that had none."""

from __future__ import annotations

from hafast.config.iprule import parse_rule
from hafast.config.loader import load_text

CONF = """\
static_rules {
  from 10.2.0.0/24 table 101
  from 10.2.1.0/24 table 101 track_group G
  from 10.2.2.0/24 iif eth0 table 101 priority 3 track_group G
  from 10.2.3.0/24 iif eth0 table 101 priority 4 track_group NOPE
}
track_group G {
  group { V }
}
vrrp_instance V {
  interface eth0
  virtual_router_id 7
  virtual_ipaddress {
    10.1.1.1/24
  }
  virtual_routes {
    10.9.0.0/16 via 10.1.1.254 mtu 1400
    src 10.1.1.1 to 10.8.0.0/16 via 10.1.1.254
  }
  virtual_rules {
    from 10.1.1.0/24 table 100
    from 10.1.2.0/24 table 100 protocol 12 priority 5
    from 10.1.3.0/24 table 100 sport 80
    inet6 from fd00::/64 table 7
    to fd01::/64 table 7
  }
}
static_routes {
  10.7.0.0/16 dev eth0 mtu 1400
}
"""


def test_diagnostics_and_numbering() -> None:
    res = load_text(CONF, file="k.conf")
    got = sorted((d.line, d.severity, d.message.split(":")[0]) for d in res.diagnostics)
    assert got == [
        (2, "warning", "Rule has no preference specified - setting to 16384. This is "
                       "probably not what you want (give it a preference)"),
        (3, "error", "static_rules"),  # track_group without iif: keepalived drops it
        (5, "error", "static_rules"),  # track_group NOPE not found
        (17, "error", "virtual_routes"),  # mtu
        (21, "warning", "Rule has no preference specified - setting to 16383. This is "
                        "probably not what you want (give it a preference)"),
        (22, "warning", "virtual_rules"),  # protocol reset to keepalived's
        (23, "error", "virtual_rules"),  # sport 80: keepalived would drop the match
        (24, "warning", "virtual_rules"),  # inet6 steps over "from": skipped
        (25, "warning", "Rule has no preference specified - setting to 16384. This is "
                        "probably not what you want (give it a preference)"),
        (29, "error", "static_routes"),  # mtu
    ]
    cfg = res.config
    assert [parse_rule(w, static=True)[0].priority for w in cfg.static_rules] == [16384, 3, 4]
    assert [(g.name, g.group) for g in cfg.track_groups] == [("G", ("V",))]
    inst = cfg.vrrp_instances[0]
    assert [parse_rule(w)[0].priority for w in inst.virtual_rules] == [16383, 5, 16384]
    assert [w[0] for w in inst.virtual_routes] == ["src"]
