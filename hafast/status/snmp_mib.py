"""KEEPALIVED-MIB as keepalived 2.2.7 serves it, built from the parent's status.

:func:`keepalived_rows` turns the status dict (:meth:`hafast.app.desk.Desk.status`) and
the running config into the sorted varbinds of the subtrees served; :func:`answer`
answers an AgentX Get, GetNext or GetBulk from them.  No I/O: the AgentX shell
(:mod:`hafast.status.snmp`) feeds it.

Served so far: the global scalars ``version`` and ``routerId`` and the
vrrpInstanceTable columns listed in :data:`INSTANCE_COLUMNS`, with keepalived's
types and encodings (vrrp_snmp.c, checked side by side with ``snmpwalk``).

Example::

    >>> rows = keepalived_rows({"vrrp": []}, None, router_id="r1")
    >>> [(vb.name[-2:], vb.value) for vb in rows][1:]
    [((2, 0), b'r1')]
"""

from __future__ import annotations

import bisect
import ipaddress
import os
from collections.abc import Callable, Sequence
from typing import Any

from hafast import __version__
from hafast.status import agentx as ax

# KEEPALIVED-MIB: keepalived = enterprises.9586.100.5
KEEPALIVED: ax.Oid = (1, 3, 6, 1, 4, 1, 9586, 100, 5)
GLOBAL: ax.Oid = (*KEEPALIVED, 1)
VRRP: ax.Oid = (*KEEPALIVED, 2)
VRRP_INSTANCE_ENTRY: ax.Oid = (*VRRP, 3, 1)  # vrrpInstanceTable.vrrpInstanceEntry

# SNMPv2-MIB: sysUpTime.0 and snmpTrapOID.0 open every notification (RFC 3416 §4.2.6)
SYS_UPTIME: ax.Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID: ax.Oid = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
# KEEPALIVED-MIB vrrpNotifications (vrrp 10 0): vrrpSyncGroupStateChange,
# vrrpInstanceStateChange; vrrpSyncGroupTable.vrrpSyncGroupEntry
VRRP_SYNC_GROUP_STATE_CHANGE: ax.Oid = (*VRRP, 10, 0, 1)
VRRP_INSTANCE_STATE_CHANGE: ax.Oid = (*VRRP, 10, 0, 2)
VRRP_SYNC_GROUP_ENTRY: ax.Oid = (*VRRP, 1, 1)

# VRRP-MIB (RFC 2787): vrrpMIB = mib-2 68; vrrpNotifications 0, vrrpOperEntry 1.3.1
VRRP_MIB: ax.Oid = (1, 3, 6, 1, 2, 1, 68)
VRRP_TRAP_NEW_MASTER: ax.Oid = (*VRRP_MIB, 0, 1)
VRRP_TRAP_AUTH_FAILURE: ax.Oid = (*VRRP_MIB, 0, 2)
VRRP_OPER_MASTER_IP_ADDR: ax.Oid = (*VRRP_MIB, 1, 3, 1, 7)
# vrrpOperations 5 and 6, accessible-for-notify only
VRRP_TRAP_PACKET_SRC: ax.Oid = (*VRRP_MIB, 1, 5)
VRRP_TRAP_AUTH_ERROR_TYPE: ax.Oid = (*VRRP_MIB, 1, 6)

# VRRPV3-MIB (RFC 6527): vrrpv3MIB = mib-2 207; vrrpv3Notifications 0,
# vrrpv3OperationsEntry 1.1.1, vrrpv3StatisticsEntry 1.2.5
VRRPV3_MIB: ax.Oid = (1, 3, 6, 1, 2, 1, 207)
VRRPV3_NEW_MASTER: ax.Oid = (*VRRPV3_MIB, 0, 1)
VRRPV3_PROTO_ERROR: ax.Oid = (*VRRPV3_MIB, 0, 2)
VRRPV3_OPER_MASTER_IP_ADDR: ax.Oid = (*VRRPV3_MIB, 1, 1, 1, 1, 3)
VRRPV3_NEW_MASTER_REASON: ax.Oid = (*VRRPV3_MIB, 1, 2, 5, 1, 2)
VRRPV3_PROTO_ERR_REASON: ax.Oid = (*VRRPV3_MIB, 1, 2, 5, 1, 6)
# RFC 6527 vrrpv3StatisticsNewMasterReason
REASON_NOT_MASTER, REASON_PRIORITY, REASON_PREEMPTED, REASON_MASTER_NO_RESPONSE = 0, 1, 2, 3

