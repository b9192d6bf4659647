# cython: language_level=3
"""VRRP v2/v3 advertisement codec (compiled twin of ``vrrp_codec_py``).

Same public names, arguments, check order and results as the pure-Python twin;
read ``vrrp_codec_py`` for the reference behaviour and the docstrings with
examples.  The receive checks run in C over a char pointer into the caller's
buffer (bytes directly, anything else through the buffer protocol, released in
one place) and fill a C struct; one ``Advert`` is built at the end.  An
``Expect`` holds the configuration already parsed into C, and the previous
advert's bytes objects for reuse.  The only Python-level work inside a decode
is keepalived's AH ICV (``hmac.digest``), and only for AH instances.

>>> from hafast._core.vrrp_constants import AUTH_PASS, auth_data_from_pass
>>> pkt = encode_ipv4(2, 51, 100, [bytes([192, 168, 77, 100])], 1,
...                   src=bytes([192, 168, 77, 1]), dst=bytes([224, 0, 0, 18]), ip_id=1,
...                   auth_type=AUTH_PASS, auth_data=auth_data_from_pass("1111"))
>>> rx = Expect(version=2, auth_type=AUTH_PASS, auth_data=auth_data_from_pass("1111"))
>>> decode_ipv4(pkt, rx).ok, decode_ipv4(pkt[:-1], rx).reason
(True, 'packet_len_err')
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.long cimport PyLong_AsLongAndOverflow, PyLong_Check
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from hafast._core.checksum_c cimport csum_add, csum_fold, csum_pseudo_ipv4, csum_pseudo_ipv6

from hmac import digest as _hmac_digest

from hafast._core import vrrp_constants as K

__all__ = ["Advert", "Expect", "decode_ipv4", "decode_payload", "encode", "encode_ipv4"]

# Reason codes: indexes into _REASON_NAMES (the names live in vrrp_constants).
cdef enum:
    R_OK
    R_BUFFER
    R_PARAM
    R_PACKET_LEN
    R_IP_HEADER
    R_PROTOCOL
    R_TTL
    R_VERSION
    R_V2_IPV6
    R_TYPE
    R_ADDR_LIST  # in step with vrrp_constants.REASONS; the instance's check, not ours
    R_CHECKSUM
    R_AUTHTYPE_INVALID
    R_AUTHTYPE_MISMATCH
    R_AUTH_FAILURE
    R_ADVER_INT

cdef tuple _REASON_NAMES = (
    K.OK, K.BUFFER_ERR, K.PARAM_ERR, K.PACKET_LEN_ERR, K.IP_HEADER_ERR, K.PROTOCOL_ERR,
    K.IP_TTL_ERR, K.VERSION_ERR, K.V2_IPV6_ERR, K.INVALID_TYPE_RCVD, K.ADDR_LIST_ERR,
    K.CHECKSUM_ERR, K.INVALID_AUTHTYPE, K.AUTHTYPE_MISMATCH, K.AUTH_FAILURE,
    K.ADVERT_INTERVAL_ERR,
)

# How far decoding got: which Advert fields are meaningful (see vrrp_codec_py).
cdef enum:
    STAGE_NONE = 0   # reason and family only
    STAGE_IP = 1     # + src, dst, ttl, AH fields
    STAGE_HEADER = 2 # + the VRRP header fields
    STAGE_BODY = 3   # + checksum_mode, addresses, auth_data

# Checksum conventions (v3 over IPv4 may use either, see vrrp_constants).
cdef enum:
    MODE_NONE = 0
    MODE_ANY = 1
    MODE_PSEUDO = 2
    MODE_MESSAGE = 3

# Wire sizes (RFC 791 header without options, RFC 5798 §5.1 header, RFC 3768
# §5.3.10 auth data, RFC 4302 §2 AH fixed part); the rest come from vrrp_constants.
cdef enum:
    IPV4_HEADER_LEN = 20
    VRRP_HEADER_LEN = 8
    AUTH_DATA_LEN = 8
    AH_FIXED_LEN = 12
    AH_ICV_LEN = 12  # HMAC-MD5-96 (RFC 2404 §2), the only ICV keepalived uses
    AH_HEADER_LEN = 24
    MAX_ADDRESSES = 255
    MAX_ENCODED = 20 + 24 + 8 + 255 * 16 + 8

cdef int IPPROTO_VRRP = K.IPPROTO_VRRP
cdef int IPPROTO_AH = K.IPPROTO_AH
cdef int VRRP_TTL = K.VRRP_TTL
cdef int TYPE_ADVERTISEMENT = K.VRRP_TYPE_ADVERTISEMENT
cdef int AUTH_PASS = K.AUTH_PASS
cdef int AUTH_AH = K.AUTH_AH
cdef int MAX_ADVER_INT_V2 = K.MAX_ADVER_INT_V2
cdef int MAX_ADVER_INT_V3 = K.MAX_ADVER_INT_V3
cdef str CHECKSUM_ANY = K.CHECKSUM_ANY
cdef str CHECKSUM_PSEUDO = K.CHECKSUM_PSEUDO
cdef str CHECKSUM_MESSAGE = K.CHECKSUM_MESSAGE
cdef tuple _MODE_NAMES = ("", K.CHECKSUM_ANY, K.CHECKSUM_PSEUDO, K.CHECKSUM_MESSAGE)
cdef bytes _EMPTY = b""
cdef tuple _NO_ADDRESSES = ()
cdef tuple _FIELDS = tuple(K.ADVERT_FIELDS)

if len(_REASON_NAMES) != len(K.REASONS) or set(_REASON_NAMES) != set(K.REASONS):
    raise ImportError("vrrp_codec_c reason table is out of step with vrrp_constants.REASONS")


cdef struct Expectations:
    int version        # 0: any
    int auth_type      # -1: not checked
    int adver_int      # 0: not checked (v2 seconds)
    int v3_mode        # MODE_ANY / MODE_PSEUDO / MODE_MESSAGE
    bint has_auth_data
    uint8_t auth_data[AUTH_DATA_LEN]


cdef struct Parsed:
    int stage
    int family
    int ttl
    int wrapped        # -1 unknown (payload decode), 0 plain, 1 inside AH
    uint32_t ah_spi
    uint32_t ah_seq
    int version
    int type
    int vrid
    int priority
    int count
    int auth_type
    int adver_int
    int checksum
    int mode
    Py_ssize_t vrrp_off  # the VRRP message inside the buffer
    Py_ssize_t vrrp_len


# no_gc: an Advert holds only str, bytes and a tuple of bytes, so it can never be
# part of a reference cycle; keeping it out of the GC makes each decode cheaper.
@cython.no_gc
@cython.freelist(16)
@cython.auto_pickle(False)
cdef class Advert:
    """One decoded advertisement, or the reason it was rejected (see ``vrrp_codec_py.Advert``)."""

    cdef readonly str reason
    cdef readonly int family
    cdef readonly bytes src
    cdef readonly bytes dst
    cdef readonly int ttl
    cdef readonly bint ah
    cdef readonly unsigned int ah_spi
    cdef readonly unsigned int ah_seq
    cdef readonly int version
    cdef readonly int type
    cdef readonly int vrid
    cdef readonly int priority
    cdef readonly int count
    cdef readonly int auth_type
    cdef readonly int adver_int
    cdef readonly int checksum
    cdef readonly str checksum_mode
    cdef readonly tuple addresses
    cdef readonly bytes auth_data

    def __init__(self, reason: str = K.OK, family: int = 0) -> None:
        _reset(self, reason, family)

    @property
    def ok(self) -> bool:
        """True when every receive check passed."""
        return self.reason == K.OK

    def fields(self) -> tuple:
        """All attributes in ``vrrp_constants.ADVERT_FIELDS`` order."""
        return tuple([getattr(self, name) for name in _FIELDS])

    def __repr__(self) -> str:
        return (f"Advert(reason={self.reason!r}, version={self.version}, vrid={self.vrid}, "
                f"priority={self.priority}, count={self.count}, adver_int={self.adver_int})")


cdef inline void _reset(Advert a, str reason, int family):
    a.reason = reason
    a.family = family
    a.src = _EMPTY
    a.dst = _EMPTY
    a.ttl = -1
    a.ah = False
    a.ah_spi = 0
    a.ah_seq = 0
    a.version = 0
    a.type = 0
    a.vrid = 0
    a.priority = 0
    a.count = 0
    a.auth_type = 0
    a.adver_int = 0
    a.checksum = 0
    a.checksum_mode = ""
    a.addresses = _NO_ADDRESSES
    a.auth_data = _EMPTY


cdef Advert _bare(int code, int family):
    cdef Advert a = Advert.__new__(Advert)
    _reset(a, <str>_REASON_NAMES[code], family)
    return a


cdef bint _small_int(object value, long lo, long hi, long *out) except -1:
    """Store ``value`` in ``out`` when it is an int in lo..hi (bool counts, as in Python)."""
    cdef int overflow = 0
    cdef long number
    if not PyLong_Check(value):
        return False
    number = PyLong_AsLongAndOverflow(value, &overflow)
    if overflow or number < lo or number > hi:
        return False
    out[0] = number
    return True


cdef int _parse_expect(Expectations *e, object version, object auth_type, object auth_data,
                       object adver_int, object v3_checksum) except -1:
    """Fill ``e`` from the keyword expectations; return R_OK or R_PARAM."""
    cdef long value
    cdef bytes raw
    if not _small_int(version, 0, 3, &value) or value == 1:
        return R_PARAM
    e.version = <int>value
    if not _small_int(auth_type, -1, 255, &value):
        return R_PARAM
    e.auth_type = <int>value
    if not _small_int(adver_int, 0, MAX_ADVER_INT_V3, &value):
        return R_PARAM
    e.adver_int = <int>value
    if v3_checksum == CHECKSUM_ANY:
        e.v3_mode = MODE_ANY
    elif v3_checksum == CHECKSUM_PSEUDO:
        e.v3_mode = MODE_PSEUDO
    elif v3_checksum == CHECKSUM_MESSAGE:
        e.v3_mode = MODE_MESSAGE
    else:
        return R_PARAM
    e.has_auth_data = auth_data is not None
    if e.has_auth_data:
        try:
            raw = auth_data if PyBytes_CheckExact(auth_data) else bytes(auth_data)
        except (TypeError, ValueError):
            return R_PARAM
        if PyBytes_GET_SIZE(raw) != AUTH_DATA_LEN:
            return R_PARAM
        memcpy(e.auth_data, PyBytes_AS_STRING(raw), AUTH_DATA_LEN)
    return R_OK


@cython.auto_pickle(False)
cdef class Expect:
    """What the local configuration expects of received adverts (see ``vrrp_codec_py.Expect``).

    Parsed once into a C struct, so a decode given an Expect does no argument work.
    It also keeps the previous advert's immutable pieces: a master re-sends the
    same advert every interval, so an instance's decode usually finds identical
    bytes and hands out the same bytes/tuple objects instead of new ones.
    """

    cdef Expectations c
    cdef readonly bint check_ttl
    cdef object _auth_data
    cdef str _v3_checksum
    cdef bytes _last_src
    cdef bytes _last_dst
    cdef bytes _last_auth
    cdef tuple _last_addresses

    def __init__(self, version=0, auth_type=-1, auth_data=None, adver_int=0,
                 v3_checksum=CHECKSUM_ANY, check_ttl=True):
        if _parse_expect(&self.c, version, auth_type, auth_data, adver_int, v3_checksum) != R_OK:
            raise ValueError("Expect: version 0/2/3, auth_type -1..255, 8 bytes of auth_data, "
                             "adver_int 0..4095, v3_checksum any/pseudo_header/message")
        self.check_ttl = bool(check_ttl)
        self._auth_data = (PyBytes_FromStringAndSize(<const char *>self.c.auth_data, AUTH_DATA_LEN)
                           if self.c.has_auth_data else None)
        self._v3_checksum = <str>_MODE_NAMES[self.c.v3_mode]

    @property
    def version(self) -> int:
        return self.c.version

    @property
    def auth_type(self) -> int:
        return self.c.auth_type

    @property
    def auth_data(self):
        return self._auth_data

    @property
    def adver_int(self) -> int:
        return self.c.adver_int

    @property
    def v3_checksum(self) -> str:
        return self._v3_checksum


cdef inline int _be16(const uint8_t *p) noexcept nogil:
    return (p[0] << 8) | p[1]


cdef inline uint32_t _be32(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef int _check_ipv4(const uint8_t *p, Py_ssize_t n, Parsed *r) noexcept nogil:
    """The IPv4 (and AH) layer: locate the VRRP message (RFC 791, RFC 4302 §2)."""
    cdef int header_len, total_len, proto, payload_len
    cdef Py_ssize_t start, ah_len
    if n < IPV4_HEADER_LEN:
        return R_PACKET_LEN
    header_len = (p[0] & 0x0F) * 4
    if p[0] >> 4 != 4 or header_len < IPV4_HEADER_LEN:
        return R_IP_HEADER
    total_len = _be16(p + 2)
    # A raw socket hands over exactly total_len bytes; captures may add link padding.
    if header_len > total_len or total_len > n:
        return R_PACKET_LEN
    proto = p[9]
    start = header_len
    r.wrapped = 0
    if proto == IPPROTO_AH:
        if total_len - start < AH_FIXED_LEN:
            return R_PACKET_LEN
        payload_len = p[start + 1]
        ah_len = (payload_len + 2) * 4  # RFC 4302 §2.2: length in words, minus 2
        if total_len - start < ah_len:
            return R_PACKET_LEN
        if p[start] != IPPROTO_VRRP:
            return R_PROTOCOL
        r.ah_spi = _be32(p + start + 4)
        r.ah_seq = _be32(p + start + 8)
        r.wrapped = 1
        start += ah_len
    elif proto != IPPROTO_VRRP:
        return R_PROTOCOL
    r.ttl = p[8]
    r.vrrp_off = start
    r.vrrp_len = total_len - start
    r.stage = STAGE_IP
    return R_OK


cdef int _check_vrrp(const uint8_t *msg, Py_ssize_t n, const uint8_t *src, const uint8_t *dst,
                     int ttl, const Expectations *e, Parsed *r) noexcept nogil:
    """The VRRP receive checks, in RFC 3768 §7.1 / RFC 5798 §7.1 order."""
    cdef int version, addr_len
    cdef Py_ssize_t expected
    cdef uint32_t message_sum
    if n < VRRP_HEADER_LEN:  # RFC 5798 §7.1: must hold the fixed header
        return R_PACKET_LEN
    version = msg[0] >> 4
    r.version = version
    r.type = msg[0] & 0x0F
    r.vrid = msg[1]
    r.priority = msg[2]
    r.count = msg[3]
    if version == 2:
        r.auth_type = msg[4]  # RFC 3768 §5.3.6
        r.adver_int = msg[5]  # RFC 3768 §5.3.7: seconds
    else:
        r.auth_type = 0
        r.adver_int = _be16(msg + 4) & MAX_ADVER_INT_V3  # RFC 5798 §5.2.7: centiseconds
    r.checksum = _be16(msg + 6)
    r.stage = STAGE_HEADER

    if ttl >= 0 and ttl != VRRP_TTL:  # RFC 3768 §7.1, RFC 5798 §7.1: TTL / hop limit 255
        return R_TTL
    if (version != 2 and version != 3) or (e.version and version != e.version):
        return R_VERSION  # RFC 5798 §7.1: MUST verify the version
    if version == 2 and r.family == 6:  # RFC 5798 §1: VRRPv2 is IPv4 only
        return R_V2_IPV6
    if r.type != TYPE_ADVERTISEMENT:  # RFC 5798 §5.2.2
        return R_TYPE

    # RFC 5798 §7.1: the complete message for Count IP Addrs (+ v2 auth data);
    # keepalived counts a mismatch as packet_len_err (vrrp_check_packet).
    addr_len = 16 if r.family == 6 else 4
    expected = VRRP_HEADER_LEN + <Py_ssize_t>r.count * addr_len
    if version == 2:
        expected += AUTH_DATA_LEN
    if n != expected:
        return R_PACKET_LEN

    message_sum = csum_add(msg, n, 0)
    r.mode = MODE_NONE
    if version == 2:  # RFC 3768 §5.3.8: the message only
        if message_sum == 0xFFFF:
            r.mode = MODE_MESSAGE
    elif r.family == 6:  # RFC 5798 §5.2.8: RFC 8200 §8.1 pseudo-header
        if csum_fold(<uint64_t>message_sum + csum_pseudo_ipv6(src, dst, <uint32_t>n, IPPROTO_VRRP)) == 0xFFFF:
            r.mode = MODE_PSEUDO
    else:
        # v3 over IPv4: keepalived/FRR add an IPv4 pseudo-header, RFC 9568 does not.
        if e.v3_mode != MODE_MESSAGE and csum_fold(
                <uint64_t>message_sum + csum_pseudo_ipv4(src, dst, <uint32_t>n, IPPROTO_VRRP)) == 0xFFFF:
            r.mode = MODE_PSEUDO
        elif e.v3_mode != MODE_PSEUDO and message_sum == 0xFFFF:
            r.mode = MODE_MESSAGE
    if r.mode == MODE_NONE:  # RFC 5798 §7.1: MUST verify the checksum
        return R_CHECKSUM
    r.stage = STAGE_BODY

    if version == 2 and r.auth_type > AUTH_AH:
        return R_AUTHTYPE_INVALID
    # keepalived's AH: the VRRP inside an AH header says auth type AH, and only then.
    if r.wrapped >= 0 and r.wrapped != (version == 2 and r.auth_type == AUTH_AH):
        return R_AUTHTYPE_MISMATCH
    if version == 2:
        if e.auth_type >= 0 and r.auth_type != e.auth_type:  # RFC 3768 §7.1
            return R_AUTHTYPE_MISMATCH
        if (e.auth_type == AUTH_PASS and e.has_auth_data
                and memcmp(msg + n - AUTH_DATA_LEN, e.auth_data, AUTH_DATA_LEN) != 0):
            return R_AUTH_FAILURE
        if e.adver_int and r.adver_int != e.adver_int:  # RFC 3768 §7.1
            return R_ADVER_INT
    return R_OK


cdef inline bytes _reuse(bytes last, const uint8_t *p, Py_ssize_t n):
    """``last`` when it holds exactly p[0:n] (immutable, so shareable), else a new bytes."""
    if (last is not None and PyBytes_GET_SIZE(last) == n
            and memcmp(PyBytes_AS_STRING(last), p, n) == 0):
        return last
    return PyBytes_FromStringAndSize(<const char *>p, n)


cdef bint _same_addresses(tuple last, const uint8_t *block, int count, int addr_len):
    """Whether ``last`` (a tuple this module built) holds exactly these packed addresses."""
    cdef Py_ssize_t i
    cdef object item
    if last is None or PyTuple_GET_SIZE(last) != count:
        return False
    for i in range(count):
        item = <object>PyTuple_GET_ITEM(last, i)
        if (PyBytes_GET_SIZE(item) != addr_len
                or memcmp(PyBytes_AS_STRING(item), block + i * addr_len, addr_len) != 0):
            return False
    return True


cdef tuple _addresses(const uint8_t *block, int count, int addr_len):
    cdef tuple addresses
    cdef bytes item
    cdef int i
    if not count:
        return _NO_ADDRESSES
    addresses = PyTuple_New(count)
    for i in range(count):
        item = PyBytes_FromStringAndSize(<const char *>block + i * addr_len, addr_len)
        Py_INCREF(item)  # PyTuple_SET_ITEM steals the reference
        PyTuple_SET_ITEM(addresses, i, item)
    return addresses


cdef Advert _build(int code, Parsed *r, const uint8_t *base, object src, object dst,
                   Expect cache, object given_auth):
    """The one Python object of a decode: copy what the checks reached into an Advert.

    Every field is written exactly once (a tp_new'd Advert holds None in its
    object fields until then).  With a ``cache`` (the caller's Expect), the
    addresses and auth data of the previous identical advert are reused; without
    one, the caller's ``auth_data`` keyword (``given_auth``) stands for the received
    auth data when it holds exactly those bytes (a valid PASS advert always does).
    """
    cdef Advert a = Advert.__new__(Advert)
    cdef int addr_len
    cdef const uint8_t *msg
    cdef int stage = r.stage
    a.reason = <str>_REASON_NAMES[code]
    a.family = r.family
    if stage >= STAGE_IP:
        a.src = src
        a.dst = dst
        a.ttl = r.ttl
        a.ah = r.wrapped == 1
        a.ah_spi = r.ah_spi
        a.ah_seq = r.ah_seq
    else:
        a.src = _EMPTY
        a.dst = _EMPTY
        a.ttl = -1
    if stage >= STAGE_HEADER:
        a.version = r.version
        a.type = r.type
        a.vrid = r.vrid
        a.priority = r.priority
        a.count = r.count
        a.auth_type = r.auth_type
        a.adver_int = r.adver_int
        a.checksum = r.checksum
    if stage < STAGE_BODY:
        a.checksum_mode = ""
        a.addresses = _NO_ADDRESSES
        a.auth_data = _EMPTY
        return a
    a.checksum_mode = <str>_MODE_NAMES[r.mode]
    msg = base + r.vrrp_off
    addr_len = 16 if r.family == 6 else 4
    if cache is None:
        a.addresses = _addresses(msg + VRRP_HEADER_LEN, r.count, addr_len)
    elif _same_addresses(cache._last_addresses, msg + VRRP_HEADER_LEN, r.count, addr_len):
        a.addresses = cache._last_addresses
    else:
        a.addresses = cache._last_addresses = _addresses(msg + VRRP_HEADER_LEN, r.count,
                                                         addr_len)
    if r.version != 2:
        a.auth_data = _EMPTY
    elif cache is None:
        a.auth_data = _reuse(given_auth if PyBytes_CheckExact(given_auth) else None,
                             msg + r.vrrp_len - AUTH_DATA_LEN, AUTH_DATA_LEN)
    else:
        a.auth_data = _reuse(cache._last_auth, msg + r.vrrp_len - AUTH_DATA_LEN, AUTH_DATA_LEN)
        cache._last_auth = a.auth_data
    return a


def decode_ipv4(packet, expect=None, *, check_ttl=True, version=0, auth_type=-1,
                auth_data=None, adver_int=0, v3_checksum=CHECKSUM_ANY):
    """Decode and validate a whole IPv4 packet, as a raw IPPROTO_VRRP socket returns it.

    See ``vrrp_codec_py.decode_ipv4``.  Never raises on any packet.
    """
    cdef Expectations local
    cdef const Expectations *e
    cdef bint ttl_checked
    cdef Parsed r
    cdef Py_buffer view
    cdef const uint8_t *p
    cdef Py_ssize_t n
    cdef bint release = False
    cdef int code
    cdef object src = _EMPTY, dst = _EMPTY
    cdef Expect cache = None
    if expect is None:
        if _parse_expect(&local, version, auth_type, auth_data, adver_int, v3_checksum) != R_OK:
            return _bare(R_PARAM, 4)
        e = &local
        ttl_checked = check_ttl
    elif isinstance(expect, Expect):
        cache = <Expect>expect
        e = &cache.c
        ttl_checked = cache.check_ttl
    else:
        return _bare(R_PARAM, 4)
    if PyBytes_CheckExact(packet):
        p = <const uint8_t *>PyBytes_AS_STRING(packet)
        n = PyBytes_GET_SIZE(packet)
    else:
        try:
            PyObject_GetBuffer(packet, &view, PyBUF_SIMPLE)
        except (TypeError, ValueError, BufferError):
            return _bare(R_BUFFER, 4)
        release = True
        p = <const uint8_t *>view.buf
        n = view.len
    try:
        memset(&r, 0, sizeof(r))
        r.family = 4
        r.ttl = -1
        code = _check_ipv4(p, n, &r)
        if code == R_OK:
            if cache is None:
                src = PyBytes_FromStringAndSize(<const char *>p + 12, 4)
                dst = PyBytes_FromStringAndSize(<const char *>p + 16, 4)
            else:
                src = cache._last_src = _reuse(cache._last_src, p + 12, 4)
                dst = cache._last_dst = _reuse(cache._last_dst, p + 16, 4)
            code = _check_vrrp(p + r.vrrp_off, r.vrrp_len, p + 12, p + 16,
                               r.ttl if ttl_checked else -1, e, &r)
            # keepalived's AH: the ICV and SPI, checked last as the one costly check.
            if (code == R_OK and r.wrapped == 1 and e.auth_type == AUTH_AH and e.has_auth_data
                    and not _ah_valid(p, r.vrrp_off + r.vrrp_len, (p[0] & 0x0F) * 4,
                                      r.vrrp_off, r.ah_spi, e, not ttl_checked)):
                code = R_AUTH_FAILURE
        return _build(code, &r, p, src, dst, cache, auth_data)
    finally:
        if release:
            PyBuffer_Release(&view)


def decode_payload(message, family, src, dst, ttl=-1, expect=None, *, check_ttl=True,
                   version=0, auth_type=-1, auth_data=None, adver_int=0,
                   v3_checksum=CHECKSUM_ANY):
    """Decode and validate a VRRP message without its IP header.

    See ``vrrp_codec_py.decode_payload``.  Never raises on any packet.
    """
    cdef Expectations local
    cdef const Expectations *e
    cdef bint ttl_checked
    cdef Parsed r
    cdef Py_buffer view
    cdef const uint8_t *p
    cdef Py_ssize_t n
    cdef bint release = False
    cdef int code, addr_len
    cdef long fam, hop
    cdef bytes src_raw, dst_raw
    cdef Expect cache = None
    if not _small_int(family, 4, 6, &fam) or fam == 5:
        return _bare(R_PARAM, 0)
    addr_len = 16 if fam == 6 else 4
    if expect is None:
        if _parse_expect(&local, version, auth_type, auth_data, adver_int, v3_checksum) != R_OK:
            return _bare(R_PARAM, <int>fam)
        e = &local
        ttl_checked = check_ttl
    elif isinstance(expect, Expect):
        cache = <Expect>expect
        e = &cache.c
        ttl_checked = cache.check_ttl
    else:
        return _bare(R_PARAM, <int>fam)
    try:
        src_raw = src if PyBytes_CheckExact(src) else bytes(src)
        dst_raw = dst if PyBytes_CheckExact(dst) else bytes(dst)
    except (TypeError, ValueError):
        return _bare(R_PARAM, <int>fam)
    if (PyBytes_GET_SIZE(src_raw) != addr_len or PyBytes_GET_SIZE(dst_raw) != addr_len
            or not _small_int(ttl, -1, 255, &hop)):
        return _bare(R_PARAM, <int>fam)
    if PyBytes_CheckExact(message):
        p = <const uint8_t *>PyBytes_AS_STRING(message)
        n = PyBytes_GET_SIZE(message)
    else:
        try:
            PyObject_GetBuffer(message, &view, PyBUF_SIMPLE)
        except (TypeError, ValueError, BufferError):
            return _bare(R_BUFFER, <int>fam)
        release = True
        p = <const uint8_t *>view.buf
        n = view.len
    try:
        memset(&r, 0, sizeof(r))
        r.family = <int>fam
        r.ttl = <int>hop
        r.wrapped = -1
        r.vrrp_off = 0
        r.vrrp_len = n
        r.stage = STAGE_IP
        code = _check_vrrp(p, n, <const uint8_t *>PyBytes_AS_STRING(src_raw),
                           <const uint8_t *>PyBytes_AS_STRING(dst_raw),
                           <int>hop if ttl_checked else -1, e, &r)
        return _build(code, &r, p, src_raw, dst_raw, cache, auth_data)
    finally:
        if release:
            PyBuffer_Release(&view)


cdef bytes _as_bytes(object value):
    return value if PyBytes_CheckExact(value) else bytes(value)


cdef Py_ssize_t _encode_into(uint8_t *out, int version, int vrid, int priority, object addresses,
                             int adver_int, int family, int auth_type, object auth_data,
                             object src, object dst, object v3_checksum) except -1:
    """Write the VRRP message at ``out`` (room for MAX_ENCODED bytes); return its length."""
    cdef Py_ssize_t count, i, length, addr_len
    cdef bytes item, secret, src_raw, dst_raw
    cdef uint64_t partial = 0
    cdef uint32_t checksum
    cdef int mode
    if family != 4 and family != 6:
        raise ValueError("family must be 4 or 6")
    if version != 2 and version != 3:
        raise ValueError("version must be 2 or 3")
    if version == 2 and family != 4:
        raise ValueError("VRRPv2 is IPv4 only (RFC 5798 §1)")
    if not 1 <= vrid <= 255 or not 0 <= priority <= 255:
        raise ValueError("vrid must be 1..255 and priority 0..255 (RFC 5798 §5.2.3, §5.2.4)")
    count = len(addresses)
    if count > MAX_ADDRESSES:
        raise ValueError("at most 255 addresses fit Count IP Addrs")
    addr_len = 16 if family == 6 else 4
    out[1] = <uint8_t>vrid
    out[2] = <uint8_t>priority
    out[3] = <uint8_t>count
    out[6] = 0
    out[7] = 0
    for i in range(count):
        item = _as_bytes(addresses[i])
        if PyBytes_GET_SIZE(item) != addr_len:
            raise ValueError(f"every address must be {addr_len} packed bytes")
        memcpy(out + VRRP_HEADER_LEN + i * addr_len, PyBytes_AS_STRING(item), addr_len)
    length = VRRP_HEADER_LEN + count * addr_len

    if version == 2:
        if not 1 <= adver_int <= MAX_ADVER_INT_V2:
            raise ValueError("a v2 adver_int is 1..255 seconds (RFC 3768 §5.3.7)")
        if not 0 <= auth_type <= 255:
            raise ValueError("auth_type must fit one octet")
        secret = _as_bytes(auth_data)
        if PyBytes_GET_SIZE(secret) > AUTH_DATA_LEN:
            raise ValueError("v2 authentication data is at most 8 bytes")
        out[0] = 0x21
        out[4] = <uint8_t>auth_type
        out[5] = <uint8_t>adver_int
        memset(out + length, 0, AUTH_DATA_LEN)
        if auth_type != AUTH_AH:  # the AH key authenticates the packet, never goes on the wire
            memcpy(out + length, PyBytes_AS_STRING(secret), PyBytes_GET_SIZE(secret))
        length += AUTH_DATA_LEN
    else:
        if not 1 <= adver_int <= MAX_ADVER_INT_V3:
            raise ValueError("a v3 adver_int is 1..4095 centiseconds (RFC 5798 §5.2.7)")
        if auth_type or len(auth_data):
            raise ValueError("VRRPv3 has no authentication (RFC 5798 §5.1)")
        if v3_checksum == CHECKSUM_PSEUDO:
            mode = MODE_PSEUDO
        elif v3_checksum == CHECKSUM_MESSAGE:
            mode = MODE_MESSAGE
        else:
            raise ValueError("v3_checksum must be 'pseudo_header' or 'message'")
        out[0] = 0x31
        out[4] = <uint8_t>(adver_int >> 8)
        out[5] = <uint8_t>(adver_int & 0xFF)
        if family == 6 or mode == MODE_PSEUDO:
            if src is None or dst is None:
                raise ValueError("the v3 pseudo-header needs src and dst")
            src_raw = _as_bytes(src)
            dst_raw = _as_bytes(dst)
            if PyBytes_GET_SIZE(src_raw) != addr_len or PyBytes_GET_SIZE(dst_raw) != addr_len:
                raise ValueError(f"src and dst must be {addr_len} packed bytes")
            if family == 6:
                partial = csum_pseudo_ipv6(<const uint8_t *>PyBytes_AS_STRING(src_raw),
                                           <const uint8_t *>PyBytes_AS_STRING(dst_raw),
                                           <uint32_t>length, IPPROTO_VRRP)
            else:
                partial = csum_pseudo_ipv4(<const uint8_t *>PyBytes_AS_STRING(src_raw),
                                           <const uint8_t *>PyBytes_AS_STRING(dst_raw),
                                           <uint32_t>length, IPPROTO_VRRP)
    checksum = ~csum_add(out, length, partial) & 0xFFFF
    out[6] = <uint8_t>(checksum >> 8)
    out[7] = <uint8_t>(checksum & 0xFF)
    return length


def encode(int version, int vrid, int priority, addresses, int adver_int, *, int family=4,
           int auth_type=0, auth_data=b"", src=None, dst=None, v3_checksum=CHECKSUM_PSEUDO):
    """Build a VRRP advertisement (no IP header); see ``vrrp_codec_py.encode``."""
    cdef uint8_t buf[MAX_ENCODED]
    cdef Py_ssize_t length = _encode_into(buf, version, vrid, priority, addresses, adver_int,
                                          family, auth_type, auth_data, src, dst, v3_checksum)
    return PyBytes_FromStringAndSize(<const char *>buf, length)


cdef void _ipv4_header(uint8_t *buf, Py_ssize_t total, int tos, int ip_id, int ttl, int proto,
                       bytes src, bytes dst) noexcept:
    """An option-less IPv4 header at ``buf`` as keepalived sends it (checksum left zero)."""
    buf[0] = 0x45
    buf[1] = <uint8_t>tos
    buf[2] = <uint8_t>(total >> 8)
    buf[3] = <uint8_t>(total & 0xFF)
    buf[4] = <uint8_t>(ip_id >> 8)
    buf[5] = <uint8_t>(ip_id & 0xFF)
    buf[6] = 0  # flags and fragment offset: DF clear, as keepalived sends
    buf[7] = 0
    buf[8] = <uint8_t>ttl
    buf[9] = <uint8_t>proto
    buf[10] = 0
    buf[11] = 0
    memcpy(buf + 12, PyBytes_AS_STRING(src), 4)
    memcpy(buf + 16, PyBytes_AS_STRING(dst), 4)


cdef inline void _ip_checksum(uint8_t *buf) noexcept nogil:
    cdef uint32_t checksum = ~csum_add(buf, IPV4_HEADER_LEN, 0) & 0xFFFF  # RFC 791 §3.1
    buf[10] = <uint8_t>(checksum >> 8)
    buf[11] = <uint8_t>(checksum & 0xFF)


cdef bytes _ah_icv(bytes key, const uint8_t *unsigned, Py_ssize_t n):
    """keepalived's AH ICV: HMAC-MD5 truncated to 96 bits (RFC 2404), key = auth data.

    The only Python call of the codec: AH is rare, deprecated, and OpenSSL's
    HMAC behind ``hmac.digest`` is what keepalived uses too.
    """
    cdef bytes digest = _hmac_digest(key, PyBytes_FromStringAndSize(<const char *>unsigned, n),
                                     "md5")
    return digest[:AH_ICV_LEN]


cdef bint _ah_valid(const uint8_t *p, Py_ssize_t total, Py_ssize_t ah_start, Py_ssize_t ah_end,
                    uint32_t spi, const Expectations *e, bint zero_ttl) except -1:
    """Whether keepalived's AH header authenticates the packet p[0:total]."""
    cdef Py_ssize_t icv_start = ah_start + AH_FIXED_LEN
    cdef bytes copy, icv
    cdef uint8_t *q
    cdef uint8_t diff = 0
    cdef int i
    if spi != _be32(p + 12):  # keepalived: the SPI is the sender's address
        return False
    if ah_end - icv_start != AH_ICV_LEN:
        return False
    copy = PyBytes_FromStringAndSize(<const char *>p, total)
    q = <uint8_t *>PyBytes_AS_STRING(copy)  # fresh and not shared yet: safe to edit
    # RFC 4302 §3.3.3.1.1.1: TOS, flags/fragment offset and header checksum are
    # mutable; keepalived also zeroes the TTL for unicast peers.
    q[1] = 0
    q[6] = q[7] = 0
    q[10] = q[11] = 0
    if zero_ttl:
        q[8] = 0
    memset(q + icv_start, 0, AH_ICV_LEN)
    try:
        icv = _ah_icv(PyBytes_FromStringAndSize(<const char *>e.auth_data, AUTH_DATA_LEN),
                      q, total)
    except ValueError:  # MD5 unavailable (FIPS mode): nothing can be authenticated
        return False
    for i in range(AH_ICV_LEN):  # constant time, like hmac.compare_digest
        diff |= (<const uint8_t *>PyBytes_AS_STRING(icv))[i] ^ p[icv_start + i]
    return diff == 0


def encode_ipv4(int version, int vrid, int priority, addresses, int adver_int, *, src, dst,
                int ip_id=0, int auth_type=0, auth_data=b"", v3_checksum=CHECKSUM_PSEUDO,
                int ttl=255, int tos=0xC0, long long ah_seq=0, bint unicast=False):
    """An IPv4 packet as keepalived sends it; see ``vrrp_codec_py.encode_ipv4``."""
    cdef uint8_t buf[MAX_ENCODED]
    cdef bytes src_raw, dst_raw, icv
    cdef Py_ssize_t length, total, start
    cdef bint ah = auth_type == AUTH_AH
    cdef uint8_t *a
    if not 0 <= ip_id <= 0xFFFF or not 0 <= ttl <= 255 or not 0 <= tos <= 255:
        raise ValueError("ip_id must fit 16 bits, ttl and tos 8 bits")
    if not 0 <= ah_seq <= 0xFFFFFFFF:
        raise ValueError("ah_seq must fit 32 bits")
    src_raw = _as_bytes(src)
    dst_raw = _as_bytes(dst)
    if PyBytes_GET_SIZE(src_raw) != 4 or PyBytes_GET_SIZE(dst_raw) != 4:
        raise ValueError("src and dst must be 4 packed bytes")
    start = IPV4_HEADER_LEN + (AH_HEADER_LEN if ah else 0)
    length = _encode_into(buf + start, version, vrid, priority, addresses, adver_int,
                          4, auth_type, auth_data, src_raw, dst_raw, v3_checksum)
    total = start + length
    if not ah:
        _ipv4_header(buf, total, tos, ip_id, ttl, IPPROTO_VRRP, src_raw, dst_raw)
        _ip_checksum(buf)
        return PyBytes_FromStringAndSize(<const char *>buf, total)
    if version != 2:
        raise ValueError("keepalived's AH authenticates VRRPv2 only")
    a = buf + IPV4_HEADER_LEN  # RFC 4302 §2: next header, payload len, reserved, SPI, seq, ICV
    a[0] = <uint8_t>IPPROTO_VRRP
    a[1] = AH_HEADER_LEN // 4 - 2
    a[2] = a[3] = 0
    memcpy(a + 4, PyBytes_AS_STRING(src_raw), 4)
    a[8] = <uint8_t>(ah_seq >> 24)
    a[9] = <uint8_t>(ah_seq >> 16)
    a[10] = <uint8_t>(ah_seq >> 8)
    a[11] = <uint8_t>ah_seq
    memset(a + AH_FIXED_LEN, 0, AH_ICV_LEN)
    # RFC 4302 §3.3.3.1: the ICV covers the packet with mutable fields and itself zeroed.
    _ipv4_header(buf, total, 0, ip_id, 0 if unicast else ttl, IPPROTO_AH, src_raw, dst_raw)
    icv = _ah_icv(_as_bytes(auth_data), buf, total)
    memcpy(a + AH_FIXED_LEN, PyBytes_AS_STRING(icv), AH_ICV_LEN)
    _ipv4_header(buf, total, tos, ip_id, ttl, IPPROTO_AH, src_raw, dst_raw)
    _ip_checksum(buf)
    return PyBytes_FromStringAndSize(<const char *>buf, total)
