"""VRRP codec: hostile packets, round trips and the compiled twin against the Python one."""

from __future__ import annotations

import array
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hafast._core import checksum_py
from hafast._core.vrrp_constants import (
    ADVERT_FIELDS,
    ADVERT_INTERVAL_ERR,
    AUTH_AH,
    AUTH_FAILURE,
    AUTH_NONE,
    AUTH_PASS,
    AUTHTYPE_MISMATCH,
    BUFFER_ERR,
    CHECKSUM_ANY,
    CHECKSUM_ERR,
    CHECKSUM_MESSAGE,
    CHECKSUM_PSEUDO,
    INVALID_AUTHTYPE,
    INVALID_TYPE_RCVD,
    IP_HEADER_ERR,
    IP_TTL_ERR,
    OK,
    PACKET_LEN_ERR,
    PARAM_ERR,
    PROTOCOL_ERR,
    REASONS,
    V2_IPV6_ERR,
    VERSION_ERR,
    VRRP_GROUP4,
    VRRP_GROUP6,
    auth_data_from_pass,
)
from tests.conftest import load_twin

# twin_flavour only names a flavour: nothing per-test for hypothesis to leak.
# No deadline: tests assert behaviour, never timings (the machine is shared).
_FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture],
                       deadline=None)

SRC4, VIP4 = bytes([192, 168, 77, 1]), bytes([192, 168, 77, 100])
SRC6 = bytes.fromhex("fe80000000000000000000fffe770001")
VIP6 = bytes.fromhex("fd000077000000000000000000000100")
PASS = auth_data_from_pass("1111")
AH_KEY = auth_data_from_pass("ahkey")


@pytest.fixture
def codec(twin_flavour: str) -> ModuleType:
    return load_twin("vrrp_codec", twin_flavour)


def v2_packet(codec: ModuleType, **overrides: object) -> bytes:
    fields: dict[str, object] = {
        "src": SRC4, "dst": VRRP_GROUP4, "ip_id": 1, "auth_type": AUTH_PASS, "auth_data": PASS
    }
    fields.update(overrides)
    packet: bytes = codec.encode_ipv4(2, 51, 100, [VIP4], 1, **fields)
    return packet


def v3_message6(codec: ModuleType) -> bytes:
    message: bytes = codec.encode(3, 51, 100, [VIP6], 100, family=6, src=SRC6, dst=VRRP_GROUP6)
    return message


def reseal(message: bytes, partial: int = 0) -> bytes:
    """Recompute a VRRP checksum after the test edited the message (RFC 5798 §5.2.8)."""
    zeroed = message[:6] + b"\x00\x00" + message[8:]
    value = checksum_py.internet_checksum(zeroed, partial)
    return zeroed[:6] + value.to_bytes(2, "big") + zeroed[8:]


def with_message(packet: bytes, message: bytes) -> bytes:
    """Put a new VRRP message behind a 20-byte IPv4 header, fixing lengths and checksum."""
    header = bytearray(packet[:20])
    header[2:4] = (20 + len(message)).to_bytes(2, "big")
    header[10:12] = b"\x00\x00"
    header[10:12] = checksum_py.internet_checksum(bytes(header)).to_bytes(2, "big")
    return bytes(header) + message


# --- hostile packets: always a reason, never an exception -------------------------


def test_empty_and_short(codec: ModuleType) -> None:
    assert codec.decode_ipv4(b"").reason == PACKET_LEN_ERR
    assert codec.decode_ipv4(b"\x45").reason == PACKET_LEN_ERR
    assert codec.decode_payload(b"", 4, SRC4, VRRP_GROUP4).reason == PACKET_LEN_ERR
    assert codec.decode_payload(b"", 6, SRC6, VRRP_GROUP6, 255).reason == PACKET_LEN_ERR
    assert codec.decode_payload(bytes(7), 4, SRC4, VRRP_GROUP4).reason == PACKET_LEN_ERR


def test_truncated_at_every_length(codec: ModuleType) -> None:
    packet = v2_packet(codec)
    for cut in range(len(packet)):
        adv = codec.decode_ipv4(packet[:cut])
        assert adv.reason == PACKET_LEN_ERR, cut
    # The IP length says more than arrived: the packet was cut on the way.
    message = v3_message6(codec)
    for cut in range(len(message)):
        reason = codec.decode_payload(message[:cut], 6, SRC6, VRRP_GROUP6, 255).reason
        assert reason == PACKET_LEN_ERR, cut


def test_ip_length_field_disagrees(codec: ModuleType) -> None:
    packet = bytearray(v2_packet(codec))
    packet[2:4] = (len(packet) + 1).to_bytes(2, "big")
    assert codec.decode_ipv4(bytes(packet)).reason == PACKET_LEN_ERR
    packet[2:4] = (10).to_bytes(2, "big")  # shorter than its own header
    assert codec.decode_ipv4(bytes(packet)).reason == PACKET_LEN_ERR
    # Link padding after total_len (Ethernet minimum frame) is ignored.
    assert codec.decode_ipv4(v2_packet(codec) + bytes(6)).ok


