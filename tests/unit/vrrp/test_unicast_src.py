"""Issue 14: check_unicast_src, a unicast peer's min_ttl/max_ttl, unicast_ttl.

keepalived 2.2.7 (vrrp.c ``vrrp_check_packet``, vrrp_data.c
``alloc_vrrp_unicast_peer``): in unicast mode with ``check_unicast_src`` (or the
global ``vrrp_check_unicast_src``, or any peer's ``min_ttl``/``max_ttl``) an advert
whose source is not a unicast peer is dropped, and one whose received TTL / hop
limit is outside that peer's range is dropped as ``ip_ttl_err``.  ``unicast_ttl``
is the TTL of the adverts sent to the peers (IPv4 header; IPv6 per-message
IPV6_HOPLIMIT).  No privileges: the sockets are fakes, as in test_transport.py.
"""

from __future__ import annotations

import doctest
import logging
import socket
import struct

import pytest

from hafast._core.vrrp_codec import Advert, encode, encode_ipv4
from hafast.config.loader import load_text
from hafast.config.model import VirtualAddress
from hafast.net.vip import MemoryVips
from hafast.vrrp import from_config
from hafast.vrrp.from_config import UNICAST_SRC_ERR, channel_for, peer_ranges, source_verdict
from hafast.vrrp.fsm import State
from hafast.vrrp.instance import Instance, InstanceSpec, ManualTimers, NullAnnouncer
from hafast.vrrp.params import VrrpParams
from hafast.vrrp.transport import (
    DROP_REASONS,
    IPV6_HOPLIMIT,
    IPV6_PKTINFO,
    Channel,
    ChannelConfig,
    RateLimitedLog,
    SocketCounters,
    VrrpSocket,
)

SRC = bytes([10, 0, 0, 1])
PEER = bytes([10, 0, 0, 2])
PEER2 = bytes([10, 0, 0, 3])
ROGUE = bytes([10, 0, 0, 66])
VIP = bytes([10, 0, 0, 100])
LL_OWN = bytes.fromhex("fe800000000000000000000000000001")
LL_PEER = bytes.fromhex("fe800000000000000000000000000002")
LL_ROGUE = bytes.fromhex("fe800000000000000000000000000066")
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


def _sock(family: int = 4) -> VrrpSocket:
    s = VrrpSocket.__new__(VrrpSocket)
    s.ifname, s.family, s.ifindex = "eth0", family, 2
    s.counters = SocketCounters()
    s._channels = {}
    s._groups = set()
    s._ip_id = 0
    s._rlog = RateLimitedLog(logging.getLogger("test"))
    s.sock = FakeSock()  # type: ignore[assignment]
    return s


class Seen:
    def __init__(self) -> None:
        self.adverts: list[Advert] = []
        self.rejects: list[tuple[str, bytes]] = []

    def advert(self, adv: Advert, at: int | None) -> None:
        self.adverts.append(adv)

    def reject(self, reason: str, adv: Advert) -> None:
        self.rejects.append((reason, bytes(adv.src)))


def _channel(s: VrrpSocket, **cfg: object) -> tuple[Channel, Seen]:
    seen = Seen()
    base: dict[str, object] = {"ifname": "eth0", "family": 4, "vrid": 51, "version": 2,
                               "adver_int": 1, "addresses": (VIP,), "src": SRC,
                               "group": bytes([224, 0, 0, 18])}
    base.update(cfg)
    ch = Channel(s, ChannelConfig(**base), seen.advert, seen.reject)  # type: ignore[arg-type]
    s.register(ch)
    return ch, seen


def _advert4(src: bytes, ttl: int = 255, priority: int = 200) -> bytes:
    return encode_ipv4(2, 51, priority, [VIP], 1, src=src, dst=SRC, ttl=ttl)


