"""virtual_rules / static_rules: keepalived 2.2.7's rule words -> IpRule -> fibmsg.

Each accepted line is encoded with :func:`hafast.net.rules.rule_msg`, then decoded by
pyroute2's own ``fibmsg`` parser from the bytes, and every header field and FRA_*
attribute is checked against what keepalived's ``netlink_rule`` would send.  The
refusals carry keepalived's reasons.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hafast.config.iprule import (
    FR_ACT_BLACKHOLE,
    FR_ACT_GOTO,
    FR_ACT_NOP,
    FR_ACT_PROHIBIT,
    FR_ACT_TO_TBL,
    FR_ACT_UNREACHABLE,
    RTPROT_KEEPALIVED,
    IpRule,
    RuleError,
    RuleRefused,
    number_rules,
    parse_rule,
)
from hafast.net.rules import FIB_RULE_INVERT, rule_msg


def roundtrip(rule: IpRule) -> Any:
    """Encode ``rule`` and decode the bytes with pyroute2's parser."""
    from pyroute2.netlink.rtnl.fibmsg import fibmsg

    m = rule_msg(rule)
    m["header"]["type"] = 32  # RTM_NEWRULE
    m.encode()
    back = fibmsg(bytes(m.data))
    back.decode()
    return back


def attrs(msg: Any) -> dict[str, Any]:
    return {name: value for name, value in msg["attrs"]}


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# -- examples from keepalived.conf(5) and ip-rule(8) -----------------------------------


def test_man_page_example_every_option() -> None:
    rule, notes = parse_rule(words(
        "from 192.168.28.0/24 to 192.168.29.0/26 table 200 iif lo oif lo tos 22 "
        "fwmark 24/12 preference 39 realms 30/20"))
    assert notes == []
    got = roundtrip(rule)
    assert (got["family"], got["src_len"], got["dst_len"], got["tos"], got["table"],
            got["action"]) == (socket.AF_INET, 24, 26, 22, 200, FR_ACT_TO_TBL)
    assert attrs(got) == {
        "FRA_SRC": "192.168.28.0", "FRA_DST": "192.168.29.0", "FRA_PRIORITY": 39,
        "FRA_FWMARK": 24, "FRA_FWMASK": 12, "FRA_FLOW": 30 << 16 | 20,
        "FRA_IIFNAME": "lo", "FRA_OIFNAME": "lo", "FRA_PROTOCOL": RTPROT_KEEPALIVED,
    }


def test_ipv6_uidrange_ports_ipproto_l3mdev() -> None:
    rule, _ = parse_rule(words(
        "to 1:2:3:4:5:6:7:0/112 from 7:6:5:4:3:2::/96 table 6908 uidrange 10000-19999"))
    got = roundtrip(rule)
    assert got["family"] == socket.AF_INET6 and got["table"] == 0
    a = attrs(got)
    assert a["FRA_TABLE"] == 6908 and a["FRA_UID_RANGE"] == "10000:19999"
    assert (a["FRA_DST"], got["dst_len"]) == ("1:2:3:4:5:6:7:0", 112)
    rule, notes = parse_rule(words(
        "to 1:2:3:4:6:6:7:0/112 from 8:6:5:4:3:2::/96 l3mdev protocol 12 ipproto udp "
        "sport 10-20 dport 20-30"))
    # keepalived forces its own protocol on a tracked rule, and says so
    assert notes and "resetting protocol" in notes[0]
    a = attrs(roundtrip(rule))
    assert a["FRA_L3MDEV"] == 1 and "FRA_TABLE" not in a
    assert (a["FRA_PROTOCOL"], a["FRA_IP_PROTO"]) == (RTPROT_KEEPALIVED, 17)
    assert (a["FRA_SPORT_RANGE"], a["FRA_DPORT_RANGE"]) == ("10:20", "20:30")


