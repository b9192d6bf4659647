"""KEEPALIVED-MIB's checker part (``check``, keepalived.3) as keepalived 2.2.7 serves it
with ``enable_snmp_checker``: the virtualServerGroupTable and
virtualServerGroupMemberTable (check.1, check.2), the virtualServerTable (check.3), the
realServerTable (check.4) with ``snmp_name`` as virtualServerName and realServerName,
the lvsSyncDaemon and lvsTimeouts scalars (check.6, check.7), and the
realServerStateChange / virtualServerQuorumStateChange notifications.

Pure: the running config, the pool keeper's status
(:meth:`hafast.lvs.keeper.PoolKeeper.status`) and the IPVS backend's counters
(:meth:`hafast.lvs.ipvs.IpvsBackend.counters`) in, sorted varbinds out; the AgentX
shell (:mod:`hafast.status.snmp`) serves them.  Column values follow keepalived 2.2.7's
check_snmp.c (its types, its "no value" columns left out of a row, its TruthValue 1/2
for every yes/no), rows in config order: virtual server N is index N, its sorry server
(if any) real server 1, then its real servers in config order; group N is the N-th
``virtual_server_group`` keepalived keeps (not an empty one), its members numbered
fwmarks first, then addresses and ranges.

The statistics columns (connections, packets, bytes and rates, a real server's active,
inactive and persistent connections) are the kernel's, summed as keepalived's
ipvs_update_stats sums them: a virtual server's over every IPVS service it stands for
(each address of its group's members), a real server's over its destination in each;
the 32-bit columns cut to their width.  With the nft or memory backend (no counters)
they are zeros, what keepalived reads from a service without traffic.

What hafast does not keep is served as keepalived serves its defaults:

* ``retry``, ``delay_before_retry`` and ``warmup`` are 0 and the connect timeout 5 s
  (keepalived's values when the virtual and real server blocks leave them to their
  checkers; set in a virtual or real server block, hafast folds them into the checkers);
* a virtual server's ``weight`` is 1 (its real servers inherit a set one);
* realServerFailedChecks is 0 for a real server up and 1 for one down (hafast keeps
  which checker failed, not how many).

Example::

    >>> from hafast.config import model as m
    >>> vs = m.VirtualServer(address="10.0.0.1", port=80, real_servers=(
    ...     m.RealServer(address="10.0.1.1", port=80),))
    >>> cfg = m.Config(virtual_servers=(vs,))
    >>> st = {"virtual_servers": [{"name": "[10.0.0.1]:tcp:80", "quorum_up": True,
    ...       "suspended": False, "real_servers": [
    ...       {"address": "10.0.1.1", "port": 80, "alive": True, "weight": 1}]}]}
    >>> rows = {vb.name[len(CHECK):]: vb.value for vb in check_rows(cfg, st)}
    >>> rows[(3, 1, 6, 1)], rows[(4, 1, 6, 1, 1)]  # the VS address, the RS alive(1)
    (b'\\n\\x00\\x00\\x01', 1)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from hafast.config import model as m
from hafast.config.labels import vs_label
from hafast.lib.smtp_alert import enabled as smtp_enabled
from hafast.lvs.backend import ServiceKey
from hafast.lvs.policy import member_span, normal_address, service_keys
from hafast.status import agentx as ax
from hafast.status.dump import cmd_str
from hafast.status.snmp_mib import GLOBAL, KEEPALIVED, SNMP_TRAP_OID, SYS_UPTIME, router_id_of

CHECK: ax.Oid = (*KEEPALIVED, 3)
VSG_ENTRY: ax.Oid = (*CHECK, 1, 1)  # virtualServerGroupTable.virtualServerGroupEntry
VSGM_ENTRY: ax.Oid = (*CHECK, 2, 1)  # virtualServerGroupMemberTable's entry
VS_ENTRY: ax.Oid = (*CHECK, 3, 1)  # virtualServerTable.virtualServerEntry
RS_ENTRY: ax.Oid = (*CHECK, 4, 1)  # realServerTable.realServerEntry
# checkNotifications (check 5 0): realServerStateChange, virtualServerQuorumStateChange
RS_STATE_CHANGE: ax.Oid = (*CHECK, 5, 0, 1)
VS_QUORUM_STATE_CHANGE: ax.Oid = (*CHECK, 5, 0, 2)

US = 1_000_000
M32, M64 = 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF
# the IPVS counters of a server without any (or no IPVS backend): keepalived's zeros
NO_COUNTERS: tuple[int, ...] = (0,) * 10
NO_DEST_COUNTERS: tuple[int, ...] = (0,) * 13
# keepalived's alloc_vs: connection_to = 5 * TIMER_HZ, inherited by each real server
CONNECT_TIMEOUT_US = 5 * US

# virtualServerLoadBalancingAlgo (check_snmp.c's order; anything else is 99)
SCHEDULERS = {name: i for i, name in enumerate(
    ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf",
     "mh", "twos"), 1)}
METHODS = {"NAT": 1, "DR": 2, "TUN": 3}  # virtualServerLoadBalancingKind
PROTOCOLS = {"TCP": 1, "UDP": 2, "SCTP": 3}
TUNNEL_TYPES = {"ipip": 1, "gue": 2, "gre": 3}
TUNNEL_CSUMS = {"nocsum": 1, "csum": 2, "remcsum": 3}

# keepalived's ASN types: Unsigned32 (Gauge32 on the wire), INTEGER, OCTET STRING,
# Counter32, Counter64
UNS, INT, STR, C32, C64 = (ax.GAUGE32, ax.INTEGER, ax.OCTET_STRING, ax.COUNTER32,
                           ax.COUNTER64)


def truth(x: object) -> int:
    """SNMP's TruthValue: true(1), false(2)."""
    return 1 if x else 2