def test_ip_header_errors(codec: ModuleType) -> None:
    packet = v2_packet(codec)
    assert codec.decode_ipv4(b"\x65" + packet[1:]).reason == IP_HEADER_ERR  # version 6
    assert codec.decode_ipv4(b"\x44" + packet[1:]).reason == IP_HEADER_ERR  # IHL 4 < 5
    assert codec.decode_ipv4(b"\x4f" + packet[1:]).reason == PACKET_LEN_ERR  # IHL 15 > length
    tcp = packet[:9] + b"\x06" + packet[10:]
    assert codec.decode_ipv4(tcp).reason == PROTOCOL_ERR


def test_ip_options_skipped(codec: ModuleType) -> None:
    packet = v2_packet(codec)
    options = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    header = bytearray(b"\x46" + packet[1:20] + options)
    header[2:4] = (len(packet) + 4).to_bytes(2, "big")
    adv = codec.decode_ipv4(bytes(header) + packet[20:])
    assert adv.ok and adv.addresses == (VIP4,)


def test_ttl(codec: ModuleType) -> None:
    low = v2_packet(codec, ttl=64)
    adv = codec.decode_ipv4(low)
    assert adv.reason == IP_TTL_ERR
    assert (adv.vrid, adv.priority, adv.ttl) == (51, 100, 64)  # still counted per instance
    assert adv.addresses == ()  # not trusted: the checks stopped before the checksum
    assert codec.decode_ipv4(low, check_ttl=False).ok  # unicast peers across routers
    message = v3_message6(codec)
    assert codec.decode_payload(message, 6, SRC6, VRRP_GROUP6, 1).reason == IP_TTL_ERR
    assert codec.decode_payload(message, 6, SRC6, VRRP_GROUP6, -1).ok  # hop limit unknown


@pytest.mark.parametrize("version", [0, 1, 4, 7, 15])
def test_wrong_version(codec: ModuleType, version: int) -> None:
    packet = v2_packet(codec)
    message = bytes([(version << 4) | 1]) + packet[21:]
    adv = codec.decode_ipv4(with_message(packet, reseal(message)))
    assert adv.reason == VERSION_ERR and adv.version == version


def test_expected_version(codec: ModuleType) -> None:
    packet = v2_packet(codec)
    assert codec.decode_ipv4(packet, version=2).ok
    assert codec.decode_ipv4(packet, version=3).reason == VERSION_ERR


@pytest.mark.parametrize("kind", [0, 2, 3, 15])
def test_wrong_type(codec: ModuleType, kind: int) -> None:
    packet = v2_packet(codec)
    message = bytes([0x20 | kind]) + packet[21:]
    adv = codec.decode_ipv4(with_message(packet, reseal(message)))
    assert adv.reason == INVALID_TYPE_RCVD and adv.type == kind


def test_v2_over_ipv6(codec: ModuleType) -> None:
    # RFC 5798 §1: VRRPv2 has no IPv6; a v2 header on an IPv6 socket is rejected.
    message = reseal(bytes([0x21, 51, 100, 1, 0, 1, 0, 0]) + VIP6 + bytes(8))
    adv = codec.decode_payload(message, 6, SRC6, VRRP_GROUP6, 255)
    assert adv.reason == V2_IPV6_ERR and adv.version == 2
    with pytest.raises(ValueError):
        codec.encode(2, 51, 100, [VIP6], 1, family=6)


@pytest.mark.parametrize("count", [2, 3, 200, 255])
def test_count_larger_than_payload(codec: ModuleType, count: int) -> None:
    packet = v2_packet(codec)
    message = packet[20:23] + bytes([count]) + packet[24:]
    adv = codec.decode_ipv4(with_message(packet, reseal(message)))
    # keepalived 2.2.7 counts this as packet_len_err ("vrrp packet too short")
    assert adv.reason == PACKET_LEN_ERR and adv.count == count


def test_count_smaller_than_payload(codec: ModuleType) -> None:
    packet = v2_packet(codec)
    message = packet[20:23] + b"\x00" + packet[24:]
    assert codec.decode_ipv4(with_message(packet, reseal(message))).reason == PACKET_LEN_ERR
    extra = reseal(packet[20:] + b"\x00\x00\x00\x00")  # trailing bytes after auth data
    assert codec.decode_ipv4(with_message(packet, extra)).reason == PACKET_LEN_ERR


def test_zero_addresses_allowed(codec: ModuleType) -> None:
    # keepalived's no_virtual_ipaddress sends Count 0; the codec decodes it.
    packet = codec.encode_ipv4(3, 9, 100, [], 100, src=SRC4, dst=VRRP_GROUP4)
    adv = codec.decode_ipv4(packet)
    assert adv.ok and adv.count == 0 and adv.addresses == ()


