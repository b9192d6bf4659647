"""RFC 1071 checksum and VRRPv3 pseudo-header sums, on both twins."""

from __future__ import annotations

import array
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import load_twin

# The fixture only names a flavour; it holds no per-test state hypothesis could leak.
# No deadline: tests assert behaviour, never timings (the machine is shared).
_FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture],
                       deadline=None)


@pytest.fixture
def csum(twin_flavour: str) -> ModuleType:
    return load_twin("checksum", twin_flavour)


def reference_sum(data: bytes) -> int:
    """The RFC 1071 §4.1 loop, written out: 16-bit words, end-around carry."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_rfc1071_example(csum: ModuleType) -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert csum.ones_sum(data) == 0xDDF2
    assert csum.internet_checksum(data) == 0x220D
    assert csum.internet_checksum(data + bytes.fromhex("220d")) == 0


def test_ipv4_header_checksum(csum: ModuleType) -> None:
    # A keepalived advert's IPv4 header from vrrp_v2_pass.pcap (checksum field cce7 left in).
    header = bytes.fromhex("45c0002800010000ff70cce7c0a84d02e0000012")
    assert csum.internet_checksum(header) == 0
    zeroed = header[:10] + b"\x00\x00" + header[12:]
    assert csum.internet_checksum(zeroed) == 0xCCE7


def test_edge_lengths(csum: ModuleType) -> None:
    assert csum.ones_sum(b"") == 0
    assert csum.internet_checksum(b"") == 0xFFFF
    assert csum.ones_sum(b"\x01") == 0x0100  # RFC 1071 §4.1: odd byte is a high byte
    assert csum.ones_sum(b"\xff\xff") == 0xFFFF
    assert csum.ones_sum(b"\xff\xff\x00\x01") == 0x0001  # end-around carry
    assert csum.ones_sum(b"\x00\x00\x00") == 0


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda b: array.array("B", b)])
def test_any_bytes_like(csum: ModuleType, wrap: object) -> None:
    data = bytes(range(1, 40))
    assert callable(wrap)
    assert csum.ones_sum(wrap(data)) == reference_sum(data)


def test_start_and_fold(csum: ModuleType) -> None:
    data = bytes(range(10))
    assert csum.ones_sum(data, 0x1234) == csum.fold(reference_sum(data) + 0x1234)
    assert csum.fold(0) == 0
    assert csum.fold(0xFFFF) == 0xFFFF
    assert csum.fold(0x1FFFE) == 0xFFFF
    assert csum.fold(0x10000) == 1
    assert csum.fold(2**80 + 5) == csum.fold((2**80) % 0xFFFF + 5)
    assert csum.finish(0xDDF2) == 0x220D
    with pytest.raises(ValueError):
        csum.fold(-1)
    with pytest.raises(ValueError):
        csum.ones_sum(data, -1)
    with pytest.raises(ValueError):
        csum.ones_sum(data, 2**32)
    with pytest.raises(TypeError):
        csum.ones_sum("not bytes")


def test_pseudo_ipv4(csum: ModuleType) -> None:
    src, dst = bytes([192, 168, 77, 1]), bytes([224, 0, 0, 18])
    written = src + dst + bytes([0, 112]) + (12).to_bytes(2, "big")
    assert csum.pseudo_sum_ipv4(src, dst, 12) == reference_sum(written)
    tcp = written[:9] + b"\x06" + written[10:]
    assert csum.pseudo_sum_ipv4(src, dst, 12, 6) == reference_sum(tcp)
    assert csum.IPPROTO_VRRP == 112
    with pytest.raises(ValueError):
        csum.pseudo_sum_ipv4(src + b"\x00", dst, 12)
    with pytest.raises(ValueError):
        csum.pseudo_sum_ipv4(src, dst, 70000)


def test_pseudo_ipv6(csum: ModuleType) -> None:
    # RFC 8200 §8.1: src, dst, 32-bit upper-layer length, 3 zero bytes, next header.
    src = bytes.fromhex("fe80000000000000000000fffe770002")
    dst = bytes.fromhex("ff020000000000000000000000000012")
    for length in (24, 0x12345):
        written = src + dst + length.to_bytes(4, "big") + bytes([0, 0, 0, 112])
        assert csum.pseudo_sum_ipv6(src, dst, length) == reference_sum(written)
    with pytest.raises(ValueError):
        csum.pseudo_sum_ipv6(src[:4], dst, 24)


def test_vrrpv3_ipv6_vector_checksum(csum: ModuleType) -> None:
    # vrrp_v3_ipv6.pcap, first advert: message + RFC 8200 pseudo-header sums to 0xFFFF.
    msg = bytes.fromhex("31335a0100647858fd000077000000000000000000000100")
    src = bytes.fromhex("fe80000000000000000000fffe770002")
    dst = bytes.fromhex("ff020000000000000000000000000012")
    partial = csum.pseudo_sum_ipv6(src, dst, len(msg))
    assert csum.internet_checksum(msg, partial) == 0
    assert csum.internet_checksum(msg) != 0


@_FIXTURE_OK
@given(st.binary(max_size=300), st.integers(0, 0xFFFFFFFF))
def test_matches_reference(csum: ModuleType, data: bytes, start: int) -> None:
    assert csum.ones_sum(data) == reference_sum(data)
    assert csum.ones_sum(data, start) == csum.fold(reference_sum(data) + start)
    assert csum.internet_checksum(data, start) == (~csum.ones_sum(data, start)) & 0xFFFF


@_FIXTURE_OK
@given(st.binary(max_size=100).map(lambda b: b + b"\x00" * (len(b) % 2)), st.binary(max_size=100))
def test_partial_sums_compose(csum: ModuleType, head: bytes, tail: bytes) -> None:
    # An even-length head's partial sum carries into the tail's: the property
    # vrrp_codec relies on to add the pseudo-header to the message sum.
    assert csum.ones_sum(tail, csum.ones_sum(head)) == csum.ones_sum(head + tail)


@pytest.mark.compiled
@settings(deadline=None)
@given(st.binary(max_size=200), st.integers(0, 0xFFFFFFFF))
def test_compiled_matches_twin(data: bytes, start: int) -> None:
    c, py = load_twin("checksum", "c"), load_twin("checksum", "py")
    assert c.ones_sum(data, start) == py.ones_sum(data, start)
    assert c.internet_checksum(data, start) == py.internet_checksum(data, start)
    assert c.fold(start * 977) == py.fold(start * 977)
    if len(data) >= 32:
        assert c.pseudo_sum_ipv4(data[:4], data[4:8], start & 0xFFFF) == py.pseudo_sum_ipv4(
            data[:4], data[4:8], start & 0xFFFF
        )
        assert c.pseudo_sum_ipv6(data[:16], data[16:32], start) == py.pseudo_sum_ipv6(
            data[:16], data[16:32], start
        )


def test_icmp_batch_uses_the_one_checksum(twin_flavour: str, csum: ModuleType) -> None:
    # icmp_batch's internet_checksum is this module's, not another copy of RFC 1071.
    assert load_twin("icmp_batch", twin_flavour).internet_checksum is csum.internet_checksum