def addr_type(address: str | None) -> int:
    """InetAddressType as keepalived's SNMP_InetAddressType: ipv4(1), anything else
    (IPv6, or a family not known) ipv6(2)."""
    try:
        return 1 if address and ipaddress.ip_address(address).version == 4 else 2
    except ValueError:
        return 2


def packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def script_text(script: m.Script | None) -> bytes | None:
    """A notify or quorum script as keepalived's cmd_str_r shows it (:func:`cmd_str`),
    None for no script."""
    if script is None or not script.argv:
        return None
    return cmd_str(script).encode()


def _tunnel(method: str) -> tuple[int, int | None, int | None] | None:
    # "TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]" (grammar.conv_lvs_method):
    # (type, GUE port, checksum option) for a tunnel, None for any other method
    words = method.split()
    if not words or words[0] != "TUN":
        return None
    kind = TUNNEL_TYPES.get(words[words.index("type") + 1], 1) if "type" in words else 1
    port = int(words[words.index("port") + 1]) if "port" in words else None
    csum = next((TUNNEL_CSUMS[w] for w in words if w in TUNNEL_CSUMS), 1)
    return kind, port, csum


def _method(method: str) -> int | None:
    return METHODS.get(method.split()[0]) if method else None


def _vs_family(vs: m.VirtualServer, config: Any) -> int:
    # keepalived's v->af: the address's, a group's members', or ip_family (a fwmark);
    # else that of its real servers
    if vs.address is not None:
        return addr_type(vs.address)
    if vs.ip_family is not None:
        return 1 if vs.ip_family == "inet" else 2
    if vs.group is not None:
        for g in getattr(config, "virtual_server_groups", ()):
            if g.name == vs.group:
                for mem in g.members:
                    if mem.address is not None:
                        return addr_type(mem.address.split("/")[0])
    return addr_type(vs.real_servers[0].address) if vs.real_servers else 2


def _granularity(vs: m.VirtualServer) -> bytes:
    # keepalived keeps the IPv4 mask in network order, 0xffffffff when unset
    g = vs.persistence_granularity
    try:
        return packed(g) if g else b"\xff\xff\xff\xff"
    except ValueError:
        return b"\xff\xff\xff\xff"


