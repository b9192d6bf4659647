"""VRRP v2/v3 advertisement codec in pure Python: the readable twin of ``vrrp_codec_c``.

Stateless and sans-I/O: bytes in, an ``Advert`` out (decode) or bytes out
(encode).  Decoding never raises on any packet: a bad one comes back with
``ok`` false and ``reason`` naming the first receive check that failed (the
names, in ``vrrp_constants``, are keepalived's statistics names where it has
one; they become the per-instance reject counters).

Before any packet check: ``param_err`` (unusable ``Expect``/keywords, family,
src, dst or ttl) and ``buffer_err`` (the packet has no byte buffer).  Then, for
a whole IPv4 packet: ``packet_len_err`` (shorter than 20 bytes, IHL or Total
Length beyond the data, AH cut short), ``ip_header_err`` (not IPv4, IHL < 5),
``protocol_err`` (neither 112 nor AH carrying 112).  Then the VRRP checks in
RFC 3768 §7.1 / RFC 5798 §7.1 order:

1. ``packet_len_err`` (shorter than the 8-byte header)
2. ``ip_ttl_err`` (TTL / hop limit not 255, when known and checked)
3. ``version_err`` (not 2 or 3, or not the configured one), ``v2_ipv6_err``
4. ``invalid_type_rcvd`` (type is not ADVERTISEMENT)
5. ``packet_len_err`` (Count IP Addrs disagrees with the message length, as
   keepalived 2.2.7 counts it; its ``addr_list_err`` is the instance's VIP check)
6. ``checksum_err`` (for v3 over IPv4 the accepted conventions come from
   ``Expect.v3_checksum``; ``Advert.checksum_mode`` tells which one matched)
7. ``invalid_authtype`` (v2 auth type not 0/1/2), ``authtype_mismatch`` (not
   the configured one, or AH claimed without an AH header and vice versa),
   ``auth_failure`` (wrong PASS), ``advert_interval_err`` (v2 only), and last
   ``auth_failure`` for an AH advert whose HMAC-MD5-96 ICV or SPI is wrong

The configuration's side of the checks is an ``Expect``, built once per VRRP
instance and passed to every decode (the same values are accepted as keywords).

Which ``Advert`` fields are filled depends on how far decoding got: ``family``
always (when valid); ``src``/``dst``/``ttl`` and the AH fields once the IP
layer passed; the VRRP header fields (``version`` .. ``checksum``) whenever the
message had its 8 header bytes, so a reject can still be counted against its
VRID; ``checksum_mode``, ``addresses`` and ``auth_data`` once the length and
checksum verified.  Unfilled fields keep their defaults (0, ``b""``, ``()``,
``""``, ``ttl`` -1).  Treat an ``Advert`` as read-only (the compiled one is).

>>> from hafast._core.vrrp_constants import AUTH_PASS, auth_data_from_pass
>>> src, group = bytes([192, 168, 77, 1]), bytes([224, 0, 0, 18])
>>> pkt = encode_ipv4(2, 51, 100, [bytes([192, 168, 77, 100])], 1, src=src, dst=group,
...                   ip_id=1, auth_type=AUTH_PASS, auth_data=auth_data_from_pass("1111"))
>>> rx = Expect(version=2, auth_type=AUTH_PASS, auth_data=auth_data_from_pass("1111"))
>>> adv = decode_ipv4(pkt, rx)
>>> adv.ok, adv.vrid, adv.priority, adv.addresses
(True, 51, 100, (b'\\xc0\\xa8Md',))
>>> decode_ipv4(pkt, auth_type=AUTH_PASS, auth_data=auth_data_from_pass("2222")).reason
'auth_failure'
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable, Sequence
from typing import TypeAlias, cast

from hafast._core import checksum_py as _csum
from hafast._core.vrrp_constants import (
    ADDRESS_LEN,
    ADVERT_FIELDS,
    ADVERT_INTERVAL_ERR,
    AH_HEADER_LEN,
    AUTH_AH,
    AUTH_FAILURE,
    AUTH_NONE,
    AUTH_PASS,
    AUTH_TYPES,
    AUTHTYPE_MISMATCH,
    BUFFER_ERR,
    CHECKSUM_ANY,
    CHECKSUM_ERR,
    CHECKSUM_MESSAGE,
    CHECKSUM_MODES,
    CHECKSUM_PSEUDO,
    FAMILY_IPV4,
    FAMILY_IPV6,
    INVALID_AUTHTYPE,
    INVALID_TYPE_RCVD,
    IP_HEADER_ERR,
    IP_TTL_ERR,
    IPPROTO_AH,
    IPPROTO_VRRP,
    IPV4_HEADER_LEN,
    MAX_ADDRESS_COUNT,
    MAX_ADVER_INT_V2,
    MAX_ADVER_INT_V3,
    OK,
    PACKET_LEN_ERR,
    PARAM_ERR,
    PROTOCOL_ERR,
    V2_IPV6_ERR,
    VERSION_ERR,
    VRRP_AUTH_DATA_LEN,
    VRRP_HEADER_LEN,
    VRRP_TOS,
    VRRP_TTL,
    VRRP_TYPE_ADVERTISEMENT,
)

_Buffer: TypeAlias = bytes | bytearray | memoryview

__all__ = ["Advert", "Expect", "decode_ipv4", "decode_payload", "encode", "encode_ipv4"]

_HEADER = struct.Struct("!BBBBBBH")  # ver/type, vrid, priority, count, auth|rsvd, adv, checksum
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_AH = struct.Struct("!BBHII")  # next header, payload len, reserved, SPI, sequence (RFC 4302 §2)
_AH_ICV_LEN = 12  # HMAC-MD5-96 (RFC 2404 §2), the only ICV keepalived uses


class _Draft:
    """An advert while a decode fills it in; ``_freeze`` turns it into an ``Advert``."""

    __slots__ = ADVERT_FIELDS

    reason: str
    family: int
    src: bytes
    dst: bytes
    ttl: int
    ah: bool
    ah_spi: int
    ah_seq: int
    version: int
    type: int
    vrid: int
    priority: int
    count: int
    auth_type: int
    adver_int: int
    checksum: int
    checksum_mode: str
    addresses: tuple[bytes, ...]
    auth_data: bytes

    def __init__(self, reason: str = OK, family: int = 0) -> None:
        self.reason = reason
        self.family = family
        self.src = b""
        self.dst = b""
        self.ttl = -1
        self.ah = False
        self.ah_spi = 0
        self.ah_seq = 0
        self.version = 0
        self.type = 0
        self.vrid = 0
        self.priority = 0
        self.count = 0
        self.auth_type = 0
        self.adver_int = 0
        self.checksum = 0
        self.checksum_mode = ""
        self.addresses = ()
        self.auth_data = b""


class Advert(_Draft):
    """One decoded advertisement, or the reason it was rejected.

    ``reason`` is ``"ok"`` for a valid advert.  ``family`` is 4 or 6; ``src`` and
    ``dst`` are the packed IP addresses, ``ttl`` the TTL / hop limit (-1 when not
    known).  ``ah`` tells the advert came inside an IPsec AH header (keepalived's
    ``auth_type AH``) with ``ah_spi`` and ``ah_seq``; its ICV and SPI were verified
    when the ``Expect`` held the key (``auth_type=2`` and ``auth_data``).
    Sequence numbers (replay) are the instance's business.
    ``adver_int`` is the raw field: seconds for v2, centiseconds for v3.
    ``auth_type`` is 0 for v3.  ``checksum_mode`` is ``"message"`` or
    ``"pseudo_header"``: which convention the checksum verified with.
    ``addresses`` is a tuple of packed 4- or 16-byte addresses; ``auth_data`` the
    8 v2 Authentication Data bytes (``b""`` for v3).  Read-only, like the
    compiled one.
    """

    __slots__ = ()

    def __init__(self, reason: str = OK, family: int = 0) -> None:
        # Fill in as a _Draft (plain slot writes), then become read-only.
        object.__setattr__(self, "__class__", _Draft)
        _Draft.__init__(self, reason, family)
        self.__class__ = Advert

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Advert is read-only: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Advert is read-only: cannot delete {name!r}")

    @property
    def ok(self) -> bool:
        """True when every receive check passed."""
        return self.reason == OK

    def fields(self) -> tuple[object, ...]:
        """All attributes in ``vrrp_constants.ADVERT_FIELDS`` order."""
        return tuple(getattr(self, name) for name in ADVERT_FIELDS)

    def __repr__(self) -> str:
        return f"Advert(reason={self.reason!r}, version={self.version}, vrid={self.vrid}, " \
               f"priority={self.priority}, count={self.count}, adver_int={self.adver_int})"


def _freeze(draft: _Draft, reason: str) -> Advert:
    """The finished advert: ``reason`` set, the object switched to the read-only class."""
    draft.reason = reason
    draft.__class__ = Advert
    return cast(Advert, draft)


class Expect:
    """What the local configuration expects of received adverts; build it once per instance.

    Each expectation is checked only when set: ``version`` (2 or 3; 0 = either),
    ``auth_type`` (v2: 0 none, 1 PASS, 2 AH; -1 = not checked), ``auth_data``
    (the 8 bytes a PASS advert must carry, see ``auth_data_from_pass``; None =
    not checked), ``adver_int`` (v2 seconds; 0 = not checked), ``v3_checksum``
    (``"any"``, ``"pseudo_header"`` or ``"message"``: which VRRPv3-over-IPv4
    checksum conventions to accept) and ``check_ttl`` (False for unicast peers
    across routers).  Raises ``ValueError`` for a value out of range.

    >>> Expect(version=2, auth_type=1, auth_data=b"1111\\0\\0\\0\\0", adver_int=1).version
    2
    """

    __slots__ = ("adver_int", "auth_data", "auth_type", "check_ttl", "v3_checksum", "version")

    version: int
    auth_type: int
    auth_data: bytes | None
    adver_int: int
    v3_checksum: str
    check_ttl: bool

    def __init__(
        self,
        version: int = 0,
        auth_type: int = -1,
        auth_data: _Buffer | None = None,
        adver_int: int = 0,
        v3_checksum: str = CHECKSUM_ANY,
        check_ttl: bool = True,
    ) -> None:
        if not all(isinstance(x, int) for x in (version, auth_type, adver_int)):
            raise ValueError("version, auth_type and adver_int are integers")
        if version not in (0, 2, 3):
            raise ValueError("version must be 0 (any), 2 or 3")
        if not -1 <= auth_type <= 255 or not 0 <= adver_int <= MAX_ADVER_INT_V3:
            raise ValueError("auth_type must be -1..255 and adver_int 0..4095")
        if v3_checksum not in CHECKSUM_MODES:
            raise ValueError(f"v3_checksum must be one of {CHECKSUM_MODES}")
        try:
            secret = None if auth_data is None else bytes(auth_data)
        except TypeError as exc:
            raise ValueError("auth_data must be bytes") from exc
        if secret is not None and len(secret) != VRRP_AUTH_DATA_LEN:
            raise ValueError("auth_data must be the 8 bytes of Authentication Data")
        self.version = version
        self.auth_type = auth_type
        self.auth_data = secret
        self.adver_int = adver_int
        self.v3_checksum = v3_checksum
        self.check_ttl = bool(check_ttl)


def _expectations(expect: Expect | None, version: int, auth_type: int,
                  auth_data: _Buffer | None, adver_int: int, v3_checksum: str,
                  check_ttl: bool) -> Expect:
    """The Expect to check with: the one given, else one built from the keywords."""
    if expect is None:
        return Expect(version, auth_type, auth_data, adver_int, v3_checksum, check_ttl)
    if not isinstance(expect, Expect):
        raise ValueError("expect must be an Expect")
    return expect


def decode_ipv4(
    packet: _Buffer,
    expect: Expect | None = None,
    *,
    check_ttl: bool = True,
    version: int = 0,
    auth_type: int = -1,
    auth_data: _Buffer | None = None,
    adver_int: int = 0,
    v3_checksum: str = CHECKSUM_ANY,
) -> Advert:
    """Decode and validate a whole IPv4 packet, as a raw IPPROTO_VRRP socket returns it.

    The IP header is parsed (options skipped); IP protocol 51 (AH) carrying VRRP
    is recognised.  The local configuration's expectations come as an
    ``Expect`` built once (the fast way), or as the same-named keywords
    (``check_ttl``, ``version``, ``auth_type``, ``auth_data``, ``adver_int``,
    ``v3_checksum``), which are ignored when ``expect`` is given.
    Never raises: a bad packet or bad expectations give a reason.

    >>> decode_ipv4(b"").reason
    'packet_len_err'
    >>> rx = Expect(version=2, adver_int=1)
    >>> decode_ipv4(bytes(40), rx).reason
    'ip_header_err'
    """
    try:
        expect = _expectations(expect, version, auth_type, auth_data, adver_int, v3_checksum,
                               check_ttl)
    except ValueError:
        return Advert(PARAM_ERR, FAMILY_IPV4)
    try:
        data = memoryview(packet).cast("B")
    except (TypeError, ValueError):
        return Advert(BUFFER_ERR, FAMILY_IPV4)

    if len(data) < IPV4_HEADER_LEN:
        return Advert(PACKET_LEN_ERR, FAMILY_IPV4)
    ver_ihl, _tos, total_len, _id, _frag, ttl, proto, _hcsum, src, dst = _IPV4.unpack_from(data)
    header_len = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or header_len < IPV4_HEADER_LEN:
        return Advert(IP_HEADER_ERR, FAMILY_IPV4)
    # A raw socket hands over exactly total_len bytes; captures may add link padding.
    if header_len > total_len or total_len > len(data):
        return Advert(PACKET_LEN_ERR, FAMILY_IPV4)

    start, wrapped, spi, seq = header_len, False, 0, 0
    if proto == IPPROTO_AH:
        # RFC 4302 §2.2: Payload Len is the AH length in 32-bit words minus 2.
        if total_len - start < 12:
            return Advert(PACKET_LEN_ERR, FAMILY_IPV4)
        next_header, payload_len, _rsvd, spi, seq = _AH.unpack_from(data, start)
        ah_len = (payload_len + 2) * 4
        if total_len - start < ah_len:
            return Advert(PACKET_LEN_ERR, FAMILY_IPV4)
        if next_header != IPPROTO_VRRP:
            return Advert(PROTOCOL_ERR, FAMILY_IPV4)
        start, wrapped = start + ah_len, True
    elif proto != IPPROTO_VRRP:
        return Advert(PROTOCOL_ERR, FAMILY_IPV4)

    advert = _Draft(OK, FAMILY_IPV4)
    advert.src, advert.dst, advert.ttl = src, dst, ttl
    advert.ah, advert.ah_spi, advert.ah_seq = wrapped, spi, seq
    ah_verify = None
    if wrapped and expect.auth_type == AUTH_AH and expect.auth_data is not None:
        key, ah_end = expect.auth_data, start
        ah_start, zero_ttl = header_len, not expect.check_ttl

        def ah_verify() -> bool:
            return _ah_valid(data[:total_len], ah_start, ah_end, spi, src, key, zero_ttl)
    return _decode_vrrp(advert, data[start:total_len], ttl if expect.check_ttl else -1, wrapped,
                        expect, ah_verify)


def decode_payload(
    message: _Buffer,
    family: int,
    src: _Buffer,
    dst: _Buffer,
    ttl: int = -1,
    expect: Expect | None = None,
    *,
    check_ttl: bool = True,
    version: int = 0,
    auth_type: int = -1,
    auth_data: _Buffer | None = None,
    adver_int: int = 0,
    v3_checksum: str = CHECKSUM_ANY,
) -> Advert:
    """Decode and validate a VRRP message without its IP header.

    For IPv6 raw sockets (the kernel strips the header; the hop limit comes as
    ancillary data) or a transport that parsed the IPv4 header itself.
    ``family`` is 4 or 6, ``src``/``dst`` the packed addresses the packet was
    sent from and to (they enter the v3 pseudo-header), ``ttl`` the TTL / hop
    limit or -1 when unknown (not checked).  Expectations as for ``decode_ipv4``.

    >>> src = bytes.fromhex("fe80000000000000000000fffe770002")
    >>> msg = encode(3, 51, 90, [bytes.fromhex("fd000077000000000000000000000100")], 100,
    ...              family=6, src=src, dst=bytes.fromhex("ff020000000000000000000000000012"))
    >>> adv = decode_payload(msg, 6, src, bytes.fromhex("ff020000000000000000000000000012"), 255)
    >>> adv.ok, adv.version, adv.adver_int, adv.checksum_mode
    (True, 3, 100, 'pseudo_header')
    """
    if not isinstance(family, int) or family not in ADDRESS_LEN:
        return Advert(PARAM_ERR, 0)
    try:
        expect = _expectations(expect, version, auth_type, auth_data, adver_int, v3_checksum,
                               check_ttl)
        src_raw, dst_raw = bytes(src), bytes(dst)
        if len(src_raw) != ADDRESS_LEN[family] or len(dst_raw) != ADDRESS_LEN[family]:
            raise ValueError("address length")
        if not isinstance(ttl, int) or not -1 <= ttl <= 255:
            raise ValueError("ttl")
    except (TypeError, ValueError):
        return Advert(PARAM_ERR, family)
    try:
        data = memoryview(message).cast("B")
    except (TypeError, ValueError):
        return Advert(BUFFER_ERR, family)
    advert = _Draft(OK, family)
    advert.src, advert.dst, advert.ttl = src_raw, dst_raw, ttl
    return _decode_vrrp(advert, data, ttl if expect.check_ttl else -1, None, expect, None)


def _decode_vrrp(advert: _Draft, data: memoryview, ttl: int, wrapped: bool | None,
                 expect: Expect, ah_verify: Callable[[], bool] | None) -> Advert:
    """The VRRP receive checks shared by both entry points; fills ``advert``."""
    length = len(data)
    if length < VRRP_HEADER_LEN:  # RFC 5798 §7.1: must hold the fixed header
        return _freeze(advert, PACKET_LEN_ERR)
    ver_type, vrid, priority, count, byte4, byte5, checksum = _HEADER.unpack_from(data)
    version = ver_type >> 4
    advert.version, advert.type = version, ver_type & 0x0F
    advert.vrid, advert.priority, advert.count, advert.checksum = vrid, priority, count, checksum
    if version == 2:
        advert.auth_type, advert.adver_int = byte4, byte5  # RFC 3768 §5.3.6, §5.3.7
    else:
        advert.adver_int = ((byte4 << 8) | byte5) & MAX_ADVER_INT_V3  # RFC 5798 §5.2.7

    family = advert.family
    if ttl >= 0 and ttl != VRRP_TTL:  # RFC 3768 §7.1, RFC 5798 §7.1: TTL/hop limit 255
        return _freeze(advert, IP_TTL_ERR)
    # RFC 5798 §7.1: MUST verify the version field (the configured one when given).
    if version not in (2, 3) or (expect.version and version != expect.version):
        return _freeze(advert, VERSION_ERR)
    if version == 2 and family == FAMILY_IPV6:  # RFC 5798 §1: VRRPv2 is IPv4 only
        return _freeze(advert, V2_IPV6_ERR)
    if advert.type != VRRP_TYPE_ADVERTISEMENT:  # RFC 5798 §5.2.2: other types discarded
        return _freeze(advert, INVALID_TYPE_RCVD)

    # RFC 5798 §7.1: the packet must hold the complete message for Count IP Addrs
    # (plus the 8 Authentication Data bytes for v2, RFC 3768 §5.3.10).
    addr_len = ADDRESS_LEN[family]
    expected = VRRP_HEADER_LEN + count * addr_len + (VRRP_AUTH_DATA_LEN if version == 2 else 0)
    if length != expected:
        return _freeze(advert, PACKET_LEN_ERR)

    mode = _verify_checksum(data, version, family, advert.src, advert.dst, expect.v3_checksum)
    if not mode:  # RFC 5798 §7.1: MUST verify the checksum
        return _freeze(advert, CHECKSUM_ERR)
    advert.checksum_mode = mode
    end = VRRP_HEADER_LEN + count * addr_len
    advert.addresses = tuple(
        bytes(data[offset:offset + addr_len]) for offset in range(VRRP_HEADER_LEN, end, addr_len)
    )
    if version == 2:
        advert.auth_data = bytes(data[end:end + VRRP_AUTH_DATA_LEN])

    if version == 2 and advert.auth_type not in AUTH_TYPES:
        return _freeze(advert, INVALID_AUTHTYPE)
    # keepalived's AH: the VRRP inside an AH header says auth type AH, and only then.
    if wrapped is not None and wrapped != (version == 2 and advert.auth_type == AUTH_AH):
        return _freeze(advert, AUTHTYPE_MISMATCH)
    if version == 2:
        # RFC 3768 §7.1 (RFC 2338 auth): MUST verify the configured Auth Type ...
        if expect.auth_type >= 0 and advert.auth_type != expect.auth_type:
            return _freeze(advert, AUTHTYPE_MISMATCH)
        # ... and the password when it is a PASS (keepalived compares all 8 bytes).
        if (expect.auth_type == AUTH_PASS and expect.auth_data is not None
                and advert.auth_data != expect.auth_data):
            return _freeze(advert, AUTH_FAILURE)
        # RFC 3768 §7.1: MUST verify Adver Interval matches the configured one.
        if expect.adver_int and advert.adver_int != expect.adver_int:
            return _freeze(advert, ADVERT_INTERVAL_ERR)
    # keepalived's AH: the ICV and SPI, checked last as the one costly check.
    if ah_verify is not None and not ah_verify():
        return _freeze(advert, AUTH_FAILURE)
    return _freeze(advert, OK)


def _ah_valid(packet: memoryview, ah_start: int, ah_end: int, spi: int, src: bytes, key: bytes,
              zero_ttl: bool) -> bool:
    """Whether keepalived's AH header authenticates ``packet`` with ``key``."""
    if spi != int.from_bytes(src, "big"):  # keepalived: the SPI is the sender's address
        return False
    icv_start = ah_start + 12
    if ah_end - icv_start != _AH_ICV_LEN:
        return False
    unsigned = bytearray(packet)
    received = bytes(unsigned[icv_start:ah_end])
    # RFC 4302 §3.3.3.1.1.1: TOS, flags/fragment offset and header checksum are
    # mutable; keepalived also zeroes the TTL for unicast peers.
    unsigned[1] = 0
    unsigned[6:8] = b"\x00\x00"
    unsigned[10:12] = b"\x00\x00"
    if zero_ttl:
        unsigned[8] = 0
    unsigned[icv_start:ah_end] = bytes(_AH_ICV_LEN)
    try:
        return hmac.compare_digest(_ah_icv(key, bytes(unsigned)), received)
    except ValueError:  # MD5 unavailable (FIPS mode): nothing can be authenticated
        return False


