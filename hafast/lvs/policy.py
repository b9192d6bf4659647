"""Pure pool policy: real-server health + the configuration -> the desired pool.

No sockets, no loop, no clock of its own: the caller feeds it the check engine's
:class:`~hafast.lib.events.ServerEvent` s (each carries its own time) and gets back
the notify actions to run and the services whose desired state changed; the
desired :class:`~hafast.lvs.backend.Pool` is :attr:`PoolPolicy.pool`.  Each notify
comes after the transition behind it (:class:`RsMoved`, :class:`QuorumMoved`): the
email alerts (:mod:`hafast.lvs.alerts`) read those, so what is reported at start,
at a reload and on each event is decided here once.

keepalived's rules, as ``check/ipwrapper.c`` applies them:

- a live real server is in the pool with its (effective) weight; a dead one is
  removed, or kept at weight 0 with ``inhibit_on_failure``;
- quorum: the live weights summed.  While the quorum is up it is lost when the sum
  falls below ``quorum - hysteresis`` (or to 0); while down it is gained again at
  ``quorum + hysteresis``.  Losing runs ``quorum_down`` and writes ``VS ... DOWN``;
  gaining runs ``quorum_up`` and writes ``VS ... UP``.  Every virtual server starts
  with its quorum down, so one met at start (or added by a reload) is reported
  gained; one not met is reported only with a sorry server.  A reload reports
  what keepalived's clear_diff_services does (:meth:`PoolPolicy._reload_removals`);
- with a ``sorry_server``, losing the quorum takes the live real servers out and
  puts the sorry server in (weight 1); gaining does the reverse.  With
  ``sorry_server_inhibit`` the sorry server stays in at weight 0 instead of being
  removed.  Without a sorry server the live real servers stay;
- ``alpha``: real servers start dead until their checks pass (the engine's initial
  health says so; :meth:`PoolPolicy.start` takes it).  An alpha checker's first
  result is reported even when it changes nothing (update_svr_checker_state): a
  server whose first check fails writes ``RS ... DOWN`` and runs ``notify_down``,
  with no kernel or quorum change.  Once per real server (keepalived: once per alpha
  checker), and not again after a reload unless its checkers changed.  A real
  server without checkers has nothing to wait for and starts alive;
- ``omega``: on shutdown the RS and quorum notifiers run for what goes away;
- ``ha_suspend``: while none of the virtual server's addresses is on this box (a
  BACKUP director), its checks count for nothing and its services are left out
  of the kernel; the last result of each real server meanwhile is held and
  applied, with its notifies, once the address arrives (keepalived re-enables the
  checker then, and its first result is such a transition);
- ``uthreshold`` / ``lthreshold`` go to IPVS unchanged.

Beyond keepalived, for a Maglev fleet (``lvs_sched mh`` on a virtual server with an
``announce`` block, docs/fleet.md): every director must build the same Maglev table,
so the same flow picks the same real server whichever director the routers send it
to.  The kernel fills the table in its destination list's order
(``ip_vs_mh_populate``), and that order follows the order the destinations were
added (each new one goes to the head of the list).
So a fleet's destinations are added sorted by address and port, and a dead real
server stays in at weight 0 (as with ``inhibit_on_failure``) rather than leaving
and coming back at another place in the list.  ``ip_vs_mh`` shares the slots out
by each destination's ``last_weight`` (its last weight that was not 0): one edited
down to 0 keeps its slots, and a lookup that lands there finds it unavailable, while
one added at weight 0 would take none.  So a dead real server's Dest says weight 0
with ``last_weight`` its configured weight, and the kernel gets it by an add at
that weight and an edit to 0 (:func:`hafast.lvs.backend.put_dest`): a director
started while it was dead builds the table of one that saw it die.

Beyond keepalived: a real server with the same address, port and checkers under
several virtual servers is checked once (the engine dedupes); here one event for it
fans out to every virtual server holding it, so a shared result moves all of them.

``virtual_server_group``: one virtual server, one checker per real server, each
group member (every address of a range, each fwmark) a kernel service with the
same destinations.

Example::

    >>> from hafast.config.loader import load_text
    >>> from hafast.lib.events import ServerEvent, DOWN
    >>> cfg = load_text('''virtual_server 10.0.0.1 80 {
    ...   quorum_down "/bin/true down"
    ...   real_server 10.1.0.1 80 { weight 2 }
    ...   protocol TCP
    ... }''').config
    >>> p = PoolPolicy(cfg)
    >>> _ = p.start()
    >>> vs = cfg.virtual_servers[0]
    >>> out = p.on_event(ServerEvent(vs.key, ("10.1.0.1", 80), DOWN, 2, "x", 1.0))
    >>> [a.line for a in out.actions if isinstance(a, FifoLine)]
    ['RS [10.1.0.1]:tcp:80 [10.0.0.1]:tcp:80 DOWN', 'VS [10.0.0.1]:tcp:80 DOWN']
    >>> p.pool.counts()
    (1, 0)
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from hafast.config import model as m
from hafast.config.labels import rs_label, vs_label
from hafast.lib.events import DOWN, ServerEvent
from hafast.lvs.backend import (
    SCHED_FLAG_WORDS,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    Dest,
    DestKey,
    Pool,
    Service,
    ServiceKey,
    family_of,
    netmask_prefix,
)

VsKey = tuple[object, ...]
RsKey = tuple[str, int | None]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# A virtual_server_group range larger than this is a typo, not a pool.
MAX_GROUP_ADDRESSES = 65536


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class RunScript:
    """Run a notify script (notify_up/down, quorum_up/down); ``why`` for the log.

    ``user``/``group``: who it runs as (the script's own ``user [group]``, else
    global ``script_user``; None: the daemon's own identity).
    """

    argv: tuple[str, ...]
    why: str
    user: str | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class FifoLine:
    """One lvs_notify_fifo line (without the newline), keepalived's format."""

    line: str


@dataclass(frozen=True, slots=True)
class RsMoved:
    """A real server's notify as data, ahead of its script and FIFO line: the one
    sequence of transitions that the email alerts (:mod:`hafast.lvs.alerts`)
    read too.  ``removed``: a reload took it away (keepalived clear_service_rs)."""

    vs: m.VirtualServer
    rs: m.RealServer
    rs_label: str  # keepalived's FMT_RS text
    vs_label: str
    alive: bool
    removed: bool = False


@dataclass(frozen=True, slots=True)
class QuorumMoved:
    """A virtual server's quorum notify as data, with what keepalived's mail body
    shows: ``vs``, the settings it was weighed with (the old ones in a reload's
    ``cleared`` step), the ``threshold`` compared with and the live ``weight``.

    ``init``: keepalived's update_quorum_state(init), at start or for a reload's
    new virtual server ("Starting with quorum ...").  ``cleared``: a reload's
    clear_diff_services weighing the old virtual server without the real servers
    it takes away."""

    vs: m.VirtualServer
    label: str
    up: bool
    threshold: int
    weight: int
    init: bool = False
    cleared: bool = False


Transition = RsMoved | QuorumMoved
# The transitions ride along with the notifies they cause; the manager runs only
# the scripts and FIFO lines and keeps everything in its journal (``actions``).
Action = RunScript | FifoLine | Transition


@dataclass
class Outcome:
    """What one input did: actions in keepalived's order, services to re-sync."""

    actions: list[Action] = field(default_factory=list)
    changed: set[ServiceKey] = field(default_factory=set)
    # Of ``changed``, the services where only these destinations changed (the others:
    # anything may have), so that the kernel's diff looks at them alone (issue 16).
    only: dict[ServiceKey, set[DestKey]] = field(default_factory=dict)

    def full(self, keys: Iterable[ServiceKey]) -> None:
        """``keys`` changed, in any way."""
        for key in keys:
            self.changed.add(key)
            self.only.pop(key, None)

    def dest(self, keys: Iterable[ServiceKey], dest: DestKey) -> None:
        """In each of ``keys``, the destination ``dest`` changed (and nothing else)."""
        for key in keys:
            if key not in self.changed:
                self.changed.add(key)
                self.only[key] = {dest}
            elif key in self.only:
                self.only[key].add(dest)

    def merge(self, other: Outcome) -> None:
        self.actions.extend(other.actions)
        self.merge_changes(other)

    def merge_changes(self, other: Outcome) -> None:
        """``other``'s services to re-sync added to these (its actions left out)."""
        for key in other.changed:
            if key in other.only:
                for dest in other.only[key]:
                    self.dest((key,), dest)
            else:
                self.full((key,))


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class RsState:
    rs: m.RealServer
    dest_port: int
    alive: bool
    weight: int
    dynamic_weight: bool = False  # a checker (misc_dynamic, FILE_CHECK) set the weight
    # A check result came for it: keepalived's checkers' has_run, which a reload
    # carries over (migrate_checkers) and which decides about a first result.
    reported: bool = False

    @property
    def inhibit(self) -> bool:
        return self.rs.inhibit_on_failure


@dataclass(slots=True)
class VsState:
    vs: m.VirtualServer
    services: list[Service]
    rss: dict[RsKey, RsState]
    label: str  # keepalived's FMT_VS text
    quorum_up: bool = True
    suspended: bool = False
    # ha_suspend: the addresses whose presence un-suspends this virtual server
    # (its own, or every address of its group); empty without ha_suspend.
    suspend_addrs: frozenset[str] = frozenset()
    # ha_suspend: the last event of each real server while suspended
    held: dict[RsKey, ServerEvent] = field(default_factory=dict)

    # The weight of the live real servers (-1: not counted yet), kept by set_health:
    # counted per event it was O(real servers), 10,000 per verdict (issue 16).
    live: int = -1

    def live_weight(self) -> int:
        if self.live < 0:
            self.live = sum(r.weight for r in self.rss.values() if r.alive)
        return self.live

    def set_health(self, rst: RsState, alive: bool, weight: int) -> None:
        """The one way a real server's health changes (the live weight follows)."""
        if self.live >= 0:
            self.live += (weight if alive else 0) - (rst.weight if rst.alive else 0)
        rst.alive, rst.weight = alive, weight


def member_span(member: m.VsgMember) -> tuple[IpAddress, IpAddress]:
    """The first and last address of a group's address member: a CIDR block's network
    and broadcast addresses; ``a.b.c.d-e``'s last octet (IPv4) or group (IPv6) run
    from its value to e."""
    assert member.address is not None
    if "/" in member.address:
        net = ipaddress.ip_network(member.address, strict=False)
        return net.network_address, net.broadcast_address
    first = ipaddress.ip_address(member.address)
    if member.last is None:
        return first, first
    step_last = int(member.last) if first.version == 4 else int(member.last, 16)
    mask = 0xFF if first.version == 4 else 0xFFFF
    return first, type(first)((int(first) & ~mask) | step_last)


def _member_addresses(member: m.VsgMember) -> Iterator[str]:
    first, last = member_span(member)
    count = int(last) - int(first) + 1
    if "/" in (member.address or "") and count > MAX_GROUP_ADDRESSES:
        raise ValueError(f"group range {member.address} has more than "
                         f"{MAX_GROUP_ADDRESSES} addresses")
    for i in range(count):
        yield str(first + i)


def service_keys(vs: m.VirtualServer, groups: Mapping[str, m.VirtualServerGroup]
                 ) -> list[ServiceKey]:
    """The kernel services one virtual server stands for (a group fans out)."""
    if vs.group is not None:
        group = groups.get(vs.group)
        keys: list[ServiceKey] = []
        for member in group.members if group else ():
            if member.fwmark is not None:
                fam = member.family or vs.ip_family
                keys.append(ServiceKey(6 if fam == "inet6" else 4, "", None, 0, member.fwmark))
                continue
            port = member.port if member.port is not None else (vs.port or 0)
            for addr in _member_addresses(member):
                keys.append(ServiceKey(family_of(addr), vs.protocol, addr, port))
        return keys
    if vs.fwmark is not None:
        return [ServiceKey(6 if vs.ip_family == "inet6" else 4, "", None, 0, vs.fwmark)]
    assert vs.address is not None
    return [ServiceKey(family_of(vs.address), vs.protocol, vs.address, vs.port or 0)]


@functools.lru_cache(maxsize=64)
def _method(text: str | None) -> str:
    """lvs_method "TUN type gue port 1" -> "TUN" (tunnel options are not modelled)."""
    return (text or "NAT").split()[0].upper()


def build_service(vs: m.VirtualServer, key: ServiceKey,
                  extra_flags: Iterable[str] = ()) -> Service:
    flags = SVC_F_PERSISTENT if vs.persistence_timeout else 0
    if vs.ops:
        flags |= SVC_F_ONEPACKET
    for word in extra_flags:
        flags |= SCHED_FLAG_WORDS[word]
    return Service(
        key,
        vs.lvs_sched,
        flags,
        vs.persistence_timeout,
        netmask_prefix(vs.persistence_granularity, key.family),
        vs.persistence_engine,
    )


def normal_address(address: str) -> str:
    """One spelling per address, so an RTNL report matches the configuration.

    >>> normal_address("2001:DB8:0::1")
    '2001:db8::1'
    """
    try:
        return ipaddress.ip_address(address).compressed
    except ValueError:
        return address


def suspend_addresses(vs: m.VirtualServer, groups: Mapping[str, m.VirtualServerGroup]
                      ) -> frozenset[str]:
    """The addresses of an ha_suspend virtual server: any one of them on the box
    lets it run (keepalived counts a group's addresses the same way)."""
    if not vs.ha_suspend:
        return frozenset()
    if vs.group is not None:
        group = groups.get(vs.group)
        return frozenset(normal_address(a) for member in (group.members if group else ())
                         if member.address is not None for a in _member_addresses(member))
    return frozenset([normal_address(vs.address)]) if vs.address else frozenset()


def script_identity(script: m.Script, script_user: tuple[str, ...] | None
                    ) -> tuple[str | None, str | None]:
    """Who a pool script runs as: its own ``user [group]``, else ``script_user``.

    >>> script_identity(m.Script(("/bin/x",)), ("nobody", "nogroup"))
    ('nobody', 'nogroup')
    >>> script_identity(m.Script(("/bin/x",), "daemon"), ("nobody",))
    ('daemon', None)
    """
    if script.user is not None:
        return script.user, script.group
    if script_user:
        return script_user[0], script_user[1] if len(script_user) > 1 else None
    return None, None


def check_identity(rs: m.RealServer) -> tuple[object, ...] | None:
    """Real servers with the same identity share one check (and one health).
    None: no checker, nothing to share (such a server is simply always up)."""
    if not rs.checkers:
        return None
    return (rs.address, rs.port, rs.checkers)


def maglev_fleet(vs: m.VirtualServer) -> bool:
    """A virtual server whose directors must agree on its Maglev table: ``mh``,
    announced by BGP (so several directors serve it at once)."""
    return vs.lvs_sched == "mh" and vs.announce is not None


def _rs_dest(rs_key: RsKey, rst: RsState, sorry_in: bool, maglev: bool) -> Dest | None:
    """The destination a real server should be now (None: not in the pool)."""
    rs = rst.rs
    last = 0
    if rst.alive and not sorry_in:
        weight = rst.weight
    elif maglev:
        # its slots, whatever this director saw of it (module docstring)
        weight, last = 0, rs.weight
    elif rst.inhibit:
        weight = 0
    else:
        return None
    return Dest(rs.address, rst.dest_port, weight, _method(rs.lvs_method),
                rs.uthreshold, rs.lthreshold, last).keyed(rs_key)


def _dest_order(address: str, port: int) -> tuple[int, int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip), port)


