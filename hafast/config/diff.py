"""Reload as a diff: old model vs new model -> what to keep, adopt, add and remove.

Identity (what makes "the same thing" across a reload):

=====================  ===========================================================
vrrp_instance          its name
vrrp_sync_group,
vrrp_script, track_*   its name
virtual_server         (address, port, protocol), fwmark, or group name (``VirtualServer.key``)
real_server            (address, port) within its virtual server
checker                ``Checker.identity()``: kind and target (connect address/port,
                       url paths, script, ...), numbered when a real server has two alike
=====================  ===========================================================

Unchanged things are **keep** (their runtime state, health and kernel entries stay).
Same identity with changed settings is **adopt** when the change can be applied in place;
a change to a field listed in :data:`REPLACE_ON` (e.g. an instance's VRID or interface)
cannot, and becomes **remove** + **add**.  Keepalived does the same per object on SIGHUP
(``clear_diff_*``, ``migrate_checkers``).

>>> from hafast.config.loader import load_text
>>> a = load_text("vrrp_instance V { interface lo\\n virtual_router_id 7\\n }").config
>>> b = load_text("vrrp_instance V { interface lo\\n virtual_router_id 7\\n priority 9\\n}").config
>>> [x.name for x, _ in diff(a, b).vrrp_instances.adopt]
['V']
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, Generic, TypeVar

from hafast.config import model as m

T = TypeVar("T")


@dataclass(slots=True)
class Plan(Generic[T]):
    keep: list[tuple[T, T]] = field(default_factory=list)  # (old, new), equal
    adopt: list[tuple[T, T]] = field(default_factory=list)  # (old, new), same identity
    add: list[T] = field(default_factory=list)
    remove: list[T] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.adopt or self.add or self.remove)

    def counts(self) -> dict[str, int]:
        return {
            "keep": len(self.keep),
            "adopt": len(self.adopt),
            "add": len(self.add),
            "remove": len(self.remove),
        }


@dataclass(slots=True)
class ReloadPlan:
    global_defs_changed: bool = False
    static_changed: bool = False  # static_ipaddress / static_routes / static_rules
    vrrp_scripts: Plan[m.VrrpScript] = field(default_factory=Plan)
    track_files: Plan[m.TrackFile] = field(default_factory=Plan)
    track_processes: Plan[m.TrackProcess] = field(default_factory=Plan)
    vrrp_instances: Plan[m.VrrpInstance] = field(default_factory=Plan)
    sync_groups: Plan[m.SyncGroup] = field(default_factory=Plan)
    virtual_server_groups: Plan[m.VirtualServerGroup] = field(default_factory=Plan)
    virtual_servers: Plan[m.VirtualServer] = field(default_factory=Plan)
    # for each adopted virtual server (by key): its real servers
    real_servers: dict[Hashable, Plan[m.RealServer]] = field(default_factory=dict)
    # for each adopted real server (by (vs key, rs key)): its checkers
    checkers: dict[Hashable, Plan[m.Checker]] = field(default_factory=dict)
    # fleet mode (hafast extensions): the BGP speaker, and the announce blocks by prefix
    # (the announcer applies them as its own diff: hafast.fleet.runner.Announcer.reload)
    bgp_speaker_changed: bool = False
    announces: Plan[m.Announce] = field(default_factory=Plan)

    @property
    def changed(self) -> bool:
        return (
            self.global_defs_changed or self.static_changed or self.bgp_speaker_changed
            or any(p.changed for p in self._plans())
        )

    def _plans(self) -> Iterable[Plan[Any]]:
        yield from (
            self.vrrp_scripts,
            self.track_files,
            self.track_processes,
            self.vrrp_instances,
            self.sync_groups,
            self.virtual_server_groups,
            self.virtual_servers,
            self.announces,
        )
        yield from self.real_servers.values()
        yield from self.checkers.values()

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts per kind of object, e.g. for a reload log line."""
        rs: Plan[Any] = Plan()
        for p in self.real_servers.values():
            for name in ("keep", "adopt", "add", "remove"):
                getattr(rs, name).extend(getattr(p, name))
        out = {
            "vrrp_instances": self.vrrp_instances.counts(),
            "virtual_servers": self.virtual_servers.counts(),
            "real_servers (in adopted virtual servers)": rs.counts(),
        }
        if self.bgp_speaker_changed or any(self.announces.counts().values()):
            out["announces"] = self.announces.counts()
            out["bgp_speaker"] = {"changed": int(self.bgp_speaker_changed)}
        return out


# Fields whose change cannot be applied to a running object: it is replaced instead.
REPLACE_ON: dict[type, tuple[str, ...]] = {
    # RFC 5798 §5.2.3: the VRID (with the interface and family) is the router's identity
    m.VrrpInstance: ("virtual_router_id", "interface", "family", "version", "use_vmac",
                     "use_ipvlan"),
    m.VirtualServer: ("ip_family",),
    m.RealServer: (),
}


