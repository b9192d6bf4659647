"""VRRP-MIB (RFC 2787) and VRRPV3-MIB (RFC 6527) as keepalived 2.2.7 serves them.

:func:`rfc2787_rows` and :func:`rfc6527_rows` turn the parent's status
(:meth:`hafast.app.desk.Desk.status`) into the sorted varbinds of mib-2 68 and mib-2
207; :func:`hafast.status.snmp_mib.answer` answers from them.  No I/O: the shell
(:mod:`hafast.status.snmp`) passes what only it can read (each interface's hardware
address) and the clock.

keepalived's choices, read in its vrrp_snmp.c and checked side by side with
``snmpwalk`` (tests/netns/test_snmp_agentx.py):

* rows are indexed by the interface's ifIndex and the VRID (and, in RFC 6527, the
  address type: ipv4(1), ipv6(2)), and an instance without virtual addresses has none;
* RFC 2787 shows VRRPv2 IPv4 instances only; RFC 6527 shows every instance, VRRPv2
  too (Debian's keepalived is built with SNMP_V3_FOR_V2);
* the associated-address tables index an address by its bytes with no length
  prefix (one sub-identifier per byte), each row's RowStatus active(1);
* vrrpOperAuthKey is never served; vrrpOperVirtualMacAddr is the interface's own
  hardware address (a VMAC interface's with ``use_vmac``); the primary address is
  the one the instance advertises from;
* vrrpv3StatisticsNewMasterReason is keepalived's: notMaster(0) until the first
  takeover, then an address owner says preempted(2) (keepalived sets that reason
  when an owner starts) and any other instance masterNoResponse(3); the worker does
  not report a takeover caused by a priority 0 advert, priority(1), or by preempting
  a lower master, preempted(2), apart.

keepalived 2.2.7 shows only the first row of vrrpOperTable and vrrpRouterStatsTable
in a walk (an operator precedence slip in snmp_rfcv2_header_list_table, fixed
upstream by "snmp: fix operator precedence"); these tables list every row.

Example::

    >>> inst = {"data": {"iname": "VI_1", "vrid": 51, "version": 2, "state": 2,
    ...                  "base_priority": 100, "vips": ["10.0.0.9/24"], "adver_int": 1.0,
    ...                  "nopreempt": 0, "accept": 0, "auth_type": 0, "last_transition": 0.0},
    ...         "ka": {"ifindex": 3, "src_ip": "10.0.0.1"}, "stats": {}, "rejects": {}}
    >>> rows = rfc2787_rows({"vrrp": [inst]}, traps=False, hw_addrs={})
    >>> [(vb.name[7:], vb.value) for vb in rows if vb.name[7:9] == (1, 4)]
    [((1, 4, 1, 2, 3, 51, 10, 0, 0, 9), 1)]
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from hafast.status import agentx as ax
from hafast.status.snmp_mib import REASON_NOT_MASTER, VRRP_MIB, VRRPV3_MIB, new_master_reason

# VRRP-MIB (RFC 2787 §6): vrrpMIB = mib-2 68
VRRP_OPER_ENTRY: ax.Oid = (*VRRP_MIB, 1, 3, 1)  # vrrpOperTable.vrrpOperEntry
VRRP_ASSO_IP_ADDR_ENTRY: ax.Oid = (*VRRP_MIB, 1, 4, 1)
VRRP_ROUTER_STATS_ENTRY: ax.Oid = (*VRRP_MIB, 2, 4, 1)

# VRRPV3-MIB (RFC 6527 §7): vrrpv3MIB = mib-2 207
VRRPV3_OPERATIONS_ENTRY: ax.Oid = (*VRRPV3_MIB, 1, 1, 1, 1)
VRRPV3_ASSOCIATED_IP_ADDR_ENTRY: ax.Oid = (*VRRPV3_MIB, 1, 1, 2, 1)
VRRPV3_STATISTICS: ax.Oid = (*VRRPV3_MIB, 1, 2)
VRRPV3_STATISTICS_ENTRY: ax.Oid = (*VRRPV3_STATISTICS, 5, 1)

# RFC 2787 VrrpOperState / RFC 6527 vrrpv3OperationsStatus: initialize(1), backup(2),
# master(3); keepalived maps its FAULT (3) to initialize (vrrp_snmp_rfc_state).
_RFC_STATE = {0: 1, 1: 2, 2: 3}
TRUE, FALSE = 1, 2  # SNMPv2-TC TruthValue
ACTIVE = 1  # SNMPv2-TC RowStatus

Row = tuple[int, int | bytes] | None
Column = Callable[["Instance"], Row]


class Instance:
    """One instance of the parent's status, with the derived values the columns read."""

    __slots__ = ("addrs", "data", "family", "hw_addr", "ka", "now", "rejects", "started",
                 "stats")

    def __init__(self, inst: dict[str, Any], hw_addrs: Mapping[str, bytes], now: float,
                 started: float) -> None:
        self.data: dict[str, Any] = inst.get("data") or {}
        self.ka: dict[str, Any] = inst.get("ka") or {}
        self.stats: dict[str, int] = inst.get("stats") or {}
        self.rejects: dict[str, int] = inst.get("rejects") or {}
        addrs = []
        for text in self.data.get("vips") or ():
            try:
                addrs.append(ipaddress.ip_interface(text).ip)
            except ValueError:
                continue
        self.addrs = addrs
        self.family = addrs[0].version if addrs else 0
        self.hw_addr = hw_addrs.get(str(self.data.get("ifp_ifname")))
        self.now = now
        self.started = started

    def index(self) -> tuple[int, int]:
        return int(self.ka.get("ifindex") or 0), int(self.data["vrid"])

    def state(self) -> int:
        return _RFC_STATE.get(int(self.data["state"]), 1)

    def primary(self) -> bytes | None:
        # keepalived: the interface's first address of the instance's family, which
        # the instance advertises from unless mcast_src_ip/unicast_src_ip says otherwise
        try:
            return ipaddress.ip_address(self.ka.get("src_ip") or "").packed
        except ValueError:
            return None

    def heard(self) -> bytes:
        # keepalived's master_saddr: the source of the last advert taken while
        # BACKUP, zeros before any; a master keeps the one it last heard
        try:
            return ipaddress.ip_address(self.ka.get("master_heard") or "").packed
        except ValueError:
            return bytes(4 if self.family == 4 else 16)

    def up_since(self) -> bool:
        return int(self.data["state"]) in (1, 2)  # BACKUP or MASTER

    def cs_since_transition(self) -> int:
        return max(0, int((self.now - float(self.data.get("last_transition") or 0)) * 100))

    def adver_cs(self) -> int:
        return round(float(self.data["adver_int"]) * 100)

    def master_reason(self) -> int:
        if not self.stats.get("become_master"):
            return REASON_NOT_MASTER
        return new_master_reason(self.data)

    def proto_err_reason(self) -> int:
        # the worker's record of the last protocol error (hafast.vrrp.instance
        # PROTO_ERROR_REASONS), as keepalived's stats->proto_err_reason: noError(0)
        # before any and after the stats are cleared
        return int(self.ka.get("proto_err_reason") or 0)


