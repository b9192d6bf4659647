"""VRRP-MIB (RFC 2787) and VRRPV3-MIB (RFC 6527) rows: which instances, which index,
which types and values (keepalived 2.2.7's, as its vrrp_snmp.c serves them)."""

from __future__ import annotations

from typing import Any

import pytest

from hafast.status import agentx as ax
from hafast.status.snmp import SnmpAgent, hw_addrs
from hafast.status.snmp_mib import GLOBAL, VRRP, answer
from hafast.status.snmp_rfc import (
    VRRP_ASSO_IP_ADDR_ENTRY,
    VRRP_MIB,
    VRRP_OPER_ENTRY,
    VRRP_ROUTER_STATS_ENTRY,
    VRRPV3_ASSOCIATED_IP_ADDR_ENTRY,
    VRRPV3_MIB,
    VRRPV3_OPERATIONS_ENTRY,
    VRRPV3_STATISTICS,
    VRRPV3_STATISTICS_ENTRY,
    rfc2787_rows,
    rfc6527_rows,
)

MAC = bytes.fromhex("02aabbccdd01")


def inst(name: str, vrid: int, vips: list[str], *, version: int = 2, state: int = 2,
         src: str = "10.0.0.1", prio: int = 100, **more: Any) -> dict[str, Any]:
    data = {"iname": name, "ifp_ifname": "eth0", "vrid": vrid, "version": version,
            "state": state, "base_priority": prio, "vips": vips, "adver_int": 1.0,
            "nopreempt": 0, "accept": 1, "auth_type": 0, "last_transition": 100.0}
    data.update(more)
    return {"data": data, "ka": {"ifindex": 2, "src_ip": src, "master_heard": None},
            "stats": {"become_master": 1 if state == 2 else 0, "advert_rcvd": 7},
            "rejects": {}}


STATUS = {"vrrp": [
    inst("V2", 51, ["10.0.0.100/24"]),
    inst("V2B", 50, ["10.0.0.99/24"], state=1, auth_type=1),
    inst("V3", 54, ["10.0.0.111/24", "10.0.0.110/24"], version=3, adver_int=0.5),
    inst("V6", 55, ["fd00::100/64"], version=3, src="fe80::1", prio=255),
    inst("NOVIP", 56, []),
]}


def by_name(rows: list[ax.VarBind]) -> dict[ax.Oid, ax.VarBind]:
    assert [vb.name for vb in rows] == sorted(vb.name for vb in rows)
    return {vb.name: vb for vb in rows}


def rfc2787(**kw: Any) -> dict[ax.Oid, ax.VarBind]:
    return by_name(rfc2787_rows(kw.pop("status", STATUS), traps=kw.pop("traps", True),
                                hw_addrs={"eth0": MAC}, now=200.0, started=99.0))


def rfc6527(status: dict[str, Any] = STATUS) -> dict[ax.Oid, ax.VarBind]:
    return by_name(rfc6527_rows(status, hw_addrs={"eth0": MAC}, now=200.0, started=99.0))


def test_rfc2787_shows_vrrpv2_ipv4_instances_with_addresses_only() -> None:
    rows = rfc2787()
    state = (*VRRP_OPER_ENTRY, 3)
    assert [n[len(state):] for n in rows if n[:len(state)] == state] == [(2, 50), (2, 51)]
    assert rows[(*state, 2, 50)] == ax.VarBind(ax.INTEGER, (*state, 2, 50), 2)  # backup
    assert rows[(*state, 2, 51)].value == 3  # master