def _load(body: str, globals_: str = "") -> ChannelConfig:
    text = (f"global_defs {{\n{globals_}\n}}\n" if globals_ else "") + (
        "vrrp_instance V {\n interface lo\n virtual_router_id 51\n"
        f" virtual_ipaddress {{\n  10.0.0.100\n }}\n{body}\n}}\n")
    cfg = load_text(text).config
    return channel_for(cfg.vrrp_instances[0], cfg.global_defs)


# -- the decision ----------------------------------------------------------------


def test_verdict_source_then_ttl_range() -> None:
    ranges = {PEER: (0, 255), PEER2: (254, 255)}
    assert source_verdict(ranges, PEER, 1) == "ok"
    assert source_verdict(ranges, PEER2, 255) == "ok"
    assert source_verdict(ranges, PEER2, 253) == "ip_ttl_err"
    assert source_verdict(ranges, PEER2, -1) == "ok"  # TTL not known: not checked
    assert source_verdict(ranges, ROGUE, 255) == UNICAST_SRC_ERR
    # keepalived warns that min > max discards everything, and does so.
    assert source_verdict({PEER: (200, 100)}, PEER, 150) == "ip_ttl_err"


def test_ranges_only_in_unicast_mode_with_the_check_on() -> None:
    base = ChannelConfig("eth0", 4, 51, 2, 1, src=SRC)
    assert peer_ranges(base) is None
    from dataclasses import replace
    assert peer_ranges(replace(base, check_src=True)) is None  # multicast: no peers
    assert peer_ranges(replace(base, peers=(PEER,))) is None  # unicast, check off
    on = replace(base, peers=(PEER, PEER2), check_src=True, peer_ttl=((0, 255), (9, 99)))
    assert peer_ranges(on) == {PEER: (0, 255), PEER2: (9, 99)}
    # The first of a peer listed twice wins, as keepalived's list walk.
    twice = replace(on, peers=(PEER, PEER), peer_ttl=((1, 2), (3, 4)))
    assert peer_ranges(twice) == {PEER: (1, 2)}


def test_from_config_turns_the_check_on_as_keepalived() -> None:
    peers = " unicast_src_ip 10.0.0.1\n unicast_peer {\n  10.0.0.2\n }"
    assert not _load(peers).check_src
    assert _load(peers + "\n check_unicast_src").check_src
    assert _load(peers, " vrrp_check_unicast_src").check_src
    ranged = _load(" unicast_src_ip 10.0.0.1\n unicast_peer {\n  10.0.0.2 min_ttl 250\n"
                   "  10.0.0.3 max_ttl 9\n }")
    assert ranged.check_src  # min_ttl / max_ttl turn it on (vrrp_data.c)
    assert ranged.peer_ttl == ((250, 255), (0, 9))
    assert peer_ranges(ranged) == {PEER: (250, 255), PEER2: (0, 9)}


def test_unicast_ttl_from_config_default_255() -> None:
    peers = " unicast_src_ip 10.0.0.1\n unicast_peer {\n  10.0.0.2\n }"
    assert _load(peers).unicast_ttl == 255
    assert _load(peers + "\n unicast_ttl 7").unicast_ttl == 7


def test_doctests() -> None:
    assert doctest.testmod(from_config).failed == 0


# -- on the receive path ---------------------------------------------------------


def test_adverts_from_a_stranger_are_dropped_and_counted() -> None:
    s = _sock()
    _, seen = _channel(s, peers=(PEER,), check_src=True, peer_ttl=((0, 255),))
    s._rx4(_advert4(PEER, ttl=64))  # unicast: any TTL within the (default) range
    s._rx4(_advert4(ROGUE))
    s._rx4(_advert4(ROGUE, priority=0))  # a forged shutdown must not speed a takeover
    assert [a.src for a in seen.adverts] == [PEER]
    assert seen.rejects == [(UNICAST_SRC_ERR, ROGUE)] * 2
    drops = s.counters.drops()
    assert drops[UNICAST_SRC_ERR] == 2 and UNICAST_SRC_ERR in DROP_REASONS