def _counter(name: str, kind: int = ax.COUNTER32) -> Column:
    return lambda i: (kind, int(i.stats.get(name, 0)))


def _v2_uptime(i: Instance) -> Row:
    # RFC 2787 vrrpOperVirtualRouterUpTime: sysUpTime when it left initialize (keepalived:
    # when the instance last moved, measured from the agent's start); 0 while down
    if not i.up_since():
        return ax.TIME_TICKS, 0
    start = float(i.data.get("last_transition") or 0)
    return ax.TIME_TICKS, max(0, int((start - i.started) * 100))


# vrrpOperEntry column -> value (RFC 2787 §6; keepalived's vrrp_rfcv2_vars)
OPER_COLUMNS: dict[int, Column] = {
    2: lambda i: None if i.hw_addr is None else (ax.OCTET_STRING, i.hw_addr),  # VirtualMacAddr
    3: lambda i: (ax.INTEGER, i.state()),                                     # State
    4: lambda i: (ax.INTEGER, 1),                                             # AdminState up
    5: lambda i: (ax.INTEGER, int(i.data["base_priority"])),                  # Priority
    6: lambda i: (ax.INTEGER, len(i.addrs)),                                  # IpAddrCount
    7: lambda i: (ax.IP_ADDRESS, i.heard()),                                  # MasterIpAddr
    8: lambda i: None if (p := i.primary()) is None else (ax.IP_ADDRESS, p),  # PrimaryIpAddr
    9: lambda i: (ax.INTEGER, int(i.data.get("auth_type") or 0) + 1),         # AuthType
    # 10 AuthKey: "Not readable" (keepalived serves no row)
    # AdvertisementInterval: whole seconds, as keepalived's adver_int / TIMER_HZ
    11: lambda i: (ax.INTEGER, int(float(i.data["adver_int"]))),
    12: lambda i: (ax.INTEGER, FALSE if i.data["nopreempt"] else TRUE),       # PreemptMode
    13: _v2_uptime,                                                           # VirtualRouterUpTime
    14: lambda i: (ax.INTEGER, 1),                                            # Protocol ip(1)
    15: lambda i: (ax.INTEGER, ACTIVE),                                       # RowStatus
}

