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
new worker advertising, or to have removed the VIPs itself.  The VRRP worker's
pongs say when each of its masters last advertised (``t_advert``, the same
monotonic clock); when the parent knows it, no peer can declare that master dead
before ``t_advert + 3 * adv``, and the deadline is ``t_advert + 2.75 * adv``: the
same quarter kept, on average half an interval more than the pong alone allows
(the advert phase is unknown without it), and tighter than the pong's when the
worker's adverts were late.

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
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hafast.config import model as m
from hafast.lib.units import US_PER_S
from hafast.vrrp.from_config import vip_ifname

if TYPE_CHECKING:
    from hafast.net.vip import NetlinkVips

log = logging.getLogger("hafast")

# What share of the earliest peer takeover the parent may spend before the VIPs
# must be gone (see the module docstring).
RELEASE_BY = 1.75
# The same, counted from the master's last advert: the peer's Master_Down_Interval
# (3 intervals, Skew_Time >= 0) runs from its arrival, less the same quarter.
RELEASE_BY_AFTER_ADVERT = 2.75
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
    out = {}
    for inst in config.vrrp_instances:
        out[inst.name] = GuardedInstance(
            # use_vmac: the VIPs live on the instance's macvlan, not its interface.
            inst.name, vip_ifname(inst, config.global_defs),
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
        # What the VRRP worker last reported per instance: (state word, priority).
        self.states: dict[str, tuple[str, int]] = {}
        self.released = 0  # VIP release operations carried out (status, tests)
        self._vips: NetlinkVips | None = None
        self.configure(config)

    def configure(self, config: m.Config) -> None:
        self.instances = guarded(config)

    @property
    def advert_s(self) -> float:
        """The smallest advert interval (1 s when there is no instance)."""
        return min((i.advert_s for i in self.instances.values()), default=1.0)

    def release_deadline(self, t_alive: float, name: str | None = None,
                         t_advert: float | None = None) -> float:
        """By when the VIPs (of instance ``name``; of any, by default) must be gone
        if no worker advertises after ``t_alive``; counted from ``t_advert``, the
        instance's last advert, when it is known."""
        inst = self.instances.get(name) if name is not None else None
        adv = inst.advert_s if inst is not None else self.advert_s
        if t_advert is not None and inst is not None:
            return t_advert + RELEASE_BY_AFTER_ADVERT * adv
        return t_alive + RELEASE_BY * adv

    def heartbeat(self) -> tuple[float, float]:
        """(ping period, verdict timeout) for the VRRP worker, in seconds."""
        adv = self.advert_s
        return (max(adv / 4, HEARTBEAT_PERIOD_FLOOR_S), max(adv, HEARTBEAT_TIMEOUT_FLOOR_S))

    def can_resume(self, now: float, t_alive: float, delay: float, startup: float,
                   name: str | None = None, t_advert: float | None = None) -> bool:
        """Whether a worker restarted after ``delay`` s, taking ``startup`` s to come
        up, advertises (for instance ``name``) before the release deadline."""
        return now + delay + startup < self.release_deadline(t_alive, name, t_advert)

    def masters(self) -> list[str]:
        return [n for n, (st, _p) in self.states.items() if st == "MASTER"]

    def take_masters(self, moved: Callable[[dict[str, tuple[str, int]]], None],
                     names: Iterable[str] | None = None) -> list[str]:
        """Forget which instances (``names``, by default all) were MASTER
        (synchronously, before any await: the death of the worker may be handled
        next, and must not resume them); their successor starts them afresh (BACKUP,
        with their notifications).  ``moved`` hears of each as a BACKUP (pools under
        ha_suspend follow)."""
        masters = self.masters()
        if names is not None:
            wanted = set(names)
            masters = [n for n in masters if n in wanted]
        for name in masters:
            prio = self.states.pop(name)[1]
            moved({name: ("BACKUP", prio)})
        return masters

    def release_masters(self, moved: Callable[[dict[str, tuple[str, int]]], None],
                        why: str) -> Coroutine[Any, Any, None]:
        """Forget the MASTER instances now (:meth:`take_masters`, before the caller
        awaits or spawns anything) and return the release of their VIPs to run."""
        return self.release_logged(self.take_masters(moved), why)

    async def release_logged(self, masters: list[str], why: str) -> None:
        """:meth:`release`, saying why; a failure is logged, never raised."""
        if not masters:
            return
        try:
            removed = await self.release(masters)
        except Exception:
            log.exception("releasing the VIPs of %s failed", ", ".join(masters))
            return
        log.error("%s: released the VIPs of %s (%s) so that the peer can take over "
                  "(never two masters)", why, ", ".join(masters), " ".join(removed) or "none up")

    async def on_death(self, t_alive: float, now: float, delay: float, startup: float,
                       moved: Callable[[dict[str, tuple[str, int]]], None],
                       margin: float = 1.5,
                       last_adverts: Mapping[str, float] | None = None) -> float | None:
        """The VRRP worker is gone (last heard of at ``t_alive``; restart in
        ``delay`` s; its last start-up took ``startup`` s, counted ``margin`` times):
        each MASTER instance keeps its VIPs only if the successor can be advertising
        for it before a peer may take over (its own advert interval decides).
        ``last_adverts``: when each instance last advertised, if the worker said.
        Returns the earliest deadline of those resumed as MASTER, None when none is
        (the others' VIPs are released by then)."""
        masters = self.masters()
        if not masters:
            return None
        adverts = last_adverts or {}

        def deadline(n: str) -> float:
            return self.release_deadline(t_alive, n, adverts.get(n))

        # By default half again the last start-up: a respawn under load is slower.
        keep = [n for n in masters
                if self.can_resume(now, t_alive, delay, margin * startup, n, adverts.get(n))]
        drop = [n for n in masters if n not in keep]
        if drop:
            within = min(deadline(n) for n in drop) - t_alive
            await self.release_logged(self.take_masters(moved, drop),
                                      f"the VRRP worker cannot be back within {within:.2f}s "
                                      f"(restart in {delay:.1f}s, start-up {startup:.2f}s)")
        if not keep:
            return None
        return min(deadline(n) for n in keep)

    async def prepare(self) -> None:
        """Open the netlink socket now, off the loop, so that a release later is one
        request per VIP (the first pyroute2 import and warm-up cost hundreds of ms)."""
        if self.instances and self._vips is None:
            from hafast.net.vip import NetlinkVips

            self._vips = await asyncio.get_running_loop().run_in_executor(None, NetlinkVips)

    async def release(self, names: Iterable[str]) -> list[str]:
        """Take the VIPs of instances ``names`` off their interfaces (whoever added
        them: the worker that did is gone).  Returns the addresses removed."""
        chosen = [self.instances[n] for n in names if n in self.instances]
        if not chosen:
            return []
        await self.prepare()
        vips = self._vips
        assert vips is not None
        removed = await asyncio.get_running_loop().run_in_executor(
            None, _release_now, vips, chosen)
        self.released += 1
        return removed

    def close(self) -> None:
        # It owns nothing (delete() never adopts), so closing removes nothing.
        if self._vips is not None:
            self._vips.close()
            self._vips = None


def _release_now(vips: NetlinkVips, chosen: list[GuardedInstance]) -> list[str]:
    """Blocking netlink work, on an executor thread (never on the parent's loop)."""
    removed: list[str] = []
    for inst in chosen:
        if inst.ifname is not None:
            removed += [v.address for v in vips.delete(inst.vips, inst.ifname)]
    return removed
