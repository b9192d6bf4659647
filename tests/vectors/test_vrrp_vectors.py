"""Every keepalived 2.2.7 advert in the captures decodes, validates and re-encodes byte for byte.

The captures (keepalived-2.2.7/ beside this file, made by capture.py; see the README
there): router .1 priority 100 and router .2 priority 90, VRID 51, VIP 192.168.77.100
or fd00:77::100, each sending adverts at its priority and 0 on shutdown.  The
mismatch_* captures hold two peers that disagree; each side's adverts are decoded
with the *other* side's configuration to show the reason that peer rejects them with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hafast._core.vrrp_constants import (
    ADVERT_INTERVAL_ERR,
    AUTH_AH,
    AUTH_FAILURE,
    AUTH_NONE,
    AUTH_PASS,
    AUTHTYPE_MISMATCH,
    CHECKSUM_MESSAGE,
    CHECKSUM_PSEUDO,
    IPPROTO_AH,
    IPPROTO_VRRP,
    OK,
    VERSION_ERR,
    VRRP_GROUP4,
    VRRP_GROUP6,
    auth_data_from_pass,
)
from tests.conftest import load_twin
from tests.vectors.pcap import Frame, read_pcap

ROUTER1 = bytes([192, 168, 77, 1])
ROUTER2 = bytes([192, 168, 77, 2])
VIP4 = bytes([192, 168, 77, 100])
VIP4_B, VIP4_C = bytes([192, 168, 77, 101]), bytes([192, 168, 77, 102])
VIP6 = bytes.fromhex("fd000077000000000000000000000100")
LINK_LOCAL6 = bytes.fromhex("fe800000000000000000000000000000")[:8]  # fe80::/64 prefix
PASS_1111 = auth_data_from_pass("1111")
AH_KEY = auth_data_from_pass("1111")  # vrrp_v2_ah.pcap: auth_type AH, auth_pass 1111


@dataclass(frozen=True)
class Expected:
    """What every advert of one capture carries (one keepalived config on both routers)."""

    version: int
    family: int
    auth_type: int
    auth_data: bytes
    adver_int: int
    addresses: tuple[bytes, ...]
    checksum_mode: str


V2_PASS = Expected(2, 4, AUTH_PASS, PASS_1111, 1, (VIP4,), CHECKSUM_MESSAGE)
V3_IPV4 = Expected(3, 4, AUTH_NONE, b"", 100, (VIP4,), CHECKSUM_PSEUDO)
V3_IPV6 = Expected(3, 6, AUTH_NONE, b"", 100, (VIP6,), CHECKSUM_PSEUDO)

CAPTURES = {
    "vrrp_v2_pass.pcap": V2_PASS,
    "vrrp_v2_pass_vmac.pcap": V2_PASS,
    "vrrp_script_weight.pcap": V2_PASS,
    "vrrp_v2_noauth.pcap": Expected(2, 4, AUTH_NONE, bytes(8), 1, (VIP4,), CHECKSUM_MESSAGE),
    "vrrp_v2_ah.pcap": Expected(2, 4, AUTH_AH, bytes(8), 1, (VIP4,), CHECKSUM_MESSAGE),
    "vrrp_v2_pass_3vips.pcap": Expected(
        2, 4, AUTH_PASS, b"12345678", 1, (VIP4, VIP4_B, VIP4_C), CHECKSUM_MESSAGE
    ),
    "vrrp_v3_ipv4.pcap": V3_IPV4,
    "vrrp_v3_ipv4_adv0.1.pcap": Expected(3, 4, AUTH_NONE, b"", 10, (VIP4,), CHECKSUM_PSEUDO),
    "vrrp_v3_ipv6.pcap": V3_IPV6,
    "vrrp_v3_ipv6_vmac.pcap": V3_IPV6,
    "vrrp_v3_ipv6_adv0.1.pcap": Expected(3, 6, AUTH_NONE, b"", 10, (VIP6,), CHECKSUM_PSEUDO),
}


@pytest.fixture
def codec(twin_flavour: str) -> ModuleType:
    return load_twin("vrrp_codec", twin_flavour)


def adverts(vectors_dir: Path, name: str) -> list[Frame]:
    frames = [f for f in read_pcap(vectors_dir / name) if f.protocol in (IPPROTO_VRRP, IPPROTO_AH)]
    assert frames, f"{name} holds no VRRP adverts"
    return frames


def decode(codec: ModuleType, frame: Frame, **expect: object) -> Any:
    """Decode as the transport would: whole packet for IPv4, payload + hop limit for IPv6."""
    if frame.ip_version == 4:
        return codec.decode_ipv4(frame.ip_packet, **expect)
    return codec.decode_payload(frame.payload, 6, frame.src, frame.dst, frame.ttl, **expect)


def vrrp_message(frame: Frame) -> bytes:
    if frame.protocol == IPPROTO_AH:
        ah_len = (frame.payload[1] + 2) * 4  # RFC 4302 §2.2
        return frame.payload[ah_len:]
    return frame.payload


def test_all_captures_listed(vectors_dir: Path) -> None:
    with_adverts = {
        p.name for p in vectors_dir.glob("*.pcap")
        if any(f.protocol in (IPPROTO_VRRP, IPPROTO_AH) for f in read_pcap(p))
    }
    mismatches = {n for n in with_adverts if n.startswith("mismatch_")}
    assert with_adverts - mismatches == set(CAPTURES)


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_capture_decodes(codec: ModuleType, vectors_dir: Path, name: str) -> None:
    want = CAPTURES[name]
    frames = adverts(vectors_dir, name)
    priorities = set()
    for frame in frames:
        adv = decode(codec, frame, version=want.version, auth_type=want.auth_type,
                     auth_data=want.auth_data if want.auth_type == AUTH_PASS else None,
                     adver_int=want.adver_int if want.version == 2 else 0)
        assert adv.reason == OK, (name, frame.index, adv.reason)
        assert adv.ok
        assert (adv.version, adv.type, adv.vrid) == (want.version, 1, 51)
        assert adv.family == want.family
        assert adv.count == len(want.addresses)
        assert adv.addresses == want.addresses
        assert adv.auth_type == want.auth_type
        assert adv.auth_data == want.auth_data
        assert adv.adver_int == want.adver_int
        assert adv.checksum_mode == want.checksum_mode  # keepalived's default: pseudo-header
        assert adv.checksum == int.from_bytes(vrrp_message(frame)[6:8], "big")
        assert adv.ttl == 255
        assert (adv.src, adv.dst) == (frame.src, frame.dst)
        if want.family == 4:
            assert adv.src in (ROUTER1, ROUTER2) and adv.dst == VRRP_GROUP4
        else:
            assert adv.src[:8] == LINK_LOCAL6 and adv.dst == VRRP_GROUP6
        assert adv.ah == (want.auth_type == AUTH_AH)
        priorities.add(adv.priority)
    # Both routers and the graceful-shutdown priority 0 (RFC 5798 §5.2.4) appear.
    assert {100, 90, 0} <= priorities


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_capture_reencodes(codec: ModuleType, vectors_dir: Path, name: str) -> None:
    for frame in adverts(vectors_dir, name):
        adv = decode(codec, frame)
        mode = adv.checksum_mode if adv.version == 3 else CHECKSUM_PSEUDO
        message = codec.encode(adv.version, adv.vrid, adv.priority, adv.addresses, adv.adver_int,
                               family=adv.family, auth_type=adv.auth_type,
                               auth_data=adv.auth_data, src=adv.src, dst=adv.dst, v3_checksum=mode)
        assert message == vrrp_message(frame), (name, frame.index)
        if frame.ip_version == 4:
            # keepalived's AH key is the auth_pass, 1111 in this capture (the ICVs verify).
            secret = AH_KEY if adv.ah else adv.auth_data
            packet = codec.encode_ipv4(adv.version, adv.vrid, adv.priority, adv.addresses,
                                       adv.adver_int, src=adv.src, dst=adv.dst,
                                       ip_id=frame.ip_id, auth_type=adv.auth_type,
                                       auth_data=secret, v3_checksum=mode, ah_seq=adv.ah_seq)
            assert packet == frame.ip_packet, (name, frame.index)


def test_ip_fields_as_keepalived_sends(vectors_dir: Path) -> None:
    # The README's claims the encoder copies: TTL 255, TOS 0xc0, DF clear, id from 1.
    for name in CAPTURES:
        first_ids: dict[bytes, int] = {}
        for frame in adverts(vectors_dir, name):
            assert frame.ttl == 255 and frame.tos == 0xC0
            if frame.ip_version == 4:
                assert frame.ip_packet[6:8] == b"\x00\x00"
                first_ids.setdefault(frame.src, frame.ip_id)
        assert all(i == 1 for i in first_ids.values()), (name, first_ids)


def test_ah_recognised(codec: ModuleType, vectors_dir: Path) -> None:
    frames = adverts(vectors_dir, "vrrp_v2_ah.pcap")
    seqs: dict[bytes, list[int]] = {}
    for frame in frames:
        assert frame.protocol == IPPROTO_AH
        adv = codec.decode_ipv4(frame.ip_packet, codec.Expect(auth_type=AUTH_AH, auth_data=AH_KEY))
        assert adv.ok and adv.ah and adv.auth_type == AUTH_AH  # ICV and SPI verified
        wrong_key = codec.Expect(auth_type=AUTH_AH, auth_data=auth_data_from_pass("2222"))
        assert codec.decode_ipv4(frame.ip_packet, wrong_key).reason == AUTH_FAILURE
        assert adv.ah_spi == int.from_bytes(adv.src, "big")  # keepalived: SPI = sender IPv4
        seqs.setdefault(adv.src, []).append(adv.ah_seq)
        # A peer configured for PASS (or none) rejects it as the wrong auth type.
        assert codec.decode_ipv4(frame.ip_packet, auth_type=AUTH_PASS).reason == AUTHTYPE_MISMATCH
        assert codec.decode_ipv4(frame.ip_packet, auth_type=AUTH_NONE).reason == AUTHTYPE_MISMATCH
    for sequence in seqs.values():
        assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)


# name -> {sender: (expectations of the receiving peer, reason it rejects with)}
MISMATCHES: dict[str, dict[bytes, tuple[dict[str, object], str]]] = {
    "mismatch_authpass.pcap": {
        ROUTER2: ({"auth_type": AUTH_PASS, "auth_data": PASS_1111}, AUTH_FAILURE),
        ROUTER1: ({"auth_type": AUTH_PASS, "auth_data": auth_data_from_pass("2222")}, AUTH_FAILURE),
    },
    "mismatch_noauth.pcap": {
        ROUTER2: ({"auth_type": AUTH_PASS, "auth_data": PASS_1111}, AUTHTYPE_MISMATCH),
        ROUTER1: ({"auth_type": AUTH_NONE}, AUTHTYPE_MISMATCH),
    },
    "mismatch_v3.pcap": {
        ROUTER2: ({"version": 2, "auth_type": AUTH_PASS, "auth_data": PASS_1111}, VERSION_ERR),
        ROUTER1: ({"version": 3}, VERSION_ERR),
    },
    "mismatch_advint2.pcap": {
        ROUTER2: ({"version": 2, "adver_int": 1}, ADVERT_INTERVAL_ERR),
        ROUTER1: ({"version": 2, "adver_int": 2}, ADVERT_INTERVAL_ERR),
    },
    # The VIP list is not a codec check (keepalived 2.3.3 only warns): both decode.
    "mismatch_vip.pcap": {
        ROUTER2: ({"version": 2, "auth_type": AUTH_PASS, "auth_data": PASS_1111}, OK),
        ROUTER1: ({"version": 2, "auth_type": AUTH_PASS, "auth_data": PASS_1111}, OK),
    },
}


@pytest.mark.parametrize("name", sorted(MISMATCHES))
def test_mismatch_captures(codec: ModuleType, vectors_dir: Path, name: str) -> None:
    senders = set()
    for frame in adverts(vectors_dir, name):
        assert codec.decode_ipv4(frame.ip_packet).ok  # each advert is well formed on its own
        expect, reason = MISMATCHES[name][frame.src]
        adv = codec.decode_ipv4(frame.ip_packet, **expect)
        assert adv.reason == reason, (name, frame.index, frame.src.hex())
        assert adv.vrid == 51  # a reject still names its VRID, for the per-instance counter
        senders.add(frame.src)
    assert senders == {ROUTER1, ROUTER2}


def test_mismatch_details(codec: ModuleType, vectors_dir: Path) -> None:
    by_src = {f.src: codec.decode_ipv4(f.ip_packet)
              for f in adverts(vectors_dir, "mismatch_vip.pcap")}
    assert by_src[ROUTER1].addresses == (VIP4,)
    assert by_src[ROUTER2].addresses == (VIP4_B,)
    v3 = {f.src: codec.decode_ipv4(f.ip_packet) for f in adverts(vectors_dir, "mismatch_v3.pcap")}
    assert (v3[ROUTER2].version, v3[ROUTER2].adver_int, v3[ROUTER2].checksum_mode) == (
        3, 100, CHECKSUM_PSEUDO)
    assert (v3[ROUTER1].version, v3[ROUTER1].adver_int) == (2, 1)
    noauth = {f.src: codec.decode_ipv4(f.ip_packet)
              for f in adverts(vectors_dir, "mismatch_noauth.pcap")}
    assert noauth[ROUTER2].auth_type == AUTH_NONE and noauth[ROUTER1].auth_type == AUTH_PASS
    pw = {f.src: codec.decode_ipv4(f.ip_packet)
          for f in adverts(vectors_dir, "mismatch_authpass.pcap")}
    assert pw[ROUTER2].auth_data == auth_data_from_pass("2222")


def test_v3_checksum_convention_enforced(codec: ModuleType, vectors_dir: Path) -> None:
    # keepalived's v3 IPv4 adverts carry the pseudo-header sum: a peer configured for
    # RFC 9568 (v3_checksum_as_v2, message only) rejects them.
    frame = adverts(vectors_dir, "vrrp_v3_ipv4.pcap")[0]
    assert codec.decode_ipv4(frame.ip_packet, v3_checksum=CHECKSUM_PSEUDO).ok
    assert codec.decode_ipv4(frame.ip_packet, v3_checksum=CHECKSUM_MESSAGE).reason == "checksum_err"


@pytest.mark.compiled
def test_vectors_agree_across_twins(vectors_dir: Path) -> None:
    c, py = load_twin("vrrp_codec", "c"), load_twin("vrrp_codec", "py")
    for name in list(CAPTURES) + list(MISMATCHES):
        frames = adverts(vectors_dir, name)
        for frame in frames:
            assert decode(c, frame).fields() == decode(py, frame).fields()
        # Cut short at every length, the twins agree on the reason and the filled fields.
        frame = frames[0]
        whole = frame.ip_packet if frame.ip_version == 4 else frame.payload
        for cut in range(len(whole)):
            if frame.ip_version == 4:
                a, b = c.decode_ipv4(whole[:cut]), py.decode_ipv4(whole[:cut])
            else:
                a = c.decode_payload(whole[:cut], 6, frame.src, frame.dst, 255)
                b = py.decode_payload(whole[:cut], 6, frame.src, frame.dst, 255)
            assert a.fields() == b.fields()
            assert not a.ok


def test_pcap_reader_vlan_and_byte_order(codec: ModuleType, vectors_dir: Path) -> None:
    # Re-wrap a captured advert in an 802.1Q tag, in a big-endian nanosecond pcap.
    import io
    import struct

    frame = adverts(vectors_dir, "vrrp_v2_pass.pcap")[0]
    tagged = frame.eth_dst + frame.eth_src + struct.pack("!HHH", 0x8100, 77, 0x0800)
    tagged += frame.ip_packet + bytes(4)  # trailing link padding is cut by the IP length
    header = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    record = struct.pack(">IIII", 10, 500, len(tagged), len(tagged))
    (back,) = read_pcap(io.BytesIO(header + record + tagged))
    assert back.vlans == (77,) and back.ethertype == 0x0800
    assert back.time == pytest.approx(10.0000005)
    assert back.ip_packet == frame.ip_packet
    assert codec.decode_ipv4(back.ip_packet).ok