def _initially_alive(rs: m.RealServer) -> bool:
    # keepalived 2.2.7 check_data.c: alpha marks each checker down until it has run
    # (the real server's and the virtual server's alpha are its checkers' default);
    # a real server without a checker has nothing to wait for and is in at once.
    return not any(c.alpha for c in rs.checkers)


# --------------------------------------------------------------------------- policy


class PoolPolicy:
    """The desired pool of a configuration, kept up to date event by event.

    ``service_flags`` maps a virtual server key to scheduler flag words that
    override the configured ``VirtualServer.sched_flags`` (``flag-1`` ...).
    ``rs_init_notifies`` (a global_defs option) reports every real server that
    starts alive.  ``vips_present``: the addresses now on the box, for ha_suspend (None:
    unknown, nothing starts suspended); :meth:`set_vip` keeps them current.
    """

    def __init__(
        self,
        config: m.Config,
        *,
        service_flags: Mapping[VsKey, Iterable[str]] | None = None,
        rs_init_notifies: bool = False,
        vips_present: Iterable[str] | None = None,
    ) -> None:
        self.config = config
        self.service_flags = dict(service_flags or {})
        self.rs_init_notifies = rs_init_notifies
        self.pool = Pool()
        self.vss: dict[VsKey, VsState] = {}
        # check identity -> every (vs state, rs state) sharing that check, when
        # more than one does
        self.shared: dict[tuple[object, ...], list[tuple[VsState, RsState]]] = {}
        self.ignored = 0  # events for unknown or suspended servers
        self.present: set[str] | None = (None if vips_present is None
                                         else {normal_address(a) for a in vips_present})
        self._build(config)

    # -- construction -------------------------------------------------------------

    def _build(self, config: m.Config,
               reuse: Mapping[VsKey, VsState] | None = None,
               old_groups: Mapping[str, m.VirtualServerGroup] | None = None) -> set[VsKey]:
        """Build the states; a virtual server equal to its predecessor in ``reuse``
        (same settings, same real servers, same group) keeps its state object, so
        a reload costs only what changed.  Returns the keys built anew."""
        groups = {g.name: g for g in config.virtual_server_groups}
        self.vss = {}
        self.shared = {}
        built: set[VsKey] = set()
        # Only a real server whose address and port another has can share a check.
        # Found first, and dropped before the states are made, so that the memory of
        # this pass is reused by them: an entry in ``shared`` for every real server,
        # filtered afterwards, left ~2 MB of freed but kept pools in the parent at
        # 10,000 real servers (CPython keeps arenas that are partly in use; issue 16).
        seen: set[RsKey] = set()
        multi: set[RsKey] = set()
        for vs in config.virtual_servers:
            for rs in vs.real_servers:
                key = rs.key
                if key in seen:
                    multi.add(key)
                else:
                    seen.add(key)
        del seen
        for vs in config.virtual_servers:
            prev = reuse.get(vs.key) if reuse is not None else None
            if prev is not None and prev.vs == vs and (
                    vs.group is None or (old_groups or {}).get(vs.group) == groups.get(vs.group)):
                self.vss[vs.key] = prev
                for rk, rst in prev.rss.items():
                    ident = check_identity(rst.rs) if rk in multi else None
                    if ident is not None:
                        self.shared.setdefault(ident, []).append((prev, rst))
                continue
            built.add(vs.key)
            keys = service_keys(vs, groups)
            flags = self.service_flags.get(vs.key) or vs.sched_flags
            services = [build_service(vs, k, flags) for k in keys]
            rss = {}
            for rs in vs.real_servers:
                port = rs.port if rs.port is not None else (vs.port or 0)
                rss[rs.key] = RsState(rs, port, _initially_alive(rs), rs.weight)
            st = VsState(vs, services, rss, vs_label(vs),
                         suspend_addrs=suspend_addresses(vs, groups))
            st.suspended = self._absent(st)
            self.vss[vs.key] = st
            for rk, rst in rss.items():
                ident = check_identity(rst.rs) if rk in multi else None
                if ident is not None:
                    self.shared.setdefault(ident, []).append((st, rst))
        # Only the checks that real servers really share: on_event finds a lone one
        # from the event itself, and at 10,000 real servers the lone entries (key
        # tuple, list, pair) were ~190 bytes of the parent per real server (issue 16).
        self.shared = {k: v for k, v in self.shared.items() if len(v) > 1}
        return built

    def start(
        self,
        health: Mapping[tuple[VsKey, RsKey], tuple[bool, int]] | None = None,
    ) -> Outcome:
        """Take the initial health (the engine's snapshot; default: from the
        configuration, alpha servers dead) and compute the first pool."""
        out = Outcome()
        for st in self.vss.values():
            for rk, rst in st.rss.items():
                if health is not None and (st.vs.key, rk) in health:
                    st.set_health(rst, *health[(st.vs.key, rk)])
                # keepalived init_service_rs: only a server it makes alive; an alpha
                # one is reported by its first result (:meth:`_apply`)
                if self.rs_init_notifies and rst.alive:
                    self._rs_notify(st, rst, out)
            self._init_quorum(st, out)
            out.full(self._sync(st))
        return out

    def _absent(self, st: VsState) -> bool:
        """ha_suspend: none of the virtual server's addresses is known to be here."""
        if not st.vs.ha_suspend or self.present is None:
            return False
        return not (st.suspend_addrs & self.present)

    def _init_quorum(self, st: VsState, out: Outcome) -> None:
        # keepalived 2.2.7 set_quorum_states() weighs the real servers before
        # init_service_rs has made any of them alive, so (quorum >= 1) every
        # virtual server starts down; update_quorum_state(init) then finds a quorum
        # met and runs quorum_up / writes "VS ... UP" ("Starting with quorum up"),
        # or, only with a sorry server (not in yet), runs quorum_down / "VS ... DOWN".
        # The same holds for a virtual server a reload adds.
        st.quorum_up = False
        self._update_quorum(st, out, init=True, sorry_in=False)

    # -- inputs -------------------------------------------------------------------

    def on_event(self, event: ServerEvent) -> Outcome:
        """Apply one real-server transition to every virtual server sharing it."""
        out = Outcome()
        st = self.vss.get(event.virtual_server)
        rst = st.rss.get(event.real_server) if st else None
        if st is None or rst is None:
            self.ignored += 1
            return out
        ident = check_identity(rst.rs)
        targets = self.shared.get(ident, [(st, rst)]) if ident is not None else [(st, rst)]
        for tst, trst in targets:
            if tst.suspended:
                # Counted for nothing now; the latest one is applied on resume.
                self.ignored += 1
                tst.held[trst.rs.key] = event
                continue
            self._apply(tst, trst, event, out)
        return out

    def _apply(self, st: VsState, rst: RsState, event: ServerEvent, out: Outcome) -> None:
        alive = event.state != DOWN
        weight = event.weight if alive else rst.weight
        first, rst.reported = not rst.reported, True
        if alive == rst.alive and weight == rst.weight:
            if first and not alive:
                # keepalived 2.2.7 update_svr_checker_state: a checker's first result
                # is notified even when it changes nothing, if the checker is alpha
                # (the engine publishes only those): an alpha server that never came
                # up is reported DOWN once.  Nothing moves: no kernel, no quorum.
                self._rs_notify(st, rst, out)
            return
        was_alive = rst.alive
        if alive:
            rst.dynamic_weight = weight != rst.rs.weight
        st.set_health(rst, alive, weight)
        if was_alive != alive:
            self._rs_notify(st, rst, out)
        self._update_quorum(st, out)
        one = self._sync_one(st, rst)
        if one is None:
            out.full(self._sync(st))
        else:
            out.dest(one, (rst.rs.address, rst.dest_port))

    def set_vip(self, address: str, present: bool) -> Outcome:
        """ha_suspend: ``address`` arrived on the box or left it.

        A virtual server whose last address left is suspended: its services leave
        the pool (``changed``), silently.  One whose first address arrived
        resumes: the results held meanwhile are applied (with their notifies) and
        its services come back.

        >>> from hafast.config.loader import load_text
        >>> cfg = load_text("virtual_server 10.0.0.1 80 { ha_suspend\\n protocol TCP\\n"
        ...                 " real_server 10.1.0.1 80 { } }").config
        >>> p = PoolPolicy(cfg, vips_present=[]); _ = p.start(); p.pool.counts()
        (0, 0)
        >>> sorted(map(str, p.set_vip("10.0.0.1", True).changed)), p.pool.counts()
        (['[10.0.0.1]:tcp:80'], (1, 1))
        """
        address = normal_address(address)
        if self.present is None:
            self.present = set()
        if present:
            self.present.add(address)
        else:
            self.present.discard(address)
        out = Outcome()
        for st in self.vss.values():
            if address in st.suspend_addrs:
                self._resuspend(st, out)
        return out

    def _resuspend(self, st: VsState, out: Outcome) -> None:
        suspended = self._absent(st)
        if suspended == st.suspended:
            return
        st.suspended = suspended
        if not suspended:
            held, st.held = st.held, {}
            for rk, event in held.items():
                rst = st.rss.get(rk)
                if rst is not None:
                    self._apply(st, rst, event, out)
        out.full(self._sync(st))

    def stop(self) -> Outcome:
        """Shutting down: with omega, the RS DOWN and quorum DOWN notifiers run."""
        out = Outcome()
        for st in self.vss.values():
            if not st.vs.omega:
                continue
            for rst in st.rss.values():
                if rst.alive:
                    st.set_health(rst, False, rst.weight)
                    self._rs_notify(st, rst, out)
            was_up, st.quorum_up = st.quorum_up, False
            self._vs_notify(st, out, was_up)
        return out

    def reload(self, config: m.Config, vips_present: Iterable[str] | None = None) -> Outcome:
        """Adopt a new configuration: unchanged real servers keep their health (a
        dead one is not re-added just because of the reload), new ones start as
        the configuration says.  Unchanged virtual servers are not even looked at
        again; ``changed`` lists only the services whose desired state may differ.
        """
        old = self.vss
        old_groups = {g.name: g for g in self.config.virtual_server_groups}
        self.config = config
        if vips_present is not None:
            self.present = {normal_address(a) for a in vips_present}
        built = self._build(config, reuse=old, old_groups=old_groups)
        out = Outcome()
        # keepalived copies each kept virtual server's quorum state before its
        # clear_diff_rs may drop the old one's (update_vs_notifies below).
        was_up = {key: st.quorum_up for key, st in old.items()}
        # Services of virtual servers that went away or were rebuilt leave the pool.
        for key, gone in old.items():
            if self.vss.get(key) is gone:
                continue
            self._reload_removals(gone, self.vss.get(key), out)
            for svc in gone.services:
                self.pool.services.pop(svc.key, None)
                self.pool.dests.pop(svc.key, None)
                out.full((svc.key,))
        # in the configuration's order, as keepalived's init_services writes its lines
        for key in [k for k in self.vss if k in built]:
            st = self.vss[key]
            prev = old.get(key)
            if prev is None:
                self._init_quorum(st, out)
            else:
                st.held = {rk: e for rk, e in prev.held.items() if rk in st.rss}
                for rk, rst in st.rss.items():
                    p = prev.rss.get(rk)
                    if p is None:
                        continue
                    st.set_health(rst, p.alive, p.weight if p.dynamic_weight else rst.weight)
                    # new checkers have not run (keepalived migrates has_run only
                    # between checkers that compare equal)
                    rst.reported = p.reported and p.rs.checkers == rst.rs.checkers
                    if p.dynamic_weight:
                        rst.dynamic_weight = True
                # keepalived init_service_vs: update_quorum_state(init) from the
                # state before the reload; a sorry server that was not in the pool
                # (new, changed, or the quorum was up) makes a down quorum report.
                sorry = st.vs.sorry_server
                sorry_in = (sorry is not None and sorry == prev.vs.sorry_server
                            and not was_up[key])
                st.quorum_up = was_up[key]
                self._update_quorum(st, out, init=True, sorry_in=sorry_in)
            self._sync(st)
            out.full(s.key for s in st.services)
        if vips_present is not None:
            for key, st in self.vss.items():
                if key not in built:
                    self._resuspend(st, out)
        return out

    def _reload_removals(self, old: VsState, new: VsState | None, out: Outcome) -> None:
        """keepalived 2.2.7 clear_diff_services, before the new configuration is
        applied: each live real server in the pool that the reload takes away goes
        DOWN (its old notify_down, ``RS ... DOWN``: clear_service_rs), then the old
        virtual server, weighed with what is left and its old quorum, may lose it
        (its old quorum_down, ``VS ... DOWN``: update_vs_notifies).  A virtual server
        the reload removes loses every real server.  The new virtual server then
        starts from the state before all this, so a reload that takes the quorum
        away reports the loss twice, as keepalived does."""
        pooled = set() if old.suspended else set(self.dests_of(old))
        kept = new.rss if new is not None else {}
        for rk, rst in old.rss.items():
            if rk in kept or not rst.alive or (rst.rs.address, rst.dest_port) not in pooled:
                continue
            old.set_health(rst, False, rst.weight)
            self._rs_notify(old, rst, out, removed=True)
        if new is not None and not old.rss:
            return  # clear_diff_rs: an old virtual server without real servers stops here
        vs = old.vs
        total = old.live_weight()
        if old.quorum_up and (total == 0 or total < vs.quorum - vs.hysteresis):
            old.quorum_up = False
            self._vs_notify(old, out, True, cleared=True)

    # -- rules --------------------------------------------------------------------

    def _update_quorum(self, st: VsState, out: Outcome, *, init: bool = False,
                       sorry_in: bool = True) -> None:
        """keepalived's update_quorum_state; ``init`` is its ``init`` call, where a
        virtual server whose sorry server is not in the pool yet (``sorry_in``
        False) reports a quorum that is down (and stays down) all the same."""
        vs = st.vs
        total = st.live_weight()
        if not st.quorum_up and total >= vs.quorum + vs.hysteresis:
            st.quorum_up = True
            self._vs_notify(st, out, False, init=init)
        elif st.quorum_up and (total == 0 or total < vs.quorum - vs.hysteresis):
            st.quorum_up = False
            self._vs_notify(st, out, True, init=init)
        elif not st.quorum_up and not sorry_in and vs.sorry_server is not None:
            self._vs_notify(st, out, False, init=init)

    def dests_of(self, st: VsState) -> dict[tuple[str, int], Dest]:
        """The destinations every service of ``st`` should have now."""
        vs = st.vs
        sorry_in = vs.sorry_server is not None and not st.quorum_up
        dests: dict[tuple[str, int], Dest] = {}
        maglev = maglev_fleet(vs)
        rsts: Iterable[tuple[RsKey, RsState]] = st.rss.items()
        if maglev:
            # the order the kernel fills its Maglev table in (module docstring)
            rsts = sorted(rsts, key=lambda kr: _dest_order(kr[1].rs.address, kr[1].dest_port))
        for rs_key, rst in rsts:
            d = _rs_dest(rs_key, rst, sorry_in, maglev)
            if d is not None:
                dests[d.key] = d
        if vs.sorry_server is not None and (sorry_in or vs.sorry_server_inhibit):
            addr, port = vs.sorry_server
            d = Dest(addr, port if port is not None else (vs.port or 0), 1 if sorry_in else 0,
                     _method(vs.sorry_server_lvs_method or vs.lvs_method))
            # keepalived: a sorry server that is also a real server is that server.
            dests.setdefault(d.key, d)
        return dests

    def _sync_one(self, st: VsState, rst: RsState) -> set[ServiceKey] | None:
        """One real server's change written into the pool: its destination alone is
        put, edited or taken out of each service of ``st``, where :meth:`_sync` makes
        every destination of the virtual server again and compares the lot.  That was
        O(real servers) per event: 100 servers failing at once in a virtual server of
        10,000 made a million Dests in the parent, whose loop then reached the kernel
        seconds late (issue 16).  None: this change needs :meth:`_sync` (suspended, a
        sorry server, a service not in the pool yet, a destination keyed otherwise
        than the real server).

        A destination that leaves and comes back goes last in its service's dict
        where :meth:`_sync` would put it in the configuration's order: no backend
        reads an order from it except a Maglev fleet's, whose servers never leave
        (weight 0 instead) and so keep their place.
        """
        rs = rst.rs
        key = rs.key
        if (st.suspended or st.vs.sorry_server is not None or st.rss.get(key) is not rst
                or key != (rs.address, rst.dest_port)):
            return None
        held = []
        for svc in st.services:
            dests = self.pool.dests.get(svc.key)
            if dests is None or self.pool.services.get(svc.key) != svc:
                return None
            held.append((svc.key, dests))
        d = _rs_dest(key, rst, False, maglev_fleet(st.vs))
        changed = set()
        for skey, dests in held:
            if d is None:
                if dests.pop(key, None) is None:
                    continue
            elif dests.get(key) == d:
                continue
            else:
                dests[key] = d
            changed.add(skey)
        return changed

    def _sync(self, st: VsState) -> set[ServiceKey]:
        changed = set()
        if st.suspended:
            # ha_suspend: nothing of this virtual server belongs in the kernel.
            for svc in st.services:
                if svc.key in self.pool.services:
                    self.pool.services.pop(svc.key, None)
                    self.pool.dests.pop(svc.key, None)
                    changed.add(svc.key)
            return changed
        dests = self.dests_of(st)
        fresh = True  # dests itself for the first service written, a copy for the others
        for svc in st.services:
            if self.pool.services.get(svc.key) != svc or self.pool.dests.get(svc.key) != dests:
                self.pool.services[svc.key] = svc
                self.pool.dests[svc.key] = dests if fresh else dict(dests)
                fresh = False
                changed.add(svc.key)
        return changed

    def _rs_notify(self, st: VsState, rst: RsState, out: Outcome, *,
                   removed: bool = False) -> None:
        rs = rst.rs
        moved = RsMoved(st.vs, rs, rs_label(st.vs, rs, rst.dest_port), st.label, rst.alive,
                        removed)
        state = "UP" if rst.alive else "DOWN"
        script = rs.notify_up if rst.alive else rs.notify_down
        out.actions.append(moved)
        if script:
            out.actions.append(RunScript(script.argv, f"{rs.address}:{rst.dest_port} {state}",
                                         *script_identity(script, self._script_user)))
        out.actions.append(FifoLine(f"RS {moved.rs_label} {moved.vs_label} {state}"))

    def _vs_notify(self, st: VsState, out: Outcome, was_up: bool, *, init: bool = False,
                   cleared: bool = False) -> None:
        vs = st.vs
        # keepalived compares with quorum -/+ hysteresis as the state was
        threshold = vs.quorum + (-vs.hysteresis if was_up else vs.hysteresis)
        out.actions.append(QuorumMoved(vs, st.label, st.quorum_up, threshold,
                                       st.live_weight(), init, cleared))
        state = "UP" if st.quorum_up else "DOWN"
        script = vs.quorum_up if st.quorum_up else vs.quorum_down
        if script:
            out.actions.append(RunScript(script.argv, f"{st.label} quorum {state}",
                                         *script_identity(script, self._script_user)))
        out.actions.append(FifoLine(f"VS {st.label} {state}"))

    @property
    def _script_user(self) -> tuple[str, ...] | None:
        return self.config.global_defs.script_user

    # -- views --------------------------------------------------------------------

    def owned(self) -> set[ServiceKey]:
        return {s.key for st in self.vss.values() for s in st.services}

    def quorum(self, vs_key: VsKey) -> bool:
        return self.vss[vs_key].quorum_up