def vs_columns(vs: m.VirtualServer, st: dict[str, Any], config: Any,
               counters: tuple[int, ...] = NO_COUNTERS
               ) -> Iterator[tuple[int, int, int | bytes]]:
    """(column, AgentX type, value) of one virtualServerEntry, columns keepalived
    leaves empty for this server left out; ``counters`` its services' IPVS counters
    summed (:func:`hafast.lvs.ipvs.decode_stats`)."""
    fam = _vs_family(vs, config)
    flags = set(vs.sched_flags)
    rss = st.get("real_servers") or []
    regular = [r for r in rss if not r.get("sorry")]
    yield 2, INT, 3 if vs.group is not None else 1 if vs.fwmark is not None else 2
    if vs.group is not None:
        yield 3, STR, vs.group.encode()
    if vs.fwmark is not None and vs.group is None:
        yield 4, UNS, vs.fwmark
    yield 5, INT, fam
    if vs.address is not None and vs.group is None and vs.fwmark is None:
        yield 6, STR, packed(vs.address)
        yield 7, UNS, vs.port or 0
    if vs.fwmark is None:
        yield 8, INT, PROTOCOLS.get(vs.protocol, 4)
    yield 9, INT, SCHEDULERS.get(vs.lvs_sched, 99)
    if (kind := _method(vs.lvs_method)) is not None:
        yield 10, INT, kind
    yield 11, INT, truth(not st.get("suspended"))
    if vs.virtualhost:
        yield 12, STR, vs.virtualhost.encode()
    yield 13, INT, truth(vs.persistence_timeout)
    if vs.persistence_timeout:
        yield 14, UNS, vs.persistence_timeout
    # keepalived picks the granularity column by v->addr's family, which only an
    # addressed virtual server sets: a group or fwmark one (AF_UNSPEC) serves both
    unspec = vs.address is None
    if fam == 1 or unspec:
        yield 15, STR, _granularity(vs)
    yield 16, UNS, vs.delay_loop_us // US
    yield 17, INT, truth(vs.ha_suspend)
    yield 18, INT, truth(vs.alpha)
    yield 19, INT, truth(vs.omega)
    yield 20, UNS, len(vs.real_servers)
    yield 21, UNS, sum(1 for r in regular if r.get("alive"))
    yield 22, UNS, vs.quorum
    yield 23, INT, truth(st.get("quorum_up"))
    if (text := script_text(vs.quorum_up)) is not None:
        yield 24, STR, text
    if (text := script_text(vs.quorum_down)) is not None:
        yield 25, STR, text
    yield 26, UNS, vs.hysteresis
    yield 27, UNS, counters[0] & M32  # Conns
    yield from _totals(counters, 28)
    yield 37, INT, truth(vs.ops)
    yield from _wide(counters, 38)
    if fam != 1 or unspec:
        g = vs.persistence_granularity
        if g and g.isdigit():
            yield 51, UNS, int(g)
        else:  # the 4 bytes of column 15 read as a host-order (x86) u32
            yield 51, UNS, int.from_bytes(_granularity(vs), "little") if unspec else 0xFFFFFFFF
    yield 52, INT, 2  # Hashed: the kernel's own flag, not a setting
    yield 53, INT, truth("flag-1" in flags)  # SHFallback (IP_VS_SVC_F_SCHED1)
    yield 54, INT, truth("flag-2" in flags)  # SHPort (SCHED2)
    yield 55, INT, truth("flag-3" in flags)  # Sched3
    yield 56, INT, truth(not vs.inhibit_on_failure)  # ActionWhenDown remove(1)
    yield 57, UNS, 0  # Retry
    yield 58, UNS, 0  # DelayBeforeRetry
    yield 59, UNS, 0  # Warmup
    yield 60, INT, 1  # Weight
    gd = getattr(config, "global_defs", None)
    yield 61, INT, truth(smtp_enabled(vs.smtp_alert, getattr(gd, "smtp_alert_checker", None),
                                    getattr(gd, "smtp_alert", None)))
    yield 62, INT, truth("flag-1" in flags)  # MHFallback (the same SCHED1 bit)
    yield 63, INT, truth("flag-2" in flags)  # MHPort
    yield 64, UNS, vs.delay_loop_us
    yield 65, UNS, 0
    yield 66, UNS, 0
    yield 67, UNS, CONNECT_TIMEOUT_US
    if (tun := _tunnel(vs.lvs_method)) is not None:
        yield from _tunnel_columns(tun, 68)
    if vs.snmp_name:
        yield 71, STR, vs.snmp_name.encode()


