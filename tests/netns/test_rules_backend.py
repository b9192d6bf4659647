"""NetlinkVips' rules against the kernel, in a scratch namespace: only what hafast
added (or a predecessor marked as keepalived's) is ever removed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from hafast.config.iprule import IpRule, parse_rule
from hafast.lab.netns import Registry, call_in, run_in
from hafast.net.vip import NetlinkVips
from tests.conftest import require_root

pytestmark = [pytest.mark.root, pytest.mark.netns]

NS = f"hrb{os.getpid() % 100000}"


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    with Registry() as reg:
        reg.add_netns(NS)
        yield NS


def rules(ns: str) -> list[str]:
    return run_in(ns, ["ip", "rule"]).stdout.splitlines()


def rule(text: str) -> IpRule:
    return parse_rule(text.split())[0]


def test_rules_owned_adopted_and_left_alone(ns: str) -> None:
    # the administrator's rule: same selector, another protocol
    run_in(ns, ["ip", "rule", "add", "from", "10.1.0.0/24", "lookup", "5", "pref", "5",
                "proto", "static"])
    # a predecessor's rule, left up by a worker that died as master
    run_in(ns, ["ip", "rule", "add", "from", "10.2.0.0/24", "lookup", "5", "pref", "6",
                "proto", "keepalived"])
    # an administrator's rule that equals a no_track rule (no protocol)
    run_in(ns, ["ip", "rule", "add", "from", "10.3.0.0/24", "lookup", "5", "pref", "7"])
    ours = (rule("from 10.1.0.0/24 table 5 priority 5"),
            rule("from 10.2.0.0/24 table 5 priority 6"),
            rule("from 10.3.0.0/24 table 5 priority 7 no_track"),
            rule("to 10.4.0.0/16 table 5 priority 8"),
            rule("to 10.5.0.0/16 table 5 priority 9 iif nosuchif0"),
            rule("to 10.6.0.0/16 table 5 priority 10 sport 9-8"))  # the kernel refuses

    def body() -> tuple[list[IpRule], dict[str, int], list[IpRule]]:
        b = NetlinkVips()
        b.add("VI_1", (), (), "lo", ours)
        b.add("VI_1", (), (), "lo", ours)  # idempotent
        owned, refused = b.owned_rules, dict(b.refused)
        b.remove("VI_2", (), (), "lo", ours)  # not VI_2's: nothing goes
        mid = b.owned_rules
        b.close()  # releases the rest
        return owned, refused, mid

    owned, refused, mid = call_in(ns, body)
    assert set(owned) == set(ours[:2] + ours[3:5])
    assert refused == {"rule": 2}  # the refused one is tried, and counted, at each add
    assert mid == owned
    left = "\n".join(rules(ns))
    assert "5:\tfrom 10.1.0.0/24 lookup 5 proto static" in left
    assert "7:\tfrom 10.3.0.0/24 lookup 5" in left
    for gone in ("10.2.0.0", "10.4.0.0", "10.5.0.0", "proto keepalived"):
        assert gone not in left