# VrrpState textual convention, keepalived's own numbering (vrrp.h VRRP_STATE_*)
STATES = {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}

Column = Callable[[dict[str, Any], Any], tuple[int, int | bytes]]


def _initial_state(data: dict[str, Any], cfg: Any) -> tuple[int, int]:
    # keepalived's configured state; an owner (255) without "state MASTER" starts
    # wanting MASTER as well (vrrp_complete_instance).
    if cfg is None:
        return ax.INTEGER, STATES["BACKUP"]
    master = cfg.state == "MASTER" or cfg.priority == 255
    return ax.INTEGER, STATES["MASTER" if master else "BACKUP"]


# vrrpInstanceEntry column -> (AgentX type, value) from the instance's JSON "data"
# (hafast.vrrp.report.instance_json) and its config; keepalived's encodings.
INSTANCE_COLUMNS: dict[int, Column] = {
    2: lambda d, c: (ax.OCTET_STRING, str(d["iname"]).encode()),           # Name
    3: lambda d, c: (ax.GAUGE32, int(d["vrid"])),                          # VirtualRouterId
    4: lambda d, c: (ax.INTEGER, int(d["state"])),                         # State
    5: _initial_state,                                                     # InitialState
    6: lambda d, c: (ax.INTEGER, int(d["wantstate"])),                     # WantedState
    7: lambda d, c: (ax.INTEGER, int(d["base_priority"])),                 # BasePriority
    8: lambda d, c: (ax.INTEGER, int(d["effective_priority"])),            # EffectivePriority
    9: lambda d, c: (ax.INTEGER, 1 if d["vipset"] else 2),                 # VipsStatus allSet(1)
    10: lambda d, c: (ax.OCTET_STRING, str(d["ifp_ifname"]).encode()),     # PrimaryInterface
    # AdvertisementsInt: VRRPv2 whole seconds, VRRPv3 centiseconds (keepalived's
    # vrrp->adver_int / TIMER_HZ or / TIMER_CENTI_HZ)
    12: lambda d, c: (ax.GAUGE32, int(d["adver_int"]) if d["version"] == 2
                      else round(float(d["adver_int"]) * 100)),
    13: lambda d, c: (ax.INTEGER, 2 if d["nopreempt"] else 1),             # Preempt
    14: lambda d, c: (ax.GAUGE32, int(d["preempt_delay"])),                # PreemptDelay (s)
    30: lambda d, c: (ax.INTEGER, int(d["version"])),                      # VrrpVersion
}


def version_string() -> bytes:
    return f"hafast v{__version__}".encode()


def router_id_of(config: Any) -> str:
    """global_defs ``router_id``; keepalived's default is the host name."""
    gd = getattr(config, "global_defs", None)
    return getattr(gd, "router_id", None) or os.uname().nodename


def instance_trap(name: str, state: str, config: Any, sys_uptime: int) -> tuple[ax.VarBind, ...]:
    """The varbinds of vrrpInstanceStateChange for instance ``name`` entering ``state``.

    As keepalived 2.2.7's vrrp_snmp_instance_trap sends them (checked with snmptrapd):
    the instance's name, state and initial state named by their column OIDs with no
    row index, then the global routerId.

    >>> vbs = instance_trap("VI_1", "MASTER", None, 5)
    >>> [(vb.name[-3:], vb.value) for vb in vbs[2:4]]
    [((3, 1, 2), b'VI_1'), ((3, 1, 4), 2)]
    """
    cfg = next((c for c in getattr(config, "vrrp_instances", ()) if c.name == name), None)
    return (ax.VarBind(ax.TIME_TICKS, SYS_UPTIME, sys_uptime),
            ax.VarBind(ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRP_INSTANCE_STATE_CHANGE),
            ax.VarBind(ax.OCTET_STRING, (*VRRP_INSTANCE_ENTRY, 2), name.encode()),
            ax.VarBind(ax.INTEGER, (*VRRP_INSTANCE_ENTRY, 4), STATES.get(state, 0)),
            ax.VarBind(ax.INTEGER, (*VRRP_INSTANCE_ENTRY, 5), _initial_state({}, cfg)[1]),
            ax.VarBind(ax.OCTET_STRING, (*GLOBAL, 2, 0), router_id_of(config).encode()))