def _totals(counters: tuple[int, ...], first: int) -> Iterator[tuple[int, int, int]]:
    # In/OutPkts (Counter32), In/OutBytes (Counter64), then the five rates (Gauge32),
    # each cut to its type's width as net-snmp does with keepalived's 64-bit values
    inpkts, outpkts, inbytes, outbytes = counters[1:5]
    yield first, C32, inpkts & M32
    yield first + 1, C32, outpkts & M32
    yield first + 2, C64, inbytes & M64
    yield first + 3, C64, outbytes & M64
    for i, rate in enumerate(counters[5:10]):
        yield first + 4 + i, UNS, rate & M32


def _wide(counters: tuple[int, ...], first: int) -> Iterator[tuple[int, int, int]]:
    # the 64-bit columns: Conns, In/OutPkts (Counter64), then each rate's low and high
    # 32 bits
    for i, value in enumerate(counters[0:3]):
        yield first + i, C64, value & M64
    for i, rate in enumerate(counters[5:10]):
        yield first + 3 + 2 * i, UNS, rate & M32
        yield first + 4 + 2 * i, UNS, (rate >> 32) & M32


def _tunnel_columns(tun: tuple[int, int | None, int | None], first: int
                    ) -> Iterator[tuple[int, int, int | bytes]]:
    kind, port, csum = tun
    yield first, ax.INTEGER, kind
    if kind == TUNNEL_TYPES["gue"]:
        yield first + 1, ax.GAUGE32, port or 0
    if kind != TUNNEL_TYPES["ipip"]:
        yield first + 2, ax.INTEGER, csum or 1


def rs_columns(vs: m.VirtualServer, rs: m.RealServer | None, st: dict[str, Any],
               config: Any, counters: tuple[int, ...] = NO_DEST_COUNTERS
               ) -> Iterator[tuple[int, int, int | bytes]]:
    """(column, AgentX type, value) of one realServerEntry: ``rs`` the configured real
    server, None for the sorry server; ``st`` its entry of the pool status;
    ``counters`` its destinations' IPVS counters summed over the virtual server's
    services (:func:`hafast.lvs.ipvs.decode_dest_counters`)."""
    address = str(st["address"])
    sorry = rs is None
    yield 2, INT, 2 if sorry else 1
    yield 3, INT, addr_type(address)
    yield 4, STR, packed(address)
    yield 5, UNS, int(st.get("port") or 0)
    if rs is not None:
        yield 6, INT, truth(st.get("alive"))
        yield 7, INT, int(st.get("weight") or 0)
        if rs.uthreshold:
            yield 8, UNS, rs.uthreshold
        if rs.lthreshold:
            yield 9, UNS, rs.lthreshold
        yield 10, INT, truth(not rs.inhibit_on_failure)
        if (text := script_text(rs.notify_up)) is not None:
            yield 11, STR, text
        if (text := script_text(rs.notify_down)) is not None:
            yield 12, STR, text
        yield 13, UNS, 0 if st.get("alive") or not rs.checkers else 1
    # Conns, then the Active, Inactive and Persistent connections (gauges)
    yield 14, UNS, counters[0] & M32
    for col, value in zip((15, 16, 17), counters[10:13], strict=True):
        yield col, UNS, value & M32
    yield from _totals(counters, 18)
    yield from _wide(counters, 27)
    method = (rs.lvs_method if rs is not None
              else vs.sorry_server_lvs_method or vs.lvs_method)
    if (kind := _method(method)) is not None:
        yield 40, INT, kind
    if rs is not None and rs.virtualhost:
        yield 41, STR, rs.virtualhost.encode()
    # keepalived's sorry server is zeroed memory: no alpha, no timers, no alerts
    yield 42, INT, truth(rs is not None and rs.alpha)
    delay_us = 0 if rs is None else vs.delay_loop_us
    yield 43, UNS, 0  # Retry
    yield 44, UNS, 0  # DelayBeforeRetry
    yield 45, UNS, 0  # Warmup
    yield 46, UNS, delay_us // US
    gd = getattr(config, "global_defs", None)
    alerts = rs is not None and smtp_enabled(
        rs.smtp_alert, getattr(gd, "smtp_alert_checker", None),
        getattr(gd, "smtp_alert", None), default=True)
    yield 47, INT, truth(alerts)
    yield 48, UNS, 0
    yield 49, UNS, 0
    yield 50, UNS, delay_us
    yield 51, UNS, 0 if rs is None else CONNECT_TIMEOUT_US
    if (tun := _tunnel(method)) is not None:
        yield from _tunnel_columns(tun, 52)
    if rs is not None and rs.snmp_name:
        yield 55, STR, rs.snmp_name.encode()


