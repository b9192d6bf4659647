"""Transport demux and receive parsing without sockets (no privileges needed).

A :class:`VrrpSocket` is built around a fake socket object so that ``_rx4`` /
``_rx6`` / sends run exactly as on the wire; the codec twin comes from the
chooser (run once more with HAFAST_NO_EXTENSIONS=1 for the pure twin).
"""

from __future__ import annotations

import logging
import socket
import struct

import pytest

from hafast._core.vrrp_codec import Advert, encode, encode_ipv4
from hafast._core.vrrp_constants import AUTH_PASS, VRRP_GROUP6, auth_data_from_pass
from hafast.vrrp.transport import (
    IPV6_HOPLIMIT,
    IPV6_PKTINFO,
    Channel,
    ChannelConfig,
    RateLimitedLog,
    SocketCounters,
    VrrpSocket,
)

GROUP4 = bytes([224, 0, 0, 18])
SRC = bytes([10, 0, 0, 1])
PEER = bytes([10, 0, 0, 2])
VIP = bytes([10, 0, 0, 100])
LL_PEER = bytes.fromhex("fe800000000000000000000000000002")
LL_OWN = bytes.fromhex("fe800000000000000000000000000001")
VIP6 = bytes.fromhex("fd000000000000000000000000000100")


class FakeSock:
    def __init__(self) -> None:
        self.sent: list[tuple[object, ...]] = []

    def sendto(self, data: bytes, addr: object) -> int:
        self.sent.append((data, addr))
        return len(data)

    def sendmsg(self, bufs: list[bytes], anc: object, flags: int, addr: object) -> int:
        self.sent.append((bufs[0], anc, addr))
        return len(bufs[0])


def _sock(family: int) -> VrrpSocket:
    s = VrrpSocket.__new__(VrrpSocket)
    s.ifname, s.family, s.ifindex = "eth0", family, 2
    s.counters = SocketCounters()
    s._channels = {}
    s._groups = set()
    s._ip_id = 0
    s._rlog = RateLimitedLog(logging.getLogger("test"))
    s.sock = FakeSock()  # type: ignore[assignment]
    return s


def _channel(s: VrrpSocket, **cfg: object) -> tuple[Channel, list[Advert]]:
    got: list[Advert] = []
    base: dict[str, object] = {"ifname": "eth0", "family": 4, "vrid": 51, "version": 2,
                               "adver_int": 1, "addresses": (VIP,), "src": SRC,
                               "group": GROUP4}
    base.update(cfg)
    ch = Channel(s, ChannelConfig(**base), lambda adv, at: got.append(adv))  # type: ignore[arg-type]
    s.register(ch)
    return ch, got


def test_ipv4_demux_by_vrid_and_unknown_counted() -> None:
    s = _sock(4)
    ch, got = _channel(s, auth_type=AUTH_PASS, auth_data=auth_data_from_pass("1111"))
    good = encode_ipv4(2, 51, 90, [VIP], 1, src=PEER, dst=GROUP4, auth_type=AUTH_PASS,
                       auth_data=auth_data_from_pass("1111"))
    wrong_pw = encode_ipv4(2, 51, 90, [VIP], 1, src=PEER, dst=GROUP4, auth_type=AUTH_PASS,
                           auth_data=auth_data_from_pass("2222"))
    other = encode_ipv4(2, 52, 90, [VIP], 1, src=PEER, dst=GROUP4)
    for pkt in (good, wrong_pw, other, good[:24], good[:21]):
        s._rx4(pkt)
    assert [a.reason for a in got] == ["ok", "auth_failure", "packet_len_err"]
    assert got[0].priority == 90 and got[0].src == PEER
    assert s.counters.unknown_vrid == 1 and s.counters.rx_packets == 5
    assert s.counters.short_packets == 1  # too short to name a VRID
    with pytest.raises(ValueError):
        s.register(Channel(s, ch.cfg, lambda adv, at: None))


def test_ipv4_ttl_checked_for_multicast_not_unicast() -> None:
    s = _sock(4)
    _, got = _channel(s)
    low = encode_ipv4(2, 51, 90, [VIP], 1, src=PEER, dst=GROUP4, ttl=64)
    s._rx4(low)
    assert got[-1].reason == "ip_ttl_err"
    s2 = _sock(4)
    _, got2 = _channel(s2, peers=(PEER,))
    s2._rx4(encode_ipv4(2, 51, 90, [VIP], 1, src=PEER, dst=SRC, ttl=64))
    assert got2[-1].reason == "ok"


