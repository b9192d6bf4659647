"""KEEPALIVED-MIB's virtualServerGroup and virtualServerGroupMember tables and the
virtualServerName/realServerName columns (hafast.status.snmp_check), as keepalived
2.2.7's check_snmp.c serves them."""

from __future__ import annotations

from typing import Any

from hafast.config.labels import vs_label
from hafast.config.loader import load_text
from hafast.status import agentx as ax
from hafast.status.snmp_check import CHECK, check_rows

CONF = """
global_defs {
   enable_snmp_checker
}
virtual_server_group empty {
}
virtual_server_group web {
   10.0.0.5 80
   10.0.0.10-12 80
   fwmark 7
   10.0.1.0/30 81
   10.0.2.1/32
}
virtual_server_group six {
   fd00::1-1f 443
   fwmark 9 inet6
}
virtual_server group web {
   snmp_name "the web"
   real_server 10.0.9.1 80 {
      snmp_name rs-one
   }
   real_server 10.0.9.2 80 {
   }
}
virtual_server 10.0.0.1 80 {
   sorry_server 10.0.9.9 80
   real_server 10.0.9.3 80 {
      snmp_name rs-three
   }
}
"""


def config() -> Any:
    res = load_text(CONF)
    assert not res.errors, res.errors
    return res.config


def rows() -> dict[tuple[int, ...], tuple[int, Any]]:
    cfg = config()
    st = {"virtual_servers": [
        {"name": vs_label(vs), "quorum_up": True, "suspended": False,
         "real_servers": [{"address": r.address, "port": r.port, "alive": True,
                           "weight": 1} for r in vs.real_servers]}
        for vs in cfg.virtual_servers]}
    return {vb.name[len(CHECK):]: (vb.type, vb.value) for vb in check_rows(cfg, st)}


def test_group_table_names_the_groups_keepalived_keeps() -> None:
    t = rows()
    # keepalived drops an empty group: "web" is group 1, "six" group 2
    assert {k: v for k, v in t.items() if k[:2] == (1, 1)} == {
        (1, 1, 2, 1): (ax.OCTET_STRING, b"web"), (1, 1, 2, 2): (ax.OCTET_STRING, b"six")}


def test_group_members_fwmarks_first_then_addresses() -> None:
    t = rows()

    def member(g: int, i: int) -> dict[int, tuple[int, Any]]:
        return {k[2]: v for k, v in t.items() if k[:2] == (2, 1) and k[3:] == (g, i)}

    assert member(1, 1) == {2: (ax.INTEGER, 1), 3: (ax.GAUGE32, 7)}  # fwmark(1)
    assert member(1, 2) == {2: (ax.INTEGER, 2), 4: (ax.INTEGER, 1),  # ip(2), ipv4
                            5: (ax.OCTET_STRING, bytes([10, 0, 0, 5])),
                            8: (ax.GAUGE32, 80)}
    assert member(1, 3) == {2: (ax.INTEGER, 3), 4: (ax.INTEGER, 1),  # ipRange(3)
                            6: (ax.OCTET_STRING, bytes([10, 0, 0, 10])),
                            7: (ax.OCTET_STRING, bytes([10, 0, 0, 12])),
                            8: (ax.GAUGE32, 80)}
    # a CIDR block is a range up to its last address; a /32 one address, port 0
    assert (member(1, 4)[6], member(1, 4)[7]) == (
        (ax.OCTET_STRING, bytes([10, 0, 1, 0])), (ax.OCTET_STRING, bytes([10, 0, 1, 3])))
    assert member(1, 5) == {2: (ax.INTEGER, 2), 4: (ax.INTEGER, 1),
                            5: (ax.OCTET_STRING, bytes([10, 0, 2, 1])),
                            8: (ax.GAUGE32, 0)}
    assert not member(1, 6)
    assert member(2, 1) == {2: (ax.INTEGER, 1), 3: (ax.GAUGE32, 9)}
    six = member(2, 2)
    assert six[2] == (ax.INTEGER, 3) and six[4] == (ax.INTEGER, 2)  # ipv6
    # an IPv6 range's end replaces the last 16-bit group (hex)
    assert six[6][1][-2:] == b"\x00\x01" and six[7][1][-2:] == b"\x00\x1f"
    assert six[7][1][:14] == six[6][1][:14] and six[8] == (ax.GAUGE32, 443)


def test_a_group_mixing_families_with_a_bare_fwmark_is_dropped() -> None:
    res = load_text(CONF.replace("fwmark 9 inet6", "fwmark 9\n   10.0.3.1 80"))
    assert not res.errors, res.errors
    t = {vb.name[len(CHECK):]: vb.value for vb in check_rows(res.config, None)}
    assert [v for k, v in t.items() if k[:2] == (1, 1)] == [b"web"]


def test_snmp_name_columns() -> None:
    t = rows()
    assert t[(3, 1, 71, 1)] == (ax.OCTET_STRING, b"the web")
    assert (3, 1, 71, 2) not in t  # no snmp_name, no column
    assert t[(4, 1, 55, 1, 1)] == (ax.OCTET_STRING, b"rs-one")
    assert (4, 1, 55, 1, 2) not in t
    # virtual server 2's real server 1 is its sorry server: never named
    assert (4, 1, 55, 2, 1) not in t and t[(4, 1, 55, 2, 2)][1] == b"rs-three"


def test_snmp_name_is_not_warned_about() -> None:
    res = load_text(CONF)
    assert not [d for d in res.diagnostics if "snmp_name" in d.message]


def test_a_group_virtual_server_serves_both_granularity_columns() -> None:
    # keepalived 2.2.7 picks the column by v->addr's family, unset (AF_UNSPEC) for a
    # group: both columns, the unset mask 0xffffffff (seen in the IPVS VM's walk)
    t = rows()
    assert t[(3, 1, 15, 1)] == (ax.OCTET_STRING, b"\xff\xff\xff\xff")
    assert t[(3, 1, 51, 1)] == (ax.GAUGE32, 0xFFFFFFFF)
    assert (3, 1, 51, 2) not in t and (3, 1, 15, 2) in t  # an IPv4 address: one column