def member_columns(mem: m.VsgMember) -> Iterator[tuple[int, int, int | bytes]]:
    """(column, AgentX type, value) of one virtualServerGroupMemberEntry: type fwmark(1),
    ip(2) or ipRange(3), then the fwmark, or the address (a range's two ends) and port."""
    if mem.fwmark is not None:
        yield 2, INT, 1
        yield 3, UNS, mem.fwmark
        return
    first, last = (str(a) for a in member_span(mem))
    yield 2, INT, 2 if first == last else 3
    yield 4, INT, addr_type(first)
    if first == last:
        yield 5, STR, packed(first)
    else:
        yield 6, STR, packed(first)
        yield 7, STR, packed(last)
    yield 8, UNS, mem.port or 0


def _groups(config: Any) -> Iterator[m.VirtualServerGroup]:
    # the groups keepalived keeps, in config order: it drops an empty one, and one
    # mixing IPv4 and IPv6 addresses with a fwmark of no family
    for g in getattr(config, "virtual_server_groups", ()):
        fams = {addr_type(mem.address.split("/")[0]) for mem in g.members
                if mem.address is not None}
        bare_mark = any(mem.fwmark is not None and mem.family is None for mem in g.members)
        if g.members and not (len(fams) > 1 and bare_mark):
            yield g


def group_rows(config: Any) -> Iterator[ax.VarBind]:
    """The virtualServerGroupTable (check.1) and virtualServerGroupMemberTable (check.2)
    from the config alone.  keepalived numbers a group's members fwmarks first, then
    addresses and ranges, each in config order."""
    for gindex, g in enumerate(_groups(config), 1):
        yield ax.VarBind(STR, (*VSG_ENTRY, 2, gindex), g.name.encode())
        members = ([mem for mem in g.members if mem.fwmark is not None]
                   + [mem for mem in g.members if mem.fwmark is None])
        for mindex, mem in enumerate(members, 1):
            for col, kind, value in member_columns(mem):
                yield ax.VarBind(kind, (*VSGM_ENTRY, col, gindex, mindex), value)


def _pairs(config: Any, pools: dict[str, Any] | None
           ) -> Iterator[tuple[int, m.VirtualServer, dict[str, Any]]]:
    # (index, virtual server, its pool status) in config order; a virtual server the
    # keeper does not run (no pools, or one it could not build) has no row
    by_label = {v.get("name"): v for v in (pools or {}).get("virtual_servers") or ()}
    for index, vs in enumerate(getattr(config, "virtual_servers", ()), 1):
        st = by_label.get(vs_label(vs))
        if st is not None:
            yield index, vs, st


def _real_servers(vs: m.VirtualServer, st: dict[str, Any]
                  ) -> Iterator[tuple[m.RealServer | None, dict[str, Any]]]:
    # the sorry server first, then the real servers in config order, each with its
    # pool status (by address and port; the status names the port reached on)
    if vs.sorry_server is not None:
        addr, port = vs.sorry_server
        yield None, {"address": addr, "port": port or 0}
    got = list(st.get("real_servers") or ())
    for i, rs in enumerate(vs.real_servers):
        found = next((r for r in got if r.get("address") == rs.address
                      and (rs.port is None or r.get("port") == rs.port)), None)
        if found is None and i < len(got):
            found = got[i]
        if found is not None:
            got.remove(found)
            yield rs, found