def test_bad_checksum(codec: ModuleType) -> None:
    packet = bytearray(v2_packet(codec))
    packet[27] ^= 0x01
    adv = codec.decode_ipv4(bytes(packet))
    assert adv.reason == CHECKSUM_ERR and adv.checksum_mode == ""
    message = bytearray(v3_message6(codec))
    message[-1] ^= 0x80
    assert codec.decode_payload(bytes(message), 6, SRC6, VRRP_GROUP6, 255).reason == CHECKSUM_ERR
    # Right message, wrong addresses: the IPv6 pseudo-header no longer sums.
    other = bytes.fromhex("fe80000000000000000000fffe770009")
    assert codec.decode_payload(v3_message6(codec), 6, other, VRRP_GROUP6).reason == CHECKSUM_ERR


def test_v3_ipv4_checksum_conventions(codec: ModuleType) -> None:
    pseudo = codec.encode_ipv4(3, 51, 100, [VIP4], 100, src=SRC4, dst=VRRP_GROUP4)
    plain = codec.encode_ipv4(3, 51, 100, [VIP4], 100, src=SRC4, dst=VRRP_GROUP4,
                              v3_checksum=CHECKSUM_MESSAGE)
    assert pseudo[20:26] == plain[20:26] and pseudo[26:28] != plain[26:28]
    assert codec.decode_ipv4(pseudo).checksum_mode == CHECKSUM_PSEUDO
    assert codec.decode_ipv4(plain).checksum_mode == CHECKSUM_MESSAGE
    assert codec.decode_ipv4(pseudo, v3_checksum=CHECKSUM_MESSAGE).reason == CHECKSUM_ERR
    assert codec.decode_ipv4(plain, v3_checksum=CHECKSUM_PSEUDO).reason == CHECKSUM_ERR
    # The message-only form needs no addresses at all (RFC 9568 §5.2.8).
    assert codec.encode(3, 51, 100, [VIP4], 100, v3_checksum=CHECKSUM_MESSAGE) == plain[20:]
    with pytest.raises(ValueError):
        codec.encode(3, 51, 100, [VIP4], 100)  # the pseudo-header needs src and dst


def test_auth_checks(codec: ModuleType) -> None:
    packet = v2_packet(codec)
    assert codec.decode_ipv4(packet, auth_type=AUTH_PASS, auth_data=PASS).ok
    wrong = auth_data_from_pass("2222")
    assert codec.decode_ipv4(packet, auth_type=AUTH_PASS, auth_data=wrong).reason == AUTH_FAILURE
    assert codec.decode_ipv4(packet, auth_type=AUTH_NONE).reason == AUTHTYPE_MISMATCH
    # RFC 3768 §5.3.10: with auth type none the data is ignored.
    none = v2_packet(codec, auth_type=AUTH_NONE, auth_data=b"junk")
    assert codec.decode_ipv4(none, auth_type=AUTH_NONE, auth_data=PASS).ok


def test_auth_data_is_what_was_received(codec: ModuleType) -> None:
    # The compiled twin hands back the caller's auth_data object when the advert holds
    # exactly those bytes (immutable, so shareable); any other advert's data is its own.
    packet = v2_packet(codec)
    given = bytes(PASS)
    assert codec.decode_ipv4(packet, auth_type=AUTH_PASS, auth_data=given).auth_data == PASS
    wrong = auth_data_from_pass("2222")
    got = codec.decode_ipv4(packet, auth_type=AUTH_PASS, auth_data=wrong)
    assert got.reason == AUTH_FAILURE and got.auth_data == PASS
    got = codec.decode_ipv4(packet, auth_type=AUTH_PASS, auth_data=bytearray(wrong))
    assert got.reason == AUTH_FAILURE and got.auth_data == PASS


def test_unknown_auth_type(codec: ModuleType) -> None:
    packet = v2_packet(codec, auth_type=7)
    adv = codec.decode_ipv4(packet)
    assert adv.reason == INVALID_AUTHTYPE and adv.auth_type == 7


def test_ah_type_without_ah_header(codec: ModuleType) -> None:
    # Auth type AH claimed, but the IP protocol is 112: keepalived's AH never sends that.
    message = codec.encode(2, 51, 100, [VIP4], 1, auth_type=AUTH_AH)
    packet = with_message(v2_packet(codec), message)
    assert codec.decode_ipv4(packet).reason == AUTHTYPE_MISMATCH
    # Without the IP header the codec cannot tell, and reports the field.
    assert codec.decode_payload(message, 4, SRC4, VRRP_GROUP4, 255).auth_type == AUTH_AH