def test_no_track_keeps_the_written_protocol() -> None:
    rule, notes = parse_rule(words("from all table 5 protocol 12 no_track priority 3"))
    assert notes == [] and rule.no_track
    assert attrs(roundtrip(rule))["FRA_PROTOCOL"] == 12
    rule, _ = parse_rule(words("from all table 5 no_track priority 3"))
    assert "FRA_PROTOCOL" not in attrs(roundtrip(rule))


@pytest.mark.parametrize("line, action, extra", [
    ("from 10.0.0.0/8 priority 5 goto 40", FR_ACT_GOTO, {"FRA_GOTO": 40}),
    ("to 10.0.0.0/8 nop priority 5", FR_ACT_NOP, {}),
    ("to 10.0.0.0/8 blackhole", FR_ACT_BLACKHOLE, {}),
    ("to 10.0.0.0/8 type unreachable", FR_ACT_UNREACHABLE, {}),
    ("to 10.0.0.0/8 type 8", FR_ACT_PROHIBIT, {}),
])
def test_actions(line: str, action: int, extra: dict[str, int]) -> None:
    got = roundtrip(parse_rule(words(line))[0])
    assert got["action"] == action and got["table"] == 0
    for k, v in extra.items():
        assert attrs(got)[k] == v


def test_names_and_number_bases() -> None:
    rule, _ = parse_rule(words("not from all fwmark 0x10 lookup main dsfield 0x28 "
                               "suppress_prefixlength 0 sup_group 0 tunnel-id 7 order 010"))
    got = roundtrip(rule)
    assert got["flags"] & FIB_RULE_INVERT and got["table"] == 254 and got["tos"] == 0x28
    a = attrs(got)
    assert "FRA_SRC" not in a and "FRA_FWMASK" not in a
    assert (a["FRA_FWMARK"], a["FRA_PRIORITY"]) == (16, 8)  # base 0: 010 is octal
    assert (a["FRA_SUPPRESS_PREFIXLEN"], a["FRA_SUPPRESS_IFGROUP"], a["FRA_TUN_ID"]) == (0, 0, 7)


def test_inet6_without_addresses() -> None:
    assert parse_rule(words("fwmark 1 table 9 inet6"))[0].family == 6
    assert parse_rule(words("fwmark 1 table 9"))[0].family == 4  # keepalived: IPv4 by default


def test_inet6_steps_over_the_next_word_as_keepalived_does() -> None:
    # alloc_rule advances twice after inet/inet6: the next word is never read
    with pytest.raises(RuleError, match=r"Unknown rule option fd77::1/128 .*put inet6 at the end"):
        parse_rule(words("inet6 from fd77::1/128 table 5"))
    with pytest.raises(RuleRefused, match=r"'not'.* would install this rule without it"):
        parse_rule(words("inet6 not to fd99::/64 prohibit"))


@pytest.mark.parametrize("line, reason", [
    ("from 10.0.0.0/8", "No action specified"),
    ("table 0", "Table 0 is not valid"),
    ("table nosuch", "Routing table nosuch not found"),
    ("table 5 goto 9 priority 1", "more than one"),
    ("l3mdev table 5", "more than one"),
    ("goto 9 table 5", "more than one"),
    ("goto 9", "without preference"),
    ("goto 9 priority 9", "preference 9 >= goto target 9"),
    ("from 1.2.3.4 to ::1 table 2", "mixed IPv4 and IPv6"),
    ("realms 3 inet6 table 2", "inet6 specified for IPv4 rule"),
    ("from ::1 realms 3 table 2", "realms is only valid for IPv4"),
    ("blackhole realms 3", "non table action"),
    ("unreachable sup_pl 3", "non table action"),
    ("type unicast", "Invalid rule action unicast"),
    ("pref 5 table 3", "shortened option names"),
    ("suppress_prefixlen 5 table 3", "Unknown rule option suppress_prefixlen"),
    ("ip_proto udp table 3", "Unknown rule option ip_proto"),
    ("ipproto 132 table 3", "Invalid ipproto 132"),  # keepalived 2.2.7 stops at 127
    ("sport 80 table 3", "invalid sport range 80"),  # 2.2.7's sscanf wants both ends
    ("fwmark 1/ table 3", "Invalid rule fwmark"),
    ("fwmark -1 table 3", "Invalid rule fwmark"),
    ("tos 256 table 3", "TOS value 256 is invalid"),
    ("from 10.0.0.0/33 table 3", "Invalid address prefix len"),
    ("from bogus table 3", "not an IP address"),
    ("table", "needs a value"),
    ("from 10.0.0.0/8 table 3 track_group G", "Unknown rule option track_group"),
])
def test_skipped_or_refused(line: str, reason: str) -> None:
    with pytest.raises(RuleError, match=reason):
        parse_rule(words(line))