def test_ttl_out_of_the_peer_range_is_ip_ttl_err() -> None:
    s = _sock()
    _, seen = _channel(s, peers=(PEER, PEER2), check_src=True,
                       peer_ttl=((250, 255), (0, 255)))
    s._rx4(_advert4(PEER, ttl=249))
    s._rx4(_advert4(PEER, ttl=250))
    s._rx4(_advert4(PEER2, ttl=1))
    assert [(a.src, a.ttl) for a in seen.adverts] == [(PEER, 250), (PEER2, 1)]
    assert seen.rejects == [("ip_ttl_err", PEER)]
    assert s.counters.drops()["ip_ttl_err"] == 1


def test_without_the_check_a_stranger_gets_through() -> None:
    s = _sock()
    _, seen = _channel(s, peers=(PEER,))
    s._rx4(_advert4(ROGUE))
    assert [a.src for a in seen.adverts] == [ROGUE] and not seen.rejects


def test_codec_rejects_are_not_checked_twice() -> None:
    s = _sock()
    _, seen = _channel(s, peers=(PEER,), check_src=True, peer_ttl=((0, 255),))
    bad = bytearray(_advert4(ROGUE))
    bad[20] = 0x31  # version 3 for a v2 instance: the codec's verdict stands
    s._rx4(bytes(bad))
    assert [a.reason for a in seen.adverts] == ["version_err"] and not seen.rejects
    assert s.counters.drops()[UNICAST_SRC_ERR] == 0


def test_ipv6_hop_limit_range_and_source() -> None:
    s = _sock(6)
    _, seen = _channel(s, family=6, version=3, adver_int=100, addresses=(VIP6,), src=LL_OWN,
                       group=b"", peers=(LL_PEER,), check_src=True, peer_ttl=((255, 255),))

    def rx(src: bytes, hop: int) -> None:
        msg = encode(3, 51, 200, [VIP6], 100, family=6, src=src, dst=LL_OWN)
        anc = [(socket.IPPROTO_IPV6, IPV6_HOPLIMIT, struct.pack("i", hop)),
               (socket.IPPROTO_IPV6, IPV6_PKTINFO, struct.pack("16sI", LL_OWN, 2))]
        s._rx6(msg, anc, (socket.inet_ntop(socket.AF_INET6, src) + "%eth0", 0, 0, 2))

    rx(LL_PEER, 255)
    rx(LL_PEER, 254)
    rx(LL_ROGUE, 255)
    assert len(seen.adverts) == 1
    assert seen.rejects == [("ip_ttl_err", LL_PEER), (UNICAST_SRC_ERR, LL_ROGUE)]


def test_drops_logged_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    s = _sock()
    _channel(s, peers=(PEER,), check_src=True, peer_ttl=((0, 255),))
    with caplog.at_level(logging.WARNING, logger="test"):
        for _ in range(50):
            s._rx4(_advert4(ROGUE))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["eth0: VRID 51: unicast source address 10.0.0.66 not a unicast peer"]
    assert s.counters.drops()[UNICAST_SRC_ERR] == 50


def _master(check: bool, ttl: tuple[int, int] = (0, 255)
            ) -> tuple[Instance, VrrpSocket, ManualTimers]:
    """A unicast VRRPv2 instance at priority 100 that became MASTER alone."""
    clock = ManualTimers()
    spec = InstanceSpec(name="VI_1", ifname="eth0", family=4,
                        params=VrrpParams(priority=100, src_addr=SRC, garp_master_delay_us=0),
                        vips=(VirtualAddress("10.0.0.100", 24, 4),))
    inst = Instance(spec, timers=clock, vips=MemoryVips(), announcer=NullAnnouncer(),
                    notifier=None)
    s = _sock()
    cfg = ChannelConfig("eth0", 4, 51, 2, 1, addresses=(VIP,), src=SRC, peers=(PEER,),
                        check_src=check, peer_ttl=(ttl,))
    inst.sender = Channel(s, cfg, inst.on_advert, inst.reject)
    s.register(inst.sender)
    inst.start()
    clock.advance(4_000_000)
    assert inst.state is State.MASTER
    return inst, s, clock


