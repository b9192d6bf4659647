"""The AgentX protocol (RFC 2741) as a codec with no I/O: bytes in, PDUs out.

Only what a subagent needs: it sends Open, Register, Response, Notify, Ping and Close,
and answers the master's Get, GetNext and GetBulk.  The set PDUs (TestSet and the
rest) decode as :class:`Other` so the shell can refuse them; nothing here writes.

Packets are sent in network byte order (the NETWORK_BYTE_ORDER flag set); received
ones are read in whichever order their flag says (RFC 2741 §6.1).  :class:`Decoder`
frames a byte stream: feed it what the socket gave, take the whole PDUs back.

Example::

    >>> pdu = Open(session_id=0, transaction_id=0, packet_id=1, timeout=0,
    ...            oid=(1, 3, 6, 1, 4, 1, 9586, 100, 5), descr=b"hafast")
    >>> dec = Decoder()
    >>> dec.feed(encode(pdu)) == [pdu]
    True
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

Oid = tuple[int, ...]

# RFC 2741 §6.1 h.type
OPEN, CLOSE, REGISTER, UNREGISTER = 1, 2, 3, 4
GET, GETNEXT, GETBULK = 5, 6, 7
TESTSET, COMMITSET, UNDOSET, CLEANUPSET = 8, 9, 10, 11
NOTIFY, PING = 12, 13
INDEXALLOCATE, INDEXDEALLOCATE, ADDAGENTCAPS, REMOVEAGENTCAPS = 14, 15, 16, 17
RESPONSE = 18

# RFC 2741 §6.1 h.flags
INSTANCE_REGISTRATION = 0x01
NEW_INDEX = 0x02
ANY_INDEX = 0x04
NON_DEFAULT_CONTEXT = 0x08
NETWORK_BYTE_ORDER = 0x10

# RFC 2741 §5.4 v.type
INTEGER = 2
OCTET_STRING = 4
NULL = 5
OBJECT_IDENTIFIER = 6
IP_ADDRESS = 64
COUNTER32 = 65
GAUGE32 = 66
TIME_TICKS = 67
OPAQUE = 68
COUNTER64 = 70
NO_SUCH_OBJECT = 128
NO_SUCH_INSTANCE = 129
END_OF_MIB_VIEW = 130

# RFC 2741 §6.2.3 close reasons
REASON_OTHER, REASON_PARSE_ERROR, REASON_PROTOCOL_ERROR = 1, 2, 3
REASON_TIMEOUTS, REASON_SHUTDOWN, REASON_BY_MANAGER = 4, 5, 6

# RFC 2741 §6.2.16 res.error (plus the SNMP errors a Get may answer with)
NO_AGENTX_ERROR = 0
GEN_ERR = 5
NOT_WRITABLE = 17
OPEN_FAILED = 256
NOT_OPEN = 257
PARSE_ERROR = 266
REQUEST_DENIED = 267
PROCESSING_ERROR = 268

HEADER_LEN = 20
# RFC 2741 §5.1: an OID's 1.3.6.1.<prefix> is sent as the one byte n_prefix
INTERNET: Oid = (1, 3, 6, 1)
# A bound on a peer's payload: the master has no reason to send more, and a stream
# that claims gigabytes is broken, not large.
MAX_PAYLOAD = 1 << 20


class AgentXError(ValueError):
    """A packet that breaks RFC 2741; the session cannot go on (§7.2.2: parseError)."""


@dataclass(frozen=True, slots=True)
class VarBind:
    """RFC 2741 §5.4.  ``value``: int for the integer types, bytes for octet strings,
    an OID tuple for OBJECT_IDENTIFIER, None for Null and the exceptions."""

    type: int
    name: Oid
    value: int | bytes | Oid | None = None


@dataclass(frozen=True, slots=True)
class SearchRange:
    """RFC 2741 §5.2: ``start`` (itself included when ``include``) up to ``end``
    (excluded; empty: no bound)."""

    start: Oid
    end: Oid = ()
    include: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu:
    session_id: int = 0
    transaction_id: int = 0
    packet_id: int = 0
    context: bytes | None = None  # None: the default context
    # ANY_INDEX and the like; NETWORK_BYTE_ORDER and NON_DEFAULT_CONTEXT are derived
    flags: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Open(Pdu):
    """RFC 2741 §6.2.1; ``timeout`` in seconds (0: the master's default)."""

    timeout: int = 0
    oid: Oid = ()
    descr: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Close(Pdu):
    reason: int = REASON_SHUTDOWN  # RFC 2741 §6.2.2


@dataclass(frozen=True, slots=True, kw_only=True)
class Register(Pdu):
    """RFC 2741 §6.2.3: ``subtree``; with ``range_subid`` n > 0, its n-th sub-identifier
    runs up to ``upper_bound``."""

    timeout: int = 0
    priority: int = 127
    subtree: Oid = ()
    range_subid: int = 0
    upper_bound: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Get(Pdu):
    ranges: tuple[SearchRange, ...] = ()  # RFC 2741 §6.2.5: only the starts matter


@dataclass(frozen=True, slots=True, kw_only=True)
class GetNext(Pdu):
    ranges: tuple[SearchRange, ...] = ()  # RFC 2741 §6.2.6


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBulk(Pdu):
    non_repeaters: int = 0  # RFC 2741 §6.2.7
    max_repetitions: int = 0
    ranges: tuple[SearchRange, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify(Pdu):
    varbinds: tuple[VarBind, ...] = ()  # RFC 2741 §6.2.10: sysUpTime.0, snmpTrapOID.0, ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Pdu):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(Pdu):
    """RFC 2741 §6.2.16; ``sys_uptime`` in hundredths of a second."""

    sys_uptime: int = 0
    error: int = NO_AGENTX_ERROR
    index: int = 0
    varbinds: tuple[VarBind, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Other(Pdu):
    """A PDU a subagent does not act on (the set phases, Unregister, ...): kept whole
    so the shell can answer it."""

    type: int = 0
    payload: bytes = field(default=b"", repr=False)


# --------------------------------------------------------------------------- writing


class _Writer:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def u8s(self, *vals: int) -> None:
        self.parts.append(bytes(vals))

    def u16(self, v: int) -> None:
        self.parts.append(struct.pack("!H", v))

    def u32(self, v: int) -> None:
        self.parts.append(struct.pack("!I", v))

    def oid(self, oid: Oid, include: bool = False) -> None:
        prefix = 0
        subs = oid
        # RFC 2741 §5.1: the prefix form when the OID is 1.3.6.1.X.<more>, 0 < X < 256
        if len(oid) > 4 and oid[:4] == INTERNET and 0 < oid[4] < 256:
            prefix, subs = oid[4], oid[5:]
        self.u8s(len(subs), prefix, int(include), 0)
        self.parts.append(struct.pack(f"!{len(subs)}I", *subs))

    def octets(self, data: bytes) -> None:
        self.u32(len(data))
        self.parts.append(data + b"\0" * (-len(data) % 4))  # §5.3: padded to 4

    def varbind(self, vb: VarBind) -> None:
        self.u16(vb.type)
        self.u16(0)
        self.oid(vb.name)
        v = vb.value
        if vb.type in (INTEGER, COUNTER32, GAUGE32, TIME_TICKS):
            assert isinstance(v, int)
            self.parts.append(struct.pack("!i" if vb.type == INTEGER else "!I", v))
        elif vb.type == COUNTER64:
            assert isinstance(v, int)
            self.parts.append(struct.pack("!Q", v))
        elif vb.type in (OCTET_STRING, IP_ADDRESS, OPAQUE):
            assert isinstance(v, bytes)
            self.octets(v)
        elif vb.type == OBJECT_IDENTIFIER:
            assert isinstance(v, tuple)
            self.oid(v)
        elif vb.type not in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW):
            raise ValueError(f"varbind type {vb.type} is not an AgentX type")

    def ranges(self, ranges: tuple[SearchRange, ...]) -> None:
        for r in ranges:
            self.oid(r.start, r.include)
            self.oid(r.end)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _body(pdu: Pdu) -> tuple[int, bytes]:
    w = _Writer()
    if pdu.context is not None and not isinstance(pdu, (Open, Close, Response, Other)):
        w.octets(pdu.context)
    if isinstance(pdu, Open):
        w.u8s(pdu.timeout, 0, 0, 0)
        w.oid(pdu.oid)
        w.octets(pdu.descr)
        return OPEN, w.bytes()
    if isinstance(pdu, Close):
        w.u8s(pdu.reason, 0, 0, 0)
        return CLOSE, w.bytes()
    if isinstance(pdu, Register):
        w.u8s(pdu.timeout, pdu.priority, pdu.range_subid, 0)
        w.oid(pdu.subtree)
        if pdu.range_subid:
            w.u32(pdu.upper_bound)
        return REGISTER, w.bytes()
    if isinstance(pdu, Get):
        w.ranges(pdu.ranges)
        return GET, w.bytes()
    if isinstance(pdu, GetNext):
        w.ranges(pdu.ranges)
        return GETNEXT, w.bytes()
    if isinstance(pdu, GetBulk):
        w.u16(pdu.non_repeaters)
        w.u16(pdu.max_repetitions)
        w.ranges(pdu.ranges)
        return GETBULK, w.bytes()
    if isinstance(pdu, Notify):
        for vb in pdu.varbinds:
            w.varbind(vb)
        return NOTIFY, w.bytes()
    if isinstance(pdu, Ping):
        return PING, w.bytes()
    if isinstance(pdu, Response):
        w.u32(pdu.sys_uptime)
        w.u16(pdu.error)
        w.u16(pdu.index)
        for vb in pdu.varbinds:
            w.varbind(vb)
        return RESPONSE, w.bytes()
    if isinstance(pdu, Other):
        return pdu.type, pdu.payload
    raise TypeError(f"not an AgentX PDU: {pdu!r}")


def encode(pdu: Pdu) -> bytes:
    """The packet for ``pdu``: the RFC 2741 §6.1 header, network byte order."""
    kind, body = _body(pdu)
    flags = (pdu.flags & ~(NON_DEFAULT_CONTEXT | NETWORK_BYTE_ORDER)) | NETWORK_BYTE_ORDER
    if pdu.context is not None and kind not in (OPEN, CLOSE, RESPONSE):
        flags |= NON_DEFAULT_CONTEXT
    return struct.pack("!BBBBIIII", 1, kind, flags, 0, pdu.session_id, pdu.transaction_id,
                       pdu.packet_id, len(body)) + body


# --------------------------------------------------------------------------- reading


class _Reader:
    __slots__ = ("buf", "e", "pos")

    def __init__(self, buf: bytes, big: bool) -> None:
        self.buf = buf
        self.pos = 0
        self.e = "!" if big else "<"

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise AgentXError(f"payload ends {self.pos + n - len(self.buf)} bytes early")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8s(self, n: int) -> bytes:
        return self.take(n)

    def u16(self) -> int:
        v: int = struct.unpack(self.e + "H", self.take(2))[0]
        return v

    def u32(self) -> int:
        v: int = struct.unpack(self.e + "I", self.take(4))[0]
        return v

    def oid(self) -> tuple[Oid, bool]:
        n, prefix, include, _ = self.take(4)
        subs: Oid = struct.unpack(f"{self.e}{n}I", self.take(4 * n))
        if prefix:
            subs = (*INTERNET, prefix, *subs)
        return subs, bool(include)

    def octets(self) -> bytes:
        n = self.u32()
        data = self.take(n)
        self.take(-n % 4)
        return data

    def varbind(self) -> VarBind:
        kind = self.u16()
        self.u16()
        name, _ = self.oid()
        value: int | bytes | Oid | None
        if kind == INTEGER:
            value = struct.unpack(self.e + "i", self.take(4))[0]
        elif kind in (COUNTER32, GAUGE32, TIME_TICKS):
            value = self.u32()
        elif kind == COUNTER64:
            value = struct.unpack(self.e + "Q", self.take(8))[0]
        elif kind in (OCTET_STRING, IP_ADDRESS, OPAQUE):
            value = self.octets()
        elif kind == OBJECT_IDENTIFIER:
            value = self.oid()[0]
        elif kind in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW):
            value = None
        else:
            raise AgentXError(f"varbind type {kind} is not an AgentX type (RFC 2741 §5.4)")
        return VarBind(kind, name, value)

    def ranges(self) -> tuple[SearchRange, ...]:
        out = []
        while self.pos < len(self.buf):
            start, include = self.oid()
            end, _ = self.oid()
            out.append(SearchRange(start, end, include))
        return tuple(out)

    def varbinds(self) -> tuple[VarBind, ...]:
        out = []
        while self.pos < len(self.buf):
            out.append(self.varbind())
        return tuple(out)


def decode(packet: bytes) -> Pdu:
    """One whole packet (header and payload) to its PDU; raises :class:`AgentXError`."""
    if len(packet) < HEADER_LEN:
        raise AgentXError(f"{len(packet)} bytes is shorter than the AgentX header")
    version, kind, flags = packet[0], packet[1], packet[2]
    if version != 1:
        raise AgentXError(f"AgentX version {version}, expected 1 (RFC 2741 §6.1)")
    big = bool(flags & NETWORK_BYTE_ORDER)
    session, transaction, packet_id, length = struct.unpack(
        ("!" if big else "<") + "IIII", packet[4:HEADER_LEN])
    body = packet[HEADER_LEN:]
    if length != len(body):
        raise AgentXError(f"payload_length {length}, but {len(body)} bytes follow")
    r = _Reader(body, big)
    head = {"session_id": session, "transaction_id": transaction, "packet_id": packet_id,
            "flags": flags & ~(NON_DEFAULT_CONTEXT | NETWORK_BYTE_ORDER)}
    if kind in (OPEN, CLOSE, RESPONSE):
        ctx = None
    elif flags & NON_DEFAULT_CONTEXT:
        ctx = r.octets()
    else:
        ctx = None
    pdu: Pdu
    if kind == OPEN:
        timeout = r.u8s(4)[0]
        oid, _ = r.oid()
        pdu = Open(**head, timeout=timeout, oid=oid, descr=r.octets())
    elif kind == CLOSE:
        pdu = Close(**head, reason=r.u8s(4)[0])
    elif kind == REGISTER:
        timeout, priority, range_subid, _ = r.u8s(4)
        subtree, _ = r.oid()
        upper = r.u32() if range_subid else 0
        pdu = Register(**head, context=ctx, timeout=timeout, priority=priority,
                       subtree=subtree, range_subid=range_subid, upper_bound=upper)
    elif kind == GET:
        pdu = Get(**head, context=ctx, ranges=r.ranges())
    elif kind == GETNEXT:
        pdu = GetNext(**head, context=ctx, ranges=r.ranges())
    elif kind == GETBULK:
        nonrep, maxrep = r.u16(), r.u16()
        pdu = GetBulk(**head, context=ctx, non_repeaters=nonrep, max_repetitions=maxrep,
                      ranges=r.ranges())
    elif kind == NOTIFY:
        pdu = Notify(**head, context=ctx, varbinds=r.varbinds())
    elif kind == PING:
        pdu = Ping(**head, context=ctx)
    elif kind == RESPONSE:
        uptime, error, index = r.u32(), r.u16(), r.u16()
        pdu = Response(**head, sys_uptime=uptime, error=error, index=index,
                       varbinds=r.varbinds())
    elif TESTSET <= kind <= REMOVEAGENTCAPS or kind == UNREGISTER:
        # Kept in network order whatever the peer used: Other re-encodes as sent.
        return Other(**head, context=None, type=kind, payload=body if big else b"")
    else:
        raise AgentXError(f"PDU type {kind} is not an AgentX type (RFC 2741 §6.1)")
    if r.pos != len(body):
        raise AgentXError(f"{len(body) - r.pos} bytes left after the PDU")
    return pdu


class Decoder:
    """Frames a stream: :meth:`feed` returns the PDUs completed by ``data``.

    >>> d = Decoder()
    >>> raw = encode(Ping(session_id=7, packet_id=2))
    >>> d.feed(raw[:5]), d.feed(raw[5:])
    ([], [Ping(session_id=7, transaction_id=0, packet_id=2, context=None, flags=0)])
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Pdu]:
        self._buf += data
        out: list[Pdu] = []
        while len(self._buf) >= HEADER_LEN:
            big = bool(self._buf[2] & NETWORK_BYTE_ORDER)
            (length,) = struct.unpack_from("!I" if big else "<I", self._buf, 16)
            if length > MAX_PAYLOAD or length % 4:
                raise AgentXError(f"payload_length {length} (RFC 2741 §6.1: a multiple "
                                  f"of 4, and this peer never needs {MAX_PAYLOAD})")
            if len(self._buf) < HEADER_LEN + length:
                break
            packet = bytes(self._buf[:HEADER_LEN + length])
            del self._buf[:HEADER_LEN + length]
            out.append(decode(packet))
        return out