def group_trap(name: str, state: str, config: Any, sys_uptime: int) -> tuple[ax.VarBind, ...]:
    """The varbinds of vrrpSyncGroupStateChange for sync group ``name`` entering
    ``state``: as keepalived 2.2.7's vrrp_snmp_group_trap (checked with snmptrapd), the
    group's name and state by their column OIDs with no row index, then routerId."""
    return (ax.VarBind(ax.TIME_TICKS, SYS_UPTIME, sys_uptime),
            ax.VarBind(ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRP_SYNC_GROUP_STATE_CHANGE),
            ax.VarBind(ax.OCTET_STRING, (*VRRP_SYNC_GROUP_ENTRY, 2), name.encode()),
            ax.VarBind(ax.INTEGER, (*VRRP_SYNC_GROUP_ENTRY, 3), STATES.get(state, 0)),
            ax.VarBind(ax.OCTET_STRING, (*GLOBAL, 2, 0), router_id_of(config).encode()))


def new_master_trap(inst: dict[str, Any], sys_uptime: int) -> tuple[ax.VarBind, ...] | None:
    """RFC 2787 vrrpTrapNewMaster for ``inst`` (one instance of the parent's status),
    or None for an instance RFC 2787 cannot describe.

    As keepalived 2.2.7's vrrp_rfcv2_snmp_new_master_trap: only a VRRPv2 IPv4
    instance with addresses (suitable_for_rfc2787), and one varbind,
    vrrpOperMasterIpAddr.<ifindex>.<vrid> = the instance's own source address.

    >>> inst = {"data": {"version": 2, "vrid": 51, "vips": ["10.0.0.9/24"]},
    ...         "ka": {"ifindex": 3, "src_ip": "10.0.0.1"}}
    >>> vb = new_master_trap(inst, 0)[-1]
    >>> vb.name[-3:], vb.value
    ((7, 3, 51), b'\\n\\x00\\x00\\x01')
    """
    data, ka = inst.get("data") or {}, inst.get("ka") or {}
    if data.get("version") != 2 or not data.get("vips"):
        return None
    try:
        src = ipaddress.IPv4Address(ka.get("src_ip"))
    except ValueError:
        return None  # IPv6 (VRRPv2 carries IPv4 only) or no socket yet
    return (ax.VarBind(ax.TIME_TICKS, SYS_UPTIME, sys_uptime),
            ax.VarBind(ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRP_TRAP_NEW_MASTER),
            ax.VarBind(ax.IP_ADDRESS, (*VRRP_OPER_MASTER_IP_ADDR, int(ka.get("ifindex") or 0),
                                       int(data["vrid"])), src.packed))


def new_master_reason(data: dict[str, Any]) -> int:
    """RFC 6527 vrrpv3StatisticsNewMasterReason of an instance's last takeover.

    keepalived 2.2.7 (checked with snmpwalk): an address owner (priority 255) starts
    as master "preempted"(2), and a backup whose master-down timer fired says
    masterNoResponse(3).  The worker does not say why it became master, so a
    takeover after a priority 0 advert (keepalived: priority(1)) or over a lower
    master (preempted(2)) is told masterNoResponse too.

    >>> new_master_reason({"base_priority": 255}), new_master_reason({"base_priority": 9})
    (2, 3)
    """
    return REASON_PREEMPTED if data.get("base_priority") == 255 else REASON_MASTER_NO_RESPONSE


def v3_new_master_trap(inst: dict[str, Any], sys_uptime: int) -> tuple[ax.VarBind, ...] | None:
    """RFC 6527 vrrpv3NewMaster for ``inst``, or None for an instance without addresses.

    As keepalived 2.2.7's vrrp_rfcv3_snmp_new_master_notify, built with
    SNMP_V3_FOR_V2 as Debian's is (VRRPv2 instances too; checked with snmptrapd):
    vrrpv3OperationsMasterIpAddr.<ifindex>.<vrid>.<ipv4(1)|ipv6(2)> = the instance's
    own source address as an octet string, then vrrpv3StatisticsNewMasterReason
    (:func:`new_master_reason`).

    >>> inst = {"data": {"version": 3, "vrid": 51, "vips": ["fd00::9/64"],
    ...                  "base_priority": 100}, "ka": {"ifindex": 3, "src_ip": "fd00::1"}}
    >>> [vb.name[-4:] for vb in v3_new_master_trap(inst, 0)[2:]]
    [(3, 3, 51, 2), (2, 3, 51, 2)]
    """
    data, ka = inst.get("data") or {}, inst.get("ka") or {}
    if not data.get("vips"):
        return None
    try:
        src = ipaddress.ip_address(ka.get("src_ip") or "")
    except ValueError:
        return None
    index = (int(ka.get("ifindex") or 0), int(data["vrid"]), 1 if src.version == 4 else 2)
    reason = new_master_reason(data)
    return (ax.VarBind(ax.TIME_TICKS, SYS_UPTIME, sys_uptime),
            ax.VarBind(ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRPV3_NEW_MASTER),
            ax.VarBind(ax.OCTET_STRING, (*VRRPV3_OPER_MASTER_IP_ADDR, *index), src.packed),
            ax.VarBind(ax.INTEGER, (*VRRPV3_NEW_MASTER_REASON, *index), reason))


