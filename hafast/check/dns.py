"""DNS_CHECK: one query over UDP, success on a response with our id and NOERROR.

Our own tiny builder and parser (RFC 1035 §4.1).  keepalived's rules
(``check_dns.c``): the query asks for recursion (RD); a datagram shorter than the
header, with another id, or that is not a response (QR clear) is ignored and the
wait goes on; a response with RCODE != 0 fails; anything else succeeds (the
answer section is not inspected).

Example::

    >>> q = build_query(0x1234, "example.com", "A")
    >>> q.hex()
    '123401000001000000000000076578616d706c6503636f6d0000010001'
    >>> parse_reply(bytes.fromhex("1234818000010000000000000"[:24]), 0x1234)
    (True, 0)
"""

from __future__ import annotations

import dataclasses
import random
import struct
from typing import Any

from hafast.check.api import ProbeResult
from hafast.check.udp import DatagramKind

# RFC 1035 §3.2.2 (A NS CNAME SOA MX TXT), RFC 3596 §2.1 (AAAA); class IN §3.2.4.
QTYPES: dict[str, int] = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16,
                          "AAAA": 28}
QCLASS_IN = 1
HEADER_LEN = 12  # RFC 1035 §4.1.1
FLAG_QR = 0x8000  # RFC 1035 §4.1.1: 1 = response
FLAG_RD = 0x0100  # RFC 1035 §4.1.1: recursion desired
RCODE_MASK = 0x000F
_ids = random.SystemRandom()  # query ids an off-path host cannot predict (RFC 5452 §9.2)
RCODES = {1: "formerr", 2: "servfail", 3: "nxdomain", 4: "notimp", 5: "refused"}


def encode_name(name: str) -> bytes:
    """RFC 1035 §3.1: length-prefixed labels ending in the root label; "." is the root."""
    out = bytearray()
    for label in name.split("."):
        if not label:
            continue  # the trailing dot, or the root name itself
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if len(raw) > 63:  # RFC 1035 §2.3.4
            raise ValueError(f"DNS label longer than 63 octets: {label!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def build_query(qid: int, name: str, qtype: str) -> bytes:
    """A one-question query with RD set (RFC 1035 §4.1.1, §4.1.2)."""
    header = struct.pack("!HHHHHH", qid & 0xFFFF, FLAG_RD, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", QTYPES[qtype.upper()], QCLASS_IN)


def parse_reply(data: bytes, qid: int) -> tuple[bool, int] | None:
    """``None`` to keep waiting (short, other id, not a response), else
    ``(noerror, rcode)``."""
    if len(data) < HEADER_LEN:
        return None
    rid, flags = struct.unpack_from("!HH", data)
    if rid != qid or not flags & FLAG_QR:
        return None
    rcode = flags & RCODE_MASK
    return (rcode == 0, rcode)


class DnsKind(DatagramKind):
    __slots__ = ("_qid",)
    keyword = "DNS_CHECK"

    def __init__(self, spec: Any, target: Any, loop: Any) -> None:
        super().__init__(spec, target, loop)
        if target.port is None:
            self.target = dataclasses.replace(target, port=53)  # RFC 1035 §4.2.1
        self._qid = 0
        encode_name(spec.name)  # a bad name fails at build time, not per attempt

    def payload(self) -> bytes:
        # A fresh id per attempt so a late answer to the previous one is ignored.
        self._qid = _ids.getrandbits(16)
        return build_query(self._qid, self.spec.name, self.spec.type)

    def judge(self, data: bytes) -> ProbeResult | None:
        got = parse_reply(data, self._qid)
        if got is None:
            return None
        ok, rcode = got
        if ok:
            return ProbeResult(True)
        return ProbeResult(False, "rcode", f"rcode {rcode} ({RCODES.get(rcode, '?')})")