def test_own_packets_are_dropped() -> None:
    s = _sock(4)
    _, got = _channel(s)
    s._rx4(encode_ipv4(2, 51, 90, [VIP], 1, src=SRC, dst=GROUP4))
    assert not got and s.counters.own_packets == 1


@pytest.mark.parametrize("v3_checksum", ["pseudo_header", "message"])
def test_v3_ipv4_both_checksum_conventions_send_and_detect(v3_checksum: str) -> None:
    s = _sock(4)
    ch, _ = _channel(s, version=3, adver_int=100, v3_checksum=v3_checksum)
    ch.send(100)
    (pkt, addr), = s.sock.sent  # type: ignore[attr-defined]
    assert addr == ("224.0.0.18", 0)
    assert pkt[8] == 255 and pkt[1] == 0xC0 and pkt[9] == 112  # TTL, TOS, protocol
    # The peer's view: same packet from another source.
    rx = _sock(4)
    _, seen = _channel(rx, version=3, adver_int=100, src=PEER)
    rx._rx4(pkt)
    assert seen[-1].ok and seen[-1].checksum_mode == v3_checksum


def test_unicast_sends_to_every_peer() -> None:
    s = _sock(4)
    ch, _ = _channel(s, peers=(PEER, bytes([10, 0, 0, 3])))
    ch.send(100)
    assert [a for _, a in s.sock.sent] == [("10.0.0.2", 0), ("10.0.0.3", 0)]  # type: ignore[attr-defined]


def test_ipv6_hop_limit_from_ancillary_data() -> None:
    s = _sock(6)
    _, got = _channel(s, family=6, version=3, adver_int=100, addresses=(VIP6,), src=LL_OWN,
                      group=VRRP_GROUP6)
    msg = encode(3, 51, 90, [VIP6], 100, family=6, src=LL_PEER, dst=VRRP_GROUP6)
    pktinfo = struct.pack("16sI", VRRP_GROUP6, 2)
    addr = (socket.inet_ntop(socket.AF_INET6, LL_PEER) + "%eth0", 0, 0, 2)
    for hop in (255, 1):
        anc = [(socket.IPPROTO_IPV6, IPV6_HOPLIMIT, struct.pack("i", hop)),
               (socket.IPPROTO_IPV6, IPV6_PKTINFO, pktinfo)]
        s._rx6(msg, anc, addr)
    assert [a.reason for a in got] == ["ok", "ip_ttl_err"]


def test_ipv6_send_carries_source_in_pktinfo() -> None:
    s = _sock(6)
    ch, _ = _channel(s, family=6, version=3, adver_int=100, addresses=(VIP6,), src=LL_OWN,
                     group=VRRP_GROUP6)
    ch.send(100)
    (msg, anc, addr), = s.sock.sent  # type: ignore[attr-defined]
    assert anc == [(socket.IPPROTO_IPV6, IPV6_PKTINFO, struct.pack("16sI", LL_OWN, 2))]
    assert addr == ("ff02::12", 0, 0, 2)
    assert msg[0] == 0x31 and msg[1] == 51


def test_arrival_time_from_the_kernel_stamp() -> None:
    import time

    from hafast.vrrp.transport import SO_TIMESTAMPNS, arrival_us

    now_real = time.time_ns()
    stamp = struct.pack("qq", (now_real - 3_000_000) // 10**9, (now_real - 3_000_000) % 10**9)
    before = time.monotonic_ns() // 1000
    got = arrival_us([(socket.SOL_SOCKET, SO_TIMESTAMPNS, stamp)])
    assert before - 3_000 - 1_000 <= got <= before  # ~3 ms ago on the monotonic clock
    # No stamp, or a wall-clock step: now.
    assert arrival_us([]) >= before
    old = struct.pack("qq", 1, 0)
    assert arrival_us([(socket.SOL_SOCKET, SO_TIMESTAMPNS, old)]) >= before


def test_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    rl = RateLimitedLog(logging.getLogger("hafast.test"), every=60)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            rl.warning("k", "bad %s", "thing")
    assert len(caplog.records) == 1
