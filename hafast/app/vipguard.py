"""Never two masters: what the parent does with the VIPs of a VRRP worker that is
dead or hung.

A VRRP master that stops advertising keeps its VIPs on the interface; the peer's
backup takes over once its Master_Down_Interval runs out (RFC 5798 §6.4.2:
``3 * Master_Adver_Interval + Skew_Time``) and then both directors hold the
address.  The parent cannot advertise in the worker's place, so it keeps one
invariant: **the VIPs stay only while a worker can be advertising for them**.

The arithmetic (``adv`` is the smallest advert interval of the instances): the
worker's last advert went out at most ``adv`` before its last sign of life
(``t_alive``: its last pong or message), so no peer can declare it dead before
``t_alive - adv + 3 * adv = t_alive + 2 * adv`` (Skew_Time >= 0).  The parent
therefore has until :meth:`VipGuard.release_deadline` = ``t_alive + 1.75 * adv``
(a quarter interval kept for the netlink calls and scheduling) either to have a
new worker advertising, or to have removed the VIPs itself:

* a worker that dies is restarted as MASTER (it adopts its VIPs, no flap) only
  when its restart delay plus its measured start-up time fit before the
  deadline; otherwise the parent releases the VIPs at once and the new worker
  starts as a fresh BACKUP (notify scripts run, as for any start);
* a restarted worker that is still not advertising at the deadline is killed,
  the VIPs released, and it starts again as BACKUP;
* a hung worker (no pong) is found by a heartbeat derived from ``adv``
  (:meth:`VipGuard.heartbeat`): ping every ``adv / 4``, verdict after ``adv``
  without a pong, so that detection (``<= 1.25 * adv``) comes before the deadline.
  Its VIPs are released as it is killed.

The bound holds for ``advert_int >= 0.1 s`` (the heartbeat is floored at 25 ms
pings and a 100 ms verdict, so that a loaded box does not kill healthy workers);
with shorter intervals ``hafast -t`` cannot be stricter than that floor and the
start-up log says so.  Python needs ~0.3-0.6 s to start a worker, so with
``advert_int`` below about 0.4 s a crashed worker always hands the VIP to the
peer (released first, never held twice), and takes it back as BACKUP by the
normal protocol (preemption).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from hafast.config import model as m

log = logging.getLogger("hafast")

US_PER_S = 1_000_000
# What share of the earliest peer takeover the parent may spend before the VIPs
# must be gone (see the module docstring).
RELEASE_BY = 1.75
HEARTBEAT_PERIOD_FLOOR_S = 0.025
HEARTBEAT_TIMEOUT_FLOOR_S = 0.1


@dataclass(frozen=True, slots=True)
class GuardedInstance:
    name: str
    ifname: str | None
    vips: tuple[m.VirtualAddress, ...]
    advert_s: float


def guarded(config: m.Config) -> dict[str, GuardedInstance]:
    """The VIPs each vrrp_instance would hold as MASTER, by instance name."""
    dev = config.global_defs.default_interface
    out = {}
    for inst in config.vrrp_instances:
        out[inst.name] = GuardedInstance(
            inst.name, inst.interface or dev,
            tuple(inst.virtual_ipaddress) + tuple(inst.virtual_ipaddress_excluded),
            inst.advert_int_us / US_PER_S)
    return out


class VipGuard:
    """The parent's side of the invariant; see the module docstring.

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text("vrrp_instance A { interface eth0 virtual_router_id 1 "
    ...                 "priority 100 advert_int 1 virtual_ipaddress { 192.0.2.1/24 } }").config
    >>> g = VipGuard(cfg)
    >>> g.release_deadline(10.0), g.heartbeat()
    (11.75, (0.25, 1.0))
    """

    def __init__(self, config: m.Config) -> None:
        self.instances: dict[str, GuardedInstance] = {}
        self.released = 0  # VIP release operations carried out (status, tests)
        self.configure(config)

    def configure(self, config: m.Config) -> None:
        self.instances = guarded(config)

    @property
    def advert_s(self) -> float:
        """The smallest advert interval (1 s when there is no instance)."""
        return min((i.advert_s for i in self.instances.values()), default=1.0)

    def release_deadline(self, t_alive: float) -> float:
        """By when the VIPs must be gone if no worker advertises after ``t_alive``."""
        return t_alive + RELEASE_BY * self.advert_s

    def heartbeat(self) -> tuple[float, float]:
        """(ping period, verdict timeout) for the VRRP worker, in seconds."""
        adv = self.advert_s
        return (max(adv / 4, HEARTBEAT_PERIOD_FLOOR_S), max(adv, HEARTBEAT_TIMEOUT_FLOOR_S))

    def can_resume(self, now: float, t_alive: float, delay: float, startup: float) -> bool:
        """Whether a worker restarted after ``delay`` s, taking ``startup`` s to come
        up, advertises before the release deadline."""
        return now + delay + startup < self.release_deadline(t_alive)

    async def release(self, names: Iterable[str]) -> list[str]:
        """Take the VIPs of instances ``names`` off their interfaces (ours or
        adopted: the worker that added them is gone).  Returns the addresses removed."""
        chosen = [self.instances[n] for n in names if n in self.instances]
        if not chosen:
            return []
        loop = asyncio.get_running_loop()
        removed = await loop.run_in_executor(None, _release_now, chosen)
        self.released += 1
        return removed


def _release_now(chosen: list[GuardedInstance]) -> list[str]:
    """Blocking netlink work, on an executor thread (never on the parent's loop)."""
    from hafast.net.vip import NetlinkVips

    vips = NetlinkVips()
    removed: list[str] = []
    try:
        for inst in chosen:
            if inst.ifname is None:
                continue
            taken = vips.adopt(inst.name, inst.vips, inst.ifname)
            removed += [v.address for v in taken]
        vips.release_all()
    finally:
        vips.close()
    return removed