def scalars(config: Any) -> Iterator[ax.VarBind]:
    """lvsSyncDaemon (check.6) and lvsTimeouts (check.7), from global_defs: keepalived
    serves the sync daemon's details only when it has one, a timeout only when set."""
    gd = getattr(config, "global_defs", None)
    syncd = getattr(gd, "lvs_sync_daemon", None)
    yield ax.VarBind(INT, (*CHECK, 6, 1, 0), truth(syncd))
    if syncd is not None:
        yield ax.VarBind(STR, (*CHECK, 6, 2, 0), syncd.interface.encode())
        if syncd.instance:
            yield ax.VarBind(STR, (*CHECK, 6, 3, 0), syncd.instance.encode())
        # keepalived's checker process: 0 when it runs the daemon itself (no instance);
        # with an instance the VRRP process fills in its VRID, and the checker's copy
        # stays PARAMETER_UNSET (UINT_MAX, -1 as a 32-bit INTEGER; not seen on a wire)
        syncid = syncd.syncid
        if syncid is None:
            syncid = -1 if syncd.instance else 0
        yield ax.VarBind(INT, (*CHECK, 6, 4, 0), syncid)
        yield ax.VarBind(INT, (*CHECK, 6, 5, 0), syncd.maxlen)
        yield ax.VarBind(INT, (*CHECK, 6, 6, 0), syncd.port)
        yield ax.VarBind(INT, (*CHECK, 6, 7, 0), syncd.ttl)
        if syncd.group:
            yield ax.VarBind(INT, (*CHECK, 6, 8, 0), addr_type(syncd.group))
            yield ax.VarBind(STR, (*CHECK, 6, 9, 0), packed(syncd.group))
    timeouts = getattr(gd, "lvs_timeouts", None)
    for col, name in enumerate(("tcp", "tcpfin", "udp"), 1):
        if value := getattr(timeouts, name, 0):
            yield ax.VarBind(INT, (*CHECK, 7, col, 0), value)


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


class _Counters:
    """The IPVS counters (:meth:`hafast.lvs.ipvs.IpvsBackend.counters`) summed as
    keepalived's ipvs_update_stats sums them: a virtual server's over every service it
    stands for (a group's members fan out), a real server's over its destination in
    each of them.  Addresses are matched in one spelling (the kernel's is inet_ntop's),
    the kernel's put in it once per walk, not once per real server."""

    def __init__(self, config: Any, by_key: Mapping[ServiceKey, Any] | None) -> None:
        self.config = config
        # service -> (its counters, its destinations' by (address, port))
        self.by_key = {
            _normal_key(k): (c.stats, {(normal_address(addr), port): values
                                       for (addr, port), values in c.dests.items()})
            for k, c in (by_key or {}).items()}
        self.groups: dict[str, m.VirtualServerGroup] = {}
        for g in getattr(config, "virtual_server_groups", ()):
            self.groups.setdefault(g.name, g)

    def of(self, vs: m.VirtualServer) -> tuple[tuple[int, ...], list[Any]]:
        """The virtual server's summed counters and its services' destinations."""
        if not self.by_key:
            return NO_COUNTERS, []
        try:
            keys = service_keys(vs, self.groups)
        except ValueError:  # a group too large to be in IPVS at all
            keys = []
        found = [c for k in keys if (c := self.by_key.get(_normal_key(k))) is not None]
        total = NO_COUNTERS
        for stats, _dests in found:
            total = _add(total, stats)
        return total, [dests for _stats, dests in found]

    @staticmethod
    def dest(found: list[Any], address: str, port: int) -> tuple[int, ...]:
        total = NO_DEST_COUNTERS
        want = (normal_address(address), port)
        for dests in found:
            if (values := dests.get(want)) is not None:
                total = _add(total, values)
        return total


def _normal_key(k: ServiceKey) -> ServiceKey:
    if k.address is None:
        return k
    return ServiceKey(k.family, k.protocol, normal_address(k.address), k.port, k.fwmark)


