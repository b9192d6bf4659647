"""The fleet shell: check results -> quorum -> announcement machine -> kernel routes.

It runs hafast's check engine (:mod:`hafast.check.engine`) and pool policy
(:mod:`hafast.lvs.policy`) for the quorum of each virtual server that has an
``announce`` block, feeds every quorum change to that VIP's
:mod:`hafast.fleet.announce` machine, and applies its actions through
:class:`hafast.fleet.kernel.KernelRoutes`.  It does not program IPVS and runs no
quorum scripts: it is the announcer alone (the daemon's LVS worker owns those).

"The first full round of checks" is counted, not timed: every check feeding a real
server of the virtual server has reached a verdict, a success or a failure with its
retries spent (:mod:`hafast.check.rounds`).  The check workers report it per shard
(:meth:`Announcer.rounds_done`; this runner's own engine reports as shard 0 of 1).
A report that never comes (a worker that cannot check) is bounded: by
:func:`round_bound_s` the round is taken as done, with a warning, and the VIP follows
its quorum as it stands.

Example (root, inside the director's namespace)::

    runner = FleetRunner(load_file("keepalived.conf").config, loop, KernelRoutes())
    runner.start()   # ... runner.stop()
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hafast.check.engine import Engine
from hafast.check.rounds import RoundWatch
from hafast.config import model as m
from hafast.fleet.announce import (
    ANNOUNCED,
    DRAINING,
    WITHDRAWN,
    Action,
    Announce,
    AnnounceState,
    ArmTimer,
    Drain,
    Event,
    QuorumChanged,
    RoundDone,
    Shutdown,
    Tick,
    Withdraw,
    step,
)
from hafast.fleet.frrlife import FrrLife
from hafast.fleet.kernel import KernelRoutes
from hafast.fleet.latency import ANNOUNCE, WITHDRAW, LatencyProbe
from hafast.fleet.owncheck import OwnChecks
from hafast.fleet.sessions import SessionWatch
from hafast.lib.events import ServerEvent
from hafast.lib.units import US_PER_S
from hafast.lvs.policy import PoolPolicy, maglev_fleet

log = logging.getLogger("hafast.fleet")

SLOPPY_TCP = "/proc/sys/net/ipv4/vs/sloppy_tcp"


def _read_sysctl(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:  # ip_vs not loaded (yet): nothing to judge
        return None


def maglev_warnings(config: m.Config,
                    read: Callable[[str], str | None] = _read_sysctl) -> list[str]:
    """What in this network namespace breaks the flows of a Maglev fleet when the
    routers move them between directors.  The announcer logs these at start, and
    ``hafast -t`` prints them (:func:`hafast.app.cmdline.main`).

    With ``sloppy_tcp=0`` IPVS schedules only a SYN: a flow moved to another director
    meets no connection entry there, and its next segment is answered with a reset
    (the control arm of tests/ipvs/test_fleet_maglev.py).

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text('''virtual_server 192.0.2.1 80 {
    ...   lvs_sched mh
    ...   announce {
    ...     prefix 192.0.2.1/32
    ...   }
    ...   real_server 10.1.0.1 80 { }
    ... }''').config
    >>> maglev_warnings(cfg, lambda path: "0")[0][:52]
    'virtual_server 192.0.2.1 80 (lvs_sched mh, announce)'
    >>> maglev_warnings(cfg, lambda path: "1")
    []
    """
    fleet = [vs for vs in config.virtual_servers if maglev_fleet(vs)]
    if not fleet or read(SLOPPY_TCP) != "0":
        return []
    more = f" and {len(fleet) - 1} more" if len(fleet) > 1 else ""
    return [f"virtual_server {fleet[0].label} (lvs_sched mh, announce){more}: "
            "net.ipv4.vs.sloppy_tcp is 0, so a flow that the routers move to another "
            "director is reset there; set it to 1 on every director (and keep "
            "net.ipv4.vs.expire_nodest_conn at 0)"]


ROUND_SLACK_S = 5.0  # a loaded machine's lateness on top of the checks' own times


def _held_addresses() -> set[str]:
    from hafast.net.addrwatch import dump_addresses

    try:
        return {a for a, _ifindex in dump_addresses()}
    except OSError:  # no netlink here: nothing to judge
        return set()


def address_warnings(config: m.Config,
                     held: Callable[[], set[str]] = _held_addresses) -> list[str]:
    """Announced VIPs that are already an address of an interface in this network
    namespace (put there by someone else: ``hafast -t`` warns separately about the
    config's own).  zebra takes such an address's route as connected, and bgpd keeps
    announcing it whatever hafast does to its own route (measured, docs/fleet.md).

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text('''virtual_server 192.0.2.1 80 {
    ...   announce {
    ...     prefix 192.0.2.1/32
    ...   }
    ...   real_server 10.1.0.1 80 { }
    ... }''').config
    >>> address_warnings(cfg, lambda: {"192.0.2.1"})[0][:62]
    'announce 192.0.2.1/32: 192.0.2.1 is an address on an interface'
    >>> address_warnings(cfg, lambda: {"192.0.2.2"})
    []
    """
    vips = {str(ipaddress.ip_network(vs.announce.prefix, strict=False).network_address):
            vs.announce.prefix for vs in config.virtual_servers if vs.announce is not None}
    if not vips:
        return []
    here = held()
    return [f"announce {prefix}: {vip} is an address on an interface here, so FRR would "
            "keep announcing it whatever the quorum (zebra's connected route); remove the "
            "address, hafast makes the VIP local with a route"
            for vip, prefix in sorted(vips.items()) if vip in here]


def round_bound_s(vs: m.VirtualServer) -> float:
    """Seconds after start by which every checker of ``vs`` must have decided, even
    failing with every retry (its first attempt, then each retry after its
    delay_before_retry), plus :data:`ROUND_SLACK_S`: the wait for a report is bounded
    by this."""
    worst = 0
    for rs in vs.real_servers:
        for c in rs.checkers:
            warmup = getattr(c, "warmup_us", None)
            loop_us = getattr(c, "delay_loop_us", vs.delay_loop_us)
            timeout = getattr(c, "connect_timeout_us", 5 * US_PER_S) or 5 * US_PER_S
            retry = getattr(c, "retry", 0) or 0
            worst = max(worst, (loop_us if warmup is None else warmup) + (retry + 1) * timeout
                        + retry * (getattr(c, "delay_before_retry_us", 0) or 0))
    return worst / US_PER_S + ROUND_SLACK_S


def checked_shards(vs: m.VirtualServer, shards: int) -> set[int]:
    """The check workers that hold a checked real server of ``vs``."""
    from hafast.check.view import shard_of

    return {shard_of(rs, shards) for rs in vs.real_servers if rs.checkers}


VsKey = tuple[object, ...]


def announced(config: m.Config) -> dict[str, list[m.VirtualServer]]:
    """Each announced prefix -> the virtual servers whose announce block names it, in
    config order: an ``announce`` block may name several prefixes (the addresses of a
    virtual_server_group), and several virtual servers one prefix (VIP:80 and VIP:443,
    each with its block; their settings agree, hafast.config.bgp sees to it).

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text('''virtual_server 192.0.2.1 80 {
    ...   announce {
    ...     prefix 192.0.2.1/32
    ...     prefix 192.0.2.2/32
    ...   }
    ... }
    ... virtual_server 192.0.2.1 443 {
    ...   announce {
    ...     prefix 192.0.2.1/32
    ...   }
    ... }''').config
    >>> {p: [vs.port for vs in vss] for p, vss in announced(cfg).items()}
    {'192.0.2.1/32': [80, 443], '192.0.2.2/32': [80]}
    """
    out: dict[str, list[m.VirtualServer]] = {}
    for vs in config.virtual_servers:
        if vs.announce is not None:
            for prefix in vs.announce.prefixes:
                out.setdefault(prefix, []).append(vs)
    return out


def _settings(a: m.Announce) -> dict[str, Any]:
    """An announce block's settings as the machine takes them."""
    return {"delay": a.announce_delay_us / US_PER_S,
            "drain": a.drain_method != "withdraw",
            "drain_time": a.shutdown_drain_time_us / US_PER_S,
            "hold_down": a.announce_hold_down_us / US_PER_S,
            "max_changes": a.announce_max_changes_per_minute}


class Announcer:
    """The announcement machines of a config's ``announce`` blocks and their routes:
    one machine per announced prefix (:func:`announced`).

    The quorum comes from whoever owns the pool policy: the daemon's pools
    (:class:`hafast.lvs.keeper.PoolKeeper`) or :class:`FleetRunner` here; call
    :meth:`sync` after every batch of check events.  A prefix's machine sees its
    virtual servers' quorums and-ed: one named by VIP:80's and VIP:443's blocks is
    announced while both have their quorum (and their own checks pass), so a director
    whose web pool is dead does not draw that VIP's flows for any port.
    """

    def __init__(self, loop: Any, kernel: KernelRoutes,
                 on_change: Callable[[str, str], object] | None = None,
                 shards: int = 1,
                 watch: Callable[[Any, m.BgpSpeaker], SessionWatch] = SessionWatch,
                 frr: Callable[[Any, m.Config], FrrLife] = FrrLife,
                 probe: Callable[[Any, m.BgpSpeaker], LatencyProbe] = LatencyProbe) -> None:
        self.loop = loop
        self.kernel = kernel
        self.on_change = on_change  # (prefix, new phase): status, tests
        self._new_watch = watch
        self.watch: SessionWatch | None = None  # the BGP/BFD sessions, with bgp_speaker
        self._new_probe = probe
        self.probe: LatencyProbe | None = None  # announce/withdraw latency, with bgp_speaker
        self._new_frr = frr
        self.frr: FrrLife | None = None  # FRR's config and daemons, with frr_control
        self.vss: list[m.VirtualServer] = []  # those with an announce block
        self.sources: dict[str, list[m.VirtualServer]] = {}  # prefix -> (announced)
        self.states: dict[str, AnnounceState] = {}  # prefix -> its machine
        self.quorum: dict[str, bool] = {}  # prefix -> what its machine was last told
        # (prefix, phase entered) -> times, for /metrics: a flapping VIP shows here
        self.transitions: Counter[tuple[str, str]] = Counter()
        self._timers: list[Any] = []
        self.shards = shards  # check workers reporting rounds (rounds_done)
        self.round_waits: dict[VsKey, set[int]] = {}  # STARTUP: shards not reported yet
        # each wait's bound, cancelled when the wait ends: a start's bound left running
        # ended a reload's later wait for the same virtual server early
        self._round_timers: dict[VsKey, Any] = {}
        self.round_pending: set[str] = set()  # prefixes waiting on their sources' rounds
        # the director's own checks (announce track_*), and the quorum source they
        # re-sync with when one of them changes
        self.own = OwnChecks(loop, lambda: self.sync(self._quorum_of))
        self._quorum_of: Callable[[VsKey], bool] = lambda key: False

    def start(self, config: m.Config, quorum_of: Callable[[VsKey], bool]) -> None:
        """Make each VIP local, start its machine in STARTUP, and arm its first round."""
        self.vss = [vs for vs in config.virtual_servers if vs.announce is not None]
        self.sources = announced(config)
        self.own.configure(config)
        for text in maglev_warnings(config) + address_warnings(config):
            log.warning("%s", text)
        self._sweep()
        for prefix in self.sources:
            self._begin(prefix)
        self._follow_speaker(config)
        self.sync(quorum_of)

    def _follow_speaker(self, config: m.Config | None) -> None:
        """The bgp_speaker's FRR: its sessions read, its config kept (frr_control);
        None stops both and leaves FRR as it is."""
        speaker = config.bgp_speaker if config is not None else None
        if speaker is None:
            if self.watch is not None:
                self.watch.stop()
                self.watch = None
            if self.probe is not None:
                self.probe.stop()
                self.probe = None
        elif self.watch is None:
            self.watch = self._new_watch(self.loop, speaker)
            self.watch.start()
            self.probe = self._new_probe(self.loop, speaker)
        else:
            self.watch.reconfigure(speaker)
            if self.probe is not None:
                self.probe.reconfigure(speaker)
        if config is None or speaker is None or speaker.frr_control == "none":
            if self.frr is not None:
                self.frr.stop()
                self.frr = None
        elif self.frr is None:
            self.frr = self._new_frr(self.loop, config)
            self.frr.start()
        else:
            self.frr.reconfigure(config)

    def _sweep(self) -> None:
        """Withdraw what an earlier run left announced (fail-static after a crash) for
        a VIP this config no longer has: no machine here would ever withdraw it, and
        the routers would go on sending its flows to a director that serves nothing
        for it.  A VIP still configured keeps its routes: its machine decides."""
        wanted = {str(ipaddress.ip_network(p, strict=False)) for p in self.sources}
        for prefix in sorted(self.kernel.ours() - wanted):
            self.kernel.withdraw(prefix)
            self.kernel.unmake_local(prefix)
            log.warning("announce %s: left by an earlier run and no longer configured; "
                        "withdrawn", prefix)

    def _begin(self, prefix: str) -> None:
        """A prefix new to this announcer: made local, its machine in STARTUP until a
        full round of checks of each of its virtual servers (:meth:`_wait_round`)."""
        first = self.sources[prefix][0].announce
        assert first is not None
        self.kernel.make_local(prefix)
        self.states[prefix] = AnnounceState.initial(prefix, **_settings(first))
        self.quorum.pop(prefix, None)
        self.round_pending.add(prefix)
        # every source waits for a round of its own from here (one already waiting
        # for another prefix's sake goes on waiting): _rounds_over ends STARTUP
        for vs in self.sources[prefix]:
            if vs.key not in self.round_waits:
                self._wait_round(vs)

    def _wait_round(self, vs: m.VirtualServer) -> None:
        self.round_waits[vs.key] = checked_shards(vs, self.shards)
        if not self.round_waits[vs.key]:  # nothing is checked: nothing to wait for
            self.loop.call_soon(self._round, vs.key)
        bound = round_bound_s(vs)
        at = self.loop.time() + bound
        self._round_timers[vs.key] = self.loop.call_at(at, self._round, vs.key, at, bound)

    def _end_wait(self, key: VsKey) -> bool:
        """Forget ``key``'s wait for a round and cancel its bound; was it waiting?"""
        timer = self._round_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        return self.round_waits.pop(key, None) is not None

    def rounds_done(self, shard: int, keys: list[VsKey]) -> None:
        """Check worker ``shard`` says these virtual servers' checks there have all
        reached a verdict (:mod:`hafast.check.rounds`); the last shard ends their wait."""
        for key in keys:
            waits = self.round_waits.get(key)
            if waits is None:
                continue
            waits.discard(shard)
            if not waits:
                self._round(key)

    def _round(self, key: VsKey, at: float | None = None, waited: float = 0.0) -> None:
        """Virtual server ``key``'s round is done, or (``at``) its wait of ``waited``
        seconds ran out."""
        if not self._end_wait(key):
            return  # said already, or removed by a reload meanwhile
        if at is not None:
            vs = next((v for v in self.vss if v.key == key), None)
            log.warning("announce %s: no full round of checks reported for virtual_server "
                        "%s in %.1f s; the VIP follows its quorum as it stands",
                        vs.announce.prefix if vs and vs.announce else "?",
                        vs.label if vs else "?", waited)
        self._rounds_over(at)

    def _rounds_over(self, at: float | None = None) -> None:
        """Each prefix in STARTUP whose virtual servers have all had their round."""
        now = self.loop.time() if at is None else max(self.loop.time(), at)  # see _tick
        for prefix in sorted(self.round_pending):
            if prefix in self.states and not any(
                    vs.key in self.round_waits for vs in self.sources.get(prefix, ())):
                self.round_pending.discard(prefix)
                self._feed(prefix, RoundDone(now))

    def reload(self, config: m.Config, quorum_of: Callable[[VsKey], bool]) -> None:
        """A diff by prefix: a prefix kept keeps its state and its announcement (with
        the block's settings as they are now); a removed one is withdrawn and its
        local route goes; a new one starts in STARTUP, after a round of its virtual
        servers' checks (the check workers report again after every reload)."""
        new = announced(config)
        for prefix, st in list(self.states.items()):
            if prefix not in new:
                self.kernel.withdraw(prefix)
                self.kernel.unmake_local(prefix)
                log.info("announce %s: removed by a reload (%s -> %s)", prefix, st.phase,
                         WITHDRAWN)
                del self.states[prefix]
                if self.probe is not None:
                    self.probe.cancel(prefix)
                self.quorum.pop(prefix, None)
                self.round_pending.discard(prefix)
            else:
                first = new[prefix][0].announce
                assert first is not None
                self.states[prefix] = replace(st, **_settings(first))
        self.vss = [vs for vs in config.virtual_servers if vs.announce is not None]
        self.sources = new
        keys = {vs.key for vs in self.vss}
        for key in [k for k in self.round_waits if k not in keys]:
            self._end_wait(key)
        self.own.configure(config, reload=True)
        for prefix in new:
            if prefix not in self.states:
                self._begin(prefix)
        self._follow_speaker(config)
        self.sync(quorum_of)

    def sync(self, quorum_of: Callable[[VsKey], bool]) -> None:
        """Feed every change since the last call of the quorum, and-ed with the
        director's own checks (the machine's "quorum" is both)."""
        self._quorum_of = quorum_of
        for prefix, vss in self.sources.items():
            try:
                up = all(quorum_of(vs.key) and vs.announce is not None
                         and self.own.ok(vs.announce) for vs in vss)
            except KeyError:  # the pools have reloaded, this object not yet
                continue
            if prefix in self.states and self.quorum.get(prefix) != up:
                self.quorum[prefix] = up
                self._feed(prefix, QuorumChanged(up, self.loop.time()))

    def stop(self) -> None:
        """Stop the timers; the routes stay (fail-static: a restart decides again)."""
        for t in [*self._timers, *self._round_timers.values()]:
            t.cancel()
        self._timers.clear()
        self._round_timers.clear()
        self._follow_speaker(None)
        self.own.close()

    async def close(self) -> None:
        """SIGTERM, the daemon's and the runner's: every VIP drains (:meth:`drain`, while
        the caller's checks and pools go on serving), then all are withdrawn and the
        announcer shuts down (:meth:`shutdown`)."""
        end = self.drain()
        await asyncio.sleep(max(0.0, end - self.loop.time()))
        self.withdraw_all()
        self.shutdown()

    def shutdown(self) -> None:
        """A clean stop, after :meth:`withdraw_all`: :meth:`stop`, and the FRR daemons
        hafast runs (frr_control run) stop too."""
        if self.frr is not None:
            self.frr.shutdown()
            self.frr = None
        self.stop()

    def drain(self) -> float:
        """SIGTERM: every machine gets :class:`Shutdown`; returns the loop time by which
        the last drain ends (now when nothing drains).  The caller waits until then,
        with the pools still serving, and calls :meth:`withdraw_all`."""
        now = self.loop.time()
        for prefix in list(self.states):
            self._feed(prefix, Shutdown(now))
        ends = [st.drain_until for st in self.states.values()
                if st.phase == DRAINING and st.drain_until is not None]
        return max(ends, default=now)

    def withdraw_all(self) -> None:
        """A clean stop: withdraw every prefix while the pools still serve, so the
        routers move the flows away before IPVS goes."""
        for st in self.states.values():
            self.kernel.withdraw(st.prefix)
            if st.phase in (ANNOUNCED, DRAINING):
                self.transitions[(st.prefix, WITHDRAWN)] += 1
                if self.on_change is not None:
                    self.on_change(st.prefix, WITHDRAWN)
            log.info("announce %s: %s -> %s (stopping)", st.prefix, st.phase, WITHDRAWN)

    def phase(self, vs: m.VirtualServer, prefix: str | None = None) -> str:
        """The machine's phase of ``prefix``, by default the block's first."""
        assert vs.announce is not None
        return self.states[prefix or vs.announce.prefix].phase

    def status(self) -> list[dict[str, Any]]:
        """Each announced prefix: its state, whether it may be announced (``quorum``:
        its virtual servers' quorum and the director's own checks), how many times it
        entered each state, ``held_s``: how long an announcement its quorum wants is
        still held back (announce_hold_down, announce_max_changes_per_minute), None when
        none is, ``own``: each tracked object of its announce blocks -> up (None: they
        track none), and ``latency``: its announcements' and withdrawals' time to bgpd's
        Adj-RIB-Out (:mod:`hafast.fleet.latency`; None without a bgp_speaker)."""
        now = self.loop.time()
        own = {prefix: {obj: up for vs in vss if vs.announce is not None
                        for obj, up in self.own.states(vs.announce).items()}
               for prefix, vss in self.sources.items()}
        return [{"prefix": st.prefix, "state": st.phase, "quorum": st.quorum,
                 "transitions": {phase: n for (p, phase), n in self.transitions.items()
                                 if p == st.prefix},
                 "held_s": (round(max(st.retry_at - now, 0.0), 1)
                            if st.retry_at is not None else None),
                 "own": own.get(prefix) or None,
                 "latency": (self.probe.status(st.prefix) if self.probe is not None
                             else None)}
                for prefix, st in self.states.items()]

    def sessions(self) -> list[dict[str, Any]] | None:
        """The BGP and BFD sessions as FRR reports them (:mod:`hafast.fleet.sessions`);
        None without a bgp_speaker block."""
        return self.watch.status() if self.watch is not None else None

    def frr_status(self) -> dict[str, Any] | None:
        """What hafast does with FRR (:mod:`hafast.fleet.frrlife`); None with
        frr_control none."""
        return self.frr.status() if self.frr is not None else None

    def _feed(self, key: str, event: Event) -> None:
        before = self.states[key]
        after, actions = step(before, event)
        self.states[key] = after
        for action in actions:
            self._apply(key, action)
        if after.retry_at is not None and after.retry_at != before.retry_at:
            # the quorum wants it announced and the flap control says not yet
            log.warning("announce %s: quorum is back; announcing held %.1f s more "
                        "(announce_hold_down / announce_max_changes_per_minute)",
                        after.prefix, after.retry_at - self.loop.time())
        if after.phase != before.phase:
            self.transitions[(after.prefix, after.phase)] += 1
            log.info("announce %s: %s -> %s", after.prefix, before.phase, after.phase)
            if self.on_change is not None:
                self.on_change(after.prefix, after.phase)

    def _apply(self, key: str, action: Action) -> None:
        # a route that really changed is measured until bgpd has put the change out
        # (a restart finding its route in place changes nothing: fail-static)
        if isinstance(action, Announce):
            if self.kernel.announce(action.prefix) and self.probe is not None:
                self.probe.begin(action.prefix, ANNOUNCE)
        elif isinstance(action, Withdraw):
            if self.kernel.withdraw(action.prefix) and self.probe is not None:
                self.probe.begin(action.prefix, WITHDRAW)
        elif isinstance(action, Drain):
            self.kernel.drain(action.prefix)
            if self.probe is not None:
                self.probe.cancel(action.prefix)
        elif isinstance(action, ArmTimer):
            self._timers.append(self.loop.call_at(action.at, self._tick, key, action.at))

    def _tick(self, key: str, at: float) -> None:
        # uvloop rounds a timer to whole milliseconds and may run it when loop.time()
        # is still just short of ``at``: the machine would take that for a stray tick
        # and stay held (a director left in STARTUP for good, seen in
        # tests/netns/test_fleet_bgp.py about one run in three).  The timer was for
        # ``at``, so that is the time it says.
        if key in self.states:
            self._feed(key, Tick(max(self.loop.time(), at)))


class FleetRunner:
    """The announcer alone: hafast's check engine and pool policy for the quorum, no
    IPVS, no scripts (``python -m hafast.fleet.runner``; the daemon wires
    :class:`Announcer` to its own pools instead)."""

    def __init__(self, config: m.Config, loop: Any, kernel: KernelRoutes,
                 on_change: Callable[[str, str], object] | None = None) -> None:
        self.config = config
        self.announcer = Announcer(loop, kernel, on_change)
        self.policy = PoolPolicy(config)
        self.engine = Engine(config, loop, self._on_event)
        # this engine is the one shard: its rounds go straight to the announcer
        self.rounds = RoundWatch(loop, lambda keys: self.announcer.rounds_done(0, keys))

    def start(self) -> None:
        self.policy.start(self.engine.snapshot())
        self.announcer.start(self.config, self.policy.quorum)
        self.engine.start()
        self.rounds.begin(self.engine.runner.checks, [vs.key for vs in self.announcer.vss])

    def stop(self) -> None:
        """Stop checking; the routes stay (fail-static: a restart decides again)."""
        self.rounds.stop()
        self.engine.stop()
        self.announcer.stop()

    async def shutdown(self) -> None:
        """SIGTERM, as the daemon's: every VIP drains (its drain_method, for its
        shutdown_drain_time) while the checks go on, then all are withdrawn and the FRR
        daemons hafast runs stop."""
        await self.announcer.close()
        self.rounds.stop()
        self.engine.stop()

    def phase(self, vs: m.VirtualServer) -> str:
        return self.announcer.phase(vs)

    def _on_event(self, event: ServerEvent) -> None:
        self.policy.on_event(event)
        self.announcer.sync(self.policy.quorum)


def _render(config: m.Config, out: str, hostname: str) -> int:
    """Write zebra.conf, bfdd.conf, bgpd.conf (for daemons started with ``-f``) and the
    integrated frr.conf into ``out``, after FRR's own check of the latter."""
    import os

    from hafast.fleet.frrconf import FrrConfigError, check, render_config

    conf = render_config(config, hostname=hostname)
    if conf is None:
        print("no bgp_speaker block: nothing to render")
        return 1
    os.makedirs(out, exist_ok=True)
    parts = {"frr.conf": conf.integrated, "zebra.conf": conf.zebra,
             "bfdd.conf": conf.bfdd, "bgpd.conf": conf.bgpd}
    for name, text in parts.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(text)
    try:
        check(os.path.join(out, "frr.conf"))
    except FrrConfigError as exc:
        print(exc)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m hafast.fleet.runner -f CONFIG``: announce until SIGTERM/SIGINT, which
    drain and withdraw as the daemon's SIGTERM does (a crash leaves the routes:
    fail-static).  ``--render DIR`` writes and checks FRR's config instead.
    """
    import argparse
    import signal

    from hafast.config.loader import load_file
    from hafast.lib.eventloop import new_loop

    ap = argparse.ArgumentParser(prog="python -m hafast.fleet.runner")
    ap.add_argument("-f", "--config", required=True)
    ap.add_argument("--render", metavar="DIR", help="write FRR's config files and exit")
    ap.add_argument("--hostname", default="")
    args = ap.parse_args(argv)
    res = load_file(args.config)
    for d in res.diagnostics:
        print(d.format())
    if not res.ok:
        return 1
    if args.render:
        return _render(res.config, args.render, args.hostname)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    loop = new_loop()
    kernel = KernelRoutes()
    runner = FleetRunner(res.config, loop, kernel)
    stopping: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if not stopping:  # a second signal changes nothing: the drain runs its course
            stopping.append(loop.create_task(runner.shutdown()))
            stopping[0].add_done_callback(lambda _t: loop.stop())

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    runner.start()
    try:
        loop.run_forever()
    finally:
        if not stopping:
            runner.stop()
        kernel.close()
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
