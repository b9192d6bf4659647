"""``owner_ignore_adverts`` / global ``vrrp_owner_ignore_adverts`` (keepalived 2.3.3+).

keepalived 2.2.7 has neither keyword: its address owner always reads adverts, and
two owners both drop to 254 (RFC 9568 erratum 8298).  From 2.3.3 (vrrp.c
``vrrp_complete_instance`` and ``vrrp_check_packet``) an instance whose effective
priority is 255 drops every advert before counting it, when the instance says so,
or (unset) strict mode or the global keyword says so; the keyword on a non-owner
is reset with an error.
"""

from __future__ import annotations

import pytest

from hafast._core.vrrp_codec import decode_ipv4, encode_ipv4
from hafast.config.loader import load_text
from hafast.net.vip import MemoryVips
from hafast.vrrp.from_config import params_for
from hafast.vrrp.fsm import AdvertReceived, Startup, State, VrrpMachine, ignores_adverts
from hafast.vrrp.instance import (
    OWNER_IGNORE,
    Instance,
    InstanceSpec,
    ManualTimers,
    NullAnnouncer,
)
from hafast.vrrp.params import VrrpParams

LOCAL = 0x0A000001
PEER = 0x0A000009  # a larger address: it wins a tie


def _load(global_line: str, inst_lines: str) -> tuple[bool, list[str]]:
    res = load_text(f"global_defs {{\n {global_line}\n}}\nvrrp_instance V {{\n interface lo\n"
                    f" virtual_router_id 7\n {inst_lines}\n virtual_ipaddress {{\n"
                    "  10.0.0.1\n }\n}\n")
    inst = res.config.vrrp_instances[0]
    assert params_for(inst, res.config.global_defs).owner_ignore_adverts is \
        inst.owner_ignore_adverts
    return inst.owner_ignore_adverts, [d.message for d in res.diagnostics]


@pytest.mark.parametrize(("global_line", "inst_lines", "expected", "said"), [
    ("", "priority 255", False, ""),  # keepalived's default: owners read adverts
    ("vrrp_owner_ignore_adverts", "priority 255", True, ""),
    ("vrrp_owner_ignore_adverts", "priority 100", False, ""),  # owners only
    ("vrrp_owner_ignore_adverts", "priority 255\n owner_ignore_adverts off", False, ""),
    ("", "priority 255\n owner_ignore_adverts", True, ""),
    ("", "priority 255\n owner_ignore_adverts true", True, ""),
    ("", "priority 100\n owner_ignore_adverts",
     False, "(V) ignoring owner_ignore_adverts since priority is not 255"),
    ("vrrp_strict", "priority 255", True, ""),
    ("vrrp_strict", "priority 255\n owner_ignore_adverts false",
     True, "(V) strict_mode with priority 255 requires owner_ignore_adverts"),
])
def test_resolved_as_keepalived_does(global_line: str, inst_lines: str, expected: bool,
                                     said: str) -> None:
    got, messages = _load(global_line, inst_lines)
    assert got is expected
    assert [m for m in messages if "owner_ignore_adverts" in m] == ([said] if said else [])


def _owner(ignore: bool) -> VrrpMachine:
    m = VrrpMachine(VrrpParams(priority=255, src_addr=LOCAL, owner_ignore_adverts=ignore))
    m.handle(Startup(0))
    assert m.state.state is State.MASTER
    return m


def test_two_owners_without_it_both_drop_to_254_and_the_larger_address_wins() -> None:
    m = _owner(ignore=False)
    m.handle(AdvertReceived(1_000, 255, PEER))
    assert m.state.priority == 254 and m.state.state is State.BACKUP


def test_an_owner_with_it_stays_master_at_255_whatever_it_hears() -> None:
    m = _owner(ignore=True)
    for prio in (255, 254, 100, 0):
        assert m.handle(AdvertReceived(1_000, prio, PEER)) == ()
    assert m.state.priority == 255 and m.state.state is State.MASTER
    # Only an owner: the same flag on priority 254 reads adverts.
    p = VrrpParams(priority=254, src_addr=LOCAL, owner_ignore_adverts=True)
    assert not ignores_adverts(p, VrrpMachine(p).state)


def test_the_instance_drops_them_before_counting_them() -> None:
    p = VrrpParams(priority=255, src_addr=LOCAL, owner_ignore_adverts=True,
                   garp_master_delay_us=0)
    spec = InstanceSpec(name="VI_1", ifname="eth0", family=4, params=p)
    inst = Instance(spec, timers=ManualTimers(), vips=MemoryVips(),
                    announcer=NullAnnouncer(), notifier=None)
    inst.start()
    pkt = encode_ipv4(2, 51, 255, [], 1, src=bytes([10, 0, 0, 9]), dst=bytes([224, 0, 0, 18]))
    adv = decode_ipv4(pkt, version=2, adver_int=1)
    assert adv.ok
    inst.on_advert(adv)
    assert inst.rejects == {OWNER_IGNORE: 1} and inst.counters["advert_rcvd"] == 0
    assert inst.state is State.MASTER and inst.priority == 255