def check_rows(config: Any, pools: dict[str, Any] | None,
               counters: Mapping[ServiceKey, Any] | None = None) -> list[ax.VarBind]:
    """The virtualServerGroup, virtualServerGroupMember, virtualServer and realServer
    tables' varbinds and the lvsSyncDaemon and lvsTimeouts scalars, sorted by OID;
    ``counters`` the IPVS backend's (None: zeros, as for the other backends)."""
    rows: list[ax.VarBind] = [*scalars(config), *group_rows(config)]
    sums = _Counters(config, counters)
    for index, vs, st in _pairs(config, pools):
        vs_sum, found = sums.of(vs)
        for col, kind, value in vs_columns(vs, st, config, vs_sum):
            rows.append(ax.VarBind(kind, (*VS_ENTRY, col, index), value))
        for rindex, (rs, rst) in enumerate(_real_servers(vs, st), 1):
            rs_sum = (sums.dest(found, str(rst["address"]), int(rst.get("port") or 0))
                      if found else NO_DEST_COUNTERS)
            for col, kind, value in rs_columns(vs, rs, rst, config, rs_sum):
                rows.append(ax.VarBind(kind, (*RS_ENTRY, col, index, rindex), value))
    rows.sort(key=lambda vb: vb.name)
    return rows


def _vs_identity(vs: m.VirtualServer, config: Any) -> list[ax.VarBind]:
    # the trap's virtual server columns, named without a row index (as keepalived)
    out = [ax.VarBind(INT, (*VS_ENTRY, 2),
                      3 if vs.group is not None else 1 if vs.fwmark is not None else 2)]
    if vs.group is not None:
        out.append(ax.VarBind(STR, (*VS_ENTRY, 3), vs.group.encode()))
    elif vs.fwmark is not None:
        out.append(ax.VarBind(UNS, (*VS_ENTRY, 4), vs.fwmark))
    else:
        out += [ax.VarBind(INT, (*VS_ENTRY, 5), _vs_family(vs, config)),
                ax.VarBind(STR, (*VS_ENTRY, 6), packed(vs.address or "0.0.0.0")),
                ax.VarBind(UNS, (*VS_ENTRY, 7), vs.port or 0)]
    # keepalived 2.2.7 sends virtualServerProtocol as TruthValue(tcp): tcp(1), else 2
    out.append(ax.VarBind(INT, (*VS_ENTRY, 8), truth(vs.protocol == "TCP")))
    return out


def find_vs(config: Any, label: str) -> m.VirtualServer | None:
    return next((v for v in getattr(config, "virtual_servers", ()) if vs_label(v) == label),
                None)


def rs_trap(config: Any, vs: m.VirtualServer, address: str, port: int, alive: bool,
            up: int, sys_uptime: int) -> tuple[ax.VarBind, ...]:
    """realServerStateChange for a real server of ``vs`` now ``alive`` or not, ``up``
    of its real servers alive: as keepalived 2.2.7's check_snmp_rs_trap."""
    return (ax.VarBind(ax.TIME_TICKS, SYS_UPTIME, sys_uptime),
            ax.VarBind(ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, RS_STATE_CHANGE),
            ax.VarBind(INT, (*RS_ENTRY, 3), addr_type(address)),
            ax.VarBind(STR, (*RS_ENTRY, 4), packed(address)),
            ax.VarBind(UNS, (*RS_ENTRY, 5), port),
            ax.VarBind(INT, (*RS_ENTRY, 6), truth(alive)),
            *_vs_identity(vs, config),
            ax.VarBind(UNS, (*VS_ENTRY, 21), up),
            ax.VarBind(UNS, (*VS_ENTRY, 20), len(vs.real_servers)),
            ax.VarBind(STR, (*GLOBAL, 2, 0), router_id_of(config).encode()))


def quorum_trap(config: Any, vs: m.VirtualServer, quorum_up: bool, up: int,
                sys_uptime: int, stopping: bool = False) -> tuple[ax.VarBind, ...]:
    """virtualServerQuorumStateChange: as keepalived 2.2.7's check_snmp_quorum_trap."""
    return (ax.VarBind(ax.TIME_TICKS, SYS_UPTIME, sys_uptime),
            ax.VarBind(ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VS_QUORUM_STATE_CHANGE),
            *_vs_identity(vs, config),
            ax.VarBind(INT, (*VS_ENTRY, 23), 3 if stopping else truth(quorum_up)),
            ax.VarBind(UNS, (*VS_ENTRY, 22), vs.quorum),
            ax.VarBind(UNS, (*VS_ENTRY, 21), up),
            ax.VarBind(UNS, (*VS_ENTRY, 20), len(vs.real_servers)),
            ax.VarBind(ax.OCTET_STRING, (*GLOBAL, 2, 0), router_id_of(config).encode()))

