"""The checker MIB's IPVS statistics columns: the kernel's counters read from an IPVS
dump (hafast.lvs.ipvs) and summed per virtual and real server as keepalived 2.2.7's
ipvs_update_stats does (hafast.status.snmp_check), refreshed at most every 5 s and only
when SNMP asks (hafast.status.snmp)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from hafast.config.labels import vs_label
from hafast.config.loader import load_text
from hafast.lib import netlink
from hafast.lvs import ipvs
from hafast.lvs.backend import ServiceKey
from hafast.lvs.ipvs import (
    CMD_ATTR_DEST,
    CMD_ATTR_SERVICE,
    CMD_GET_DEST,
    CMD_GET_SERVICE,
    IpvsBackend,
    ServiceCounters,
    decode_dest_counters,
    decode_stats,
)
from hafast.status import agentx as ax
from hafast.status import snmp as snmp_mod
from hafast.status.snmp import SnmpAgent
from hafast.status.snmp_check import CHECK, check_rows

BIG = 5 * 2**32 + 7  # a 64-bit value: its low half 7, its high half 5


def stats64(values: tuple[int, ...]) -> bytes:
    return b"".join(netlink.attr(i, struct.pack("=Q", v)) for i, v in enumerate(values, 1))


def stats32(values: tuple[int, ...]) -> bytes:
    fmts = ("=I", "=I", "=I", "=Q", "=Q", "=I", "=I", "=I", "=I", "=I")
    return b"".join(netlink.attr(i, struct.pack(f, v))
                    for i, (f, v) in enumerate(zip(fmts, values, strict=True), 1))


def test_decode_prefers_the_64_bit_stats() -> None:
    ten = tuple(range(1, 11))
    wide = (BIG, *range(2, 11))
    attrs = netlink.parse_attrs(netlink.attr(ipvs.ATTR_STATS, stats32(ten))
                                + netlink.attr(ipvs.ATTR_STATS64, stats64(wide)))
    assert decode_stats(attrs) == wide
    assert decode_stats(netlink.parse_attrs(netlink.attr(ipvs.ATTR_STATS, stats32(ten)))) == ten
    assert decode_stats({}) == (0,) * 10


def test_decode_dest_counters_adds_the_connections() -> None:
    raw = (netlink.attr(ipvs.ATTR_STATS64, stats64(tuple(range(10))))
           + netlink.attr(ipvs.DEST_ACTIVE_CONNS, struct.pack("=I", 4))
           + netlink.attr(ipvs.DEST_INACT_CONNS, struct.pack("=I", 5))
           + netlink.attr(ipvs.DEST_PERSIST_CONNS, struct.pack("=I", 6)))
    assert decode_dest_counters(netlink.parse_attrs(raw)) == (*range(10), 4, 5, 6)


class FakeLink:
    """A BatchLink answering dumps from fixed attributes."""

    def __init__(self, services: list[tuple[bytes, list[bytes]]]) -> None:
        self.services = services
        self.dumps: list[int] = []

    def dump(self, cmd: int, payload: bytes = b"") -> list[dict[int, memoryview]]:
        self.dumps.append(cmd)
        if cmd == CMD_GET_SERVICE:
            return [netlink.parse_attrs(netlink.attr(CMD_ATTR_SERVICE, svc))
                    for svc, _ in self.services]
        assert cmd == CMD_GET_DEST
        key = netlink.parse_attrs(netlink.parse_attrs(payload)[CMD_ATTR_SERVICE])
        for svc, dests in self.services:
            if netlink.parse_attrs(svc)[ipvs.SVC_ADDR].tobytes() == key[ipvs.SVC_ADDR].tobytes():
                return [netlink.parse_attrs(netlink.attr(CMD_ATTR_DEST, d)) for d in dests]
        return []

    def close(self) -> None:
        pass


def svc_attrs(addr: str, port: int, counters: tuple[int, ...]) -> bytes:
    return (netlink.attr(ipvs.SVC_AF, struct.pack("=H", 2))
            + netlink.attr(ipvs.SVC_PROTOCOL, struct.pack("=H", 6))
            + netlink.attr(ipvs.SVC_ADDR, ipvs._addr16(addr, 4))
            + netlink.attr(ipvs.SVC_PORT, struct.pack("!H", port))
            + netlink.attr(ipvs.SVC_SCHED_NAME, b"rr\0")
            + netlink.attr(ipvs.ATTR_STATS64, stats64(counters)))


def dest_attrs(addr: str, port: int, counters: tuple[int, ...], active: int) -> bytes:
    return (netlink.attr(ipvs.DEST_ADDR, ipvs._addr16(addr, 4))
            + netlink.attr(ipvs.DEST_PORT, struct.pack("!H", port))
            + netlink.attr(ipvs.DEST_ADDR_FAMILY, struct.pack("=H", 2))
            + netlink.attr(ipvs.ATTR_STATS64, stats64(counters))
            + netlink.attr(ipvs.DEST_ACTIVE_CONNS, struct.pack("=I", active)))


def test_the_backend_dumps_every_service_and_its_destinations() -> None:
    backend = IpvsBackend()
    link = FakeLink([(svc_attrs("10.0.0.1", 80, (3,) * 10),
                      [dest_attrs("10.0.1.1", 8080, (1,) * 10, 2)])])
    backend._link = link  # type: ignore[assignment]
    got = backend._counters_sync()
    key = ServiceKey(4, "TCP", "10.0.0.1", 80)
    assert got == {key: ServiceCounters((3,) * 10, {("10.0.1.1", 8080): (*(1,) * 10, 2, 0, 0)})}
    assert link.dumps == [CMD_GET_SERVICE, CMD_GET_DEST]
    # the pyroute2 engine reads none: zeros in the MIB
    assert IpvsBackend(engine="pyroute2")._counters_sync() == {}


CONF = """
global_defs {
   enable_snmp_checker
}
virtual_server_group grp {
   10.0.0.10-11 80
}
virtual_server 10.0.0.1 80 {
   protocol TCP
   sorry_server 10.0.9.9 80
   real_server 10.0.1.1 8080 {
   }
}
virtual_server group grp {
   protocol TCP
   real_server 10.0.1.1 8080 {
   }
   real_server 10.0.1.2 8080 {
   }
}
"""


def served(counters: dict[ServiceKey, ServiceCounters] | None) -> dict[tuple[int, ...], Any]:
    res = load_text(CONF)
    assert not res.errors, res.errors
    cfg = res.config
    st = {"virtual_servers": [
        {"name": vs_label(vs), "quorum_up": True, "suspended": False,
         "real_servers": [{"address": r.address, "port": r.port, "alive": True,
                           "weight": 1} for r in vs.real_servers]}
        for vs in cfg.virtual_servers]}
    return {vb.name[len(CHECK):]: (vb.type, vb.value) for vb in check_rows(cfg, st, counters)}


def dest(base: int, active: int = 0, inact: int = 0, persist: int = 0) -> tuple[int, ...]:
    return (*(base + i for i in range(10)), active, inact, persist)


def test_virtual_server_columns_carry_its_service_counters() -> None:
    svc = (BIG, BIG, 3, BIG, 5, BIG, 7, 8, 9, 10)
    t = served({ServiceKey(4, "TCP", "10.0.0.1", 80): ServiceCounters(svc, {})})
    vs = {k[2]: v for k, v in t.items() if k[:2] == (3, 1) and k[3] == 1}
    # the 32-bit columns cut to their width, the 64-bit ones whole
    assert vs[27] == (ax.GAUGE32, 7)  # Conns
    assert vs[28] == (ax.COUNTER32, 7) and vs[29] == (ax.COUNTER32, 3)  # In/OutPkts
    assert vs[30] == (ax.COUNTER64, BIG) and vs[31] == (ax.COUNTER64, 5)  # In/OutBytes
    assert [vs[c] for c in range(32, 37)] == [(ax.GAUGE32, v) for v in (7, 7, 8, 9, 10)]
    assert [vs[c] for c in (38, 39, 40)] == [(ax.COUNTER64, v) for v in (BIG, BIG, 3)]
    # each rate's low and high halves
    assert [vs[c][1] for c in range(41, 51)] == [7, 5, 7, 0, 8, 0, 9, 0, 10, 0]
    # the group's virtual server has no service in the dump: zeros
    grp = {k[2]: v for k, v in t.items() if k[:2] == (3, 1) and k[3] == 2}
    assert grp[27] == (ax.GAUGE32, 0) and grp[30] == (ax.COUNTER64, 0)


def test_a_group_sums_its_services_and_a_real_server_its_destinations() -> None:
    t = served({
        ServiceKey(4, "TCP", "10.0.0.10", 80): ServiceCounters(
            (1,) * 10, {("10.0.1.1", 8080): dest(100, 1, 2, 3),
                        ("10.0.1.2", 8080): dest(50, 9)}),
        ServiceKey(4, "TCP", "10.0.0.11", 80): ServiceCounters(
            (2,) * 10, {("10.0.1.1", 8080): dest(1000, 10, 20, 30)}),
        ServiceKey(4, "TCP", "10.0.0.1", 80): ServiceCounters(
            (4,) * 10, {("10.0.9.9", 80): dest(7, 1), ("10.0.1.1", 8080): dest(5)}),
    })
    grp = {k[2]: v for k, v in t.items() if k[:2] == (3, 1) and k[3] == 2}
    assert grp[27] == (ax.GAUGE32, 3) and grp[39] == (ax.COUNTER64, 3)

    def rs(v: int, r: int) -> dict[int, tuple[int, Any]]:
        return {k[2]: val for k, val in t.items() if k[:2] == (4, 1) and k[3:] == (v, r)}

    one, two = rs(2, 1), rs(2, 2)
    assert one[14] == (ax.GAUGE32, 1100)  # Conns over both of the group's services
    assert [one[c][1] for c in (15, 16, 17)] == [11, 22, 33]  # Active, Inactive, Persistent
    assert one[18] == (ax.COUNTER32, 1102) and one[21] == (ax.COUNTER64, 1108)
    assert one[27] == (ax.COUNTER64, 1100) and one[30] == (ax.GAUGE32, 1110)
    assert two[14] == (ax.GAUGE32, 50) and two[15] == (ax.GAUGE32, 9)
    # the sorry server (real server 1 of virtual server 1) has its destination's too
    sorry, real = rs(1, 1), rs(1, 2)
    assert sorry[14] == (ax.GAUGE32, 7) and sorry[15] == (ax.GAUGE32, 1)
    assert real[14] == (ax.GAUGE32, 5) and real[15] == (ax.GAUGE32, 0)


def test_no_counters_is_zeros() -> None:
    assert served(None) == served({})


def test_the_agent_dumps_the_counters_at_most_every_five_seconds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(snmp_mod.time, "monotonic", lambda: now[0])
    calls: list[float] = []

    async def counters() -> dict[ServiceKey, ServiceCounters]:
        calls.append(now[0])
        return {}

    agent = SnmpAgent("unix:/nonexistent", lambda: None, lambda: None,  # type: ignore[arg-type,return-value]
                      checker_mib=True, ipvs_counters=counters)

    async def run() -> None:
        for step in (0.0, 1.0, 3.9, 1.2, 0.5, 6.0):
            now[0] += step
            await agent._ipvs()

    asyncio.run(run())
    assert calls == [1000.0, 1006.1, 1012.6]
    # no walk, no dump: nothing reads the counters on its own
    assert SnmpAgent("unix:/x", lambda: None, lambda: None,  # type: ignore[arg-type,return-value]
                     checker_mib=True)._counters_at is None


def test_the_parent_asks_the_ipvs_backend_only() -> None:
    from types import SimpleNamespace

    from hafast.app.supervisor import Supervisor
    from hafast.lvs.memory import MemoryBackend

    async def counters() -> dict[ServiceKey, ServiceCounters]:
        return {ServiceKey(4, "TCP", "10.0.0.1", 80): ServiceCounters((1,) * 10, {})}

    def parent(inner: Any) -> Any:
        # the parent's pools: a PoolKeeper over ``inner`` (which it wraps in its
        # counting backend)
        from hafast.config.loader import load_text
        from hafast.lvs.keeper import PoolKeeper

        return SimpleNamespace(pools=PoolKeeper(load_text("").config, inner, keep=False))

    ipvs_like = SimpleNamespace(counters=counters)
    got = asyncio.run(Supervisor._ipvs_counters(parent(ipvs_like)))
    assert list(got) == [ServiceKey(4, "TCP", "10.0.0.1", 80)]
    assert asyncio.run(Supervisor._ipvs_counters(parent(MemoryBackend()))) is None
    assert asyncio.run(Supervisor._ipvs_counters(SimpleNamespace(pools=None))) is None