def test_track_group_in_static_rules() -> None:
    rule = parse_rule(words("from 10.0.0.0/8 iif eth1 table 3 track_group G"), static=True)[0]
    assert (rule.track_group, rule.iif, rule.protocol) == ("G", "eth1", 18)
    # keepalived 2.2.7 drops the group of a rule without iif and installs it untracked
    with pytest.raises(RuleRefused, match="cannot have track_group if dev/iif"):
        parse_rule(words("from 10.0.0.0/8 table 3 track_group G"), static=True)
    with pytest.raises(RuleRefused, match="track_group H is a duplicate"):
        parse_rule(words("from 10.0.0.0/8 dev eth1 table 3 track_group G track_group H"),
                   static=True)


def test_number_rules_per_family() -> None:
    assert number_rules([4, 6, 4, 6, 4]) == [16384, 16384, 16383, 16383, 16382]


# -- any rule keepalived accepts survives the trip through pyroute2's decoder ------------

_V4 = st.builds(lambda a, n: f"{a}/{n}", st.ip_addresses(v=4), st.integers(0, 32))
_V6 = st.builds(lambda a, n: f"{a}/{n}", st.ip_addresses(v=6), st.integers(0, 128))
_U32 = st.integers(0, 0xFFFFFFFF)
_PORT = st.integers(1, 0xFFFF)


@st.composite
def rule_lines(draw: st.DrawFn) -> tuple[str, ...]:
    fam = draw(st.sampled_from([4, 6]))
    addr = _V4 if fam == 4 else _V6
    opts: list[tuple[str, ...]] = []
    if draw(st.booleans()):
        opts.append(("from", draw(addr)))
    if draw(st.booleans()):
        opts.append(("to", draw(addr)))
    if not opts:
        last = ("inet6",) if fam == 6 else ("inet",)  # at the end: see the test above
    else:
        last = ()
    prio = draw(_U32.filter(lambda p: p < 0xFFFFFFFF))
    opts.append((draw(st.sampled_from(["preference", "order", "priority"])), str(prio)))
    if draw(st.booleans()):
        mark = draw(_U32)
        mask = draw(st.none() | _U32)
        opts.append(("fwmark", hex(mark) if mask is None else f"{mark}/{mask:#x}"))
    for word in ("iif", "oif"):
        if draw(st.booleans()):
            opts.append((word, draw(st.sampled_from(["lo", "eth0", "veth-x.12"]))))
    if draw(st.booleans()):
        opts.append(("tos", str(draw(st.integers(0, 255)))))
    if draw(st.booleans()):
        lo = draw(_U32)
        opts.append(("uidrange", f"{lo}-{draw(st.integers(lo, 0xFFFFFFFF))}"))
    for word in ("sport", "dport"):
        if draw(st.booleans()):
            lo = draw(_PORT)
            opts.append((word, f"{lo}-{draw(st.integers(lo, 0xFFFF))}"))
    if draw(st.booleans()):
        opts.append(("ipproto", draw(st.sampled_from(["tcp", "udp", "6", "17", "icmp"]))))
    if draw(st.booleans()):
        opts.append(("not",))
    if draw(st.booleans()):
        opts.append(("no_track",))
    action = draw(st.sampled_from(["table", "goto", "nop", "blackhole", "l3mdev"]))
    if action == "table":
        opts.append((draw(st.sampled_from(["table", "lookup"])),
                     str(draw(st.integers(1, 0xFFFFFFFF)))))
        if fam == 4 and draw(st.booleans()):
            opts.append(("realms", f"{draw(st.integers(0, 255))}/{draw(st.integers(0, 255))}"))
        if draw(st.booleans()):
            opts.append(("suppress_prefixlength", str(draw(st.integers(0, 128)))))
    elif action == "goto":
        opts.append(("goto", str(draw(st.integers(prio + 1, 0xFFFFFFFF)))))
    else:
        opts.append((action,))
    order = draw(st.permutations(opts))
    return tuple(w for opt in order for w in opt) + last