def _verify_checksum(data: memoryview, version: int, family: int, src: bytes, dst: bytes,
                     v3_checksum: str) -> str:
    """The convention the checksum verifies with, or ``""`` when none does."""
    message_sum = _csum.ones_sum(data)
    if version == 2:  # RFC 3768 §5.3.8: the VRRP message only
        return CHECKSUM_MESSAGE if message_sum == 0xFFFF else ""
    if family == FAMILY_IPV6:  # RFC 5798 §5.2.8: RFC 8200 §8.1 pseudo-header
        pseudo = _csum.pseudo_sum_ipv6(src, dst, len(data))
        return CHECKSUM_PSEUDO if _csum.fold(message_sum + pseudo) == 0xFFFF else ""
    # v3 over IPv4: keepalived/FRR add an IPv4 pseudo-header, RFC 9568 does not.
    if v3_checksum != CHECKSUM_MESSAGE:
        pseudo = _csum.pseudo_sum_ipv4(src, dst, len(data))
        if _csum.fold(message_sum + pseudo) == 0xFFFF:
            return CHECKSUM_PSEUDO
    if v3_checksum != CHECKSUM_PSEUDO and message_sum == 0xFFFF:
        return CHECKSUM_MESSAGE
    return ""


def encode(
    version: int,
    vrid: int,
    priority: int,
    addresses: Sequence[_Buffer],
    adver_int: int,
    *,
    family: int = FAMILY_IPV4,
    auth_type: int = AUTH_NONE,
    auth_data: _Buffer = b"",
    src: _Buffer | None = None,
    dst: _Buffer | None = None,
    v3_checksum: str = CHECKSUM_PSEUDO,
) -> bytes:
    """Build a VRRP advertisement (no IP header) with its checksum filled in.

    ``addresses`` are packed (4 bytes for IPv4, 16 for IPv6; ``ipaddress``'s
    ``.packed``).  ``adver_int`` is in seconds for v2 (1..255) and centiseconds
    for v3 (1..4095).  v2 takes ``auth_type`` and up to 8 bytes of
    ``auth_data`` (zero padded; use ``auth_data_from_pass``; with AH it is the
    key and the field stays zero, as keepalived sends it).  v3 needs ``src``
    and ``dst`` for its pseudo-header over IPv6, and over IPv4 unless
    ``v3_checksum="message"`` (RFC 9568 / keepalived ``v3_checksum_as_v2``).
    Raises ``ValueError`` for fields out of range.

    >>> encode(2, 51, 100, [bytes([192, 168, 77, 100])], 1).hex()
    '2133640100016cbdc0a84d640000000000000000'
    """
    if family not in ADDRESS_LEN:
        raise ValueError("family must be 4 or 6")
    if version not in (2, 3):
        raise ValueError("version must be 2 or 3")
    if version == 2 and family != FAMILY_IPV4:
        raise ValueError("VRRPv2 is IPv4 only (RFC 5798 §1)")
    if not 1 <= vrid <= 255 or not 0 <= priority <= 255:
        raise ValueError("vrid must be 1..255 and priority 0..255 (RFC 5798 §5.2.3, §5.2.4)")
    if len(addresses) > MAX_ADDRESS_COUNT:
        raise ValueError("at most 255 addresses fit Count IP Addrs")
    addr_len = ADDRESS_LEN[family]
    packed = b"".join(bytes(a) for a in addresses)
    if len(packed) != addr_len * len(addresses) or any(len(a) != addr_len for a in addresses):
        raise ValueError(f"every address must be {addr_len} packed bytes")

    if version == 2:
        if not 1 <= adver_int <= MAX_ADVER_INT_V2:
            raise ValueError("a v2 adver_int is 1..255 seconds (RFC 3768 §5.3.7)")
        if not 0 <= auth_type <= 255:
            raise ValueError("auth_type must fit one octet")
        secret = bytes(auth_data)
        if len(secret) > VRRP_AUTH_DATA_LEN:
            raise ValueError("v2 authentication data is at most 8 bytes")
        header = bytes((0x21, vrid, priority, len(addresses), auth_type, adver_int))
        if auth_type == AUTH_AH:
            secret = b""  # the AH key authenticates the packet; it never goes on the wire
        body = packed + secret.ljust(VRRP_AUTH_DATA_LEN, b"\x00")
        partial = 0
    else:
        if not 1 <= adver_int <= MAX_ADVER_INT_V3:
            raise ValueError("a v3 adver_int is 1..4095 centiseconds (RFC 5798 §5.2.7)")
        if auth_type or len(auth_data):
            raise ValueError("VRRPv3 has no authentication (RFC 5798 §5.1)")
        if v3_checksum not in (CHECKSUM_PSEUDO, CHECKSUM_MESSAGE):
            raise ValueError("v3_checksum must be 'pseudo_header' or 'message'")
        header = bytes((0x31, vrid, priority, len(addresses))) + adver_int.to_bytes(2, "big")
        body = packed
        length = VRRP_HEADER_LEN + len(packed)
        if family == FAMILY_IPV6 or v3_checksum == CHECKSUM_PSEUDO:
            if src is None or dst is None:
                raise ValueError("the v3 pseudo-header needs src and dst")
            pseudo = _csum.pseudo_sum_ipv6 if family == FAMILY_IPV6 else _csum.pseudo_sum_ipv4
            partial = pseudo(src, dst, length)
        else:
            partial = 0
    checksum = _csum.internet_checksum(header + body, partial)
    return header + checksum.to_bytes(2, "big") + body


