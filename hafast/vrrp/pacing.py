"""Which pacer spaces each link's gratuitous ARPs and NAs, and the timers that send
what waits.

keepalived 2.2.7 gives an interface at most one ``garp_delay`` (vrrp_if.c,
vrrp_parser.c): that of the first ``garp_group`` naming it (``interface`` or
``interfaces``; the group's interfaces share it, so their messages *together* keep the
interval), else, when ``vrrp_garp_interval`` or ``vrrp_gna_interval`` is set, one of its
own (``set_default_garp_delay``).  A VIP is paced on its interface's base: a macvlan's
parent (``IF_BASE_IFP``), so a garp_group naming eth0 paces the VMACs on it too.
The pacing itself is :class:`hafast.vrrp.announce.GarpPacer`; this shell holds the
table and one timer per pacer with something pending (keepalived has one thread
for all).

Example (manual clock)::

    pacing = GarpPacing(ManualTimers(), config)
    pacing.send("eth0", 4, "VI_1", 0, lambda: sock.send(frame))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hafast.config.model import Config
from hafast.vrrp.announce import GarpPacer

Send = Callable[[], None]
Key = tuple[int, str, int]  # (instance's place in the config, its name, VIP index)


class _Handle(Protocol):
    def cancel(self) -> None: ...


class _Timers(Protocol):  # hafast.vrrp.instance.Timers
    def now_us(self) -> int: ...

    def call_at(self, at_us: int, callback: Callable[[], None]) -> _Handle: ...


class GarpPacing:
    """The pacers of one VRRP process, by base interface."""

    def __init__(self, timers: _Timers, config: Config,
                 base_of: Callable[[str], str] = lambda ifname: ifname) -> None:
        self.timers = timers
        self.base_of = base_of
        self._groups: dict[str, GarpPacer[Key, Send]] = {}
        self._own: dict[str, GarpPacer[Key, Send]] = {}
        self._default: tuple[int | None, int | None] = (None, None)
        self._order: dict[str, int] = {}
        self._armed: dict[GarpPacer[Key, Send], tuple[int, _Handle]] = {}
        self.configure(config)

    def configure(self, config: Config) -> None:
        """(Re)read the groups and the global intervals.  What waits in a pacer that a
        reload replaced still goes at its time."""
        groups: dict[str, GarpPacer[Key, Send]] = {}
        for g in config.garp_groups:
            pacer: GarpPacer[Key, Send] = GarpPacer(g.garp_interval_us, g.gna_interval_us)
            for ifname in g.interfaces:
                groups.setdefault(ifname, pacer)  # keepalived: "already specified - ignoring"
        gd = config.global_defs
        default = (gd.vrrp_garp_interval_us or None, gd.vrrp_gna_interval_us or None)
        if default != self._default:
            self._own.clear()
        self._groups, self._default = groups, default
        self._order = {inst.name: n for n, inst in enumerate(config.vrrp_instances)}

    def pacer(self, ifname: str) -> GarpPacer[Key, Send] | None:
        """The pacer of ``ifname``'s messages, or None when they are not paced."""
        base = self.base_of(ifname)
        got = self._groups.get(base)
        if got is None and self._default != (None, None):
            got = self._own.get(base)
            if got is None:
                got = self._own[base] = GarpPacer(*self._default)
        return got

    def send(self, ifname: str, family: int, owner: str, index: int, send: Send) -> None:
        """Call ``send`` now if ``ifname``'s pacer allows, else when its turn comes."""
        pacer = self.pacer(ifname)
        if pacer is None:
            send()
            return
        key = (self._order.get(owner, len(self._order)), owner, index)
        if pacer.offer(self.timers.now_us(), family, key, send):
            send()
        else:
            self._arm(pacer)

    def withdraw(self, owner: str) -> None:
        """``owner`` took its VIPs down: nothing of its still waiting goes."""
        for pacer in {*self._groups.values(), *self._own.values(), *self._armed}:
            pacer.withdraw(owner)

    def close(self) -> None:
        for _at, handle in self._armed.values():
            handle.cancel()
        self._armed.clear()

    def _arm(self, pacer: GarpPacer[Key, Send]) -> None:
        wake = pacer.wake_us()
        armed = self._armed.get(pacer)
        if wake is None or (armed is not None and armed[0] <= wake):
            return
        if armed is not None:
            armed[1].cancel()
        self._armed[pacer] = (wake, self.timers.call_at(wake, lambda: self._fire(pacer)))

    def _fire(self, pacer: GarpPacer[Key, Send]) -> None:
        self._armed.pop(pacer, None)
        for send in pacer.due(self.timers.now_us()):
            send()
        self._arm(pacer)
