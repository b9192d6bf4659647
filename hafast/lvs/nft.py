"""The pool on nftables, for kernels without IPVS (the same model, another data path).

One table of hafast's own (``inet hafast_lvs`` by default):

- ``prerouting`` (nat, dstnat) dispatches through three verdict maps: ``svc4`` and
  ``svc6`` keyed by ``daddr . l4proto . dport``, ``svcmark`` by the packet mark;
- each service is a chain holding ONE rule: DNAT to a destination picked from its
  slot map (``<chain>_sp``), where each destination owns ``weight`` of the slots
  ``0 .. sum(weights) - 1`` (:mod:`hafast.lvs.nft_slots`).  A change of destinations
  is a few map elements (and the rule again when the number of slots grew), in
  one atomic transaction with the rest of the batch; a rule whose slots shrank is
  narrowed a moment later (NARROW_AFTER), once for a burst of DOWNs, the slots
  past the table lent meanwhile to servers still in it; adding or removing a service is
  one dispatch element, a chain and its map.  A service of more than
  :data:`~hafast.lvs.nft_slots.MAX_SLOTS` slots, or a fwmark one naming ports,
  keeps an anonymous map of ranges in its rule, rewritten whole on each change.

Schedulers map onto what nftables can pick with:

==================  =============================================================
rr, wrr             ``numgen inc mod W``: weighted round robin, deterministic
sh, dh, mh          ``jhash ip saddr mod W``: the same client sticks to a server
anything else       ``numgen random mod W`` (nftables has no connection counts:
                    lc/wlc/sed/nq/... become weighted random)
==================  =============================================================

A persistent service (``persistence_timeout``) keeps a set of clients per real server
with the timeout, masked by ``persistence_granularity``: IPVS's templates as nft sets
(:mod:`hafast.lvs.nft_text`); a new client is placed by the scheduler's pick.

LVS-DR is direct routing from a ``netdev`` ingress hook (:mod:`hafast.lvs.nft_dr`:
the real server's MAC written into the frame, no connection table).

Limits, said plainly: TUN is IPVS-only (such destinations are DNAT-ed, as are DR ones
under a fwmark or mixed with NAT), a persistence timeout counted from a client's last
new connection (and for DR, a hash of the client address), no thresholds, no
lvs_timeouts (conntrack's own apply).  Weight 0 drains as in IPVS: no new
connections, established ones keep their conntrack entry.  :func:`limits` says each
of these per virtual server.

The table is hafast's alone: :meth:`NftBackend.open` recreates it, so a restart
starts from a clean table (live connections keep their NAT in conntrack), and a
graceful stop deletes it (:meth:`NftBackend.release`) unless ``-I``
(``--dont-release-ipvs``) keeps it, content and all.
Scripts run through libnftables (ctypes) in the calling thread, so in that
thread's network namespace.

Example::

    b = NftBackend()
    await b.open()
    await b.apply(diff(await b.dump(), desired))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hafast.config import model as m
from hafast.lib import memtrim
from hafast.lvs import nft_dr, nft_slots, nft_text
from hafast.lvs.backend import (
    ADD_DEST,
    ADD_SERVICE,
    DEL_DEST,
    DEL_SERVICE,
    Change,
    Dest,
    DestKey,
    Pool,
    Service,
    ServiceKey,
    Timeouts,
    family_of,
    netmask_prefix,
)
from hafast.lvs.nft_slots import MAX_SLOTS, SlotTable
from hafast.lvs.nft_text import PICKERS, chain_name, dest_target, pick_rule, service_rule
from hafast.lvs.nft_text import names_port as _names_port
from hafast.net.neighbours import Neighbours
from hafast.net.nftables import Nft

if TYPE_CHECKING:
    import asyncio

__all__ = ["NftBackend", "chain_name", "limits", "service_rule"]

log = logging.getLogger("hafast.lvs")

TABLE = "hafast_lvs"
# A shrunk slot map's rule is rewritten this long after the first verdict that shrank
# it (NftBackend._narrow): once for a burst of verdicts, not with each of them.
NARROW_AFTER = 0.1
NARROW_RETRY = 1.0  # after nft refused the rewrite
SCRIPT_KEPT = 4096  # of each recent transaction kept for debugging (NftBackend.scripts)
TRIM_FROM = 64 * 1024  # a transaction this long is followed by hafast.lib.memtrim.trim()
# How a direct-routed flow is placed (hafast.lvs.nft_dr), said by limits().
DR_PLACEMENT: dict[str, str] = {
    "sh": "each client by a hash of its address",
    "dh": "each packet by a hash of its destination address",
}
# How each scheduler's pick differs from IPVS's (said at start, see limits()).
PICK_NOTES: dict[str, str] = {
    "sh": "hashes the client address (jhash), not IPVS's weighted table",
    "dh": "hashes the destination address (jhash), not IPVS's weighted table",
    "mh": "hashes the client address (jhash), not a Maglev table: flows moved between "
          "directors do not keep their real server",
}


def limits(config: m.Config) -> list[str]:
    """What this config asks that the nftables path does not do as IPVS would, one line
    each.  The daemon logs these when the pool starts on nftables and after a reload
    (:mod:`hafast.lvs.manager`); ``hafast -t`` prints them when nftables is the backend
    the daemon would take on that machine (:mod:`hafast.app.hostcheck`).

    >>> from hafast.config.loader import load_text
    >>> cfg = load_text('''virtual_server 192.0.2.1 80 {
    ...   lvs_sched wlc
    ...   lvs_method DR
    ...   persistence_timeout 60
    ...   real_server 10.1.0.1 80 { }
    ... }''').config
    >>> [line.split(": ", 1)[1][:30] for line in limits(cfg)]
    ['lvs_method DR on nftables rout', 'persistence_timeout 60 with lv']
    >>> limits(load_text('''virtual_server 192.0.2.1 80 {
    ...   lvs_sched wlc
    ...   real_server 10.1.0.1 80 { }
    ... }''').config)
    ['virtual_server 192.0.2.1 80: lvs_sched wlc picks at weighted random (nftables \
counts no connections)']
    """
    out: list[str] = []
    gd = config.global_defs
    for vs in config.virtual_servers:
        name = f"virtual_server {vs.label}"
        rs_methods = {rs.lvs_method for rs in vs.real_servers}
        methods = sorted({vs.lvs_method, *rs_methods} - {"NAT"})
        direct = methods == ["DR"] and vs.fwmark is None and rs_methods <= {"DR"}
        if direct:
            placed = DR_PLACEMENT.get("sh" if vs.persistence_timeout else vs.lvs_sched,
                                      f"each flow by a hash of its addresses and ports, "
                                      f"not by lvs_sched {vs.lvs_sched}")
            out.append(f"{name}: lvs_method DR on nftables routes from an ingress hook "
                       f"without a connection table ({placed}), so a change of the pool can "
                       "move established flows, and the real servers must be on a directly "
                       "connected network")
        elif methods:
            why = ("a fwmark is set after the ingress hook where nftables direct-routes"
                   if methods == ["DR"] and vs.fwmark is not None
                   else "its real servers' methods are mixed" if methods == ["DR"]
                   else "IPVS-only")
            out.append(f"{name}: lvs_method {'/'.join(methods)} is {why}: nftables DNATs "
                       "to those real servers (NAT), so their replies must come back through "
                       "this director")
        fam = family_of(vs.address) if vs.address else 6 if vs.ip_family == "inet6" else 4
        masked = netmask_prefix(vs.persistence_granularity, fam) < (32 if fam == 4 else 128)
        if vs.persistence_timeout and direct:
            out.append(f"{name}: persistence_timeout {vs.persistence_timeout} with lvs_method "
                       "DR is a hash of the client address on nftables: a client keeps its "
                       "real server while the real servers and weights are unchanged, with "
                       "no timeout")
            if masked:
                out.append(f"{name}: persistence_granularity {vs.persistence_granularity} "
                           "with lvs_method DR is IPVS-only: nftables hashes whole client "
                           "addresses")
        elif vs.persistence_timeout:
            out.append(f"{name}: persistence_timeout {vs.persistence_timeout} counts from a "
                       "client's last new connection on nftables (a set of clients per real "
                       "server), where IPVS counts from the end of its last connection")
        if direct:
            pass  # the DR line above says how a flow is placed
        elif vs.lvs_sched in PICK_NOTES:
            flags = f" ({', '.join(vs.sched_flags)} ignored)" if vs.sched_flags else ""
            out.append(f"{name}: lvs_sched {vs.lvs_sched} {PICK_NOTES[vs.lvs_sched]}{flags}")
        elif vs.lvs_sched not in PICKERS:
            out.append(f"{name}: lvs_sched {vs.lvs_sched} picks at weighted random "
                       "(nftables counts no connections)")
        if vs.ops:
            out.append(f"{name}: ops is IPVS-only: each connection, not each packet, is "
                       "scheduled")
        if any(rs.uthreshold or rs.lthreshold for rs in vs.real_servers):
            out.append(f"{name}: uthreshold/lthreshold are IPVS-only and not applied")
    if gd.lvs_timeouts.tcp or gd.lvs_timeouts.tcpfin or gd.lvs_timeouts.udp:
        out.append("lvs_timeouts is IPVS-only: conntrack's own timeouts apply")
    if gd.lvs_sync_daemon is not None:
        out.append("lvs_sync_daemon is IPVS-only: no connection is synchronised to a peer")
    return out


class NftBackend:
    """The pool as nftables DNAT maps.  ``messages`` counts nft transactions."""

    name = "nft"
    limits = staticmethod(limits)

    def __init__(self, table: str = TABLE, *, nft: Nft | None = None,
                 neighbours: Neighbours | None = None) -> None:
        self.table = table
        self.dr_table = table + nft_dr.SUFFIX
        self.nft = nft or Nft()
        # LVS-DR (hafast.lvs.nft_dr): the netdev table's services, hook and lookups
        self.dr = nft_dr.DirectRouting(self.dr_table, neighbours or Neighbours())
        self._dr_timer: asyncio.TimerHandle | None = None
        self.messages = 0
        self.seconds = 0.0
        self.pool = Pool()  # what the table holds (it is ours alone)
        # The NAT services' slot maps (hafast.lvs.nft_slots): the table and whether it
        # names ports; (None, _) after a failed transaction (the map may be there).
        self.slots: dict[ServiceKey, tuple[SlotTable | None, bool]] = {}
        # The services whose rule still picks ``mod W`` from a wider map than their
        # table (slots lent, SlotTable.lent): W, until _narrow rewrites the rule.
        self.ruled: dict[ServiceKey, int] = {}
        self._narrow_timer: asyncio.TimerHandle | None = None
        # The last few transactions, for debugging: their first SCRIPT_KEPT characters.
        # Whole, each was every destination of the services it rewrote, and ten of
        # them were ~2.5 MB of the parent at 10,000 real servers (issue 16).
        self.scripts: list[str] = []
        self._fresh = False  # opened, the skeleton not yet sent (see open)

    def _run(self, lines: list[str]) -> None:
        if self._fresh:
            lines = [*self.skeleton(), *lines]
        if not lines:
            return
        script = "\n".join(lines) + "\n"
        t0 = time.perf_counter()
        self.messages += 1
        try:
            self.nft.run(script)
        finally:
            self.seconds += time.perf_counter() - t0
            if len(script) >= TRIM_FROM:
                # libnftables parsed it into many C buffers, freed now but kept
                # mapped by glibc; a sub-millisecond walk hands them back
                memtrim.trim()
        self._fresh = False
        kept = script if len(script) <= SCRIPT_KEPT else (
            f"{script[:SCRIPT_KEPT]}... ({len(script)} characters)\n")
        self.scripts = [*self.scripts[-9:], kept]

    def skeleton(self) -> list[str]:
        t = self.table
        return [
            f"table inet {t}",
            f"delete table inet {t}",
            f"table inet {t} {{",
            "  map svc4 { type ipv4_addr . inet_proto . inet_service : verdict; }",
            "  map svc6 { type ipv6_addr . inet_proto . inet_service : verdict; }",
            "  map svcmark { type mark : verdict; }",
            "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;",
            "    ip daddr . meta l4proto . th dport vmap @svc4",
            "    ip6 daddr . meta l4proto . th dport vmap @svc6",
            "    meta mark vmap @svcmark",
            "  }",
            "}",
            *nft_dr.skeleton(self.dr_table),
        ]

    async def open(self) -> None:
        # The skeleton goes out with the first pool, in the same transaction: run
        # alone, it replaced a predecessor's table (left by a killed parent) with an
        # empty one, and every healthy server was out of the pool until the next
        # transaction, 70 ms later with 1,000 servers (issue 17, chaos tests).
        self._fresh = True
        self.pool = Pool()
        self.slots = {}
        self._forget_narrow()
        self._forget_dr()

    async def close(self) -> None:
        """A rule still to narrow is narrowed now (the table stays, with ``-I``);
        nothing else to close (libnftables opens a context per script)."""
        if self.ruled:
            self._narrow()
        self._forget_narrow()

    async def release(self) -> None:
        """Delete the table we made: the manager has removed every service, and an
        empty table left behind after SIGTERM is ours to clean up (keepalived leaves
        nothing of its own in IPVS either)."""
        self._run([f"table inet {self.table}", f"delete table inet {self.table}",
                   f"table netdev {self.dr_table}", f"delete table netdev {self.dr_table}"])
        self.pool = Pool()
        self.slots = {}
        self._forget_narrow()
        self._forget_dr()

    def _forget_narrow(self) -> None:
        self.ruled = {}
        if self._narrow_timer is not None:
            self._narrow_timer.cancel()
            self._narrow_timer = None

    def _forget_dr(self) -> None:
        self.dr.reset()
        if self._dr_timer is not None:
            self._dr_timer.cancel()
            self._dr_timer = None

    async def dump(self) -> Pool:
        return self.pool.copy()

    async def flush(self) -> None:
        await self.open()

    async def set_timeouts(self, timeouts: Timeouts) -> None:
        """lvs_timeouts are IPVS settings; conntrack's own timeouts apply here."""

    def _lines_for(self, key: ServiceKey, prior: tuple[Service | None, list[Dest]],
                   dr: set[ServiceKey], moved: set[DestKey] | None = None) -> list[str]:
        """The lines that make ``key``'s chain as ``self.pool`` now has it, from
        ``prior`` (:meth:`_prior`: what the table held); ``dr`` (the services in the
        netdev table) is updated to match.  ``moved``: the destinations that
        changed (None: any may have)."""
        svc = self.pool.services.get(key)
        held = self.pool.dests.get(key, {})
        # (is_dr stops at the first NAT destination: O(1) for a NAT service)
        direct = svc is not None and nft_dr.is_dr(key, held.values())
        present = prior[0] is not None
        was_nat = present and key not in dr
        if not direct:
            self.dr.forget(key)
        lines: list[str] = []
        if present and (svc is None or direct != (key in dr)):
            # gone, or moving between the NAT table and the DR one (lvs_method changed)
            family, table, (mapname, element) = (
                ("netdev", self.dr_table, nft_dr.element(key)) if key in dr
                else ("inet", self.table, nft_text.element(key)))
            chain = chain_name(key)
            lines += [f"delete element {family} {table} {mapname} {{ {element} }}",
                      f"flush chain {family} {table} {chain}",
                      f"delete chain {family} {table} {chain}"]
            lines += self._drop_slots(key)
            if was_nat:
                lines += nft_text.persistent_leftovers(self.table, *prior, None, [])
            dr.discard(key)
            present = False
        if svc is None:
            return lines
        if direct:
            dr.add(key)
            return lines + self.dr.chain_lines(key, self.dr.rule_of(key, svc, list(held.values())),
                                               present)
        t = self.table
        chain = chain_name(key)
        mapname, element = nft_text.element(key)
        if not present:
            lines += [f"add chain inet {t} {chain}",
                      f"add element inet {t} {mapname} {{ {element} : jump {chain} }}"]
        if svc.timeout > 0:  # persistence: a set of clients per real server (nft_text)
            dests = list(held.values())
            if present:
                lines.append(f"flush chain inet {t} {chain}")
            lines += self._drop_slots(key)
            lines += nft_text.persistent_objects(t, svc, dests)
            lines += [f"add rule inet {t} {chain} {rule}"
                      for rule in nft_text.persistent_rules(svc, dests)]
        else:
            lines += self._slot_lines(key, svc, held, prior[0] if present else None, moved)
        if was_nat and present:
            lines += nft_text.persistent_leftovers(self.table, *prior, svc, held.values())
        return lines

    def _slot_lines(self, key: ServiceKey, svc: Service, held: dict[DestKey, Dest],
                    before: Service | None, moved: set[DestKey] | None) -> list[str]:
        """A NAT service's chain and slot map (:mod:`hafast.lvs.nft_slots`): only the
        elements of the destinations in ``moved`` when the map is known and keeps its
        kind, and the rule when the width or the scheduler changed; else all of it."""
        t = self.table
        chain = chain_name(key)
        names = _names_port(key, held.values())
        mapname = nft_slots.map_name(chain, names)

        def text(dk: DestKey) -> str:
            return dest_target(key, dk, names)

        present = before is not None
        table, had = self.slots.get(key, (None, False))
        if (table is not None and moved is not None and before is not None
                and before.timeout <= 0 and had == names):
            changed = {}
            width = table.width
            for dk in moved:
                d = held.get(dk)
                changed[dk] = w = d.weight if d is not None and d.weight > 0 else 0
                width += w - table.weight(dk)
            if width <= MAX_SLOTS:
                was = table.width
                ruled = self.ruled.get(key, was)
                deletes, adds = table.update(changed)
                # A rule that would only narrow stays as it is (the slots past the
                # table lent to destinations still in it) and is rewritten by
                # _narrow: adding a rule that names a map of 10,000 elements is
                # ~1.5 ms, and each verdict of a burst paid it before the next one
                # reached the kernel (issue 16).  Slots lent before go in any case.
                now = table.width
                keep = ruled if before == svc and 0 < now <= ruled else now
                lines = nft_slots.element_lines(t, mapname, [*deletes, *range(was, ruled)],
                                                [*adds, *table.lent(keep)], text)
                if keep != ruled or before != svc:
                    lines += [f"flush chain inet {t} {chain}",
                              *self._rule_lines(key, svc, names, now)]
                self._lend(key, keep, now)
                return lines
        # the whole service written again
        lines = [f"flush chain inet {t} {chain}"] if present else []
        lines += self._drop_slots(key)
        live = sorted((d for d in held.values() if d.weight > 0), key=lambda d: d.key)
        typeof = nft_slots.map_type(key, names)
        if typeof is None or sum(d.weight for d in live) > MAX_SLOTS:
            anon = service_rule(svc, live)  # the anonymous map of ranges
            return lines + ([] if anon is None else [f"add rule inet {t} {chain} {anon}"])
        table = SlotTable()
        self.slots[key] = (table, names)
        lines.append(f"add map inet {t} {mapname} {{ {typeof}; }}")
        lines += nft_slots.element_lines(t, mapname, *table.update(
            {d.key: d.weight for d in live}), text)
        return lines + self._rule_lines(key, svc, names, table.width)

    def _rule_lines(self, key: ServiceKey, svc: Service, names: bool, width: int) -> list[str]:
        """The service chain's one rule: pick one of ``width`` slots of its map."""
        if not width:
            return []
        mapname = nft_slots.map_name(chain_name(key), names)
        return [f"add rule inet {self.table} {chain_name(key)} "
                f"{pick_rule(svc, names, width, '@' + mapname)}"]

    def _lend(self, key: ServiceKey, ruled: int, width: int) -> None:
        """Note that ``key``'s rule picks from ``ruled`` slots where its table has
        ``width``, and have :meth:`_narrow` rewrite it soon."""
        if ruled <= width:
            self.ruled.pop(key, None)
            return
        self.ruled[key] = ruled
        if self._narrow_timer is None:
            self._arm_narrow(NARROW_AFTER)

    def _arm_narrow(self, delay: float) -> None:
        import asyncio  # as in _arm_dr_timer

        self._narrow_timer = asyncio.get_running_loop().call_later(delay, self._narrow)

    def _narrow(self) -> None:
        """Each rule left wider than its table (:meth:`_slot_lines`) rewritten to the
        table's width and the lent slots deleted, all in one transaction.  If nft
        refuses, the lent slots still name destinations in the pool: tried again a
        moment later."""
        self._narrow_timer = None
        t = self.table
        lines: list[str] = []
        done: dict[ServiceKey, int] = {}
        for key, ruled in self.ruled.items():
            table, names = self.slots.get(key, (None, False))
            svc = self.pool.services.get(key)
            if table is None or svc is None or not 0 < table.width < ruled:
                continue  # written whole since, or to be (see _drop_slots, apply)
            chain = chain_name(key)
            lines += nft_slots.element_lines(t, nft_slots.map_name(chain, names),
                                             range(table.width, ruled), [], str)
            lines += [f"flush chain inet {t} {chain}",
                      *self._rule_lines(key, svc, names, table.width)]
            done[key] = ruled
        self.ruled = {}
        try:
            self._run(lines)
        except Exception:
            log.exception("pool on nft: narrowing the rules of %d services failed", len(done))
            self.ruled = done
            if done:
                self._arm_narrow(NARROW_RETRY)

    def _drop_slots(self, key: ServiceKey) -> list[str]:
        """The lines that delete ``key``'s slot map, if it has one (after its chain
        was flushed: the rule refers to it).  A map whose transaction failed may or
        may not be there: it is added first so that the delete cannot fail."""
        known = self.slots.pop(key, None)
        self.ruled.pop(key, None)
        if known is None:
            return []
        chain = chain_name(key)
        t = self.table
        if known[0] is not None:
            return [f"delete map inet {t} {nft_slots.map_name(chain, known[1])}"]
        lines = []
        for names in (True, False):
            typeof = nft_slots.map_type(key, names)
            if typeof is not None:
                mapname = nft_slots.map_name(chain, names)
                lines += [f"add map inet {t} {mapname} {{ {typeof}; }}",
                          f"delete map inet {t} {mapname}"]
        return lines

    def _dr_tick(self) -> None:
        """Every DR service's real servers looked up again; the chains whose rule
        changed and the hook rewritten (hafast.lvs.nft_dr.DirectRouting.tick)."""
        self._dr_timer = None
        try:
            lines, hooked = self.dr.tick(self.pool)
            self._run(lines)
            self.dr.sent(self.dr.services, hooked)
        except Exception:  # nft refused: said, and tried again at the next tick
            self.dr.failed()
            log.exception("pool on nft: rewriting the DR services failed")
        self._arm_dr_timer()

    def _arm_dr_timer(self) -> None:
        """The next tick when DirectRouting.delay says; one armed sooner stays (pool
        changes every second must not keep pushing the 30 s look back)."""
        import asyncio  # here: hafast -t imports this module for limits(), without a loop

        delay = self.dr.delay()
        loop = asyncio.get_running_loop()
        timer = self._dr_timer
        if timer is not None:
            if delay is not None and timer.when() <= loop.time() + delay:
                return
            timer.cancel()
            self._dr_timer = None
        if delay is not None:
            self._dr_timer = loop.call_later(delay, self._dr_tick)

    async def apply(self, changes: Sequence[Change]) -> int:
        """All ``changes`` in ONE nft transaction (each touched service rewritten, or
        only its slot map's elements; a rule left wider is narrowed later, by
        :meth:`_narrow`).  Nothing to change right after :meth:`open`: the table is
        made now."""
        if not changes:
            self._run([])
            return 0
        moved: dict[ServiceKey, set[DestKey]] = {}
        implied: dict[ServiceKey, Change] = {}
        for c in changes:
            key = c.service.key
            if key not in moved:
                moved[key] = set()
            if c.dest is not None:  # a destination implies its service
                if key not in self.pool.services:
                    implied.setdefault(key, Change(ADD_SERVICE, c.service))
                moved[key].add(c.dest.key)
        # what the lines need of the table as it is: each service, and the
        # destinations of a persistent one (their sets may have to go)
        prior = {key: self._prior(key) for key in moved}
        # self.pool is changed in place and put back if nft refuses (a copy of a
        # touched service was O(its destinations) per transaction)
        undo = self.pool.apply_undoable([*implied.values(), *changes])
        dr = set(self.dr.services)
        try:
            lines: list[str] = []
            for key, dests in moved.items():
                lines += self._lines_for(key, prior[key], dr, dests)
            hook, hooked = self.dr.hook_lines(dr)
            # hooked after the chains it jumps to exist, unhooked before they go
            self._run([*lines, *hook] if dr else [*hook, *lines])
        except BaseException:
            undo()
            self.dr.failed()
            for key in moved:  # its map may or may not be there now (_drop_slots)
                self.slots[key] = (None, False)
                self.ruled.pop(key, None)
            raise
        self.dr.sent(dr, hooked)
        self._arm_dr_timer()
        return len(changes)

    def _prior(self, key: ServiceKey) -> tuple[Service | None, list[Dest]]:
        before = self.pool.services.get(key)
        if before is None or before.timeout <= 0:
            return before, []
        return before, list(self.pool.dests.get(key, {}).values())

    async def ensure_service(self, service: Service) -> None:
        await self.apply([Change(ADD_SERVICE, service)])

    async def remove_service(self, service: Service) -> None:
        await self.apply([Change(DEL_SERVICE, service)])

    async def ensure_dest(self, service: Service, dest: Dest) -> None:
        await self.apply([Change(ADD_DEST, service, dest)])

    async def remove_dest(self, service: Service, dest: Dest) -> None:
        await self.apply([Change(DEL_DEST, service, dest)])

    def listing(self) -> str:
        """``nft list table`` text, for tests and ``hafast status``."""
        return self.nft.run(f"list table inet {self.table}")
