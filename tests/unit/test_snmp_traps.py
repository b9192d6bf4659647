"""vrrpInstanceStateChange (``enable_traps``) and RFC 2787 vrrpTrapNewMaster and
vrrpTrapAuthFailure (``enable_snmp_rfcv2``), RFC 6527 vrrpv3NewMaster and
vrrpv3ProtoError (``enable_snmp_rfcv3``): what the subagent sends, and when."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hafast.status import agentx as ax
from hafast.status.snmp import SnmpAgent
from hafast.status.snmp_mib import (
    GLOBAL,
    SNMP_TRAP_OID,
    SYS_UPTIME,
    VRRP_INSTANCE_ENTRY,
    VRRP_INSTANCE_STATE_CHANGE,
    VRRP_OPER_MASTER_IP_ADDR,
    VRRP_SYNC_GROUP_STATE_CHANGE,
    VRRP_TRAP_AUTH_ERROR_TYPE,
    VRRP_TRAP_AUTH_FAILURE,
    VRRP_TRAP_NEW_MASTER,
    VRRP_TRAP_PACKET_SRC,
    VRRPV3_NEW_MASTER,
    VRRPV3_NEW_MASTER_REASON,
    VRRPV3_OPER_MASTER_IP_ADDR,
    VRRPV3_PROTO_ERR_REASON,
    VRRPV3_PROTO_ERROR,
    auth_failure_trap,
    instance_trap,
    new_master_trap,
    proto_error_trap,
    v3_new_master_trap,
)


def config(**inst: Any) -> Any:
    vi = SimpleNamespace(name="VI_1", state=inst.get("state"), priority=inst.get("priority", 100))
    return SimpleNamespace(global_defs=SimpleNamespace(router_id="r1"), vrrp_instances=[vi])


class Wire:
    def __init__(self) -> None:
        self.sent: list[ax.Pdu] = []
        self.dec = ax.Decoder()

    def write(self, data: bytes) -> None:
        self.sent += self.dec.feed(data)

    def is_closing(self) -> bool:
        return False


def agent(cfg: Any) -> tuple[SnmpAgent, Wire]:
    async def status() -> dict[str, Any]:
        return {}

    a = SnmpAgent("unix:/nonexistent", status, lambda: cfg)
    wire = Wire()
    a._writer = wire  # type: ignore[assignment]
    a.connected = True
    a._session = 9
    return a, wire


def test_the_varbinds_are_keepalived_s() -> None:
    # keepalived 2.2.7 (snmptrapd): columns without a row index, then routerId
    vbs = instance_trap("VI_1", "FAULT", config(priority=255), 42)
    assert [(vb.type, vb.name, vb.value) for vb in vbs] == [
        (ax.TIME_TICKS, SYS_UPTIME, 42),
        (ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRP_INSTANCE_STATE_CHANGE),
        (ax.OCTET_STRING, (*VRRP_INSTANCE_ENTRY, 2), b"VI_1"),
        (ax.INTEGER, (*VRRP_INSTANCE_ENTRY, 4), 3),
        (ax.INTEGER, (*VRRP_INSTANCE_ENTRY, 5), 2),  # an owner starts wanting MASTER
        (ax.OCTET_STRING, (*GLOBAL, 2, 0), b"r1"),
    ]


def test_a_trap_per_change_none_for_a_repeat_or_init() -> None:
    a, wire = agent(config(state="BACKUP"))
    a.vrrp_states({"VI_1": ("INIT", 100)}, traps=True)
    a.vrrp_states({"VI_1": ("BACKUP", 100)}, traps=True)
    a.vrrp_states({"VI_1": ("BACKUP", 90)}, traps=True)  # a priority change only
    a.vrrp_states({"VI_1": ("MASTER", 100)}, traps=True)
    assert all(isinstance(p, ax.Notify) and p.session_id == 9 for p in wire.sent)
    states = [p.varbinds[3].value for p in wire.sent if isinstance(p, ax.Notify)]
    assert states == [1, 2]


def test_no_trap_without_enable_traps_or_a_session() -> None:
    a, wire = agent(config())
    a.vrrp_states({"VI_1": ("BACKUP", 100)}, traps=False)
    a.connected = False
    a.vrrp_states({"VI_1": ("MASTER", 100)}, traps=True)
    assert wire.sent == []
    # the change was heard all the same: back in session, a repeat is no trap
    a.connected = True
    a.vrrp_states({"VI_1": ("MASTER", 100)}, traps=True)
    assert wire.sent == []


def test_rfc2787_new_master_only_for_a_vrrpv2_ipv4_instance_with_addresses() -> None:
    inst = {"data": {"version": 2, "vrid": 7, "vips": ["10.0.0.9/24"]},
            "ka": {"ifindex": 4, "src_ip": "10.0.0.1"}}
    vbs = new_master_trap(inst, 1)
    assert vbs is not None
    assert [(vb.type, vb.name, vb.value) for vb in vbs[1:]] == [
        (ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRP_TRAP_NEW_MASTER),
        (ax.IP_ADDRESS, (*VRRP_OPER_MASTER_IP_ADDR, 4, 7), bytes([10, 0, 0, 1])),
    ]
    # keepalived's suitable_for_rfc2787
    assert new_master_trap({**inst, "data": {**inst["data"], "version": 3}}, 1) is None
    assert new_master_trap({**inst, "data": {**inst["data"], "vips": []}}, 1) is None
    assert new_master_trap({**inst, "ka": {"ifindex": 4, "src_ip": "fe80::1"}}, 1) is None


def test_without_the_keepalived_mib_no_state_change_trap() -> None:
    a, wire = agent(config())
    a.keepalived_mib = False  # an agent for enable_snmp_rfcv2's trap only
    a.vrrp_states({"VI_1": ("BACKUP", 100)}, traps=True)
    assert wire.sent == []


def test_a_sync_group_trap_once_all_members_share_a_state() -> None:
    cfg = config()
    cfg.vrrp_instances.append(SimpleNamespace(name="VI_2", state=None, priority=100))
    cfg.sync_groups = [SimpleNamespace(name="G1", group=("VI_1", "VI_2"))]
    a, wire = agent(cfg)
    a.vrrp_states({"VI_1": ("BACKUP", 100)}, traps=True)
    a.vrrp_states({"VI_2": ("FAULT", 100)}, traps=True)  # members differ: no group trap
    a.vrrp_states({"VI_1": ("FAULT", 100)}, traps=True)
    a.vrrp_states({"VI_2": ("BACKUP", 100), "VI_1": ("BACKUP", 100)}, traps=True)
    groups = [p.varbinds for p in wire.sent
              if isinstance(p, ax.Notify) and p.varbinds[1].value == VRRP_SYNC_GROUP_STATE_CHANGE]
    assert [(vbs[2].value, vbs[3].value) for vbs in groups] == [(b"G1", 3), (b"G1", 1)]
    # after its members' traps, as keepalived sends it
    assert isinstance(wire.sent[-1], ax.Notify)
    assert wire.sent[-1].varbinds[1].value == VRRP_SYNC_GROUP_STATE_CHANGE


def test_rfc6527_new_master_names_the_address_family_and_a_reason() -> None:
    inst = {"data": {"version": 2, "vrid": 7, "vips": ["10.0.0.9/24"], "base_priority": 100},
            "ka": {"ifindex": 4, "src_ip": "10.0.0.1"}}
    vbs = v3_new_master_trap(inst, 1)
    assert vbs is not None
    assert [(vb.type, vb.name, vb.value) for vb in vbs[1:]] == [
        (ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRPV3_NEW_MASTER),
        (ax.OCTET_STRING, (*VRRPV3_OPER_MASTER_IP_ADDR, 4, 7, 1), bytes([10, 0, 0, 1])),
        (ax.INTEGER, (*VRRPV3_NEW_MASTER_REASON, 4, 7, 1), 3),  # masterNoResponse
    ]
    owner = v3_new_master_trap({**inst, "data": {**inst["data"], "base_priority": 255}}, 1)
    assert owner is not None and owner[-1].value == 2  # keepalived: preempted
    assert v3_new_master_trap({**inst, "data": {**inst["data"], "vips": []}}, 1) is None


def rx_error(**more: Any) -> dict[str, Any]:
    """A VRRP worker's report of a rejected advert (VrrpSide._rx_error)."""
    err = {"iname": "VI_1", "vrid": 7, "version": 2, "family": 4, "vips": 1, "ifname": "lo",
           "src": bytes([10, 0, 0, 2]), "auth_error": 0, "proto_error": 0}
    err.update(more)
    return err


