"""Policy-routing rules (``virtual_rules``, ``static_rules``) as rtnetlink messages.

:func:`rule_msg` turns a parsed :class:`~hafast.config.iprule.IpRule` into the
RTM_NEWRULE/RTM_DELRULE body keepalived 2.2.7 sends (``vrrp_iprule.c netlink_rule``):
pyroute2's ``fibmsg`` encodes it, :class:`hafast.net.vip.Rtnl` sends it, and
:class:`hafast.net.vip.NetlinkVips` adds the rules after an instance's routes and
removes them before (keepalived's order: a rule may point at a table the routes fill).

The same message deletes the rule: the kernel's ``fib_nl_delrule`` matches on the
attributes present, so a rule of ours is removed and an administrator's rule that
differs in any attribute (the protocol, keepalived's 18, included) is not.

Example::

    >>> from hafast.config.iprule import parse_rule
    >>> m = rule_msg(parse_rule(("from", "10.1.0.0/16", "table", "300", "priority", "5"))[0])
    >>> m["table"], m.get_attr("FRA_TABLE"), m.get_attr("FRA_SRC"), m["src_len"]
    (0, 300, '10.1.0.0', 16)
"""

from __future__ import annotations

import socket
from typing import Any

from hafast.config.iprule import FR_ACT_GOTO, FR_ACT_TO_TBL, IpRule
from hafast.net.routewatch import RuleKey, rule_key

FIB_RULE_INVERT = 0x2  # linux/fib_rules.h
RTM_NEWRULE, RTM_DELRULE = 32, 33  # linux/rtnetlink.h
RT_TABLE_MAIN = 254


def rule_msg(r: IpRule) -> Any:
    """The pyroute2 ``fibmsg`` for ``r``, ready for :meth:`hafast.net.vip.Rtnl.request`."""
    from pyroute2.netlink.rtnl.fibmsg import fibmsg

    m = fibmsg()
    m["family"] = socket.AF_INET if r.family == 4 else socket.AF_INET6
    m["tos"] = r.tos
    m["action"] = r.action
    m["flags"] = FIB_RULE_INVERT if r.invert else 0
    attrs: list[tuple[str, object]] = []

    def span(rng: tuple[int, int] | None) -> str | None:
        return None if rng is None else f"{rng[0]}:{rng[1]}"  # pyroute2's range form

    if r.action == FR_ACT_TO_TBL and not r.l3mdev:
        # A table past 255 does not fit the header's byte: RT_TABLE_UNSPEC there
        # and the number in FRA_TABLE, as ip-rule(8) and keepalived send it.
        if r.table < 256:
            m["table"] = r.table or RT_TABLE_MAIN
        else:
            attrs.append(("FRA_TABLE", r.table))
    if r.src is not None:
        attrs.append(("FRA_SRC", r.src))
        m["src_len"] = r.src_len
    if r.dst is not None:
        attrs.append(("FRA_DST", r.dst))
        m["dst_len"] = r.dst_len
    optional: tuple[tuple[str, object], ...] = (
        ("FRA_PRIORITY", r.priority),
        ("FRA_FWMARK", r.fwmark),
        ("FRA_FWMASK", r.fwmask),
        ("FRA_FLOW", r.realms or None),
        ("FRA_SUPPRESS_PREFIXLEN", r.suppress_prefixlen),
        ("FRA_SUPPRESS_IFGROUP", r.suppress_ifgroup),
        ("FRA_IIFNAME", r.iif),
        ("FRA_OIFNAME", r.oif),
        ("FRA_TUN_ID", r.tunnel_id or None),
        ("FRA_UID_RANGE", span(r.uidrange)),
        ("FRA_L3MDEV", 1 if r.l3mdev else None),
        ("FRA_PROTOCOL", r.protocol),
        ("FRA_IP_PROTO", r.ipproto),
        ("FRA_SPORT_RANGE", span(r.sport)),
        ("FRA_DPORT_RANGE", span(r.dport)),
        ("FRA_GOTO", r.goto if r.action == FR_ACT_GOTO else None),
    )
    attrs += [(name, value) for name, value in optional if value is not None]
    m["attrs"] = attrs
    return m


def deletion_key(r: IpRule) -> RuleKey | None:
    """What an RTM_DELRULE of ``r`` is compared on (:class:`~hafast.net.routewatch.RuleKey`
    of the message hafast sends for it)."""
    msg = rule_msg(r)
    msg.encode()
    return rule_key(memoryview(bytes(msg.data))[16:])  # past the nlmsghdr