def test_ah_round_trip(codec: ModuleType) -> None:
    key = auth_data_from_pass("secret")
    packet = codec.encode_ipv4(2, 51, 100, [VIP4], 1, src=SRC4, dst=VRRP_GROUP4, ip_id=9,
                               auth_type=AUTH_AH, auth_data=key, ah_seq=42)
    assert packet[9] == 51 and len(packet) == 20 + 24 + 20
    assert key not in packet  # the AH key never goes on the wire
    rx = codec.Expect(version=2, auth_type=AUTH_AH, auth_data=key, adver_int=1)
    adv = codec.decode_ipv4(packet, rx)
    assert adv.ok and adv.ah and adv.ah_seq == 42 and adv.auth_data == bytes(8)
    wrong = codec.Expect(auth_type=AUTH_AH, auth_data=auth_data_from_pass("other"))
    assert codec.decode_ipv4(packet, wrong).reason == AUTH_FAILURE
    assert codec.decode_ipv4(packet, auth_type=AUTH_AH).ok  # no key given: ICV not checked
    # Any change to covered bytes breaks the ICV; TOS and the IP checksum are not covered.
    tampered = bytearray(packet)
    tampered[-9] ^= 1  # the VIP (and the VRRP checksum with it, kept valid below)
    message = reseal(bytes(tampered[44:]))
    assert codec.decode_ipv4(bytes(tampered[:44]) + message, rx).reason == AUTH_FAILURE
    retos = bytearray(packet)
    retos[1] = 0x10
    assert codec.decode_ipv4(bytes(retos), rx).ok
    # The SPI must be the sender's address (keepalived's rule).
    spoofed = bytearray(packet)
    spoofed[27] ^= 1
    assert codec.decode_ipv4(bytes(spoofed), rx).reason == AUTH_FAILURE


def test_ah_unicast_ttl(codec: ModuleType) -> None:
    # keepalived leaves the TTL out of the ICV for unicast peers (it changes on the way).
    key = auth_data_from_pass("k")
    packet = codec.encode_ipv4(2, 51, 100, [VIP4], 1, src=SRC4, dst=bytes([10, 0, 0, 2]),
                               auth_type=AUTH_AH, auth_data=key, unicast=True)
    hopped = bytearray(packet)
    hopped[8] = 61
    hopped[10:12] = b"\x00\x00"
    hopped[10:12] = checksum_py.internet_checksum(bytes(hopped[:20])).to_bytes(2, "big")
    unicast_rx = codec.Expect(auth_type=AUTH_AH, auth_data=key, check_ttl=False)
    assert codec.decode_ipv4(bytes(hopped), unicast_rx).ok
    multicast_rx = codec.Expect(auth_type=AUTH_AH, auth_data=key)
    assert codec.decode_ipv4(packet, multicast_rx).reason == AUTH_FAILURE  # TTL was left out


def test_ah_encode_rejects(codec: ModuleType) -> None:
    with pytest.raises(ValueError):
        codec.encode_ipv4(3, 51, 100, [VIP4], 100, src=SRC4, dst=VRRP_GROUP4, auth_type=AUTH_AH)
    with pytest.raises(ValueError):
        codec.encode_ipv4(2, 51, 100, [VIP4], 1, src=SRC4, dst=VRRP_GROUP4, auth_type=AUTH_AH,
                          ah_seq=-1)


def ah_packet(message: bytes, next_header: int = 112, payload_len: int = 4) -> bytes:
    ah = bytes([next_header, payload_len, 0, 0]) + SRC4 + (7).to_bytes(4, "big") + bytes(12)
    body = ah + message
    header = bytearray(b"\x45\xc0" + (20 + len(body)).to_bytes(2, "big") + b"\x00\x01\x00\x00")
    header += bytes([255, 51, 0, 0]) + SRC4 + VRRP_GROUP4
    return bytes(header) + body


def test_ah_packets(codec: ModuleType) -> None:
    message = codec.encode(2, 51, 100, [VIP4], 1, auth_type=AUTH_AH)
    adv = codec.decode_ipv4(ah_packet(message), auth_type=AUTH_AH)
    assert adv.ok and adv.ah and adv.ah_seq == 7 and adv.ah_spi == int.from_bytes(SRC4, "big")
    assert codec.decode_ipv4(ah_packet(message, next_header=6)).reason == PROTOCOL_ERR
    assert codec.decode_ipv4(ah_packet(message, payload_len=200)).reason == PACKET_LEN_ERR
    assert codec.decode_ipv4(ah_packet(message)[:30]).reason == PACKET_LEN_ERR
    plain = codec.encode(2, 51, 100, [VIP4], 1, auth_type=AUTH_PASS, auth_data=PASS)
    assert codec.decode_ipv4(ah_packet(plain)).reason == AUTHTYPE_MISMATCH


def test_v2_advert_interval(codec: ModuleType) -> None:
    packet = v2_packet(codec)
    assert codec.decode_ipv4(packet, adver_int=1).ok
    adv = codec.decode_ipv4(packet, adver_int=3)
    assert adv.reason == ADVERT_INTERVAL_ERR and adv.adver_int == 1
    # v3 learns the master's interval instead of rejecting it (RFC 5798 §6.4.2).
    v3 = codec.encode_ipv4(3, 51, 100, [VIP4], 250, src=SRC4, dst=VRRP_GROUP4)
    assert codec.decode_ipv4(v3, adver_int=100).ok