# vrrpRouterStatsEntry column -> counter (keepalived's per-instance stats)
ROUTER_STATS_COLUMNS: dict[int, Column] = {
    1: _counter("become_master"),
    2: _counter("advert_rcvd"),
    3: _counter("advert_interval_err"),
    4: _counter("auth_failure"),
    5: _counter("ip_ttl_err"),
    6: _counter("pri_zero_rcvd"),
    7: _counter("pri_zero_sent"),
    8: _counter("invalid_type_rcvd"),
    9: _counter("addr_list_err"),
    10: _counter("invalid_authtype"),
    11: _counter("authtype_mismatch"),
    12: _counter("packet_len_err"),
}


def _v3_master(i: Instance) -> Row:
    # keepalived: a master names its own primary address, any other state the last
    # master heard
    if int(i.data["state"]) == 2:
        p = i.primary()
        return None if p is None else (ax.OCTET_STRING, p)
    return ax.OCTET_STRING, i.heard()


# vrrpv3OperationsEntry column -> value (RFC 6527 §7; keepalived's vrrp_rfcv3_vars)
OPERATIONS_COLUMNS: dict[int, Column] = {
    3: _v3_master,                                                            # MasterIpAddr
    4: lambda i: None if (p := i.primary()) is None else (ax.OCTET_STRING, p),  # PrimaryIpAddr
    5: lambda i: None if i.hw_addr is None else (ax.OCTET_STRING, i.hw_addr),  # VirtualMacAddr
    6: lambda i: (ax.INTEGER, i.state()),                                     # Status
    7: lambda i: (ax.GAUGE32, int(i.data["base_priority"])),                  # Priority
    8: lambda i: (ax.INTEGER, len(i.addrs)),                                  # AddrCount
    9: lambda i: (ax.INTEGER, i.adver_cs()),                                  # AdvInterval (cs)
    10: lambda i: (ax.INTEGER, FALSE if i.data["nopreempt"] else TRUE),       # PreemptMode
    11: lambda i: (ax.INTEGER, TRUE if i.data.get("accept") else FALSE),      # AcceptMode
    12: lambda i: (ax.TIME_TICKS, i.cs_since_transition() if i.up_since() else 0),  # UpTime
    13: lambda i: (ax.INTEGER, ACTIVE),                                       # RowStatus
}

# vrrpv3StatisticsEntry column -> value
STATISTICS_COLUMNS: dict[int, Column] = {
    1: _counter("become_master"),                                  # MasterTransitions
    2: lambda i: (ax.INTEGER, i.master_reason()),                  # NewMasterReason
    3: _counter("advert_rcvd", ax.COUNTER64),                      # RcvdAdvertisements
    4: _counter("advert_interval_err", ax.COUNTER64),              # AdvIntervalErrors
    5: _counter("ip_ttl_err", ax.COUNTER64),                       # IpTtlErrors
    6: lambda i: (ax.INTEGER, i.proto_err_reason()),               # ProtoErrReason
    7: _counter("pri_zero_rcvd", ax.COUNTER64),                    # RcvdPriZeroPackets
    8: _counter("pri_zero_sent", ax.COUNTER64),                    # SentPriZeroPackets
    9: _counter("invalid_type_rcvd", ax.COUNTER64),                # RcvdInvalidTypePackets
    10: _counter("addr_list_err", ax.COUNTER64),                   # AddressListErrors
    11: _counter("packet_len_err", ax.COUNTER64),                  # PacketLengthErrors
    12: lambda i: (ax.TIME_TICKS, 0),      # RowDiscontinuityTime: keepalived has none
    13: lambda i: (ax.GAUGE32, i.adver_cs() * 10),                 # RefreshRate (ms)
}