def changed_fields(old: Any, new: Any) -> tuple[str, ...]:
    """Names of the fields that differ between two objects of one model class.

    >>> from hafast.config.model import RealServer
    >>> changed_fields(RealServer("10.0.0.1", 80), RealServer("10.0.0.1", 80, weight=3))
    ('weight',)
    """
    return tuple(
        f.name for f in fields(old) if f.compare and getattr(old, f.name) != getattr(new, f.name)
    )


def _needs_replace(old: Any, new: Any) -> bool:
    for name in REPLACE_ON.get(type(old), ()):
        if getattr(old, name) != getattr(new, name):
            return True
    return type(old) is not type(new)


def diff_by(old: Iterable[T], new: Iterable[T], key: Callable[[T], Hashable]) -> Plan[T]:
    """Match ``old`` and ``new`` items by ``key``; equal -> keep, else adopt or replace."""
    plan: Plan[T] = Plan()
    before = {key(x): x for x in old}
    for n in new:
        o = before.pop(key(n), None)
        if o is None:
            plan.add.append(n)
        elif o == n:
            plan.keep.append((o, n))
        elif _needs_replace(o, n):
            plan.remove.append(o)
            plan.add.append(n)
        else:
            plan.adopt.append((o, n))
    plan.remove.extend(before.values())
    return plan


# Every VirtualServer field but its real servers (compared separately, once).
_vs_settings = attrgetter(
    *(f.name for f in fields(m.VirtualServer) if f.name not in ("real_servers", "where"))
)


def _name(x: Any) -> Hashable:
    name: Hashable = x.name
    return name


def _prefix(x: m.Announce) -> Hashable:
    return x.prefix


def _vs_key(x: m.VirtualServer) -> Hashable:
    return x.key


def _rs_key(x: m.RealServer) -> Hashable:
    return (x.address, x.port)


def _numbered(checkers: tuple[m.Checker, ...]) -> list[tuple[Hashable, m.Checker]]:
    """Checker identities, numbered so two alike checkers on one real server stay apart."""
    seen: dict[Hashable, int] = {}
    out: list[tuple[Hashable, m.Checker]] = []
    for c in checkers:
        ident = c.identity()
        n = seen.get(ident, 0)
        seen[ident] = n + 1
        out.append(((ident, n), c))
    return out


def diff_checkers(old: tuple[m.Checker, ...], new: tuple[m.Checker, ...]) -> Plan[m.Checker]:
    keyed_old = _numbered(old)
    keyed_new = _numbered(new)
    plan: Plan[m.Checker] = Plan()
    before = dict(keyed_old)
    for k, n in keyed_new:
        o = before.pop(k, None)
        if o is None:
            plan.add.append(n)
        elif o == n:
            plan.keep.append((o, n))
        else:
            plan.adopt.append((o, n))
    plan.remove.extend(before.values())
    return plan


def diff(old: m.Config, new: m.Config) -> ReloadPlan:
    """The reload plan from ``old`` to ``new``.

    Cost is one dict lookup and one equality test per object; a virtual server whose
    real servers are all unchanged is one ``==`` over its tuple of real servers.
    """
    plan = ReloadPlan(
        global_defs_changed=old.global_defs != new.global_defs or old.ssl != new.ssl,
        static_changed=(
            old.static_ipaddress != new.static_ipaddress
            or old.static_routes != new.static_routes
            or old.static_rules != new.static_rules
        ),
        vrrp_scripts=diff_by(old.vrrp_scripts, new.vrrp_scripts, _name),
        track_files=diff_by(old.track_files, new.track_files, _name),
        track_processes=diff_by(old.track_processes, new.track_processes, _name),
        vrrp_instances=diff_by(old.vrrp_instances, new.vrrp_instances, _name),
        sync_groups=diff_by(old.sync_groups, new.sync_groups, _name),
        virtual_server_groups=diff_by(old.virtual_server_groups, new.virtual_server_groups, _name),
        bgp_speaker_changed=old.bgp_speaker != new.bgp_speaker,
        announces=diff_by([vs.announce for vs in old.virtual_servers if vs.announce],
                          [vs.announce for vs in new.virtual_servers if vs.announce],
                          _prefix),
    )
    vsp = plan.virtual_servers
    before = {vs.key: vs for vs in old.virtual_servers}
    for n in new.virtual_servers:
        k = n.key
        o = before.pop(k, None)
        if o is None:
            vsp.add.append(n)
            continue
        if _vs_settings(o) == _vs_settings(n) and o.real_servers == n.real_servers:
            vsp.keep.append((o, n))
            continue
        if _needs_replace(o, n):
            vsp.remove.append(o)
            vsp.add.append(n)
            continue
        vsp.adopt.append((o, n))
        rsp = diff_by(o.real_servers, n.real_servers, _rs_key)
        plan.real_servers[k] = rsp
        for ors, nrs in rsp.adopt:
            if ors.checkers != nrs.checkers:
                plan.checkers[(k, _rs_key(nrs))] = diff_checkers(ors.checkers, nrs.checkers)
    vsp.remove.extend(before.values())
    return plan