@pytest.mark.parametrize("thing", [None, 5, "text", object(), [1, 2, 3], 3.5])
def test_not_a_buffer(codec: ModuleType, thing: object) -> None:
    assert codec.decode_ipv4(thing).reason == BUFFER_ERR
    assert codec.decode_payload(thing, 4, SRC4, VRRP_GROUP4).reason == BUFFER_ERR


@pytest.mark.parametrize("wrap", [bytearray, memoryview, lambda b: array.array("B", b)])
def test_other_buffers(codec: ModuleType, wrap: object) -> None:
    assert callable(wrap)
    packet = v2_packet(codec)
    assert codec.decode_ipv4(wrap(packet)).fields() == codec.decode_ipv4(packet).fields()
    message = v3_message6(codec)
    assert codec.decode_payload(wrap(message), 6, wrap(SRC6), VRRP_GROUP6, 255).ok


@pytest.mark.parametrize(
    "expect",
    [
        {"version": 1},
        {"version": "2"},
        {"auth_type": 256},
        {"auth_type": -2},
        {"adver_int": -1},
        {"adver_int": 4096},
        {"auth_data": b"short"},
        {"auth_data": 12},
        {"v3_checksum": "maybe"},
        {"version": 2**70},
    ],
)
def test_bad_expectations(codec: ModuleType, expect: dict[str, object]) -> None:
    assert codec.decode_ipv4(v2_packet(codec), **expect).reason == PARAM_ERR
    assert codec.decode_payload(v3_message6(codec), 6, SRC6, VRRP_GROUP6, **expect).reason == (
        PARAM_ERR
    )


@pytest.mark.parametrize(
    ("family", "src", "dst", "ttl"),
    [(5, SRC4, VRRP_GROUP4, -1), (4, SRC6, VRRP_GROUP4, -1), (6, SRC6, VRRP_GROUP4, -1),
     (4, SRC4, VRRP_GROUP4, 256), (4, "x", VRRP_GROUP4, -1), ("4", SRC4, VRRP_GROUP4, -1)],
)
def test_bad_payload_params(codec: ModuleType, family: object, src: object, dst: object,
                            ttl: object) -> None:
    message = codec.encode(3, 51, 100, [VIP4], 100, src=SRC4, dst=VRRP_GROUP4)
    assert codec.decode_payload(message, family, src, dst, ttl).reason == PARAM_ERR


def test_result_shape(codec: ModuleType) -> None:
    adv = codec.decode_ipv4(v2_packet(codec))
    assert adv.fields() == tuple(getattr(adv, name) for name in ADVERT_FIELDS)
    assert "vrid=51" in repr(adv)
    fresh = codec.Advert()
    assert fresh.reason == OK and fresh.ttl == -1 and fresh.addresses == ()
    assert codec.Advert("checksum_err", 6).fields()[:2] == ("checksum_err", 6)
    for advert in (adv, fresh):  # read-only in both twins, so no caller patches one up
        with pytest.raises(AttributeError):
            advert.ttl = 3


