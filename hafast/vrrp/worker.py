"""The VRRP worker: every vrrp_instance of a Config, built and wired on one loop.

:class:`VrrpWorker` builds the instances (transport channels, VIP backend,
announcers, trackers, sync groups, notify) from :func:`hafast.vrrp.build.plan_instances`,
applies a reload as a diff and stops them cleanly.  It is started by
:class:`hafast.vrrp.side.VrrpSide`, which both the supervised VRRP worker
(``hafast.app.worker``) and the stand-alone ``python -m hafast.vrrp.daemon`` run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hafast.config.model import Config
from hafast.lib.notify import as_argv
from hafast.lib.units import NS_PER_US, US_PER_S
from hafast.net.linkwatch import LinkWatch, ipv6_link_local, mac_address, primary_ipv4
from hafast.net.noaccept import NftSettings, NoAcceptFilter
from hafast.net.promote import PromoteSecondaries
from hafast.net.statics import Statics
from hafast.net.vip import NetlinkVips, VipOps
from hafast.net.vmac import VmacLinks
from hafast.vrrp.alerts import AlertingNotifier
from hafast.vrrp.build import InstancePlan, plan_instances, static_track_interfaces
from hafast.vrrp.from_config import rx_bufs_of, startup_delay_us
from hafast.vrrp.fsm import State
from hafast.vrrp.instance import (
    STATE_WORDS,
    Announcer,
    Instance,
    InstanceSpec,
    NullAnnouncer,
    PacketAnnouncer,
    precise_timers,
)
from hafast.vrrp.pacing import GarpPacing
from hafast.vrrp.sync_group import SyncGroup
from hafast.vrrp.tracking import Tracking
from hafast.vrrp.transport import Transport
from hafast.vrrp.updown import link_delays
from hafast.vrrp.vipwatch import VipWatch

log = logging.getLogger("hafast.vrrp")


class VrrpWorker:
    """Everything the VRRP side of one process runs: built here, started by
    :meth:`hafast.vrrp.side.VrrpSide.start` (one :meth:`Instance.resume` each, then
    ``tracking.start()``), :meth:`reload`, :meth:`stop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: Config, *,
                 vips: VipOps | None = None) -> None:
        self.loop = loop
        self.config = config
        self.timers = precise_timers(loop)
        self.transport = Transport(loop, rx_bufs_of(config.global_defs))
        self._own_vips = vips is None
        self.vips: VipOps = NetlinkVips() if vips is None else vips
        self.linkwatch = LinkWatch(loop)
        self._set_link_delays(config)
        # RFC 5798 §6.4.3 no Accept_Mode: keepalived's tables, made once such an
        # instance is master.
        self.accept_filter = NoAcceptFilter(NftSettings.of(config.global_defs))
        # static_ipaddress/_routes/_rules: applied by VrrpSide at start and on reload,
        # removed at stop even under -V (keepalived's vrrp_terminate_phase2)
        # (and restored as keepalived restores them: hafast.net.statics)
        self.statics = Statics(loop=loop, linkwatch=self.linkwatch)
        # promote_secondaries: the interfaces we turned it on for, back to 0 at stop
        self.promote = PromoteSecondaries()
        # use_vmac: the macvlans, made as instances are built, deleted at stop.
        self.vmacs = VmacLinks()
        self._relink: set[str] = set()  # interfaces watched for a delete and return
        gd = config.global_defs
        fifos = [f[0] for f in (gd.notify_fifo, gd.vrrp_notify_fifo) if f]
        scripts = [as_argv(s) for f, s in ((gd.notify_fifo, gd.notify_fifo_script),
                                           (gd.vrrp_notify_fifo, gd.vrrp_notify_fifo_script))
                   if f]
        # The notify FIFOs and scripts, and keepalived's email alerts (vrrp/alerts.py).
        self.notifier = AlertingNotifier(loop, fifos, scripts, config=config)
        self.tracking = Tracking(loop, config, self.linkwatch)
        self.instances: list[Instance] = []
        self.groups: list[SyncGroup] = []
        self._announcers: dict[str, Announcer] = {}
        self._vmac_parent: dict[str, str] = {}  # macvlan -> parent: paced as its parent
        # garp_group and vrrp_garp/gna_interval: one pacer per link group, all instances
        self.pacing = GarpPacing(self.timers, config,
                                 lambda ifname: self._vmac_parent.get(ifname, ifname))
        self.stopped = False
        self.reloads = 0
        # Called with each instance a reload started (after it started): the
        # supervised worker hangs its state publisher here.
        self.on_started: Callable[[Instance], None] | None = None
        # keepalived vrrp_startup_delay: one instant for every instance, set when the
        # VRRP process starts (a respawned one too) and never by a reload.  A reload
        # within it starts its new instances delayed as well (keepalived's
        # vrrp_delayed_start_time is still set then).  A master resumed after a
        # restart is not held (Instance.resume), so the parent's deadline holds.
        uptime_us = time.clock_gettime_ns(time.CLOCK_BOOTTIME) // NS_PER_US  # /proc/uptime
        delay = startup_delay_us(config.global_defs, uptime_us)
        self.delayed_until_us = self.timers.now_us() + delay if delay else 0
        if delay:
            log.info("Delaying startup for %g seconds", delay / US_PER_S)
        for plan in plan_instances(config):
            inst = self._build(plan)
            if inst is not None:
                self.instances.append(inst)
        self._group()
        # a master whose VIP, virtual route or rule someone deletes steps down
        self.vipwatch = VipWatch(loop, lambda: self.instances, lambda: self.groups)
        self.vipwatch.follow()

    def _group(self) -> None:
        """(Re)build the sync groups over the running instances.

        A group that stays (by name) keeps the state it last reported, so a reload
        sends no second ``GROUP`` line for a state the world already saw."""
        reported = {g.name: g.state for g in self.groups}
        old = set(map(id, self.groups))
        for inst in self.instances:
            inst.listeners[:] = [f for f in inst.listeners
                                 if id(getattr(f, "__self__", None)) not in old]
        self.groups = []
        by_name = {i.name: i for i in self.instances}
        for g in self.config.sync_groups:
            members = [by_name[n] for n in g.group if n in by_name]
            if members:
                group = SyncGroup(g, members, self.notifier,
                                  self.config.global_defs.script_user)
                group.state = reported.get(g.name)
                self.groups.append(group)

    def _announcer(self, ifname: str) -> Announcer:
        ann = self._announcers.get(ifname)
        if ann is None:
            try:
                ann = PacketAnnouncer(self.loop, ifname, mac_address(ifname), self.pacing)
            except OSError as exc:
                log.warning("%s: no GARP/NA socket (%s); announcements disabled", ifname, exc)
                ann = NullAnnouncer()
            self._announcers[ifname] = ann
        return ann

    def _build(self, plan: InstancePlan) -> Instance | None:
        ch = plan.channel
        vmac = ch.vmac
        src = ch.src
        if not src:
            # With use_vmac the source is still the parent's (keepalived's too): the
            # macvlan carries only the VIPs (and, for IPv6, a copy of this address).
            base = vmac.parent if vmac is not None else ch.ifname
            found = primary_ipv4(base) if ch.family == 4 else ipv6_link_local(base)
            if found is None:
                log.error("%s: interface %s has no IPv%d %s address; instance not started",
                          plan.spec.name, base, ch.family,
                          "primary" if ch.family == 4 else "link-local")
                return None
            src = found
            ch = replace(ch, src=src)
        spec = replace(plan.spec, params=replace(plan.spec.params, src_addr=src))
        if vmac is not None:
            if not self.vmacs.ensure(spec.name, vmac, src if ch.family == 6 else None):
                log.error("%s: no VMAC interface %s; instance not started", spec.name,
                          vmac.name)
                return None
            # The VIPs without a dev go on the macvlan, and their gratuitous ARPs
            # leave from it with the virtual MAC (vmac_xmit_base moves only adverts).
            # An ipvlan carries only the adverts (VmacConfig.carries_vips).
            if vmac.carries_vips:
                spec = replace(spec, ifname=vmac.name)
            self._vmac_parent[vmac.name] = vmac.parent
        self._watch_relink(vmac.parent if vmac is not None else ch.ifname)
        if plan.promote_secondaries and vmac is None:  # a VMAC has it set anyway
            self.promote.want(spec.ifname)
        inst = Instance(spec, timers=self.timers, vips=self.vips,
                        announcer=self._announcer(spec.ifname), notifier=self.notifier)
        inst.accept_filter = self.accept_filter
        self.accept_filter.bind(spec.name, spec.ifname, dont_track_primary=not plan.track_primary)
        inst.delayed_until_us = self.delayed_until_us
        try:
            inst.sender = self.transport.channel(ch, inst.on_advert, inst.reject)
        except (OSError, ValueError) as exc:
            log.error("%s: cannot open the VRRP socket on %s: %s", spec.name, ch.ifname, exc)
            self._drop_vmac(spec.name)
            return None
        # The interface tracked is the configured one: a macvlan goes down with it.
        self.tracking.bind(inst, replace(plan, spec=replace(spec, ifname=plan.spec.ifname),
                                         channel=ch))
        return inst

    def stop(self) -> None:
        """Graceful stop: priority 0 from masters, VIPs released, notify STOP."""
        if self.stopped:
            return
        self.stopped = True
        self.tracking.close()
        self.linkwatch.close()
        self.vipwatch.close()  # the deletions to come are ours
        for group in self.groups:
            group.stopping = True
        for inst in self.instances:
            try:
                inst.stop()
            except Exception:
                log.exception("%s: stop failed", inst.name)
        try:
            self.vips.release_all()
        except Exception:
            log.exception("releasing VIPs failed")
        self.accept_filter.close()
        self.statics.release()
        self.promote.restore()
        if self._own_vips and isinstance(self.vips, NetlinkVips):
            self.vips.close()
        for ann in self._announcers.values():
            ann.close()
        self.pacing.close()
        self.transport.close()
        # After the last adverts (priority 0) left through them; -V keeps them, as the
        # VIPs it keeps live on them.
        self.vmacs.close(keep=bool(getattr(self.vips, "keep", False)))
        self.notifier.close()
        close = getattr(self.timers, "close", None)
        if close is not None:
            close()

    # -- reload -------------------------------------------------------------------

    def reload(self, config: Config) -> dict[str, int]:
        """Apply ``config`` as a diff (:func:`hafast.config.diff.diff`), like keepalived's
        SIGHUP: an unchanged instance is not touched (no transition, no notify); a
        removed one stops (priority 0 if master, VIPs released, notify STOP); a new
        one starts; a changed one is replaced by its successor in the same state (a
        master stays master with its VIPs up, no notification unless the state
        differs).  Returns the plan's counts.

        Example::

            worker.reload(load_file(path).config)   # {"keep": 2, "adopt": 0, ...}
        """
        from hafast.config.diff import diff

        plan = diff(self.config, config).vrrp_instances
        # The interfaces a track_group makes an instance track are written outside it:
        # an instance whose set changed is rebuilt in its state, as a changed one is.
        before, after = static_track_interfaces(self.config), static_track_interfaces(config)
        for pair in [(o, n) for o, n in plan.keep if before.get(o.name) != after.get(n.name)]:
            plan.keep.remove(pair)
            plan.adopt.append(pair)
        self.config = config
        self.reloads += 1
        self.pacing.configure(config)
        self.notifier.configure(config)
        self._set_link_delays(config)
        by_name = {i.name: i for i in self.instances}
        groups_were = {g.name: g.state for g in self.groups}
        for o in plan.remove:
            inst = by_name.pop(o.name, None)
            if inst is not None:
                self._take_out(inst, graceful=True)
        was: dict[str, Instance] = {}
        for o, _n in plan.adopt:
            inst = by_name.pop(o.name, None)
            if inst is not None:
                was[o.name] = inst
                self._take_out(inst, graceful=False)
        self.tracking.add_scripts(config)
        fresh = {n.name for n in plan.add} | set(was)
        for p in plan_instances(config):
            if p.spec.name not in fresh:
                continue
            old = was.get(p.spec.name)
            if old is not None:
                self._hand_over(old, p.spec)
            built = self._build(p)
            if built is None:
                continue
            self.instances.append(built)
            self._start_as(built, old.state if old is not None else None)
        # Channels came and went, and vrrp_rx_bufs_* may have changed: as keepalived
        # opens its sockets afresh on reload, each is sized again for its instances.
        self.transport.set_rx_bufs(rx_bufs_of(config.global_defs))
        # A track_file first named by this reload got its tracker in bind(); poll it.
        for ft in self.tracking.files.values():
            if getattr(ft, "_handle", None) is None:
                ft.start()
        self._group()
        self.vipwatch.follow()
        if config.global_defs.fifo_write_vrrp_states_on_reload:
            self._rewrite_states(groups_were, {n.name for n in plan.add})
        counts = plan.counts()
        log.info("reload: VRRP instances kept %(keep)d, changed %(adopt)d, added %(add)d, "
                 "removed %(remove)d", counts)
        return counts

    def _set_link_delays(self, config: Config) -> None:
        """interface_up_down_delays, shortened to what the instances allow (vrrp/updown)."""
        delays, said = link_delays(config)
        for line in said:
            log.info("%s", line)
        self.linkwatch.set_delays(delays)

    def _rewrite_states(self, groups_were: dict[str, State | None], added: set[str]) -> None:
        """keepalived ``fifo_write_vrrp_states_on_reload`` (vrrp_scheduler.c
        vrrp_init_state): the FIFOs get again the state of each sync group still in the
        one it had, then of each instance that was there before the reload, a master
        aside (keepalived's reload_master path writes nothing)."""
        for g in self.groups:
            was = groups_were.get(g.name)
            if was is not None and g.state is was and {m.state for m in g.members} == {was}:
                self.notifier.fifo_state("GROUP", g.name, STATE_WORDS.get(was, was.value), 0)
        order = {i.name: n for n, i in enumerate(self.config.vrrp_instances)}
        for inst in sorted(self.instances, key=lambda i: order.get(i.name, len(order))):
            if inst.name in added or inst.state in (State.MASTER, State.INITIALIZE):
                continue
            self.notifier.fifo_state("INSTANCE", inst.name,
                                     STATE_WORDS.get(inst.state, inst.state.value),
                                     inst.priority)

    def _take_out(self, inst: Instance, *, graceful: bool) -> None:
        if graceful:
            inst.delete()
        inst.retire()
        close = getattr(inst.sender, "close", None)
        if close is not None:
            close()
        inst.sender = None
        self.instances.remove(inst)
        if graceful:
            # Removed by a reload: its macvlan goes (a changed instance's successor
            # reuses it, so an ungraceful take-out keeps it).
            self._drop_vmac(inst.name)

    def _watch_relink(self, ifname: str) -> None:
        if ifname not in self._relink:
            self._relink.add(ifname)
            self.linkwatch.watch(ifname, lambda up: self._relinked(ifname) if up else None)

    def _relinked(self, parent: str) -> None:
        """``parent`` is up.  If it was deleted and made again (a new link of the
        same name), keepalived 2.2.7 makes its macvlans again and opens its sockets
        anew; so does this: the sockets and announcers bound to the old links
        (they bind by index) move to the new ones."""
        revived = self.vmacs.revive(parent)
        for ifname in (parent, *revived):
            if not self.transport.reopen(ifname) and ifname not in revived:
                continue
            log.info("%s: interface made again; its VRRP and ARP sockets reopened", ifname)
            old = self._announcers.pop(ifname, None)
            if old is None:
                continue
            new = self._announcer(ifname)
            for inst in self.instances:
                if inst.announcer is old:
                    inst.announcer = new
            old.close()

    def _drop_vmac(self, owner: str) -> None:
        held = set(self.vmacs.names)
        self.vmacs.release(owner)
        for name in held - set(self.vmacs.names):
            ann = self._announcers.pop(name, None)  # its packet socket's link is gone
            if ann is not None:
                ann.close()

    def _hand_over(self, old: Instance, new: InstanceSpec) -> None:
        """What the predecessor had up and its successor will not: take it down."""
        if old.state is not State.MASTER:
            return
        keep = set(new.vips + new.excluded)
        dropped = [v for v in old.spec.vips + old.spec.excluded if v not in keep]
        routes = [r for r in old.spec.routes if r not in set(new.routes)]
        rules = [r for r in old.spec.rules if r not in set(new.rules)]
        if dropped or routes or rules:
            self.vips.remove(old.name, dropped, routes, old.spec.ifname, rules)
        if old.filtered:
            # The successor filters again (before its VIPs) when it is master.
            self.accept_filter.unblock(old.name, old.spec.vips + old.spec.excluded)

    def _start_as(self, inst: Instance, was: State | None) -> None:
        """Start ``inst`` as its predecessor's successor (:meth:`Instance.resume`)."""
        # One process: the VIP backend still holds what the predecessor had up.
        inst.resume(was, adopt=False)
        if self.on_started is not None:
            self.on_started(inst)

    def stats(self) -> dict[str, Any]:
        return {"instances": [i.status() for i in self.instances],
                "sockets": self.transport.counters(),
                "statics_refused": self.statics.counters(),
                "alerts": self.notifier.counters(),
                "announce": {name: {"sent": getattr(a, "sent", 0),
                                    "dropped": getattr(a, "dropped", 0)}
                             for name, a in self._announcers.items()}}
