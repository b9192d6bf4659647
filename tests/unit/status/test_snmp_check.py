"""KEEPALIVED-MIB's checker tables (hafast.status.snmp_check): config and pool status
in, keepalived 2.2.7's rows out (check_snmp.c's columns, types, indexes and gaps)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from hafast.config.loader import load_text
from hafast.lvs.keeper import PoolKeeper
from hafast.lvs.manager import make_backend
from hafast.lvs.policy import QuorumMoved, RsMoved
from hafast.status import agentx as ax
from hafast.status.snmp import SnmpAgent
from hafast.status.snmp_check import (
    CHECK,
    RS_ENTRY,
    RS_STATE_CHANGE,
    VS_ENTRY,
    VS_QUORUM_STATE_CHANGE,
    check_rows,
    quorum_trap,
    rs_trap,
    script_text,
)
from hafast.status.snmp_mib import GLOBAL, SNMP_TRAP_OID, VRRP

CONF = """
global_defs {
   router_id r1
   enable_snmp_checker
   enable_traps
}
virtual_server 10.0.0.1 80 {
   protocol TCP
   lb_algo rr
   lb_kind DR
   delay_loop 3
   persistence_timeout 50
   quorum_up "/bin/echo up"
   sorry_server 10.0.9.9 8080
   real_server 10.0.1.1 80 {
      weight 3
      notify_down "/bin/true down"
   }
   real_server 10.0.1.2 81 {
      inhibit_on_failure
      uthreshold 9
   }
}
virtual_server fwmark 7 {
   lb_algo sh
   sh-port
   real_server 10.0.2.1 80 {
   }
}
virtual_server fd00::1 443 {
   protocol UDP
   real_server fd00::2 443 {
   }
}
"""


def config() -> Any:
    res = load_text(CONF)
    assert not res.errors, res.errors
    return res.config


def pools(cfg: Any, down: tuple[str, ...] = ()) -> dict[str, Any]:
    vss = []
    for vs in cfg.virtual_servers:
        label = (f"[{vs.address}]:{vs.protocol.lower()}:{vs.port}" if vs.address
                 else f"FWM {vs.fwmark}")
        vss.append({"name": label, "quorum_up": True, "suspended": False,
                    "real_servers": [{"address": r.address, "port": r.port,
                                      "alive": r.address not in down, "weight": r.weight}
                                     for r in vs.real_servers]})
    return {"virtual_servers": vss}


def table(rows: list[ax.VarBind]) -> dict[tuple[int, ...], tuple[int, Any]]:
    return {vb.name[len(CHECK):]: (vb.type, vb.value) for vb in rows}


def test_rows_are_sorted_and_indexed_in_config_order() -> None:
    cfg = config()
    rows = check_rows(cfg, pools(cfg))
    assert [vb.name for vb in rows] == sorted(vb.name for vb in rows)
    t = table(rows)
    # virtualServerEntry.<col>.<vs index>: one row per virtual server, config order
    assert {k[3] for k in t if k[:2] == (3, 1)} == {1, 2, 3}
    # realServerEntry.<col>.<vs index>.<rs index>: the sorry server first
    assert sorted(k[3:] for k in t if k[:3] == (4, 1, 2)) == [(1, 1), (1, 2), (1, 3),
                                                               (2, 1), (3, 1)]
    assert t[(4, 1, 2, 1, 1)] == (ax.INTEGER, 2)  # sorry(2)
    assert t[(4, 1, 4, 1, 1)] == (ax.OCTET_STRING, bytes([10, 0, 9, 9]))
    assert t[(4, 1, 4, 1, 2)] == (ax.OCTET_STRING, bytes([10, 0, 1, 1]))
    assert t[(4, 1, 5, 1, 3)] == (ax.GAUGE32, 81)


def test_virtual_server_columns() -> None:
    cfg = config()
    t = table(check_rows(cfg, pools(cfg, down=("10.0.1.2",))))
    vs1 = {k[2]: v for k, v in t.items() if k[:2] == (3, 1) and k[3] == 1}
    assert vs1[2] == (ax.INTEGER, 2)  # ip(2)
    assert 3 not in vs1 and 4 not in vs1  # no group name, no fwmark
    assert vs1[5] == (ax.INTEGER, 1)  # ipv4
    assert vs1[6] == (ax.OCTET_STRING, bytes([10, 0, 0, 1]))
    assert vs1[7] == (ax.GAUGE32, 80)
    assert vs1[8] == (ax.INTEGER, 1)  # tcp
    assert vs1[9] == (ax.INTEGER, 1)  # rr
    assert vs1[10] == (ax.INTEGER, 2)  # dr
    assert vs1[11] == (ax.INTEGER, 1)  # alive
    assert vs1[13] == (ax.INTEGER, 1) and vs1[14] == (ax.GAUGE32, 50)
    assert vs1[15] == (ax.OCTET_STRING, b"\xff\xff\xff\xff")  # granularity unset
    assert vs1[16] == (ax.GAUGE32, 3) and vs1[64] == (ax.GAUGE32, 3_000_000)
    # RealServersTotal leaves the sorry server out; Up counts the alive ones
    assert vs1[20] == (ax.GAUGE32, 2) and vs1[21] == (ax.GAUGE32, 1)
    assert vs1[22] == (ax.GAUGE32, 1) and vs1[23] == (ax.INTEGER, 1)
    echo = os.path.realpath("/bin/echo")
    assert vs1[24] == (ax.OCTET_STRING, f"'{echo}' 'up'".encode())
    assert 25 not in vs1  # no quorum_down
    assert vs1[30] == (ax.COUNTER64, 0) and vs1[28] == (ax.COUNTER32, 0)
    assert vs1[67] == (ax.GAUGE32, 5_000_000)
    assert 68 not in vs1  # no tunnel
    fw = {k[2]: v for k, v in t.items() if k[:2] == (3, 1) and k[3] == 2}
    assert fw[2] == (ax.INTEGER, 1) and fw[4] == (ax.GAUGE32, 7)
    assert not {6, 7, 8} & fw.keys()  # a fwmark has no address, port, protocol
    assert fw[9] == (ax.INTEGER, 8)  # sh
    assert fw[53] == (ax.INTEGER, 2) and fw[54] == (ax.INTEGER, 1)  # sh-port
    assert fw[63] == (ax.INTEGER, 1)  # MHPort reads the same flag-2 bit
    v6 = {k[2]: v for k, v in t.items() if k[:2] == (3, 1) and k[3] == 3}
    assert v6[5] == (ax.INTEGER, 2) and len(v6[6][1]) == 16
    assert v6[8] == (ax.INTEGER, 2)  # udp
    assert 15 not in v6 and 51 in v6  # the IPv6 granularity column instead


def test_real_server_columns() -> None:
    cfg = config()
    t = table(check_rows(cfg, pools(cfg, down=("10.0.1.2",))))

    def rs(v: int, r: int) -> dict[int, tuple[int, Any]]:
        return {k[2]: val for k, val in t.items() if k[:2] == (4, 1) and k[3:] == (v, r)}

    sorry, up, down = rs(1, 1), rs(1, 2), rs(1, 3)
    # the sorry server: no status, weight, limits or action; keepalived's zeroed timers
    assert not {6, 7, 8, 9, 10, 13} & sorry.keys()
    assert sorry[40] == (ax.INTEGER, 2) and sorry[51] == (ax.GAUGE32, 0)
    assert up[2] == (ax.INTEGER, 1) and up[3] == (ax.INTEGER, 1)
    assert up[6] == (ax.INTEGER, 1) and down[6] == (ax.INTEGER, 2)
    assert up[7] == (ax.INTEGER, 3)
    assert 8 not in up and down[8] == (ax.GAUGE32, 9)  # uthreshold only when set
    assert up[10] == (ax.INTEGER, 1) and down[10] == (ax.INTEGER, 2)  # inhibit(2)
    true = os.path.realpath("/bin/true")  # keepalived's resolved program path
    assert up[12] == (ax.OCTET_STRING, f"'{true}' 'down'".encode())
    assert up[13] == (ax.GAUGE32, 0)
    assert up[20] == (ax.COUNTER64, 0) and up[15] == (ax.GAUGE32, 0)
    assert up[40] == (ax.INTEGER, 2)  # dr, inherited
    assert up[46] == (ax.GAUGE32, 3) and up[50] == (ax.GAUGE32, 3_000_000)
    assert up[47] == (ax.INTEGER, 1)  # a real server's alerts are on by default
    assert up[51] == (ax.GAUGE32, 5_000_000)


def test_a_virtual_server_the_keeper_does_not_run_has_no_row() -> None:
    cfg = config()
    st = pools(cfg)
    del st["virtual_servers"][0]
    t = table(check_rows(cfg, st))
    assert {k[3] for k in t if k[:2] == (3, 1)} == {2, 3}  # the indexes stay config's
    # no pools: the scalars alone (lvsSyncDaemonEnabled false(2))
    assert [(vb.name, vb.value) for vb in check_rows(cfg, None)] == [((*CHECK, 6, 1, 0), 2)]


def test_sync_daemon_and_timeout_scalars() -> None:
    res = load_text("""global_defs {
   lvs_sync_daemon eth0 VI_1 maxlen 1400 group 224.0.0.90
   lvs_timeouts tcp 900 udp 60
}
vrrp_instance VI_1 {
   interface eth0
   virtual_router_id 42
   virtual_ipaddress {
      10.0.0.9
   }
}
""")
    assert not res.errors, res.errors
    t = table(check_rows(res.config, None))
    assert t == {(6, 1, 0): (ax.INTEGER, 1), (6, 2, 0): (ax.OCTET_STRING, b"eth0"),
                 (6, 3, 0): (ax.OCTET_STRING, b"VI_1"), (6, 4, 0): (ax.INTEGER, -1),
                 (6, 5, 0): (ax.INTEGER, 1400), (6, 6, 0): (ax.INTEGER, 0),
                 (6, 7, 0): (ax.INTEGER, 0), (6, 8, 0): (ax.INTEGER, 1),
                 (6, 9, 0): (ax.OCTET_STRING, bytes([224, 0, 0, 90])),
                 (7, 1, 0): (ax.INTEGER, 900), (7, 3, 0): (ax.INTEGER, 60)}


def test_script_text_is_keepalived_s_cmd_str() -> None:
    from hafast.config.model import Script

    assert script_text(Script(argv=("/nonexistent/x", "a b"))) == b"'/nonexistent/x' 'a b'"
    # the program by its real path, as keepalived resolves it when it checks scripts
    real = os.path.realpath("/bin/sh")
    assert script_text(Script(argv=("/bin/sh", "-c"))) == f"'{real}' '-c'".encode()
    assert script_text(Script(argv=(">/tmp/f",))) == b">/tmp/f"
    assert script_text(None) is None


def test_the_traps_are_keepalived_s() -> None:
    cfg = config()
    vs = cfg.virtual_servers[0]
    vbs = rs_trap(cfg, vs, "10.0.1.2", 81, False, 1, 42)
    assert [(vb.type, vb.name[len(CHECK):] if vb.name[:len(CHECK)] == CHECK else vb.name,
             vb.value) for vb in vbs[1:]] == [
        (ax.OBJECT_IDENTIFIER, SNMP_TRAP_OID, RS_STATE_CHANGE),
        (ax.INTEGER, (4, 1, 3), 1),
        (ax.OCTET_STRING, (4, 1, 4), bytes([10, 0, 1, 2])),
        (ax.GAUGE32, (4, 1, 5), 81),
        (ax.INTEGER, (4, 1, 6), 2),
        (ax.INTEGER, (3, 1, 2), 2),
        (ax.INTEGER, (3, 1, 5), 1),
        (ax.OCTET_STRING, (3, 1, 6), bytes([10, 0, 0, 1])),
        (ax.GAUGE32, (3, 1, 7), 80),
        (ax.INTEGER, (3, 1, 8), 1),
        (ax.GAUGE32, (3, 1, 21), 1),
        (ax.GAUGE32, (3, 1, 20), 2),
        (ax.OCTET_STRING, (*GLOBAL, 2, 0), b"r1"),
    ]
    q = quorum_trap(cfg, cfg.virtual_servers[1], False, 0, 7)
    assert [vb.name for vb in q[2:]] == [(*VS_ENTRY, 2), (*VS_ENTRY, 4), (*VS_ENTRY, 8),
                                        (*VS_ENTRY, 23), (*VS_ENTRY, 22), (*VS_ENTRY, 21),
                                        (*VS_ENTRY, 20), (*GLOBAL, 2, 0)]
    assert q[1].value == VS_QUORUM_STATE_CHANGE and q[5].value == 2
    # keepalived's trap says TruthValue(tcp) for the protocol: a UDP service is 2
    assert quorum_trap(cfg, cfg.virtual_servers[2], True, 1, 0)[6].value == 2


class Wire:
    def __init__(self) -> None:
        self.sent: list[ax.Pdu] = []
        self.dec = ax.Decoder()

    def write(self, data: bytes) -> None:
        self.sent += self.dec.feed(data)

    def is_closing(self) -> bool:
        return False


def test_the_agent_serves_and_traps_from_a_real_keeper() -> None:
    cfg = config()

    async def go() -> tuple[list[ax.VarBind], list[ax.Pdu], list[ax.Oid]]:
        keeper = PoolKeeper(cfg, make_backend("memory"), keep=False)
        await keeper.open()

        async def status() -> dict[str, Any]:
            return {"pools": keeper.status()}

        agent = SnmpAgent("unix:/nonexistent", status, lambda: cfg, keepalived_mib=False,
                          checker_mib=True)
        wire = Wire()
        agent._writer = wire  # type: ignore[assignment]
        agent.connected = True
        keeper.listener = lambda done, policy: agent.pool_transitions(done, policy, True)
        vs = cfg.virtual_servers[0]
        rs = vs.real_servers[1]
        transitions = [RsMoved(vs, rs, "[10.0.1.2]:tcp:81", "[10.0.0.1]:tcp:80", False),
                       QuorumMoved(vs, "[10.0.0.1]:tcp:80", False, 1, 0)]
        keeper.listener(transitions, keeper.policy)
        rows = agent.rows(await status(), cfg)
        await keeper.close()
        return rows, wire.sent, agent.subtrees()

    rows, sent, subtrees = asyncio.run(go())
    assert subtrees == [GLOBAL, CHECK]  # no VRRP subtree without enable_snmp_vrrp
    names = [vb.name for vb in rows]
    assert names == sorted(names)
    assert names[0][:len(GLOBAL)] == GLOBAL and not any(n[:len(VRRP)] == VRRP for n in names)
    t = table([vb for vb in rows if vb.name[:len(CHECK)] == CHECK])
    assert t[(3, 1, 20, 1)] == (ax.GAUGE32, 2) and t[(4, 1, 6, 1, 2)] == (ax.INTEGER, 1)
    assert {k[0] for k in t} == {3, 4, 6}
    traps = [p for p in sent if isinstance(p, ax.Notify)]
    assert [p.varbinds[1].value for p in traps] == [RS_STATE_CHANGE, VS_QUORUM_STATE_CHANGE]
    assert traps[0].varbinds[2].name == (*RS_ENTRY, 3)


def test_no_trap_without_enable_traps() -> None:
    cfg = config()

    async def status() -> dict[str, Any]:
        return {}

    agent = SnmpAgent("unix:/nonexistent", status, lambda: cfg, checker_mib=True)
    wire = Wire()
    agent._writer = wire  # type: ignore[assignment]
    agent.connected = True
    vs = cfg.virtual_servers[0]
    agent.pool_transitions([QuorumMoved(vs, "x", False, 1, 0)], None, False)
    assert wire.sent == []


def test_enable_snmp_keepalived_is_enable_snmp_vrrp() -> None:
    # keepalived 2.2.7 global_parser.c: the deprecated name of enable_snmp_vrrp; the
    # checker MIB has its own keyword
    gd = load_text("global_defs {\n  enable_snmp_keepalived\n}\n").config.global_defs
    assert (gd.enable_snmp_vrrp, gd.enable_snmp_checker) == (True, False)
    gd = load_text("global_defs {\n  enable_snmp_checker\n}\n").config.global_defs
    assert (gd.enable_snmp_vrrp, gd.enable_snmp_checker) == (False, True)
