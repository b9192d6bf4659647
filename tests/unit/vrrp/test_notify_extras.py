"""Issue-4 gaps in the instance shell, in memory: the no-Accept_Mode filter's order
around the VIPs, priority and MASTER_RX_LOWER_PRI notifications, notify script
users, and a retired instance staying quiet.  No privileges, manual clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from hafast.config.model import Script, VirtualAddress
from hafast.lib.notify import Notifier, NotifyScripts, fifo_line, notify_scripts
from hafast.net.vip import MemoryVips
from hafast.vrrp.fsm import AdvertReceived, State
from hafast.vrrp.instance import Instance, InstanceSpec, ManualTimers, NullAnnouncer
from hafast.vrrp.params import VrrpParams

SEC = 1_000_000
VIP = VirtualAddress("10.0.0.100", 24, 4)


@dataclass
class Journal:
    """Records VIP, filter and notifier calls in one ordered list."""

    events: list[tuple[Any, ...]] = field(default_factory=list)

    # VipOps
    def add(self, owner: str, vips: Any, routes: Any, dev: str, rules: Any = ()) -> None:
        self.events.append(("vip+", owner))

    def remove(self, owner: str, vips: Any, routes: Any, dev: str, rules: Any = ()) -> None:
        self.events.append(("vip-", owner))

    def release_all(self) -> None:
        pass

    # AcceptFilter
    def block(self, owner: str, vips: Any) -> None:
        self.events.append(("block", owner))

    def unblock(self, owner: str, vips: Any) -> None:
        self.events.append(("unblock", owner))

    # Notifier
    def state_change(self, kind: str, name: str, state: str, prio: int, scripts: Any) -> None:
        self.events.append(("state", state, prio))

    def priority_change(self, name: str, master: bool, prio: int) -> None:
        self.events.append(("prio", master, prio))

    def master_rx_lower_pri(self, name: str, prio: int, scripts: Any) -> None:
        self.events.append(("rx_lower", prio))


class _Sender:
    def send(self, priority: int) -> bool:
        return True


def _instance(journal: Journal, clock: ManualTimers, *, notify_prio: bool = False,
              **params: Any) -> Instance:
    p = VrrpParams(priority=params.pop("priority", 100), src_addr=0x0A000001,
                   garp_master_delay_us=0, version=3, adver_int_us=SEC, **params)
    spec = InstanceSpec(name="VI_1", ifname="eth0", family=4, params=p, vips=(VIP,),
                        notify_priority_changes=notify_prio)
    inst = Instance(spec, timers=clock, vips=journal,  # type: ignore[arg-type]
                    announcer=NullAnnouncer(), notifier=journal,  # type: ignore[arg-type]
                    sender=_Sender())
    inst.accept_filter = journal
    return inst


def _master(journal: Journal, clock: ManualTimers, **kw: Any) -> Instance:
    inst = _instance(journal, clock, **kw)
    inst.start()
    clock.advance(4 * SEC)
    assert inst.state is State.MASTER
    return inst


@pytest.mark.parametrize(("params", "filtered"), [
    ({"accept": False}, True),
    ({"strict": True}, True),  # strict without accept
    ({}, False),  # keepalived's default: accept
    ({"accept": False, "priority": 255}, False),  # RFC 5798 §6.4.3: the owner accepts
])
def test_filter_wraps_the_vips_only_without_accept_mode(params: dict[str, Any],
                                                        filtered: bool) -> None:
    journal, clock = Journal(), ManualTimers()
    inst = _master(journal, clock, **params)
    inst.stop()
    vip_events = [e for e in journal.events if e[0] in ("vip+", "vip-", "block", "unblock")]
    if filtered:
        # Blocked before the VIP comes up, unblocked after it is gone.
        assert vip_events == [("block", "VI_1"), ("vip+", "VI_1"), ("vip-", "VI_1"),
                              ("unblock", "VI_1")]
    else:
        assert vip_events == [("vip+", "VI_1"), ("vip-", "VI_1")]


def test_priority_changes_are_reported_only_when_asked() -> None:
    for asked in (True, False):
        journal, clock = Journal(), ManualTimers()
        inst = _master(journal, clock, notify_prio=asked)
        inst.set_weight("script:chk", -20)
        prio = [e for e in journal.events if e[0] == "prio"]
        assert prio == ([("prio", True, 80)] if asked else [])


def test_master_hearing_a_lower_priority_reports_it_with_its_own() -> None:
    journal, clock = Journal(), ManualTimers()
    inst = _master(journal, clock)
    inst.feed(AdvertReceived(clock.now_us(), 90, bytes([10, 0, 0, 2]), 100))
    assert ("rx_lower", 100) in journal.events
    assert inst.state is State.MASTER


def test_retired_instance_ignores_events() -> None:
    journal, clock = Journal(), ManualTimers()
    inst = _master(journal, clock)
    before = list(journal.events)
    inst.retire()
    inst.set_weight("script:chk", -50)
    inst.stop()
    clock.advance(10 * SEC)
    assert journal.events == before and inst.state is State.MASTER


def test_notify_scripts_users_and_script_user_fallback() -> None:
    block = SimpleNamespace(notify_master=Script(("/bin/m",), "nobody", "nogroup"),
                            notify_backup=Script(("/bin/b", "x")), notify=None,
                            notify_master_rx_lower_pri=Script(("/bin/rx",)))
    s = notify_scripts(block, ("daemon",))
    assert s.master == ("/bin/m",) and s.backup == ("/bin/b", "x")
    assert s.rx_lower_pri == ("/bin/rx",) and s.fault is None
    assert s.run_as("master") == ("nobody", "nogroup")
    assert s.run_as("backup") == ("daemon", None)
    assert s.run_as("fault") == (None, None)
    assert notify_scripts(block).run_as("backup") == (None, None)


def test_notifier_event_lines_in_keepalived_format() -> None:
    async def body() -> list[bytes]:
        n = Notifier(asyncio.get_running_loop())
        n.priority_change("VI_1", True, 90)
        n.priority_change("VI_1", False, 80)
        n.master_rx_lower_pri("VI_1", 100, NotifyScripts())
        n.close()
        return n.lines

    assert asyncio.run(body()) == [
        b'INSTANCE "VI_1" MASTER_PRIORITY 90\n', b'INSTANCE "VI_1" BACKUP_PRIORITY 80\n',
        fifo_line("INSTANCE", "VI_1", "MASTER_RX_LOWER_PRI", 100)]


def test_memory_vips_still_satisfies_the_shell() -> None:
    # The default backend for unit tests has no filter: nothing filters.
    clock = ManualTimers()
    p = VrrpParams(priority=100, src_addr=1, garp_master_delay_us=0, accept=False)
    spec = InstanceSpec(name="V", ifname="eth0", family=4, params=p, vips=(VIP,))
    inst = Instance(spec, timers=clock, vips=MemoryVips(), announcer=NullAnnouncer(),
                    notifier=None)
    assert not inst.filtered


def test_ah_channel_numbers_its_adverts_and_verifies_the_icv() -> None:
    from hafast._core.vrrp_codec import decode_ipv4
    from hafast._core.vrrp_constants import AUTH_AH, auth_data_from_pass
    from hafast.vrrp.transport import Channel, ChannelConfig

    key = auth_data_from_pass("s3cr3t")
    cfg = ChannelConfig(ifname="eth0", family=4, vrid=51, version=2, adver_int=1,
                        addresses=(bytes([10, 0, 0, 100]),), src=bytes([10, 0, 0, 1]),
                        group=bytes([224, 0, 0, 18]), auth_type=AUTH_AH, auth_data=key)
    sock = SimpleNamespace(next_ip_id=lambda: 7)
    ch = Channel(sock, cfg, lambda adv, at: None)  # type: ignore[arg-type]
    pkts = [ch.encode(100, cfg.group) for _ in range(2)]
    assert pkts[0][9] == 51  # IP protocol AH
    got = [decode_ipv4(p, version=2, auth_type=ch.rx_auth_type, auth_data=ch.rx_auth_data,
                       adver_int=ch.rx_adver_int) for p in pkts]
    assert [(a.ok, a.ah, a.ah_seq) for a in got] == [(True, True, 1), (True, True, 2)]
    wrong = decode_ipv4(pkts[0], version=2, auth_type=AUTH_AH,
                        auth_data=auth_data_from_pass("other"))
    assert (wrong.ok, wrong.reason) == (False, "auth_failure")
