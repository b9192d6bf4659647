"""icmp_batch packet building and parsing, no sockets: both twins, same answers."""

from __future__ import annotations

import importlib
import struct
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hafast._core._select import extensions_disabled
from tests.conftest import load_twin

AF_INET, AF_INET6 = 2, 10
V4_SRC = bytes([10, 201, 1, 7])
V4_DST = bytes([10, 201, 9, 9])
V6_SRC = bytes.fromhex("fd000201000000000000000000000007")

PUBLIC = (
    "AF_INET AF_INET6 REPLY UNREACHABLE SEND_ERROR MAX_INFLIGHT MIN_PAYLOAD PARSE_KINDS "
    "REJECT_REASONS COUNTERS IcmpBatch internet_checksum build_echo parse_packet "
    "make_identifier ping_many"
).split()


def _available() -> list[ModuleType]:
    """The twins importable here (property tests compare them; the parametrised tests
    are the ones that fail CI when the compiled twin is missing)."""
    mods = [load_twin("icmp_batch", "py")]
    if not extensions_disabled():
        try:
            mods.append(importlib.import_module("hafast._core.icmp_batch_c"))
        except ImportError:
            pass
    return mods


@pytest.fixture
def ib(twin_flavour: str) -> ModuleType:
    return load_twin("icmp_batch", twin_flavour)


def _csum(data: bytes) -> int:
    # An independent RFC 1071 reference for the tests themselves.
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ipv4(src: bytes, dst: bytes, payload: bytes, proto: int = 1, ihl_words: int = 5) -> bytes:
    options = bytes((ihl_words - 5) * 4)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl_words,
        0,
        20 + len(options) + len(payload),
        0,
        0,
        64,
        proto,
        0,
        src,
        dst,
    )
    return header + options + payload


def _icmp(icmp_type: int, code: int, rest: bytes, checksum: bool = True) -> bytes:
    msg = bytes([icmp_type, code, 0, 0]) + rest
    if checksum:
        c = _csum(msg)
        msg = msg[:2] + c.to_bytes(2, "big") + msg[4:]
    return msg


def _echo_rest(ident: int, seq: int, token: int | None, pad: int = 8) -> bytes:
    body = struct.pack("!HH", ident, seq)
    if token is not None:
        body += token.to_bytes(8, "big") + bytes(pad)
    return body


def test_public_names_are_the_same_in_both_twins_and_the_chooser(ib: ModuleType) -> None:
    from hafast._core import icmp_batch

    for name in PUBLIC:
        assert hasattr(ib, name), name
        assert hasattr(icmp_batch, name), name
    assert ib.PARSE_KINDS == ("reply", "error", "short", "bad_checksum", "other_type")
    assert set(ib.REJECT_REASONS) <= set(ib.COUNTERS)


# -- checksum --------------------------------------------------------------------


def test_checksum_rfc1071_example(ib: ModuleType) -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (after the carry).
    assert ib.internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_checksum_matches_reference(data: bytes) -> None:
    for mod in _available():
        assert mod.internet_checksum(data) == _csum(data)


# -- building ---------------------------------------------------------------------


def test_build_echo_ipv4_fields_and_checksum(ib: ModuleType) -> None:
    pkt = ib.build_echo(AF_INET, 0xBEEF, 0x1234, 0x0102030405060708, 24)
    assert len(pkt) == 8 + 24
    assert pkt[0] == 8 and pkt[1] == 0  # RFC 792 echo request, code 0
    assert struct.unpack_from("!HH", pkt, 4) == (0xBEEF, 0x1234)
    assert pkt[8:16] == bytes.fromhex("0102030405060708")
    assert pkt[16:] == bytes(16)
    assert _csum(pkt) == 0


def test_build_echo_ipv6_leaves_checksum_to_the_kernel(ib: ModuleType) -> None:
    pkt = ib.build_echo(AF_INET6, 7, 9, 1, 8)
    assert pkt[0] == 128 and pkt[1] == 0  # RFC 4443 §4.1
    assert pkt[2:4] == b"\0\0"
    assert len(pkt) == 16


def test_build_echo_masks_fields_and_rejects_tiny_payload(ib: ModuleType) -> None:
    pkt = ib.build_echo(AF_INET, 0x1FFFF, 0x10002, -1, 8)
    assert struct.unpack_from("!HH", pkt, 4) == (0xFFFF, 0x0002)
    assert pkt[8:16] == b"\xff" * 8
    with pytest.raises(ValueError):
        ib.build_echo(AF_INET, 1, 1, 1, 7)


@given(
    st.sampled_from([AF_INET, AF_INET6]),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**64 - 1),
    st.integers(8, 120),
)
@settings(max_examples=200, deadline=None)
def test_build_echo_twins_agree(family: int, ident: int, seq: int, token: int, size: int) -> None:
    built = {m.build_echo(family, ident, seq, token, size) for m in _available()}
    assert len(built) == 1


