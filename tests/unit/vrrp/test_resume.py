"""Instance.resume: carrying on from a predecessor's state (worker restart, reload)."""

from __future__ import annotations

from collections.abc import Sequence

from hafast.config.model import VirtualAddress
from hafast.lib.notify import NotifyScripts
from hafast.net.vip import MemoryVips
from hafast.vrrp.fsm import State
from hafast.vrrp.instance import Instance, InstanceSpec, ManualTimers, NullAnnouncer
from hafast.vrrp.params import VrrpParams

VIP = VirtualAddress("10.0.0.100", 24, 4)
EXCLUDED = VirtualAddress("10.0.1.100", 24, 4)


class AdoptingVips(MemoryVips):
    """MemoryVips with the adopt step of NetlinkVips / ResumingVips, recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.adopted: list[tuple[str, tuple[VirtualAddress, ...], str]] = []

    def adopt(self, owner: str, vips: Sequence[VirtualAddress],
              default_dev: str) -> list[VirtualAddress]:
        self.adopted.append((owner, tuple(vips), default_dev))
        return list(vips)


class Recorder:
    def __init__(self) -> None:
        self.states: list[str] = []

    def state_change(self, kind: str, name: str, state: str, priority: int,
                     scripts: NotifyScripts) -> None:
        self.states.append(state)


def _inst(priority: int = 100, vips: MemoryVips | None = None) -> tuple[Instance, Recorder]:
    p = VrrpParams(priority=priority, src_addr=0x0A000001, garp_master_delay_us=0)
    spec = InstanceSpec(name="VI_1", ifname="eth0", family=4, params=p, vips=(VIP,),
                        excluded=(EXCLUDED,))
    rec = Recorder()
    inst = Instance(spec, timers=ManualTimers(), vips=vips or AdoptingVips(),
                    announcer=NullAnnouncer(), notifier=rec)  # type: ignore[arg-type]
    return inst, rec


def test_no_predecessor_is_a_plain_start() -> None:
    inst, rec = _inst()
    inst.resume(None)
    assert inst.state is State.BACKUP and rec.states == ["BACKUP"]
    assert inst.vips.adopted == []  # type: ignore[attr-defined]


def test_a_master_adopts_its_vips_and_carries_on_at_once_unnotified() -> None:
    vips = AdoptingVips()
    inst, rec = _inst(vips=vips)
    inst.resume(State.MASTER)
    # No Master_Down_Interval: master at the same instant, its VIPs its own.
    assert inst.state is State.MASTER and inst.timers.now_us() == 0
    assert vips.adopted == [("VI_1", (VIP, EXCLUDED), "eth0")]
    assert ("eth0", "10.0.0.100/24") in vips.installed
    # It was master and is master: nothing happened for the world.
    assert rec.states == []
    assert inst.notifier is rec


def test_a_reload_does_not_adopt_what_its_process_already_holds() -> None:
    vips = AdoptingVips()
    inst, rec = _inst(vips=vips)
    inst.resume(State.MASTER, adopt=False)
    assert inst.state is State.MASTER and vips.adopted == [] and rec.states == []


def test_a_backend_without_adopt_still_resumes() -> None:
    inst, rec = _inst(vips=MemoryVips())
    inst.resume(State.MASTER)
    assert inst.state is State.MASTER and rec.states == []


def test_landing_where_it_was_drops_the_held_notifications() -> None:
    inst, rec = _inst()
    inst.resume(State.BACKUP)
    assert inst.state is State.BACKUP and rec.states == []


def test_landing_elsewhere_replays_them() -> None:
    inst, rec = _inst()
    inst.raise_fault("eth0")  # as tracking.bind does before the start
    inst.resume(State.MASTER)
    assert inst.state is State.FAULT and rec.states == ["FAULT"]
    owner, rec2 = _inst(priority=255)
    owner.resume(State.BACKUP)
    assert owner.state is State.MASTER and rec2.states == ["MASTER"]