def test_rfc2787_auth_failure_varbinds_are_keepalived_s() -> None:
    # keepalived 2.2.7 vrrp_rfcv2_snmp_auth_err_trap: the two vrrpOperations scalars,
    # named with the instance's <ifindex>.<vrid>
    vbs = auth_failure_trap(rx_error(auth_error=3), 4, 5)
    assert vbs is not None
    assert [(vb.type, vb.name, vb.value) for vb in vbs] == [
        (ax.TIME_TICKS, SYS_UPTIME, 5),
        (ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRP_TRAP_AUTH_FAILURE),
        (ax.IP_ADDRESS, (*VRRP_TRAP_PACKET_SRC, 4, 7), bytes([10, 0, 0, 2])),
        (ax.INTEGER, (*VRRP_TRAP_AUTH_ERROR_TYPE, 4, 7), 3),  # authFailure
    ]
    assert VRRP_TRAP_AUTH_FAILURE == (1, 3, 6, 1, 2, 1, 68, 0, 2)
    assert VRRP_TRAP_PACKET_SRC == (1, 3, 6, 1, 2, 1, 68, 1, 5)
    # keepalived's suitable_for_rfc2787, and no trap for a protocol error
    for other in ({"version": 3}, {"family": 6}, {"vips": 0}, {"src": bytes(16)}):
        assert auth_failure_trap(rx_error(auth_error=1, **other), 4, 5) is None
    assert auth_failure_trap(rx_error(proto_error=1), 4, 5) is None