# Router-wide error counters: the sum over the instances shown (keepalived counts
# them per instance; a VRID error is never counted)
_SUMS = (("checksum_err", 1), ("version_err", 2), (None, 3))


def _instances(status: dict[str, Any], hw_addrs: Mapping[str, bytes], now: float,
               started: float) -> list[Instance]:
    out = []
    for inst in status.get("vrrp") or ():
        i = Instance(inst, hw_addrs, now, started)
        if i.addrs and "vrid" in i.data:
            out.append(i)
    return out


def _table(entry: ax.Oid, columns: Mapping[int, Column], instances: list[Instance],
           index: Callable[[Instance], tuple[int, ...]]) -> list[ax.VarBind]:
    rows = []
    for col, value_of in columns.items():
        for i in instances:
            try:
                got = value_of(i)
            except (KeyError, TypeError, ValueError):
                continue  # a field this worker's report lacks: no row
            if got is not None:
                rows.append(ax.VarBind(got[0], (*entry, col, *index(i)), got[1]))
    return rows


def _sum(instances: list[Instance], reason: str | None) -> int:
    return sum(int(i.rejects.get(reason, 0)) for i in instances) if reason else 0


def rfc2787_rows(status: dict[str, Any], *, traps: bool, hw_addrs: Mapping[str, bytes],
                 now: float = 0.0, started: float = 0.0) -> list[ax.VarBind]:
    """VRRP-MIB's varbinds in OID order.

    ``traps``: ``enable_traps`` (vrrpNotificationCntl); ``hw_addrs``: interface name ->
    hardware address; ``now`` and ``started`` (the agent's start), wall-clock seconds,
    give the up times.
    """
    shown = [i for i in _instances(status, hw_addrs, now, started)
             if i.data.get("version") == 2 and i.family == 4]
    rows = [ax.VarBind(ax.INTEGER, (*VRRP_MIB, 1, 1, 0), 2),  # vrrpNodeVersion
            ax.VarBind(ax.INTEGER, (*VRRP_MIB, 1, 2, 0), 1 if traps else 2)]  # NotificationCntl
    rows += _table(VRRP_OPER_ENTRY, OPER_COLUMNS, shown, Instance.index)
    rows += [ax.VarBind(ax.INTEGER, (*VRRP_ASSO_IP_ADDR_ENTRY, 2, *i.index(), *a.packed), ACTIVE)
             for i in shown for a in i.addrs]
    rows += [ax.VarBind(ax.COUNTER32, (*VRRP_MIB, 2, n, 0), _sum(shown, reason) & 0xFFFFFFFF)
             for reason, n in _SUMS]
    rows += _table(VRRP_ROUTER_STATS_ENTRY, ROUTER_STATS_COLUMNS, shown, Instance.index)
    rows.sort(key=lambda vb: vb.name)
    return rows


def _v3_index(i: Instance) -> tuple[int, ...]:
    return (*i.index(), 1 if i.family == 4 else 2)  # InetAddressType ipv4(1), ipv6(2)


def rfc6527_rows(status: dict[str, Any], *, hw_addrs: Mapping[str, bytes],
                 now: float = 0.0, started: float = 0.0) -> list[ax.VarBind]:
    """VRRPV3-MIB's varbinds in OID order (arguments as :func:`rfc2787_rows`).

    >>> rfc6527_rows({"vrrp": []}, hw_addrs={})[0].name[-4:]
    (1, 2, 1, 0)
    """
    shown = _instances(status, hw_addrs, now, started)
    rows = _table(VRRPV3_OPERATIONS_ENTRY, OPERATIONS_COLUMNS, shown, _v3_index)
    rows += [ax.VarBind(ax.INTEGER, (*VRRPV3_ASSOCIATED_IP_ADDR_ENTRY, 2, *_v3_index(i),
                                     *a.packed), ACTIVE)
             for i in shown for a in i.addrs]
    rows += [ax.VarBind(ax.COUNTER64, (*VRRPV3_STATISTICS, n, 0), _sum(shown, reason))
             for reason, n in _SUMS]
    rows.append(ax.VarBind(ax.TIME_TICKS, (*VRRPV3_STATISTICS, 4, 0), 0))  # DiscontinuityTime
    rows += _table(VRRPV3_STATISTICS_ENTRY, STATISTICS_COLUMNS, shown, _v3_index)
    rows.sort(key=lambda vb: vb.name)
    return rows