@pytest.mark.parametrize(
    "args",
    [
        (2, 0, 100, [VIP4], 1),  # VRID 0
        (2, 256, 100, [VIP4], 1),
        (2, 51, 256, [VIP4], 1),
        (2, 51, 100, [VIP4], 0),  # v2 adver_int 0
        (2, 51, 100, [VIP4], 256),
        (3, 51, 100, [VIP4], 4096),
        (4, 51, 100, [VIP4], 1),
        (2, 51, 100, [VIP6], 1),  # wrong address length
        (2, 51, 100, [VIP4] * 256, 1),
    ],
)
def test_encode_rejects(codec: ModuleType, args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        codec.encode(*args, src=SRC4, dst=VRRP_GROUP4)


def test_encode_rejects_options(codec: ModuleType) -> None:
    with pytest.raises(ValueError):
        codec.encode(2, 51, 100, [VIP4], 1, auth_data=b"123456789")
    with pytest.raises(ValueError):
        codec.encode(3, 51, 100, [VIP4], 1, auth_type=AUTH_PASS, src=SRC4, dst=VRRP_GROUP4)
    with pytest.raises(ValueError):
        codec.encode(3, 51, 100, [VIP4], 1, src=SRC4, dst=VRRP_GROUP4, v3_checksum=CHECKSUM_ANY)
    with pytest.raises(ValueError):
        codec.encode(2, 51, 100, [VIP4], 1, family=5)
    with pytest.raises(ValueError):
        codec.encode_ipv4(2, 51, 100, [VIP4], 1, src=SRC6, dst=VRRP_GROUP4)
    with pytest.raises(ValueError):
        codec.encode_ipv4(2, 51, 100, [VIP4], 1, src=SRC4, dst=VRRP_GROUP4, ip_id=70000)


def test_many_addresses(codec: ModuleType) -> None:
    addresses = [bytes([10, 0, i // 256, i % 256]) for i in range(255)]
    packet = codec.encode_ipv4(2, 1, 1, addresses, 255, src=SRC4, dst=VRRP_GROUP4)
    adv = codec.decode_ipv4(packet)
    assert adv.ok and adv.addresses == tuple(addresses)
    six = [bytes(15) + bytes([i]) for i in range(255)]
    message = codec.encode(3, 1, 1, six, 4095, family=6, src=SRC6, dst=VRRP_GROUP6)
    adv = codec.decode_payload(message, 6, SRC6, VRRP_GROUP6, 255)
    assert adv.ok and adv.addresses == tuple(six) and adv.adver_int == 4095


# --- round trips --------------------------------------------------------------------

addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)


@_FIXTURE_OK
@given(
    vrid=st.integers(1, 255),
    priority=st.integers(0, 255),
    addresses=st.lists(addr4, max_size=12),
    adver_int=st.integers(1, 255),
    auth_type=st.sampled_from([AUTH_NONE, AUTH_PASS]),
    secret=st.binary(max_size=8),
    src=addr4,
    dst=addr4,
    ip_id=st.integers(0, 0xFFFF),
)
def test_round_trip_v2(codec: ModuleType, vrid: int, priority: int, addresses: list[bytes],
                       adver_int: int, auth_type: int, secret: bytes, src: bytes, dst: bytes,
                       ip_id: int) -> None:
    packet = codec.encode_ipv4(2, vrid, priority, addresses, adver_int, src=src, dst=dst,
                               ip_id=ip_id, auth_type=auth_type, auth_data=secret)
    padded = secret.ljust(8, b"\x00")
    adv = codec.decode_ipv4(packet, version=2, auth_type=auth_type, auth_data=padded,
                            adver_int=adver_int)
    assert adv.reason == OK
    assert (adv.version, adv.vrid, adv.priority, adv.adver_int) == (2, vrid, priority, adver_int)
    assert adv.addresses == tuple(addresses) and adv.count == len(addresses)
    assert (adv.auth_type, adv.auth_data) == (auth_type, padded)
    assert (adv.src, adv.dst, adv.ttl, adv.ah) == (src, dst, 255, False)
    assert adv.checksum_mode == CHECKSUM_MESSAGE
    assert codec.encode(2, vrid, priority, addresses, adver_int, auth_type=auth_type,
                        auth_data=secret) == packet[20:]


@_FIXTURE_OK
@given(
    vrid=st.integers(1, 255),
    priority=st.integers(0, 255),
    addresses=st.lists(addr4, max_size=12),
    adver_int=st.integers(1, 4095),
    mode=st.sampled_from([CHECKSUM_PSEUDO, CHECKSUM_MESSAGE]),
    src=addr4,
    dst=addr4,
)
def test_round_trip_v3_ipv4(codec: ModuleType, vrid: int, priority: int, addresses: list[bytes],
                            adver_int: int, mode: str, src: bytes, dst: bytes) -> None:
    packet = codec.encode_ipv4(3, vrid, priority, addresses, adver_int, src=src, dst=dst,
                               v3_checksum=mode)
    adv = codec.decode_ipv4(packet, version=3, v3_checksum=mode)
    assert adv.reason == OK and adv.checksum_mode == mode
    assert (adv.version, adv.vrid, adv.priority, adv.adver_int) == (3, vrid, priority, adver_int)
    assert adv.addresses == tuple(addresses)
    assert (adv.auth_type, adv.auth_data) == (0, b"")
    detected = codec.decode_ipv4(packet, v3_checksum=CHECKSUM_ANY)
    assert detected.ok
    # Detection is exact unless the pseudo-header itself sums to zero (0xFFFF), when
    # both conventions verify the same bytes and the pseudo-header form is reported.
    length = len(packet) - 20
    if checksum_py.pseudo_sum_ipv4(src, dst, length) != 0xFFFF:
        assert detected.checksum_mode == mode


@_FIXTURE_OK
@given(
    vrid=st.integers(1, 255),
    priority=st.integers(0, 255),
    addresses=st.lists(addr6, max_size=8),
    adver_int=st.integers(1, 4095),
    src=addr6,
    dst=addr6,
)
def test_round_trip_v3_ipv6(codec: ModuleType, vrid: int, priority: int, addresses: list[bytes],
                            adver_int: int, src: bytes, dst: bytes) -> None:
    message = codec.encode(3, vrid, priority, addresses, adver_int, family=6, src=src, dst=dst)
    adv = codec.decode_payload(message, 6, src, dst, 255, version=3)
    assert adv.reason == OK and adv.checksum_mode == CHECKSUM_PSEUDO
    assert (adv.family, adv.vrid, adv.priority, adv.adver_int) == (6, vrid, priority, adver_int)
    assert adv.addresses == tuple(addresses)
    assert (adv.src, adv.dst, adv.ttl) == (src, dst, 255)


# --- compiled vs twin ---------------------------------------------------------------

expectations = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from([0, 2, 3]),
        "auth_type": st.sampled_from([-1, 0, 1, 2, 2]),
        "auth_data": st.sampled_from([None, PASS, bytes(8), AH_KEY]),
        "adver_int": st.sampled_from([0, 1, 2]),
        "v3_checksum": st.sampled_from([CHECKSUM_ANY, CHECKSUM_PSEUDO, CHECKSUM_MESSAGE]),
    },
)


def _seeds() -> list[bytes]:
    py = load_twin("vrrp_codec", "py")
    return [
        py.encode_ipv4(2, 51, 100, [VIP4], 1, src=SRC4, dst=VRRP_GROUP4, ip_id=1,
                       auth_type=AUTH_PASS, auth_data=PASS),
        py.encode_ipv4(3, 51, 90, [VIP4, bytes(4)], 100, src=SRC4, dst=VRRP_GROUP4),
        py.encode_ipv4(3, 51, 90, [VIP4], 10, src=SRC4, dst=VRRP_GROUP4,
                       v3_checksum=CHECKSUM_MESSAGE),
        ah_packet(py.encode(2, 51, 100, [VIP4], 1, auth_type=AUTH_AH)),
        py.encode_ipv4(2, 51, 100, [VIP4], 1, src=SRC4, dst=VRRP_GROUP4, ip_id=3,
                       auth_type=AUTH_AH, auth_data=AH_KEY, ah_seq=5),
    ]


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    """A valid seed packet, cut, extended or with a few bytes changed."""
    packet = bytearray(draw(st.sampled_from(_seeds())))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(packet) - 1))
        packet[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        packet = packet[: draw(st.integers(0, len(packet)))]
    return bytes(packet) + draw(st.binary(max_size=4))


def _same(a: object, b: object) -> None:
    assert a.fields() == b.fields()  # type: ignore[attr-defined]
    assert a.reason in REASONS  # type: ignore[attr-defined]


@settings(max_examples=400, deadline=None)
@given(packet=st.one_of(corrupted(), st.binary(max_size=80)), check_ttl=st.booleans(),
       expect=expectations)
@pytest.mark.compiled
def test_differential_ipv4(packet: bytes, check_ttl: bool, expect: dict[str, object]) -> None:
    c, py = load_twin("vrrp_codec", "c"), load_twin("vrrp_codec", "py")
    _same(c.decode_ipv4(packet, check_ttl=check_ttl, **expect),
          py.decode_ipv4(packet, check_ttl=check_ttl, **expect))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), family=st.sampled_from([4, 6]), ttl=st.sampled_from([-1, 255, 64]),
       expect=expectations)