def test_rfc6527_proto_error_varbinds_are_keepalived_s() -> None:
    vbs = proto_error_trap(rx_error(proto_error=2), 4, 5)
    assert vbs is not None
    assert [(vb.type, vb.name, vb.value) for vb in vbs] == [
        (ax.TIME_TICKS, SYS_UPTIME, 5),
        (ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, VRRPV3_PROTO_ERROR),
        (ax.INTEGER, (*VRRPV3_PROTO_ERR_REASON, 4, 7, 1), 2),  # versionError
    ]
    assert VRRPV3_PROTO_ERROR == (1, 3, 6, 1, 2, 1, 207, 0, 2)
    assert VRRPV3_PROTO_ERR_REASON == (1, 3, 6, 1, 2, 1, 207, 1, 2, 5, 1, 6)
    v6 = proto_error_trap(rx_error(proto_error=1, version=3, family=6), 4, 5)
    assert v6 is not None and v6[-1].name[-3:] == (4, 7, 2)  # ipv6(2)
    assert proto_error_trap(rx_error(proto_error=3, vips=0), 4, 5) is None
    assert proto_error_trap(rx_error(auth_error=3), 4, 5) is None


def test_rx_errors_become_the_traps_their_mib_is_enabled_for() -> None:
    a, wire = agent(config())
    auth, proto = rx_error(auth_error=2), rx_error(proto_error=1)
    a.rx_error(auth, traps=False, rfcv2=True, rfcv3=True)
    a.rx_error(auth, traps=True)  # no RFC MIB: nothing
    assert wire.sent == []
    a.rx_error(auth, traps=True, rfcv2=False, rfcv3=True)  # an auth error is RFC 2787's
    a.rx_error(proto, traps=True, rfcv2=True, rfcv3=False)  # a protocol error RFC 6527's
    assert wire.sent == []
    a.rx_error(auth, traps=True, rfcv2=True, rfcv3=True)
    a.rx_error(proto, traps=True, rfcv2=True, rfcv3=True)
    sent = [p.varbinds for p in wire.sent if isinstance(p, ax.Notify)]
    assert [vbs[1].value for vbs in sent] == [VRRP_TRAP_AUTH_FAILURE, VRRPV3_PROTO_ERROR]
    # the interface's index, read in the parent: lo is 1 in every namespace
    assert sent[0][2].name == (*VRRP_TRAP_PACKET_SRC, 1, 7)
    assert sent[1][2].name == (*VRRPV3_PROTO_ERR_REASON, 1, 7, 1)
    gone = rx_error(proto_error=1, ifname="no-such-if0")
    a.rx_error(gone, traps=True, rfcv3=True)
    assert isinstance(wire.sent[-1], ax.Notify)
    assert wire.sent[-1].varbinds[2].name == (*VRRPV3_PROTO_ERR_REASON, 0, 7, 1)