@pytest.mark.parametrize("check", [True, False])
def test_a_stranger_cannot_take_over_with_the_check(check: bool) -> None:
    inst, s, clock = _master(check)
    for _ in range(5):
        s._rx4(_advert4(ROGUE, priority=200))
        clock.advance(1_000_000)
    if check:
        assert inst.state is State.MASTER
        assert inst.rejects == {UNICAST_SRC_ERR: 5}
        assert s.counters.drops()[UNICAST_SRC_ERR] == 5
    else:  # the same adverts, unchecked: a higher priority wins (so the test can fail)
        assert inst.state is State.BACKUP and not inst.rejects


def test_the_instance_counts_a_ttl_drop_as_keepalived() -> None:
    inst, s, _ = _master(True, ttl=(255, 255))
    s._rx4(_advert4(PEER, ttl=64, priority=200))
    assert inst.counters["ip_ttl_err"] == 1 and inst.rejects == {"ip_ttl_err": 1}
    assert inst.state is State.MASTER


# -- on the send path ------------------------------------------------------------


def test_unicast_ttl_in_the_ipv4_header() -> None:
    s = _sock()
    ch, _ = _channel(s, peers=(PEER,), unicast_ttl=7)
    ch.send(100)
    (pkt, addr), = s.sock.sent  # type: ignore[attr-defined]
    assert addr == ("10.0.0.2", 0) and pkt[8] == 7
    m = _sock()
    mch, _ = _channel(m, unicast_ttl=7)  # without peers it does nothing (keepalived resets it)
    mch.send(100)
    assert m.sock.sent[0][0][8] == 255  # type: ignore[attr-defined]
    d = _sock()
    dch, _ = _channel(d, peers=(PEER,))
    dch.send(100)
    assert d.sock.sent[0][0][8] == 255  # type: ignore[attr-defined]


def test_unicast_ttl_as_ipv6_hop_limit_per_message() -> None:
    s = _sock(6)
    ch, _ = _channel(s, family=6, version=3, adver_int=100, addresses=(VIP6,), src=LL_OWN,
                     group=b"", peers=(LL_PEER,), unicast_ttl=9)
    ch.send(100)
    (_msg, anc, _addr), = s.sock.sent  # type: ignore[attr-defined]
    assert (socket.IPPROTO_IPV6, IPV6_HOPLIMIT, struct.pack("i", 9)) in anc
    d = _sock(6)
    dch, _ = _channel(d, family=6, version=3, adver_int=100, addresses=(VIP6,), src=LL_OWN,
                      group=b"", peers=(LL_PEER,))
    dch.send(100)
    (_msg, anc, _addr), = d.sock.sent  # type: ignore[attr-defined]
    assert [k for _, k, _ in anc] == [IPV6_PKTINFO]  # the socket's 255: no per-message cost


# -- hafast -t says what keepalived says ---------------------------------------------


def test_load_warns_as_keepalived() -> None:
    def warnings(body: str) -> list[str]:
        text = ("vrrp_instance V {\n interface lo\n virtual_router_id 51\n"
                f" virtual_ipaddress {{\n  10.0.0.100\n }}\n{body}\n}}\n")
        return [d.message for d in load_text(text).warnings]

    assert any("min_ttl 200 > max_ttl 100 - all packets from 10.0.0.2 will be discarded" in w
               for w in warnings(" unicast_peer {\n  10.0.0.2 min_ttl 200 max_ttl 100\n }"))
    assert any("Cannot use unicast_ttl without unicast peers" in w
               for w in warnings(" unicast_ttl 9"))
    assert any("without any unicast peers. Defaulting to multicast" in w
               for w in warnings(" check_unicast_src"))
    assert not warnings(" unicast_peer {\n  10.0.0.2 min_ttl 1\n }\n unicast_ttl 9\n"
                        " check_unicast_src")