def auth_failure_trap(err: dict[str, Any], ifindex: int,
                      sys_uptime: int) -> tuple[ax.VarBind, ...] | None:
    """RFC 2787 vrrpTrapAuthFailure for ``err`` (an advert an instance rejected, as the
    VRRP worker tells it: :meth:`hafast.vrrp.side.VrrpSide._rx_error`), or None when
    it is no authentication error or RFC 2787 cannot describe the instance.

    As keepalived 2.2.7's vrrp_rfcv2_snmp_auth_err_trap: a VRRPv2 IPv4 instance with
    addresses only; vrrpTrapPacketSrc and vrrpTrapAuthErrorType (RFC 2787 makes them
    scalars, keepalived names them with the row's index <ifindex>.<vrid>, ``ifindex``
    the instance's interface's own, a VMAC's with ``use_vmac``): the advert's source
    and invalidAuthType(1), authTypeMismatch(2) or authFailure(3).

    >>> err = {"version": 2, "family": 4, "vips": 1, "vrid": 51, "src": bytes([10, 0, 0, 2]),
    ...        "auth_error": 3, "proto_error": 0}
    >>> src, kind = auth_failure_trap(err, 3, 0)[2:]
    >>> src.name[-3:], src.value == err["src"], kind.name[-3:], kind.value
    ((5, 3, 51), True, (6, 3, 51), 3)
    """
    code = int(err.get("auth_error") or 0)
    src = bytes(err.get("src") or b"")
    if (not code or err.get("version") != 2 or err.get("family") != 4 or not err.get("vips")
            or len(src) != 4):
        return None
    index = (ifindex, int(err["vrid"]))
    return (ax.VarBind(ax.TIME_TICKS, SYS_UPTIME, sys_uptime),
            ax.VarBind(ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRP_TRAP_AUTH_FAILURE),
            ax.VarBind(ax.IP_ADDRESS, (*VRRP_TRAP_PACKET_SRC, *index), src),
            ax.VarBind(ax.INTEGER, (*VRRP_TRAP_AUTH_ERROR_TYPE, *index), code))


def proto_error_trap(err: dict[str, Any], ifindex: int,
                     sys_uptime: int) -> tuple[ax.VarBind, ...] | None:
    """RFC 6527 vrrpv3ProtoError for ``err`` (as :func:`auth_failure_trap`), or None when
    it is no protocol error or the instance has no addresses.

    As keepalived 2.2.7's vrrp_rfcv3_snmp_proto_err_notify, built with SNMP_V3_FOR_V2
    (VRRPv2 instances too): one varbind, vrrpv3StatisticsProtoErrReason.<ifindex>.<vrid>.
    <ipv4(1)|ipv6(2)> = ipTtlError(1), versionError(2) or checksumError(3), the value
    the statistics table then shows.

    >>> err = {"version": 3, "family": 6, "vips": 1, "vrid": 9, "auth_error": 0,
    ...        "proto_error": 1}
    >>> [(vb.name[-4:], vb.value) for vb in proto_error_trap(err, 4, 0)[2:]]
    [((6, 4, 9, 2), 1)]
    """
    code = int(err.get("proto_error") or 0)
    if not code or not err.get("vips"):
        return None
    index = (ifindex, int(err["vrid"]), 1 if err.get("family") == 4 else 2)
    return (ax.VarBind(ax.TIME_TICKS, SYS_UPTIME, sys_uptime),
            ax.VarBind(ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRPV3_PROTO_ERROR),
            ax.VarBind(ax.INTEGER, (*VRRPV3_PROTO_ERR_REASON, *index), code))


