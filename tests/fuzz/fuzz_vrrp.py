"""Fuzz the VRRP decoder: the compiled ``vrrp_codec_c`` and its twin ``vrrp_codec_py``
must give the same verdict (every decoded field, or the same drop reason) on every
input, and neither may raise. A valid advert is encoded again by both twins and must
decode back to the same fields.

The AH ICV (HMAC-MD5-96) is not recomputed: mutations of the AH seeds stop at
auth_failure, so the verified-AH path is reached by the captured seeds only. Note that
``decode_payload`` cannot verify AH (it has no IP header); the daemon uses it for IPv6
only, where VRRPv2 (and so AH) is refused.

Input layout (so that a seed is a real packet with a 2- or 3-byte prefix)::

    byte 0   flags: 0x01 decode_payload (else decode_ipv4), 0x02 IPv6 (payload only),
             0x04 ttl unknown (-1), 0x08 expectations as keywords (else an Expect),
             0x10 pass a bytearray, 0x20 pass a memoryview starting one byte in,
             0x40 write a valid VRRP checksum first (random bytes almost never
             checksum, and every later check lies behind that one), 0x80 with the
             pseudo-header (v3's convention; without it, the message alone)
    byte 1   which expectations (EXPECTS, modulo its length)
    decode_ipv4:    the rest is the IPv4 packet
    decode_payload: byte 2 the TTL / hop limit, then src, dst (4 or 16 bytes each,
                    zero-padded when the input ends early), then the VRRP message

    python tests/fuzz/fuzz_vrrp.py -atheris_runs=100000 build/fuzz/vrrp tests/fuzz/corpus/vrrp
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz import _common

with _common.instrumented(_common.running_as_fuzzer(__name__)):
    from hafast._core import checksum_py as csum
    from hafast._core import vrrp_codec_c as codec_c
    from hafast._core import vrrp_codec_py as codec_py
    from hafast._core.vrrp_constants import AUTH_AH, REASONS, auth_data_from_pass

PAYLOAD, IPV6, TTL_UNKNOWN, KEYWORDS, BYTEARRAY, OFFSET = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
FIX_CHECKSUM, PSEUDO_HEADER = 0x40, 0x80

# Expectations an instance may hold; the captures in tests/vectors use "1111" for PASS
# and AH. The last one is out of range on purpose: Expect() refuses it, and decoding
# with it as keywords must say param_err in both twins.
EXPECTS: tuple[dict[str, Any], ...] = (
    {},
    {"version": 2, "auth_type": 1, "auth_data": auth_data_from_pass("1111"), "adver_int": 1},
    {"version": 2, "auth_type": 0},
    {"auth_type": 2, "auth_data": auth_data_from_pass("1111")},
    {"auth_type": 2, "auth_data": auth_data_from_pass("1111"), "check_ttl": False},
    {"version": 3, "v3_checksum": "pseudo_header"},
    {"version": 3, "v3_checksum": "message"},
    {"check_ttl": False},
    {"version": 2, "auth_type": 1, "auth_data": auth_data_from_pass("2222"), "adver_int": 2},
    {"version": 4, "auth_type": 7, "auth_data": b"short"},
)


def _expect(module: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return module.Expect(**kwargs)
    except ValueError:
        return None


# Built once, as an instance builds its Expect once from its configuration.
_OBJECTS = [(_expect(codec_c, kw), _expect(codec_py, kw)) for kw in EXPECTS]
for _c, _py in _OBJECTS:
    assert (_c is None) == (_py is None), "the twins disagree on which Expect is valid"


def _set_checksum(msg: memoryview, family: int, src: bytes, dst: bytes, pseudo: bool) -> None:
    """Write the checksum that makes the VRRP message ``msg`` verify (RFC 5798 §5.2.8)."""
    if len(msg) < 8:
        return
    msg[6:8] = b"\0\0"
    total = csum.ones_sum(msg)
    if pseudo:
        add = csum.pseudo_sum_ipv6 if family == 6 else csum.pseudo_sum_ipv4
        total = csum.fold(total + add(src, dst, len(msg)))
    msg[6:8] = (~total & 0xFFFF).to_bytes(2, "big")


def _with_checksum(packet: bytes, pseudo: bool) -> bytes:
    """``packet`` (IPv4, maybe with AH) with its VRRP message's checksum set, when the
    IP header says where the message is."""
    if len(packet) < 20:
        return packet
    ihl, total_len = (packet[0] & 0x0F) * 4, int.from_bytes(packet[2:4], "big")
    start = ihl
    if packet[9] == 51 and len(packet) > ihl + 1:
        start += (packet[ihl + 1] + 2) * 4
    if ihl < 20 or not start + 8 <= total_len <= len(packet):
        return packet
    out = bytearray(packet)
    _set_checksum(memoryview(out)[start:total_len], 4, packet[12:16], packet[16:20], pseudo)
    return bytes(out)


def _decode(module: Any, expect: Any, kwargs: dict[str, Any], flags: int, args: tuple) -> Any:
    if flags & KEYWORDS:
        opts, expect = kwargs, None
    else:
        opts = {}
    if flags & PAYLOAD:
        message, family, src, dst, ttl = args
        return module.decode_payload(message, family, src, dst, ttl, expect, **opts)
    return module.decode_ipv4(args[0], expect, **opts)


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    flags, which = data[0], data[1] % len(EXPECTS)
    kwargs = EXPECTS[which]
    expect_c, expect_py = _OBJECTS[which]
    if expect_c is None and not flags & KEYWORDS:
        return  # no instance can hold this Expect
    if flags & PAYLOAD:
        family = 6 if flags & IPV6 else 4
        alen = 16 if family == 6 else 4
        ttl = -1 if flags & TTL_UNKNOWN else (data[2] if len(data) > 2 else 255)
        src = data[3 : 3 + alen].ljust(alen, b"\0")
        dst = data[3 + alen : 3 + 2 * alen].ljust(alen, b"\0")
        packet: Any = data[3 + 2 * alen :]
        if flags & FIX_CHECKSUM:
            packet = bytearray(packet)
            _set_checksum(memoryview(packet), family, src, dst, bool(flags & PSEUDO_HEADER))
            packet = bytes(packet)
    else:
        packet = data[2:]
        if flags & FIX_CHECKSUM:
            packet = _with_checksum(packet, bool(flags & PSEUDO_HEADER))
    if flags & BYTEARRAY:
        packet = bytearray(packet)
    if flags & OFFSET:
        packet = memoryview(b"\xff" + bytes(packet))[1:]
    args = (packet, family, src, dst, ttl) if flags & PAYLOAD else (packet,)
    got_c = _decode(codec_c, expect_c, kwargs, flags, args)
    got_py = _decode(codec_py, expect_py, kwargs, flags, args)
    fields_c, fields_py = got_c.fields(), got_py.fields()
    if fields_c != fields_py:
        raise AssertionError(
            f"the VRRP codec twins disagree on {data.hex()}:\n  c:  {fields_c}\n  py: {fields_py}"
        )
    assert got_c.reason in REASONS, got_c.reason
    assert got_c.ok == got_py.ok == (got_c.reason == "ok")
    # encode() writes no AH header and zeroes an AH advert's Authentication Data (the
    # key never goes on the wire), so those cannot come back the same
    if got_c.ok and not got_c.ah and got_c.auth_type != AUTH_AH:
        _round_trip(got_c)


# the fields an advert's sender chose (encode's inputs), in ADVERT_FIELDS' names
_SENT = ("version", "vrid", "priority", "count", "auth_type", "adver_int", "addresses",
         "auth_data")


def _round_trip(adv: Any) -> None:
    """A valid advert, encoded again by each twin: the same bytes, which decode to the
    same fields (encode refuses what the decoder tolerates, e.g. VRID 0: both must)."""
    args = (adv.version, adv.vrid, adv.priority, list(adv.addresses), adv.adver_int)
    opts = {"family": adv.family, "auth_type": adv.auth_type, "auth_data": adv.auth_data,
            "src": adv.src, "dst": adv.dst, "v3_checksum": adv.checksum_mode}
    out = []
    for module in (codec_c, codec_py):
        try:
            out.append(module.encode(*args, **opts))
        except ValueError:
            out.append(None)
    assert out[0] == out[1], f"the twins disagree on encode{args} {opts}: {out}"
    if out[0] is None:
        return
    back = codec_py.decode_payload(out[0], adv.family, adv.src, adv.dst, -1,
                                   v3_checksum=adv.checksum_mode)
    assert back.ok, back.reason
    assert [getattr(back, f) for f in _SENT] == [getattr(adv, f) for f in _SENT]


if __name__ == "__main__":
    _common.fuzz(one_input)