@pytest.mark.compiled
def test_differential_payload(data: st.DataObject, family: int, ttl: int,
                              expect: dict[str, object]) -> None:
    c, py = load_twin("vrrp_codec", "c"), load_twin("vrrp_codec", "py")
    size = 4 if family == 4 else 16
    src = data.draw(st.binary(min_size=size, max_size=size))
    dst = data.draw(st.binary(min_size=size, max_size=size))
    if data.draw(st.booleans()):
        addresses = data.draw(st.lists(st.binary(min_size=size, max_size=size), max_size=4))
        message = bytearray(py.encode(3, 51, 100, addresses, 100, family=family, src=src, dst=dst))
        for _ in range(data.draw(st.integers(0, 2))):
            message[data.draw(st.integers(0, len(message) - 1))] = data.draw(st.integers(0, 255))
        payload = bytes(message[: data.draw(st.integers(0, len(message)))])
    else:
        payload = data.draw(st.binary(max_size=60))
    _same(c.decode_payload(payload, family, src, dst, ttl, **expect),
          py.decode_payload(payload, family, src, dst, ttl, **expect))


@settings(deadline=None)
@given(
    version=st.integers(1, 4),
    vrid=st.integers(-1, 256),
    priority=st.integers(-1, 256),
    addresses=st.lists(st.binary(min_size=3, max_size=5), max_size=3),
    adver_int=st.integers(-1, 4097),
    auth_type=st.integers(0, 3),
    secret=st.binary(max_size=9),
    mode=st.sampled_from([CHECKSUM_PSEUDO, CHECKSUM_MESSAGE, CHECKSUM_ANY]),
    ah_seq=st.integers(-1, 2**32),
    unicast=st.booleans(),
)
@pytest.mark.compiled
def test_differential_encode(version: int, vrid: int, priority: int, addresses: list[bytes],
                             adver_int: int, auth_type: int, secret: bytes, mode: str,
                             ah_seq: int, unicast: bool) -> None:
    c, py = load_twin("vrrp_codec", "c"), load_twin("vrrp_codec", "py")
    results = []
    for twin in (c, py):
        try:
            results.append(twin.encode_ipv4(version, vrid, priority, addresses, adver_int,
                                            src=SRC4, dst=VRRP_GROUP4, ip_id=vrid & 0xFFFF,
                                            auth_type=auth_type, auth_data=secret,
                                            v3_checksum=mode, ah_seq=ah_seq, unicast=unicast))
        except ValueError:
            results.append(ValueError)
    assert results[0] == results[1]


# --- Expect: the configuration parsed once ------------------------------------------


