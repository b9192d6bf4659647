"""Accept_Mode is decided once (the loader); `status` and the running instance agree."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hafast.config.loader import load_text
from hafast.config.model import VirtualAddress
from hafast.net.vip import MemoryVips
from hafast.vrrp.build import plan_instances
from hafast.vrrp.fsm import State
from hafast.vrrp.instance import Instance, ManualTimers, NullAnnouncer
from hafast.vrrp.report import instance_json


class Filter:
    def __init__(self) -> None:
        self.blocked: list[str] = []

    def block(self, owner: str, vips: Sequence[VirtualAddress]) -> None:
        self.blocked.append(owner)

    def unblock(self, owner: str, vips: Sequence[VirtualAddress]) -> None:
        pass


def _conf(strict: bool, version: int, priority: int, accept: str) -> str:
    return (("global_defs {\n vrrp_strict\n}\n" if strict else "")
            + f"vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 51\n"
            f" version {version}\n priority {priority}\n {accept}\n"
            " virtual_ipaddress {\n  10.0.0.100/24\n }\n}\n")


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("priority", [100, 255])
@pytest.mark.parametrize("accept", ["", "accept", "no_accept"])
def test_status_says_what_the_master_does(strict: bool, version: int, priority: int,
                                          accept: str) -> None:
    res = load_text(_conf(strict, version, priority, accept))
    assert res.ok, [d.format() for d in res.diagnostics]
    cfg = res.config.vrrp_instances[0]
    assert cfg.strict_mode is strict
    (plan,) = plan_instances(res.config)
    inst = Instance(plan.spec, timers=ManualTimers(), vips=MemoryVips(),
                    announcer=NullAnnouncer(), notifier=None)
    filt = Filter()
    inst.accept_filter = filt
    inst.resume(State.MASTER, adopt=False)
    assert inst.state is State.MASTER
    accepts = not filt.blocked  # without Accept_Mode the VIPs go up behind a filter
    assert instance_json(inst, cfg)["data"]["accept"] == int(accepts)
    assert cfg.accept is accepts


def test_the_defaults() -> None:
    """keepalived: accept unless strict; strict refuses it on VRRPv2; the owner accepts."""

    def accept(strict: bool, version: int, priority: int, word: str) -> bool:
        return load_text(_conf(strict, version, priority, word)).config.vrrp_instances[0].accept

    assert accept(False, 2, 100, "") and not accept(False, 2, 100, "no_accept")
    assert not accept(True, 2, 100, "") and not accept(True, 2, 100, "accept")
    assert accept(True, 3, 100, "accept") and not accept(True, 3, 100, "")
    assert accept(True, 2, 255, "") and accept(False, 3, 255, "no_accept")