# -- parsing: IPv4 -----------------------------------------------------------------


def test_parse_ipv4_echo_reply(ib: ModuleType) -> None:
    data = _ipv4(V4_SRC, V4_DST, _icmp(0, 0, _echo_rest(0x4242, 17, 0xAABB)))
    assert ib.parse_packet(AF_INET, data, V4_SRC) == ("reply", 0x4242, 17, 0xAABB, V4_SRC, 0)


def test_parse_ipv4_with_ip_options(ib: ModuleType) -> None:
    data = _ipv4(V4_SRC, V4_DST, _icmp(0, 0, _echo_rest(1, 2, 3)), ihl_words=7)
    assert ib.parse_packet(AF_INET, data, V4_SRC)[:4] == ("reply", 1, 2, 3)


def test_parse_ipv4_target_is_the_ip_source(ib: ModuleType) -> None:
    # The IP header's source is authoritative for IPv4 (msg_name carries the same).
    data = _ipv4(V4_SRC, V4_DST, _icmp(0, 0, _echo_rest(1, 2, 3)))
    assert ib.parse_packet(AF_INET, data, bytes(4))[4] == V4_SRC


def test_parse_ipv4_reply_without_token(ib: ModuleType) -> None:
    data = _ipv4(V4_SRC, V4_DST, _icmp(0, 0, _echo_rest(1, 2, None)))
    assert ib.parse_packet(AF_INET, data, V4_SRC) == ("reply", 1, 2, -1, V4_SRC, 0)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short"),
        (b"\x45" + bytes(18), "short"),
        (_ipv4(V4_SRC, V4_DST, b"\0\0\0"), "short"),
        (b"\x44" + bytes(40), "short"),  # IHL below 5 words
        (_ipv4(V4_SRC, V4_DST, _icmp(0, 0, _echo_rest(1, 2, 3), checksum=False)), "bad_checksum"),
        (_ipv4(V4_SRC, V4_DST, _icmp(0, 1, _echo_rest(1, 2, 3))), "other_type"),
        (_ipv4(V4_SRC, V4_DST, _icmp(8, 0, _echo_rest(1, 2, 3))), "other_type"),
        (_ipv4(V4_SRC, V4_DST, _icmp(5, 1, bytes(4) + bytes(28))), "other_type"),
    ],
    ids=[
        "empty",
        "no-ip-header",
        "no-icmp-header",
        "bad-ihl",
        "checksum",
        "code",
        "request",
        "redirect",
    ],
)
def test_parse_ipv4_rejects(ib: ModuleType, data: bytes, reason: str) -> None:
    assert ib.parse_packet(AF_INET, data, V4_SRC) == (reason, 0, 0, -1, b"", 0)


def _quoted_v4(ident: int, seq: int, token: int | None, proto: int = 1) -> bytes:
    request = _icmp(8, 0, _echo_rest(ident, seq, token))
    if token is None:
        request = request[:8]  # RFC 792: only 8 bytes of the original datagram promised
    return _ipv4(V4_DST, V4_SRC, request, proto=proto)


def test_parse_ipv4_unreachable_quoting_our_request(ib: ModuleType) -> None:
    quoted = _quoted_v4(0x4242, 99, 0x77)
    data = _ipv4(bytes([10, 201, 0, 1]), V4_DST, _icmp(3, 1, bytes(4) + quoted))
    # target = the destination of the quoted request (V4_SRC here)
    assert ib.parse_packet(AF_INET, data, bytes(4)) == ("error", 0x4242, 99, 0x77, V4_SRC, 0x0301)


def test_parse_ipv4_time_exceeded_with_8_quoted_bytes(ib: ModuleType) -> None:
    quoted = _quoted_v4(5, 6, None)
    data = _ipv4(bytes([10, 201, 0, 1]), V4_DST, _icmp(11, 0, bytes(4) + quoted))
    assert ib.parse_packet(AF_INET, data, bytes(4)) == ("error", 5, 6, -1, V4_SRC, 0x0B00)


def test_parse_ipv4_error_about_something_else(ib: ModuleType) -> None:
    udp = _ipv4(V4_DST, V4_SRC, bytes(16), proto=17)
    data = _ipv4(V4_SRC, V4_DST, _icmp(3, 3, bytes(4) + udp))
    assert ib.parse_packet(AF_INET, data, bytes(4)) == ("other_type", 0, 0, -1, b"", 0)
    short = _ipv4(V4_SRC, V4_DST, _icmp(3, 3, bytes(4) + bytes(12)))
    assert ib.parse_packet(AF_INET, short, bytes(4)) == ("short", 0, 0, -1, b"", 0)