def test_expect_object_same_as_keywords(codec: ModuleType) -> None:
    packet = v2_packet(codec)
    low = v2_packet(codec, ttl=64)
    cases: list[dict[str, object]] = [
        {},
        {"version": 2, "auth_type": AUTH_PASS, "auth_data": PASS, "adver_int": 1},
        {"auth_type": AUTH_PASS, "auth_data": auth_data_from_pass("2222")},
        {"version": 3},
        {"adver_int": 2},
        {"check_ttl": False},
    ]
    for expect in cases:
        rx = codec.Expect(**expect)
        for subject in (packet, low):
            assert codec.decode_ipv4(subject, rx).fields() == (
                codec.decode_ipv4(subject, **expect).fields())
    message = v3_message6(codec)
    rx = codec.Expect(version=3, check_ttl=False)
    assert codec.decode_payload(message, 6, SRC6, VRRP_GROUP6, 1, rx).ok
    assert codec.decode_payload(message, 6, SRC6, VRRP_GROUP6, 1, codec.Expect()).reason == (
        IP_TTL_ERR)
    assert codec.decode_payload(message, 6, SRC6, VRRP_GROUP6, 1, check_ttl=False).ok


def test_expect_attributes(codec: ModuleType) -> None:
    rx = codec.Expect(version=2, auth_type=AUTH_PASS, auth_data=PASS, adver_int=3,
                      v3_checksum=CHECKSUM_MESSAGE, check_ttl=False)
    assert (rx.version, rx.auth_type, rx.auth_data, rx.adver_int, rx.v3_checksum,
            rx.check_ttl) == (2, AUTH_PASS, PASS, 3, CHECKSUM_MESSAGE, False)
    default = codec.Expect()
    assert (default.version, default.auth_type, default.auth_data, default.adver_int,
            default.v3_checksum, default.check_ttl) == (0, -1, None, 0, CHECKSUM_ANY, True)


@pytest.mark.parametrize(
    "bad",
    [{"version": 1}, {"auth_type": 300}, {"auth_data": b"123"}, {"adver_int": 5000},
     {"v3_checksum": "both"}, {"version": "2"}],
)
def test_expect_rejects(codec: ModuleType, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        codec.Expect(**bad)


def test_expect_wrong_object(codec: ModuleType) -> None:
    assert codec.decode_ipv4(v2_packet(codec), {"version": 2}).reason == PARAM_ERR
    message = v3_message6(codec)
    assert codec.decode_payload(message, 6, SRC6, VRRP_GROUP6, 255, "x").reason == PARAM_ERR


def test_expect_reused_across_different_adverts(codec: ModuleType) -> None:
    # One Expect per instance sees a stream of adverts; the compiled twin reuses the
    # previous advert's objects when the bytes repeat, and must notice when they don't.
    rx = codec.Expect(version=2, auth_type=AUTH_PASS)
    stream = [
        v2_packet(codec),
        v2_packet(codec),
        v2_packet(codec, src=bytes([192, 168, 77, 2])),
        codec.encode_ipv4(2, 51, 90, [VIP4, bytes([10, 0, 0, 1])], 1, src=SRC4,
                          dst=VRRP_GROUP4, auth_type=AUTH_PASS, auth_data=b"2222"),
        codec.encode_ipv4(2, 51, 90, [bytes([10, 0, 0, 1]), VIP4], 1, src=SRC4,
                          dst=VRRP_GROUP4, auth_type=AUTH_PASS, auth_data=b"2222"),
        codec.encode_ipv4(2, 51, 90, [], 1, src=SRC4, dst=VRRP_GROUP4, auth_type=AUTH_PASS),
        v2_packet(codec, ttl=3),
        v2_packet(codec),
    ]
    for packet in stream * 2:
        assert codec.decode_ipv4(packet, rx).fields() == (
            codec.decode_ipv4(packet, version=2, auth_type=AUTH_PASS).fields())


@settings(max_examples=150, deadline=None)
@given(packets=st.lists(st.one_of(corrupted(), st.sampled_from(_seeds())), min_size=1,
                        max_size=12),
       expect=expectations)
@pytest.mark.compiled
def test_differential_expect_stream(packets: list[bytes], expect: dict[str, object]) -> None:
    c, py = load_twin("vrrp_codec", "c"), load_twin("vrrp_codec", "py")
    rx_c, rx_py = c.Expect(**expect), py.Expect(**expect)
    for packet in packets:
        _same(c.decode_ipv4(packet, rx_c), py.decode_ipv4(packet, rx_py))


@pytest.mark.parametrize(
    "module",
    ["hafast._core.vrrp_codec_py", "hafast._core.vrrp_constants", "hafast._core.checksum_py",
     "hafast._core.vrrp_codec", "hafast._core.checksum", "tests.vectors.pcap"],
)
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.compiled
@pytest.mark.parametrize("name", ["checksum", "vrrp_codec"])
def test_compiled_docstring_examples(name: str) -> None:
    import doctest

    result = doctest.testmod(load_twin(name, "c"))
    assert result.failed == 0 and result.attempted > 0
