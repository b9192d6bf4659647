"""Fuzz the ICMP reply path: ``parse_packet`` of ``icmp_batch_c`` and ``icmp_batch_py``.

``parse_packet`` is the classification ``IcmpBatch.drain`` applies to every datagram
the raw socket returns (echo reply, an error quoting one of our requests, or a reject
reason); the compiled one wraps the same C function that ``drain`` calls. The twins
must return the same tuple for every input, and never raise.

Input layout::

    byte 0   0x01 IPv6 (the ICMPv6 message alone, as the kernel hands it over; else
             a whole IPv4 packet), 0x02 write a valid ICMP checksum into an IPv4
             packet first (random bytes almost never checksum, and every deeper
             branch lies behind that check)
    then     the sender's address (16 or 4 bytes, zero-padded), then the datagram

    python tests/fuzz/fuzz_icmp.py -atheris_runs=100000 build/fuzz/icmp tests/fuzz/corpus/icmp
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz import _common

with _common.instrumented(_common.running_as_fuzzer(__name__)):
    from hafast._core import checksum_py
    from hafast._core import icmp_batch_c as icmp_c
    from hafast._core import icmp_batch_py as icmp_py

IPV6, FIX_CHECKSUM = 0x01, 0x02


def with_checksum(packet: bytes) -> bytes:
    """``packet`` (IPv4) with its ICMP checksum set, when it has an ICMP header."""
    if len(packet) < 20:
        return packet
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or len(packet) < ihl + 8:
        return packet
    icmp = bytearray(packet[ihl:])
    icmp[2:4] = b"\0\0"
    csum = checksum_py.internet_checksum(bytes(icmp))
    icmp[2:4] = csum.to_bytes(2, "big")
    return packet[:ihl] + bytes(icmp)


def one_input(data: bytes) -> None:
    if not data:
        return
    flags = data[0]
    v6 = bool(flags & IPV6)
    family, alen = (icmp_c.AF_INET6, 16) if v6 else (icmp_c.AF_INET, 4)
    source = data[1 : 1 + alen].ljust(alen, b"\0")
    packet = data[1 + alen :]
    if flags & FIX_CHECKSUM and not v6:
        packet = with_checksum(packet)
    got_c = icmp_c.parse_packet(family, packet, source)
    got_py = icmp_py.parse_packet(family, packet, source)
    if got_c != got_py:
        raise AssertionError(
            f"the ICMP parse twins disagree on {data.hex()}:\n  c:  {got_c}\n  py: {got_py}"
        )
    kind, ident, seq, token, target, detail = got_c
    assert kind in icmp_c.PARSE_KINDS, kind
    assert 0 <= ident <= 0xFFFF and 0 <= seq <= 0xFFFF and -1 <= token < 1 << 64
    if kind in ("reply", "error"):
        assert len(target) == alen, target
    else:
        assert (ident, seq, token, target, detail) == (0, 0, -1, b"", 0)


if __name__ == "__main__":
    _common.fuzz(one_input)
