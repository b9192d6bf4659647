"""``unicast_fault_no_peer`` as keepalived 2.2.7 applies it.

vrrp_parser.c: the keyword marks the instance as unicast-configured and asks for a
fault when there is no peer; vrrp.c ``vrrp_complete_instance``: with no
``unicast_peer`` it logs "Cannot use unicast without any peers - going to fault
state" and counts a config fault (the instance starts in FAULT, notifies it, and
nothing brings it back) instead of falling back to multicast with the deprecation
warning; with peers it changes nothing.
"""

from __future__ import annotations

import pytest

from hafast.config.loader import load_text
from hafast.vrrp.from_config import UNICAST_NO_PEER, params_for
from hafast.vrrp.fsm import (
    AdvertReceived,
    FaultCleared,
    FaultRaised,
    Notify,
    Startup,
    State,
    VrrpMachine,
)
from hafast.vrrp.params import VrrpParams


def _load(lines: str) -> tuple[tuple[str, ...], list[str]]:
    res = load_text("vrrp_instance V {\n interface lo\n virtual_router_id 7\n"
                    f" {lines}\n virtual_ipaddress {{\n  10.0.0.1\n }}\n}}\n")
    inst = res.config.vrrp_instances[0]
    return params_for(inst, res.config.global_defs).config_faults, [
        d.message for d in res.diagnostics]


FAULT_MSG = "(V) Cannot use unicast without any peers - going to fault state"
MULTICAST_MSG = ("(V) A unicast keyword (unicast_src_ip) has been specified without any "
                 "unicast peers. Defaulting to multicast.")


@pytest.mark.parametrize(("lines", "faults", "said"), [
    ("unicast_fault_no_peer", (UNICAST_NO_PEER,), [FAULT_MSG]),
    ("unicast_fault_no_peer true", (UNICAST_NO_PEER,), [FAULT_MSG]),
    # the fault replaces the fall back to multicast and its warning
    ("unicast_fault_no_peer\n unicast_src_ip 10.0.0.5", (UNICAST_NO_PEER,), [FAULT_MSG]),
    ("unicast_src_ip 10.0.0.5", (), [MULTICAST_MSG]),
    ("unicast_fault_no_peer\n unicast_peer {\n  10.0.0.9\n }", (), []),
])
def test_resolved_as_keepalived_does(lines: str, faults: tuple[str, ...],
                                     said: list[str]) -> None:
    assert _load(lines) == (faults, said)


@pytest.mark.parametrize("priority", [100, 255])
def test_starts_in_fault_says_so_and_stays(priority: int) -> None:
    m = VrrpMachine(VrrpParams(priority=priority, src_addr=1,
                               config_faults=(UNICAST_NO_PEER,)))
    assert m.handle(Startup(0)) == (Notify(State.FAULT, priority),)
    # A tracker going down and up again, or adverts: still FAULT.
    for ev in (FaultRaised(1, "interface:eth0"), FaultCleared(2, "interface:eth0"),
               AdvertReceived(3, 50, 2)):
        assert m.handle(ev) == ()
    assert m.state.state is State.FAULT and m.state.faults == {UNICAST_NO_PEER}
