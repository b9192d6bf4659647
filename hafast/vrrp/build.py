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

from hafast.config.iprule import parse_rule
from hafast.config.model import Config, GlobalDefs, TrackRef, VrrpInstance
from hafast.lib.notify import notify_scripts
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
    )


def plan_instances(config: Config) -> list[InstancePlan]:
    """One :class:`InstancePlan` per ``vrrp_instance``, in file order."""
    gd = config.global_defs
    return [
        InstancePlan(
            spec=spec_for(inst, gd),
            channel=channel_for(inst, gd),
            track_interface=inst.track_interface,
            track_script=inst.track_script,
            track_file=inst.track_file,
            track_process=track_process_refs(inst, config),
            track_primary=not inst.dont_track_primary,
            promote_secondaries=inst.promote_secondaries,
        )
        for inst in config.vrrp_instances
    ]


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