# -- parsing: IPv6 -----------------------------------------------------------------


def _ipv6_header(src: bytes, dst: bytes, nh: int, plen: int) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, plen, nh, 64, src, dst)


def test_parse_ipv6_echo_reply_takes_the_source_given(ib: ModuleType) -> None:
    data = _icmp(129, 0, _echo_rest(0x0102, 3, 0xFEED), checksum=False)
    assert ib.parse_packet(AF_INET6, data, V6_SRC) == ("reply", 0x0102, 3, 0xFEED, V6_SRC, 0)


def test_parse_ipv6_unreachable(ib: ModuleType) -> None:
    request = _icmp(128, 0, _echo_rest(9, 10, 11), checksum=False)
    inner = _ipv6_header(bytes(16), V6_SRC, 58, len(request)) + request
    data = _icmp(1, 3, bytes(4) + inner, checksum=False)
    assert ib.parse_packet(AF_INET6, data, bytes(16)) == ("error", 9, 10, 11, V6_SRC, 0x0103)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes([129, 0, 0, 0]), "short"),
        (_icmp(129, 1, _echo_rest(1, 2, 3), checksum=False), "other_type"),
        (_icmp(128, 0, _echo_rest(1, 2, 3), checksum=False), "other_type"),
        (_icmp(135, 0, bytes(20), checksum=False), "other_type"),
        (_icmp(1, 0, bytes(4) + bytes(20), checksum=False), "short"),
        (
            _icmp(3, 0, bytes(4) + _ipv6_header(bytes(16), V6_SRC, 17, 8) + bytes(8), False),
            "other_type",
        ),
    ],
    ids=["short", "code", "request", "neighbour-solicit", "short-quote", "quoted-udp"],
)
def test_parse_ipv6_rejects(ib: ModuleType, data: bytes, reason: str) -> None:
    assert ib.parse_packet(AF_INET6, data, V6_SRC) == (reason, 0, 0, -1, b"", 0)


@given(st.sampled_from([AF_INET, AF_INET6]), st.binary(max_size=120))
@settings(max_examples=500, deadline=None)
def test_parse_hostile_bytes_twins_agree(family: int, data: bytes) -> None:
    source = bytes(4 if family == AF_INET else 16)
    mods = _available()
    expected = mods[0].parse_packet(family, data, source)
    assert expected[0] in mods[0].PARSE_KINDS
    for mod in mods[1:]:
        assert mod.parse_packet(family, data, source) == expected


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 2**64 - 1))
@settings(max_examples=100, deadline=None)
def test_parse_round_trips_a_built_reply(ident: int, seq: int, token: int) -> None:
    for mod in _available():
        request = mod.build_echo(AF_INET, ident, seq, token, 16)
        reply = _icmp(0, 0, request[4:])  # what the peer's kernel sends back
        got = mod.parse_packet(AF_INET, _ipv4(V4_SRC, V4_DST, reply), V4_SRC)
        assert got == ("reply", ident, seq, token, V4_SRC, 0)


# -- engine arguments (no socket needed to reject them) ----------------------------


def test_identifier_depends_on_fd_and_twins_agree(ib: ModuleType) -> None:
    py = load_twin("icmp_batch", "py")
    assert ib.make_identifier(5) != ib.make_identifier(6)
    assert ib.make_identifier(5) == py.make_identifier(5)
    assert 0 <= ib.make_identifier(1000) <= 0xFFFF


@pytest.mark.parametrize(
    "kwargs",
    [{"family": 3}, {"max_inflight": 0}, {"max_inflight": 65537}, {"payload_size": 7}],
)
def test_engine_rejects_bad_arguments(ib: ModuleType, kwargs: dict[str, int]) -> None:
    kwargs = dict(kwargs)  # the parameter dict is shared by both flavours
    family = kwargs.pop("family", AF_INET)
    with pytest.raises(ValueError):
        ib.IcmpBatch(family, **kwargs)


@given(
    st.sampled_from([AF_INET, AF_INET6]),
    st.sampled_from([0, 1, 3, 11, 129]),
    st.integers(0, 3),
    st.binary(max_size=90),
)
@settings(max_examples=500, deadline=None)
def test_parse_well_framed_hostile_quotes_twins_agree(
    family: int, icmp_type: int, code: int, body: bytes
) -> None:
    # A valid outer frame (checksum right) around arbitrary quoted bytes reaches the
    # quoted-packet checks that random bytes almost never reach.
    if family == AF_INET:
        data = _ipv4(V4_SRC, V4_DST, _icmp(icmp_type, code, body))
    else:
        data = _icmp(icmp_type, code, body, checksum=False)
    source = bytes(4 if family == AF_INET else 16)
    results = {m.parse_packet(family, data, source) for m in _available()}
    assert len(results) == 1