def keepalived_rows(status: dict[str, Any], config: Any, *,
                    router_id: str | None = None) -> list[ax.VarBind]:
    """The served varbinds in OID order.

    Rows are indexed as keepalived indexes them: the instance's position in the
    config, from 1; an instance the VRRP worker did not report is left out.
    """
    rid = router_id or router_id_of(config)
    rows = [ax.VarBind(ax.OCTET_STRING, (*GLOBAL, 1, 0), version_string()),
            ax.VarBind(ax.OCTET_STRING, (*GLOBAL, 2, 0), rid.encode())]
    configured = list(getattr(config, "vrrp_instances", ()))
    by_name = {inst.get("data", {}).get("iname"): inst.get("data", {})
               for inst in status.get("vrrp") or ()}
    order = [c.name for c in configured] or sorted(n for n in by_name if n is not None)
    cfg_of = {c.name: c for c in configured}
    for col, value_of in INSTANCE_COLUMNS.items():
        for index, name in enumerate(order, 1):
            data = by_name.get(name)
            if data is None:
                continue
            try:
                kind, value = value_of(data, cfg_of.get(name))
            except (KeyError, TypeError, ValueError):
                continue  # a field this worker's report lacks: no row, as noSuchInstance
            rows.append(ax.VarBind(kind, (*VRRP_INSTANCE_ENTRY, col, index), value))
    rows.sort(key=lambda vb: vb.name)
    return rows


def _next(rows: Sequence[ax.VarBind], names: list[ax.Oid], r: ax.SearchRange) -> ax.VarBind:
    # RFC 2741 §7.2.3.2: the first name after start (or start itself when include),
    # before end when an end is given; else endOfMibView named by start.
    i = (bisect.bisect_left if r.include else bisect.bisect_right)(names, r.start)
    if i < len(rows) and (not r.end or rows[i].name < r.end):
        return rows[i]
    return ax.VarBind(ax.END_OF_MIB_VIEW, r.start)


def answer(pdu: ax.Pdu, rows: Sequence[ax.VarBind], sys_uptime: int = 0) -> ax.Response:
    """The Response to a Get, GetNext or GetBulk from ``rows`` (sorted by name); any
    other PDU gets RFC 2741's processingError... except a set, refused as notWritable.
    """
    names = [vb.name for vb in rows]
    objects = {n[:-1] for n in names}
    out: list[ax.VarBind] = []
    error = ax.NO_AGENTX_ERROR
    if isinstance(pdu, ax.Get):
        for r in pdu.ranges:
            i = bisect.bisect_left(names, r.start)
            # RFC 2741 §7.2.3.1; an object we serve without that instance (a row
            # index that is not there) is noSuchInstance, as net-snmp's table helper says
            if i < len(rows) and names[i] == r.start:
                out.append(rows[i])
            else:
                missing = ax.NO_SUCH_INSTANCE if r.start[:-1] in objects else ax.NO_SUCH_OBJECT
                out.append(ax.VarBind(missing, r.start))
    elif isinstance(pdu, ax.GetNext):
        out = [_next(rows, names, r) for r in pdu.ranges]
    elif isinstance(pdu, ax.GetBulk):
        # RFC 2741 §7.2.3.3: the non-repeaters once, then the rest max_repetitions
        # times, each repetition starting after the previous one's answer.
        n = min(pdu.non_repeaters, len(pdu.ranges))
        out = [_next(rows, names, r) for r in pdu.ranges[:n]]
        repeat = list(pdu.ranges[n:])
        for _ in range(pdu.max_repetitions if repeat else 0):
            got = [_next(rows, names, r) for r in repeat]
            out.extend(got)
            if all(vb.type == ax.END_OF_MIB_VIEW for vb in got):
                break
            repeat = [ax.SearchRange(vb.name, r.end) for vb, r in zip(got, repeat, strict=True)]
    elif isinstance(pdu, ax.Other) and ax.TESTSET <= pdu.type <= ax.CLEANUPSET:
        error = ax.NOT_WRITABLE
    else:
        error = ax.PROCESSING_ERROR
    return ax.Response(session_id=pdu.session_id, transaction_id=pdu.transaction_id,
                       packet_id=pdu.packet_id, sys_uptime=sys_uptime, error=error,
                       varbinds=tuple(out))