def test_rfc2787_columns_and_types() -> None:
    rows = rfc2787()

    def col(c: int) -> ax.VarBind:
        return rows[(*VRRP_OPER_ENTRY, c, 2, 51)]

    assert col(2) == ax.VarBind(ax.OCTET_STRING, col(2).name, MAC)
    assert [col(c).value for c in (4, 5, 6, 9, 11, 12, 14, 15)] == [1, 100, 1, 1, 1, 1, 1, 1]
    assert col(7) == ax.VarBind(ax.IP_ADDRESS, col(7).name, bytes(4))  # none heard yet
    assert col(8) == ax.VarBind(ax.IP_ADDRESS, col(8).name, bytes([10, 0, 0, 1]))
    assert col(13).type == ax.TIME_TICKS and col(13).value == 100  # 1 s after the start
    assert (*VRRP_OPER_ENTRY, 10, 2, 51) not in rows  # vrrpOperAuthKey: never readable
    assert rows[(*VRRP_OPER_ENTRY, 9, 2, 50)].value == 2  # PASS: simpleTextPassword
    assert rows[(*VRRP_MIB, 1, 1, 0)].value == 2
    assert rows[(*VRRP_MIB, 1, 2, 0)].value == 1
    assert rfc2787(traps=False)[(*VRRP_MIB, 1, 2, 0)].value == 2
    assert rows[(*VRRP_ASSO_IP_ADDR_ENTRY, 2, 2, 51, 10, 0, 0, 100)].value == 1
    stats = rows[(*VRRP_ROUTER_STATS_ENTRY, 2, 2, 51)]
    assert (stats.type, stats.value) == (ax.COUNTER32, 7)
    assert [rows[(*VRRP_MIB, 2, n, 0)].type for n in (1, 2, 3)] == [ax.COUNTER32] * 3


def test_the_master_heard_and_a_fault_state() -> None:
    one = inst("V2", 51, ["10.0.0.100/24"], state=3)
    one["ka"]["master_heard"] = "10.0.0.2"
    rows = rfc2787(status={"vrrp": [one]})
    assert rows[(*VRRP_OPER_ENTRY, 3, 2, 51)].value == 1  # FAULT -> initialize
    assert rows[(*VRRP_OPER_ENTRY, 7, 2, 51)].value == bytes([10, 0, 0, 2])
    assert rows[(*VRRP_OPER_ENTRY, 13, 2, 51)].value == 0  # down: no up time


def test_router_error_sums_count_the_shown_instances() -> None:
    a, b = inst("A", 1, ["10.0.0.5/24"]), inst("B", 2, ["fd00::5/64"], version=3)
    a["rejects"] = {"checksum_err": 2, "version_err": 1}
    b["rejects"] = {"checksum_err": 5}
    # the last protocol error each worker recorded, whatever the counters say
    a["ka"]["proto_err_reason"] = 2
    b["ka"]["proto_err_reason"] = 3
    v2 = rfc2787(status={"vrrp": [a, b]})
    assert [v2[(*VRRP_MIB, 2, n, 0)].value for n in (1, 2, 3)] == [2, 1, 0]
    v3 = rfc6527({"vrrp": [a, b]})
    assert [v3[(*VRRPV3_STATISTICS, n, 0)].value for n in (1, 2, 3)] == [7, 1, 0]
    assert v3[(*VRRPV3_STATISTICS, 1, 0)].type == ax.COUNTER64
    assert v3[(*VRRPV3_STATISTICS, 4, 0)] == ax.VarBind(ax.TIME_TICKS,
                                                        (*VRRPV3_STATISTICS, 4, 0), 0)
    reason = (*VRRPV3_STATISTICS_ENTRY, 6)
    assert v3[(*reason, 2, 1, 1)].value == 2  # versionError
    assert v3[(*reason, 2, 2, 2)].value == 3  # checksumError
    assert rfc6527()[(*reason, 2, 51, 1)].value == 0  # noError: none recorded


def test_rfc6527_shows_every_instance_with_addresses_indexed_by_family() -> None:
    rows = rfc6527()
    status = (*VRRPV3_OPERATIONS_ENTRY, 6)
    assert [n[len(status):] for n in rows if n[:len(status)] == status] == [
        (2, 50, 1), (2, 51, 1), (2, 54, 1), (2, 55, 2)]
    asso = (*VRRPV3_ASSOCIATED_IP_ADDR_ENTRY, 2, 2, 54, 1)
    # the address's bytes with no length prefix, in address order
    assert [n[len(asso):] for n in rows if n[:len(asso)] == asso] == [
        (10, 0, 0, 110), (10, 0, 0, 111)]
    v6 = (*VRRPV3_ASSOCIATED_IP_ADDR_ENTRY, 2, 2, 55, 2, 0xfd, *bytes(13), 1, 0)
    assert rows[v6].value == 1