def encode_ipv4(
    version: int,
    vrid: int,
    priority: int,
    addresses: Sequence[_Buffer],
    adver_int: int,
    *,
    src: _Buffer,
    dst: _Buffer,
    ip_id: int = 0,
    auth_type: int = AUTH_NONE,
    auth_data: _Buffer = b"",
    v3_checksum: str = CHECKSUM_PSEUDO,
    ttl: int = VRRP_TTL,
    tos: int = VRRP_TOS,
    ah_seq: int = 0,
    unicast: bool = False,
) -> bytes:
    """An IPv4 packet as keepalived sends it: a 20-byte header, then ``encode(...)``.

    TOS 0xc0, DF clear, TTL 255, protocol 112, the ``ip_id`` you pass (keepalived
    counts from 1), header checksum filled in.  With ``auth_type=2`` (AH, v2
    only) the packet is keepalived's: protocol 51, a 24-byte AH header (next
    header 112, SPI = ``src``, sequence ``ah_seq``) whose HMAC-MD5-96 ICV is
    keyed with ``auth_data`` and covers the packet with TOS, flags/fragment and
    header checksum zeroed (and TTL too when ``unicast``).

    >>> pkt = encode_ipv4(3, 51, 100, [bytes([192, 168, 77, 100])], 100,
    ...                   src=bytes([192, 168, 77, 1]), dst=bytes([224, 0, 0, 18]), ip_id=1)
    >>> pkt[:4].hex(), pkt[8:10].hex(), decode_ipv4(pkt).checksum_mode
    ('45c00020', 'ff70', 'pseudo_header')
    """
    if not 0 <= ip_id <= 0xFFFF or not 0 <= ttl <= 255 or not 0 <= tos <= 255:
        raise ValueError("ip_id must fit 16 bits, ttl and tos 8 bits")
    if not 0 <= ah_seq <= 0xFFFFFFFF:
        raise ValueError("ah_seq must fit 32 bits")
    src_raw, dst_raw = bytes(src), bytes(dst)
    if len(src_raw) != 4 or len(dst_raw) != 4:
        raise ValueError("src and dst must be 4 packed bytes")
    message = encode(version, vrid, priority, addresses, adver_int, family=FAMILY_IPV4,
                     auth_type=auth_type, auth_data=auth_data, src=src_raw, dst=dst_raw,
                     v3_checksum=v3_checksum)
    if auth_type != AUTH_AH:
        header = _IPV4.pack(0x45, tos, IPV4_HEADER_LEN + len(message), ip_id, 0, ttl,
                            IPPROTO_VRRP, 0, src_raw, dst_raw)
        return _with_ip_checksum(header) + message
    if version != 2:
        raise ValueError("keepalived's AH authenticates VRRPv2 only")
    total = IPV4_HEADER_LEN + AH_HEADER_LEN + len(message)
    ah = _AH.pack(IPPROTO_VRRP, AH_HEADER_LEN // 4 - 2, 0, int.from_bytes(src_raw, "big"), ah_seq)
    # RFC 4302 §3.3.3.1: the ICV covers the packet with mutable fields and itself zeroed.
    unsigned = _IPV4.pack(0x45, 0, total, ip_id, 0, 0 if unicast else ttl, IPPROTO_AH, 0,
                          src_raw, dst_raw) + ah + bytes(_AH_ICV_LEN) + message
    icv = _ah_icv(bytes(auth_data), unsigned)
    header = _IPV4.pack(0x45, tos, total, ip_id, 0, ttl, IPPROTO_AH, 0, src_raw, dst_raw)
    return _with_ip_checksum(header) + ah + icv + message


def _with_ip_checksum(header: bytes) -> bytes:
    checksum = _csum.internet_checksum(header)  # RFC 791 §3.1: over the header only
    return header[:10] + checksum.to_bytes(2, "big") + header[12:]


def _ah_icv(key: bytes, unsigned: bytes) -> bytes:
    """keepalived's AH ICV: HMAC-MD5 truncated to 96 bits (RFC 2404), key = auth data."""
    return hmac.digest(key, unsigned, "md5")[:_AH_ICV_LEN]
