"""An instance's spec and plan: :mod:`hafast.vrrp.from_config`'s pure mapping plus
what comes from the I/O side (notify scripts, parsed ``virtual_routes``).

:class:`hafast.vrrp.worker.VrrpWorker` builds an instance from each
:class:`InstancePlan`: it resolves the source address, opens the transport
channel and binds the trackers.

Example::

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text("vrrp_instance V { interface lo\\n virtual_router_id 7\\n"
    ...                 " priority 90\\n }\\n").config
    >>> plan = plan_instances(cfg)[0]
    >>> plan.spec.params.priority, plan.channel.vrid, plan.channel.group.hex()
    (90, 7, 'e0000012')
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hafast.config.iproute import parse_route as parse_static_route
from hafast.config.iprule import parse_rule
from hafast.config.model import Config, GlobalDefs, TrackRef, VirtualAddress, VrrpInstance
from hafast.lib.notify import notify_scripts
from hafast.lib.units import US_PER_S
from hafast.net.vip import parse_route
from hafast.vrrp.from_config import ChannelConfig, channel_for, params_for
from hafast.vrrp.instance import InstanceSpec


@dataclass(frozen=True, slots=True)
class InstancePlan:
    spec: InstanceSpec
    channel: ChannelConfig
    track_interface: tuple[TrackRef, ...] = ()
    track_script: tuple[TrackRef, ...] = ()
    track_file: tuple[TrackRef, ...] = ()
    track_process: tuple[TrackRef, ...] = ()  # the instance's, then its sync group's
    track_primary: bool = True  # keepalived: the VRRP interface is tracked unless told not to
    promote_secondaries: bool = False


def spec_for(inst: VrrpInstance, gd: GlobalDefs) -> InstanceSpec:
    """Everything about ``inst`` its :class:`~hafast.vrrp.instance.Instance` needs."""
    return InstanceSpec(
        name=inst.name,
        ifname=inst.interface or gd.default_interface,
        family=inst.family,
        params=params_for(inst, gd),
        vips=inst.virtual_ipaddress,
        excluded=inst.virtual_ipaddress_excluded,
        routes=tuple(parse_route(r) for r in inst.virtual_routes),
        # the loader checked these and numbered those without a preference
        rules=tuple(parse_rule(r)[0] for r in inst.virtual_rules),
        scripts=notify_scripts(inst, gd.script_user),
        check_adv_addr=not inst.skip_check_adv_addr,
        # Global vrrp_notify_priority_changes is the default (keepalived).
        notify_priority_changes=inst.notify_priority_changes or gd.vrrp_notify_priority_changes,
        notify_deleted=inst.notify_deleted is not None,
        **extra_if_garp(inst, gd),
    )


def extra_if_garp(inst: VrrpInstance, gd: GlobalDefs) -> dict[str, Any]:
    """keepalived ``garp_extra_if SECONDS [all]`` (and global_defs'
    ``vrrp_garp_extra_if``, the default of an instance without it): while master, a
    gratuitous ARP/NA every SECONDS for one VIP on each *other* interface its VIPs sit
    on (vrrp.c ``vrrp_send_vmac_update``, run as an advert goes out).  keepalived
    2.2.7 turns it off (``vrrp_complete_instance``) unless some VIP is on a VMAC of its
    own (use_vmac_addr, which hafast does not make) or, with ``all``, on another
    interface than the instance's.

    >>> from hafast.config.model import VirtualAddress as V
    >>> inst = VrrpInstance("V", 1, interface="eth0", garp_extra_if=(10, True),
    ...     virtual_ipaddress=(V("10.0.0.1", 24, 4), V("10.1.0.1", 24, 4, dev="eth1"),
    ...                        V("10.1.0.2", 24, 4, dev="eth1")))
    >>> d = extra_if_garp(inst, GlobalDefs()); d["extra_if_garp_us"], len(d["extra_if_vips"])
    (10000000, 1)
    """
    setting = inst.garp_extra_if if inst.garp_extra_if is not None else gd.vrrp_garp_extra_if
    own = inst.interface or gd.default_interface
    # with vmac_xmit_base the macvlan is not where adverts go, and its own VIPs are
    # announced too (vrrp_send_vmac_update: "unless xmit_base")
    xmit_base = inst.use_vmac is not None and inst.vmac_xmit_base
    first: dict[str, VirtualAddress] = {}
    for v in inst.virtual_ipaddress + inst.virtual_ipaddress_excluded:
        if v.dev and v.dev != own:
            first.setdefault(v.dev, v)
        elif xmit_base and not v.dev and v.family == inst.family:
            first.setdefault("", v)
    if setting is None or not setting[0] or not setting[1] or not set(first) - {""}:
        return {}
    return {"extra_if_garp_us": setting[0] * US_PER_S, "extra_if_vips": tuple(first.values())}


def plan_instances(config: Config) -> list[InstancePlan]:
    """One :class:`InstancePlan` per ``vrrp_instance``, in file order."""
    gd = config.global_defs
    tracks = static_track_interfaces(config)
    return [
        InstancePlan(
            spec=spec_for(inst, gd),
            channel=channel_for(inst, gd),
            track_interface=with_static_tracks(inst.track_interface,
                                               tracks.get(inst.name, ())),
            track_script=inst.track_script,
            track_file=inst.track_file,
            track_process=track_process_refs(inst, config),
            track_primary=not inst.dont_track_primary,
            promote_secondaries=inst.promote_secondaries,
        )
        for inst in config.vrrp_instances
    ]


def static_track_interfaces(config: Config) -> dict[str, tuple[str, ...]]:
    """The interfaces each instance tracks through ``track_group``: keepalived 2.2.7's
    static_track_group_init adds every member of a group to the interface of each
    static address (its ``dev``, else default_interface), static route (``dev``) and
    static rule (``iif``) naming the group, with weight 0: the instance faults while
    that link is down.  A ``no_track`` entry adds nothing.

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text("track_group G { group { V } }\\n"
    ...     "static_routes { 10.6.0.0/16 dev eth1 track_group G }\\n"
    ...     "vrrp_instance V { interface lo\\n virtual_router_id 7\\n"
    ...     " no_virtual_ipaddress\\n }\\n").config
    >>> static_track_interfaces(cfg)
    {'V': ('eth1',)}
    """
    members = {g.name: g.group for g in config.track_groups}
    if not members:
        return {}
    pairs: list[tuple[str | None, str | None]] = []
    for v in config.static_ipaddress:
        if "no_track" not in v.options:
            pairs.append((v.track_group, v.dev or config.global_defs.default_interface))
    for words in config.static_routes:
        r = parse_static_route(words, static=True)
        pairs.append((r.track_group, r.dev))
    for words in config.static_rules:
        rule = parse_rule(words, static=True)[0]
        if not rule.no_track:
            pairs.append((rule.track_group, rule.iif))
    out: dict[str, list[str]] = {}
    for group, dev in pairs:
        if group is None or dev is None:
            continue
        for name in members.get(group, ()):
            if dev not in out.setdefault(name, []):
                out[name].append(dev)
    return {k: tuple(v) for k, v in out.items()}


def with_static_tracks(refs: tuple[TrackRef, ...], devs: tuple[str, ...]
                       ) -> tuple[TrackRef, ...]:
    """``refs`` plus ``devs`` at weight 0; a ``track_interface`` already naming one
    goes to weight 0 too (keepalived's add_vrrp_to_interface keeps one entry and
    takes the unweighted one).

    >>> with_static_tracks((TrackRef("eth1", 10),), ("eth1", "eth2"))
    (TrackRef(name='eth1', weight=0, reverse=False), TrackRef(name='eth2', weight=0, reverse=False))
    """
    if not devs:
        return refs
    out = [replace(r, weight=0) if r.name in devs else r for r in refs]
    out += [TrackRef(d, 0) for d in devs if d not in {r.name for r in refs}]
    return tuple(out)


def track_process_refs(inst: VrrpInstance, config: Config) -> tuple[TrackRef, ...]:
    """The processes ``inst`` tracks: its own ``track_process`` and its sync group's.

    keepalived (vrrp.c add_vrrp_to_track_process) tracks a process named by both once:
    with the group's weight, unless the instance's own is 0 (FAULT), which it keeps.

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text("vrrp_track_process P { process p\\n weight 5 }\\n"
    ...     "vrrp_instance V { interface lo\\n virtual_router_id 7\\n"
    ...     " no_virtual_ipaddress\\n track_process { P }\\n }\\n"
    ...     "vrrp_sync_group G { group { V }\\n track_process { P weight 9 }\\n }\\n").config
    >>> track_process_refs(cfg.vrrp_instances[0], cfg)
    (TrackRef(name='P', weight=9, reverse=False),)
    """
    defaults = {p.name: p.weight for p in config.track_processes}
    refs = {r.name: r for r in inst.track_process}
    for g in config.sync_groups:
        if inst.name not in g.group:
            continue
        for r in g.track_process:
            mine = refs.get(r.name)
            if mine is None:
                refs[r.name] = r
            elif (defaults.get(r.name, 0) if mine.weight is None else mine.weight) != 0:
                refs[r.name] = replace(mine, weight=r.weight)
    return tuple(refs.values())