def test_rfc6527_columns_and_types() -> None:
    rows = rfc6527()

    def col(c: int, vrid: int = 54, fam: int = 1) -> ax.VarBind:
        return rows[(*VRRPV3_OPERATIONS_ENTRY, c, 2, vrid, fam)]

    assert col(3).value == bytes([10, 0, 0, 1])  # a master names its own address
    assert col(3, 50).value == bytes(4)  # a backup the master it heard (none)
    assert col(4, 55, 2).value == bytes.fromhex("fe80" + "00" * 13 + "01")
    assert col(5).value == MAC
    assert (col(7).type, col(7).value) == (ax.GAUGE32, 100)
    assert [col(c).value for c in (6, 8, 9, 10, 11, 13)] == [3, 2, 50, 1, 1, 1]
    assert col(12).type == ax.TIME_TICKS and col(12).value == 10000
    stats = {c: rows[(*VRRPV3_STATISTICS_ENTRY, c, 2, 54, 1)] for c in range(1, 14)}
    assert [stats[c].type for c in range(1, 14)] == [
        ax.COUNTER32, ax.INTEGER, *[ax.COUNTER64] * 3, ax.INTEGER, *[ax.COUNTER64] * 5,
        ax.TIME_TICKS, ax.GAUGE32]
    assert stats[13].value == 500  # RefreshRate: milliseconds
    reason = (*VRRPV3_STATISTICS_ENTRY, 2)
    assert rows[(*reason, 2, 54, 1)].value == 3  # masterNoResponse
    assert rows[(*reason, 2, 55, 2)].value == 2  # an owner: keepalived says preempted
    assert rows[(*reason, 2, 50, 1)].value == 0  # never master


def test_a_worker_report_without_a_field_leaves_out_only_its_rows() -> None:
    one = inst("V2", 51, ["10.0.0.100/24"])
    del one["data"]["auth_type"]
    one["ka"]["src_ip"] = None
    rows = rfc2787(status={"vrrp": [one]})
    assert rows[(*VRRP_OPER_ENTRY, 9, 2, 51)].value == 1  # no auth: noAuthentication
    assert (*VRRP_OPER_ENTRY, 8, 2, 51) not in rows
    assert (*VRRP_OPER_ENTRY, 3, 2, 51) in rows


@pytest.mark.parametrize(("flags", "subtrees"), [
    ({}, [GLOBAL, VRRP]),
    ({"keepalived_mib": False, "rfcv2_mib": True}, [VRRP_MIB]),
    ({"rfcv2_mib": True, "rfcv3_mib": True}, [GLOBAL, VRRP, VRRP_MIB, VRRPV3_MIB]),
])
def test_the_agent_registers_and_serves_what_is_enabled(flags: dict[str, bool],
                                                          subtrees: list[ax.Oid]) -> None:
    async def status() -> dict[str, Any]:
        return STATUS

    agent = SnmpAgent("unix:/nonexistent", status, lambda: None, **flags)
    assert agent.subtrees() == subtrees
    rows = agent.rows(STATUS, None)
    assert [vb.name for vb in rows] == sorted(vb.name for vb in rows)
    tops = {vb.name[:7] if vb.name[:6] == (1, 3, 6, 1, 2, 1) else vb.name[:9] for vb in rows}
    assert tops == {s[:7] if s[:6] == (1, 3, 6, 1, 2, 1) else s[:9] for s in subtrees}
    if len(subtrees) == 4:
        # a walk that leaves VRRP-MIB goes on into VRRPV3-MIB
        nxt = answer(ax.GetNext(ranges=(ax.SearchRange((*VRRP_MIB, 3)),)), rows)
        assert nxt.varbinds[0].name[:7] == VRRPV3_MIB


def test_hw_addrs_reads_only_plain_interface_names() -> None:
    assert hw_addrs(["lo", "../x", None, "no-such-if0"]) == {"lo": bytes(6)}
