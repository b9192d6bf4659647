"""The adverts keepalived 2.2.7 sends an SNMP trap for (vrrp_check_packet): the
instance records RFC 6527's last protocol error and tells the worker's side, which
reports them to the parent, at most ERROR_TRAPS_PER_S a second an instance.

The traps themselves: tests/unit/test_snmp_traps.py; side by side with keepalived:
tests/netns/test_snmp_traps.py.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from hafast._core.vrrp_codec import Advert, decode_ipv4, encode_ipv4
from hafast._core.vrrp_constants import AUTH_PASS, auth_data_from_pass
from hafast.net.vip import MemoryVips
from hafast.vrrp.fsm import State
from hafast.vrrp.instance import Instance, InstanceSpec, ManualTimers, NullAnnouncer
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.side import ERROR_TRAP_BURST, ERROR_TRAPS_PER_S, VrrpSide
from hafast.vrrp.transport import RateLimitedLog

LOCAL = 0x0A000001
PEER = bytes([10, 0, 0, 9])
GROUP = bytes([224, 0, 0, 18])
VIP = bytes([10, 0, 0, 100])
PASS = auth_data_from_pass("secret")


def backup(version: int = 2) -> Instance:
    p = VrrpParams(priority=100, src_addr=LOCAL, version=version, garp_master_delay_us=0)
    spec = InstanceSpec(name="VI_1", ifname="eth0", family=4, params=p)
    inst = Instance(spec, timers=ManualTimers(), vips=MemoryVips(), announcer=NullAnnouncer(),
                    notifier=None)
    inst.start()
    assert inst.state is State.BACKUP
    return inst


def received(version: int = 2, *, ttl: int = 255, password: str = "secret",
             auth_type: int = AUTH_PASS, expect: int = 2) -> Advert:
    if version == 3:
        pkt = encode_ipv4(3, 51, 200, [VIP], 100, src=PEER, dst=GROUP, ttl=ttl)
    else:
        pkt = encode_ipv4(2, 51, 200, [VIP], 1, src=PEER, dst=GROUP, ttl=ttl,
                          auth_type=auth_type, auth_data=auth_data_from_pass(password))
    return decode_ipv4(pkt, version=expect, adver_int=1 if expect == 2 else 0,
                       auth_type=AUTH_PASS if expect == 2 else -1,
                       auth_data=PASS if expect == 2 else None)


def test_auth_and_protocol_errors_are_told_and_the_last_protocol_error_kept() -> None:
    inst = backup()
    told: list[tuple[str, bytes]] = []
    inst.on_rx_error = lambda i, reason, src: told.append((reason, src))
    inst.on_advert(received(password="wrong"))
    inst.on_advert(received(auth_type=0))
    assert inst.proto_err_reason == 0  # no protocol error yet: noError
    inst.on_advert(received(ttl=64))
    inst.on_advert(received(3))  # a VRRPv3 advert to a VRRPv2 instance
    assert [r for r, _ in told] == ["auth_failure", "authtype_mismatch", "ip_ttl_err",
                                    "version_err"]
    assert {src for _, src in told} == {PEER}
    assert inst.proto_err_reason == 2  # versionError: the last one, as keepalived keeps
    inst.on_advert(received(ttl=1))
    assert inst.proto_err_reason == 1
    # a reject keepalived sends no trap for: neither told nor recorded
    good = received()
    inst.reject("addr_list_err", good)
    assert len(told) == 5 and inst.proto_err_reason == 1
    # the unicast peer TTL range check (check_unicast_src) is keepalived's ipTtlError too
    inst.proto_err_reason = 0
    inst.reject("ip_ttl_err", good)
    assert told[-1] == ("ip_ttl_err", PEER) and inst.proto_err_reason == 1
    assert inst.counters["auth_failure"] == 1 and inst.counters["ip_ttl_err"] == 3
    inst.clear_stats()  # keepalived clears stats->proto_err_reason with the counters
    assert inst.proto_err_reason == 0 and inst.counters["ip_ttl_err"] == 0


def test_nothing_told_or_recorded_in_fault() -> None:
    # keepalived reads no packet in FAULT or INIT
    inst = backup()
    told: list[str] = []
    inst.on_rx_error = lambda i, reason, src: told.append(reason)
    inst.raise_fault("interface:eth0")
    assert inst.state is State.FAULT
    inst.on_advert(received(ttl=64))
    inst.on_advert(received(password="wrong"))
    assert told == [] and inst.proto_err_reason == 0
    assert inst.counters["ip_ttl_err"] == 1  # counted as before


def side(traps: bool = True) -> tuple[VrrpSide, list[dict[str, Any]], list[float]]:
    sent: list[dict[str, Any]] = []
    now = [100.0]
    s = VrrpSide.__new__(VrrpSide)
    s.config = SimpleNamespace(  # type: ignore[assignment]
        global_defs=SimpleNamespace(enable_traps=traps),
        vrrp_instances=[SimpleNamespace(name="VI_1", virtual_router_id=51)])
    s.rx_errors = sent.append
    s._buckets = {}
    s._clock = lambda: now[0]
    s._rlog = RateLimitedLog(logging.getLogger("test"))
    return s, sent, now


def test_the_side_reports_what_a_trap_needs() -> None:
    s, sent, _now = side()
    inst = backup()
    s._rx_error(inst, "auth_failure", PEER)
    s._rx_error(inst, "checksum_err", PEER)
    assert sent == [
        {"iname": "VI_1", "vrid": 51, "version": 2, "family": 4, "vips": 0, "ifname": "eth0",
         "src": PEER, "auth_error": 3, "proto_error": 0},
        {"iname": "VI_1", "vrid": 51, "version": 2, "family": 4, "vips": 0, "ifname": "eth0",
         "src": PEER, "auth_error": 0, "proto_error": 3},
    ]
    quiet, none, _ = side(traps=False)  # without enable_traps nothing crosses the pipe
    quiet._rx_error(inst, "auth_failure", PEER)
    assert none == []


def test_a_flood_is_cut_to_the_rate() -> None:
    s, sent, now = side()
    inst = backup()
    for _ in range(3 * ERROR_TRAP_BURST):
        s._rx_error(inst, "ip_ttl_err", PEER)
    assert len(sent) == ERROR_TRAP_BURST
    now[0] += 1.0  # a second later: that second's worth again
    for _ in range(3 * ERROR_TRAP_BURST):
        s._rx_error(inst, "ip_ttl_err", PEER)
    assert len(sent) == ERROR_TRAP_BURST + int(ERROR_TRAPS_PER_S)
    # a peer sending one bad advert every advert_int (1 s here) is never cut
    for _ in range(20):
        now[0] += 1.0
        s._rx_error(inst, "ip_ttl_err", PEER)
    assert len(sent) == ERROR_TRAP_BURST + int(ERROR_TRAPS_PER_S) + 20