@settings(max_examples=300, deadline=None)
@given(rule_lines())
def test_roundtrip_through_pyroute2(line: tuple[str, ...]) -> None:
    rule, _ = parse_rule(line)
    got = roundtrip(rule)
    a = attrs(got)
    assert got["family"] == (socket.AF_INET if rule.family == 4 else socket.AF_INET6)
    assert got["action"] == rule.action and got["tos"] == rule.tos
    assert bool(got["flags"] & FIB_RULE_INVERT) == rule.invert
    if rule.action == FR_ACT_TO_TBL and not rule.l3mdev:
        assert (a.get("FRA_TABLE") or got["table"]) == rule.table
        assert ("FRA_TABLE" in a) == (rule.table > 255)
    else:
        assert got["table"] == 0 and "FRA_TABLE" not in a
    for key, attr, length in (("src", "FRA_SRC", "src_len"), ("dst", "FRA_DST", "dst_len")):
        if getattr(rule, key) is None:
            assert attr not in a and got[length] == 0
        else:
            import ipaddress

            assert ipaddress.ip_address(a[attr]) == ipaddress.ip_address(getattr(rule, key))
            assert got[length] == getattr(rule, length)
    assert a.get("FRA_PRIORITY") == rule.priority
    assert a.get("FRA_FWMARK") == rule.fwmark and a.get("FRA_FWMASK") == rule.fwmask
    assert a.get("FRA_FLOW", 0) == rule.realms
    assert a.get("FRA_SUPPRESS_PREFIXLEN") == rule.suppress_prefixlen
    assert (a.get("FRA_IIFNAME"), a.get("FRA_OIFNAME")) == (rule.iif, rule.oif)
    assert a.get("FRA_PROTOCOL") == rule.protocol
    assert a.get("FRA_IP_PROTO") == rule.ipproto
    for attr, rng in (("FRA_UID_RANGE", rule.uidrange), ("FRA_SPORT_RANGE", rule.sport),
                      ("FRA_DPORT_RANGE", rule.dport)):
        assert a.get(attr) == (None if rng is None else f"{rng[0]}:{rng[1]}")
    assert a.get("FRA_L3MDEV") == (1 if rule.l3mdev else None)
    assert a.get("FRA_GOTO") == (rule.goto if rule.action == FR_ACT_GOTO else None)
    assert rule.protocol == (None if rule.no_track else RTPROT_KEEPALIVED)


@pytest.mark.parametrize("line", [
    "table 5 protocol 300", "table 5 ipproto 200", "table 5 sport 80", "table 5 dport x",
    "table 5 from",
])
def test_refused_where_keepalived_would_install_another_rule(line: str) -> None:
    # keepalived 2.2.7 logs these and installs the rule without the bad match
    with pytest.raises(RuleRefused):
        parse_rule(words(line))


@pytest.mark.parametrize("line", ["table 0", "pref 3 table 5", "from 1.2.3./24 table 5"])
def test_skipped_where_keepalived_skips(line: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(words(line))
    assert not isinstance(caught.value, RuleRefused)
