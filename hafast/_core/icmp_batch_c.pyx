# cython: language_level=3, auto_pickle=False, autotestdict=False
"""ICMP echo engine for thousands of targets: the compiled twin.

Same public names and behaviour as ``icmp_batch_py`` (the readable reference);
this one builds a whole tick's echo requests in one preallocated buffer, sends
them with ``sendmmsg`` and drains replies with ``recvmmsg``.  Packets are built,
parsed and matched in C; Python objects appear only for the address strings the
caller gave and the result tuples handed back.

Addresses are text; results carry the very string object passed to send().
"""

import logging
import os
import time

# The one compiled RFC 1071 checksum, re-exported: icmp_batch's public name since before
# checksum_c existed.
from hafast._core.checksum_c import internet_checksum

# EchoPool's state keeping, once for both twins (plain Python: it runs rarely).
from hafast._core import echo_pool as _pool

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.errno cimport EAGAIN, EINTR, ENOBUFS, errno
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset, strerror

from hafast._core.checksum_c cimport csum_finish


cdef extern from "<sys/uio.h>":
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<sys/socket.h>":
    ctypedef unsigned int socklen_t
    struct sockaddr:
        pass
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    int c_socket "socket"(int domain, int type, int protocol)
    int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
    int sendmmsg(int fd, mmsghdr *vec, unsigned int vlen, int flags) nogil
    int recvmmsg(int fd, mmsghdr *vec, unsigned int vlen, int flags, void *timeout) nogil
    int SOCK_RAW, SOCK_NONBLOCK, SOCK_CLOEXEC, SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE
    int MSG_DONTWAIT, MSG_TRUNC

cdef extern from "<netinet/in.h>":
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        unsigned short sin_family
        uint16_t sin_port
        in_addr sin_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in6:
        unsigned short sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id
    int IPPROTO_ICMP, IPPROTO_ICMPV6

cdef extern from "<arpa/inet.h>":
    int inet_pton(int af, const char *src, void *dst)

cdef extern from "<errno.h>":
    int EWOULDBLOCK

cdef extern from "<poll.h>":
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout) nogil
    short POLLIN

cdef extern from "<unistd.h>":
    int c_close "close"(int fd)
    int getpid()


cdef enum:
    C_AF_INET = 2
    C_AF_INET6 = 10

AF_INET = C_AF_INET
AF_INET6 = C_AF_INET6

REPLY = 0
UNREACHABLE = 1
SEND_ERROR = 2

# RFC 792: echo request 8, echo reply 0; 3 destination unreachable, 11 time exceeded.
cdef enum:
    C_ICMP_ECHOREPLY = 0
cdef enum:
    C_ICMP_DEST_UNREACH = 3
cdef enum:
    C_ICMP_ECHO = 8
cdef enum:
    C_ICMP_TIME_EXCEEDED = 11
# RFC 4443 §4.1/§4.2 echo request 128 / reply 129; §3.1 unreachable 1; §3.3 time exceeded 3.
cdef enum:
    C_ICMP6_DST_UNREACH = 1
cdef enum:
    C_ICMP6_TIME_EXCEEDED = 3
cdef enum:
    C_ICMP6_ECHO_REQUEST = 128
cdef enum:
    C_ICMP6_ECHO_REPLY = 129
# <linux/icmp.h> SOL_RAW/ICMP_FILTER; <netinet/icmp6.h> ICMP6_FILTER: set bits block.
cdef enum:
    C_SOL_RAW = 255
cdef enum:
    C_ICMP_FILTER = 1
cdef enum:
    C_ICMP6_FILTER = 1

cdef enum:
    C_HEADER_LEN = 8
cdef enum:
    C_TOKEN_LEN = 8
cdef enum:
    C_MAX_INFLIGHT = 65536
cdef enum:
    C_RECV_SIZE = 256
cdef enum:
    C_BATCH = 1024          # messages per sendmmsg/recvmmsg call

ICMP_ECHOREPLY = C_ICMP_ECHOREPLY
ICMP_DEST_UNREACH = C_ICMP_DEST_UNREACH
ICMP_ECHO = C_ICMP_ECHO
ICMP_TIME_EXCEEDED = C_ICMP_TIME_EXCEEDED
ICMP6_DST_UNREACH = C_ICMP6_DST_UNREACH
ICMP6_TIME_EXCEEDED = C_ICMP6_TIME_EXCEEDED
ICMP6_ECHO_REQUEST = C_ICMP6_ECHO_REQUEST
ICMP6_ECHO_REPLY = C_ICMP6_ECHO_REPLY
HEADER_LEN = C_HEADER_LEN
TOKEN_LEN = C_TOKEN_LEN
MIN_PAYLOAD = C_TOKEN_LEN
MAX_INFLIGHT = C_MAX_INFLIGHT
RECV_SIZE = C_RECV_SIZE

# Parse outcomes, in the order of the C codes below.
PARSE_KINDS = ("reply", "error", "short", "bad_checksum", "other_type")
cdef enum:
    K_REPLY = 0
cdef enum:
    K_ERROR = 1
cdef enum:
    K_SHORT = 2
cdef enum:
    K_BAD_CHECKSUM = 3
cdef enum:
    K_OTHER_TYPE = 4

REJECT_REASONS = ("short", "bad_checksum", "other_type", "truncated", "foreign", "stale",
                  "mismatch")
COUNTERS = ("sent", "send_errors", "replies", "unreachables", "timeouts") + REJECT_REASONS
cdef enum:
    N_COUNTERS = 12
cdef enum:
    S_SENT = 0
cdef enum:
    S_SEND_ERRORS = 1
cdef enum:
    S_REPLIES = 2
cdef enum:
    S_UNREACHABLES = 3
cdef enum:
    S_TIMEOUTS = 4
cdef enum:
    S_SHORT = 5             # S_SHORT + (kind - K_SHORT) for the parser's rejects
cdef enum:
    S_TRUNCATED = 8
cdef enum:
    S_FOREIGN = 9
cdef enum:
    S_STALE = 10
cdef enum:
    S_MISMATCH = 11


cdef struct Parsed:
    int kind
    uint16_t ident
    uint16_t seq
    bint has_token
    uint64_t token
    const uint8_t *target      # points into the datagram or at the source address
    int detail


cdef inline uint16_t _be16(const uint8_t *p) noexcept nogil:
    return <uint16_t>((p[0] << 8) | p[1])


cdef inline uint64_t _be64(const uint8_t *p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | p[i]
    return v


cdef inline void _put64(uint8_t *p, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(7, -1, -1):
        p[i] = v & 0xFF
        v >>= 8


cdef void _parse(int family, const uint8_t *d, size_t n, const uint8_t *source,
                 Parsed *out) noexcept nogil:
    cdef size_t ihl, off, qihl
    cdef const uint8_t *icmp
    cdef const uint8_t *inner
    cdef const uint8_t *quoted
    cdef size_t icmp_len, inner_len, quoted_len
    cdef int reply_type, unreach_type, exceeded_type, echo_type, inner_proto
    out.has_token = False
    out.token = 0
    out.ident = 0
    out.seq = 0
    out.target = NULL
    out.detail = 0
    if family == C_AF_INET:
        if n < 20:
            out.kind = K_SHORT
            return
        ihl = (d[0] & 0x0F) * 4
        if ihl < 20 or n < ihl + C_HEADER_LEN:
            out.kind = K_SHORT
            return
        icmp = d + ihl
        icmp_len = n - ihl
        # RFC 792: the checksum covers the ICMP message; raw sockets get it unverified.
        if csum_finish(icmp, icmp_len, 0) != 0:
            out.kind = K_BAD_CHECKSUM
            return
        source = d + 12
        reply_type = C_ICMP_ECHOREPLY
        unreach_type = C_ICMP_DEST_UNREACH
        exceeded_type = C_ICMP_TIME_EXCEEDED
    else:
        # RFC 3542 §3.1: the kernel verified the ICMPv6 checksum before delivery.
        icmp = d
        icmp_len = n
        if n < C_HEADER_LEN:
            out.kind = K_SHORT
            return
        reply_type = C_ICMP6_ECHO_REPLY
        unreach_type = C_ICMP6_DST_UNREACH
        exceeded_type = C_ICMP6_TIME_EXCEEDED
    if icmp[0] == reply_type:
        if icmp[1] != 0:   # RFC 792 / RFC 4443 §4.2: echo reply code is 0
            out.kind = K_OTHER_TYPE
            return
        out.kind = K_REPLY
        out.ident = _be16(icmp + 4)
        out.seq = _be16(icmp + 6)
        if icmp_len >= C_HEADER_LEN + C_TOKEN_LEN:
            out.has_token = True
            out.token = _be64(icmp + 8)
        out.target = source
        return
    if icmp[0] != unreach_type and icmp[0] != exceeded_type:
        out.kind = K_OTHER_TYPE
        return
    # RFC 792 / RFC 4443 §3: an error quotes the offending packet after 8 bytes.
    out.detail = (icmp[0] << 8) | icmp[1]
    inner = icmp + C_HEADER_LEN
    inner_len = icmp_len - C_HEADER_LEN
    if family == C_AF_INET:
        if inner_len < 20:
            out.kind = K_SHORT
            return
        qihl = (inner[0] & 0x0F) * 4
        if (inner[0] >> 4) != 4 or qihl < 20 or inner[9] != IPPROTO_ICMP:
            out.kind = K_OTHER_TYPE
            return
        out.target = inner + 16
        echo_type = C_ICMP_ECHO
    else:
        if inner_len < 40:
            out.kind = K_SHORT
            return
        # We never send extension headers, so ICMPv6 follows the fixed header directly.
        if (inner[0] >> 4) != 6 or inner[6] != IPPROTO_ICMPV6:
            out.kind = K_OTHER_TYPE
            return
        qihl = 40
        out.target = inner + 24
        echo_type = C_ICMP6_ECHO_REQUEST
    if inner_len < qihl + C_HEADER_LEN:
        out.target = NULL
        out.kind = K_SHORT
        return
    quoted = inner + qihl
    quoted_len = inner_len - qihl
    if quoted[0] != echo_type:
        out.target = NULL
        out.kind = K_OTHER_TYPE
        return
    out.kind = K_ERROR
    out.ident = _be16(quoted + 4)
    out.seq = _be16(quoted + 6)
    # RFC 792 promises 8 quoted bytes only; Linux quotes more, so check the token if there.
    if quoted_len >= C_HEADER_LEN + C_TOKEN_LEN:
        out.has_token = True
        out.token = _be64(quoted + 8)


cdef inline size_t _addr_len(int family) noexcept nogil:
    return 4 if family == C_AF_INET else 16


cdef size_t _build(int family, uint8_t *p, uint16_t ident, uint16_t seq, uint64_t token,
                   size_t payload_size) noexcept nogil:
    cdef size_t n = C_HEADER_LEN + payload_size
    cdef uint16_t c
    memset(p, 0, n)
    p[0] = C_ICMP_ECHO if family == C_AF_INET else C_ICMP6_ECHO_REQUEST
    p[4] = ident >> 8
    p[5] = ident & 0xFF
    p[6] = seq >> 8
    p[7] = seq & 0xFF
    _put64(p + 8, token)
    if family == C_AF_INET:
        # IPv6 leaves it 0: the kernel always fills the ICMPv6 checksum (RFC 3542 §3.1).
        c = <uint16_t>csum_finish(p, n, 0)
        p[2] = c >> 8
        p[3] = c & 0xFF
    return n


def build_echo(int family, int identifier, int sequence, token, int payload_size=16):
    """One echo request (ICMP header + payload: 8-byte token, zero padding).

    >>> build_echo(AF_INET, 1, 2, 3, 8).hex()
    '0800f7f9000100020000000000000003'
    """
    if payload_size < C_TOKEN_LEN:
        raise ValueError(f"payload_size must be >= {C_TOKEN_LEN}, got {payload_size}")
    cdef uint64_t tok = <uint64_t>(int(token) & 0xFFFFFFFFFFFFFFFF)
    out = PyBytes_FromStringAndSize(NULL, C_HEADER_LEN + payload_size)
    _build(family, <uint8_t *>PyBytes_AS_STRING(out), identifier & 0xFFFF,
           sequence & 0xFFFF, tok, payload_size)
    return out


def parse_packet(int family, const uint8_t[:] data not None, const uint8_t[:] source not None):
    """Classify one received datagram: ``(kind, identifier, sequence, token, target,
    detail)`` exactly as ``icmp_batch_py.parse_packet``.

    >>> parse_packet(AF_INET6, bytes.fromhex("8100ffff00010002") + bytes(8), bytes(16))[:4]
    ('reply', 1, 2, 0)
    """
    cdef Parsed p
    cdef const uint8_t *d = &data[0] if data.shape[0] else NULL
    cdef const uint8_t *s = &source[0] if source.shape[0] else NULL
    if family == C_AF_INET6 and s == NULL:
        raise ValueError("source must be a packed IPv6 address")
    _parse(family, d, data.shape[0], s, &p)
    if p.kind > K_ERROR:
        return (PARSE_KINDS[p.kind], 0, 0, -1, b"", 0)
    target = (<const char *>p.target)[:_addr_len(family)] if p.target != NULL else b""
    return (PARSE_KINDS[p.kind], p.ident, p.seq, p.token if p.has_token else -1, target,
            p.detail)


def make_identifier(fd):
    """Echo identifier for the engine owning socket ``fd``: pid-derived, offset by
    the fd (unique among this process's sockets), same formula as the twin."""
    pid = os.getpid()
    return (pid * 0x9E3779B1 + fd) & 0xFFFF


cdef struct Slot:
    uint8_t addr[16]
    uint64_t token
    int64_t sent_ns
    int64_t deadline_ns
    int32_t pos                 # index in the in-flight array, -1 when free


cdef class IcmpBatch:
    """Echo engine for one address family, driven by the caller's clock.

    ``send(targets, now_ns, timeout_ns)``, ``drain(now_ns)``, ``expire(now_ns)``;
    ``fileno()`` for ``loop.add_reader``.  See ``icmp_batch_py.IcmpBatch``.
    """

    cdef int _fd
    cdef int _family
    cdef int _addrlen
    cdef size_t _payload_size
    cdef size_t _pkt_len
    cdef uint32_t _cap              # max_inflight: the table never grows past it
    cdef uint32_t _alloc            # slots allocated so far (grown on demand)
    cdef uint16_t _ident
    cdef uint64_t _cookie
    cdef uint32_t _serial
    cdef Slot *_slots
    cdef uint32_t *_free_ring
    cdef uint32_t _free_head
    cdef uint32_t _free_count
    cdef uint32_t *_inflight
    cdef uint32_t _n_inflight
    cdef list _names
    cdef list _ready
    cdef uint64_t _stats[N_COUNTERS]
    cdef uint8_t *_parsed           # packed addresses of one send() call
    cdef size_t _parsed_cap
    cdef mmsghdr *_smsg
    cdef iovec *_siov
    cdef sockaddr_in6 *_sname
    cdef uint8_t *_spkt
    cdef uint32_t *_sslot
    cdef mmsghdr *_rmsg
    cdef iovec *_riov
    cdef sockaddr_in6 *_rname
    cdef uint8_t *_rbuf

    def __cinit__(self):
        self._fd = -1

    def __init__(self, int family=C_AF_INET, *, int max_inflight=C_MAX_INFLIGHT,
                 int payload_size=16, int rcvbuf=4 << 20):
        cdef uint32_t i, passed4
        cdef uint32_t words6[8]
        cdef int one_type
        if family != C_AF_INET and family != C_AF_INET6:
            raise ValueError(f"family must be AF_INET or AF_INET6, got {family}")
        if not 1 <= max_inflight <= C_MAX_INFLIGHT:
            raise ValueError(f"max_inflight must be in 1..{C_MAX_INFLIGHT}, got {max_inflight}")
        if payload_size < C_TOKEN_LEN or payload_size > C_RECV_SIZE - 68:
            raise ValueError(f"payload_size must be in {C_TOKEN_LEN}..{C_RECV_SIZE - 68}")
        if self._fd >= 0:
            raise RuntimeError("IcmpBatch.__init__ called twice")
        self._family = family
        self._addrlen = _addr_len(family)
        self._payload_size = payload_size
        self._pkt_len = C_HEADER_LEN + payload_size
        self._cap = max_inflight
        self._alloc = 0
        self._smsg = <mmsghdr *>malloc(sizeof(mmsghdr) * C_BATCH)
        self._siov = <iovec *>malloc(sizeof(iovec) * C_BATCH)
        self._sname = <sockaddr_in6 *>malloc(sizeof(sockaddr_in6) * C_BATCH)
        self._spkt = <uint8_t *>malloc(self._pkt_len * C_BATCH)
        self._sslot = <uint32_t *>malloc(sizeof(uint32_t) * C_BATCH)
        self._rmsg = <mmsghdr *>malloc(sizeof(mmsghdr) * C_BATCH)
        self._riov = <iovec *>malloc(sizeof(iovec) * C_BATCH)
        self._rname = <sockaddr_in6 *>malloc(sizeof(sockaddr_in6) * C_BATCH)
        self._rbuf = <uint8_t *>malloc(C_RECV_SIZE * C_BATCH)
        if (self._smsg == NULL or self._siov == NULL or self._sname == NULL
                or self._spkt == NULL or self._sslot == NULL or self._rmsg == NULL
                or self._riov == NULL or self._rname == NULL or self._rbuf == NULL):
            raise MemoryError()
        self._free_head = 0
        self._free_count = 0
        self._n_inflight = 0
        memset(self._stats, 0, sizeof(self._stats))
        # The message headers point at fixed buffers once; only lengths change per call.
        memset(self._smsg, 0, sizeof(mmsghdr) * C_BATCH)
        memset(self._rmsg, 0, sizeof(mmsghdr) * C_BATCH)
        memset(self._sname, 0, sizeof(sockaddr_in6) * C_BATCH)
        for i in range(C_BATCH):
            self._siov[i].iov_base = self._spkt + i * self._pkt_len
            self._siov[i].iov_len = self._pkt_len
            self._smsg[i].msg_hdr.msg_iov = &self._siov[i]
            self._smsg[i].msg_hdr.msg_iovlen = 1
            self._smsg[i].msg_hdr.msg_name = &self._sname[i]
            self._smsg[i].msg_hdr.msg_namelen = (sizeof(sockaddr_in) if family == C_AF_INET
                                                 else sizeof(sockaddr_in6))
            self._sname[i].sin6_family = family
            self._riov[i].iov_base = self._rbuf + i * C_RECV_SIZE
            self._riov[i].iov_len = C_RECV_SIZE
            self._rmsg[i].msg_hdr.msg_iov = &self._riov[i]
            self._rmsg[i].msg_hdr.msg_iovlen = 1
            self._rmsg[i].msg_hdr.msg_name = &self._rname[i]
        self._names = []
        self._ready = []

        cdef int fd = c_socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
                      IPPROTO_ICMP if family == C_AF_INET else IPPROTO_ICMPV6)
        if fd < 0:
            _raise_errno()
        self._fd = fd
        if family == C_AF_INET:
            passed4 = ((1u << C_ICMP_ECHOREPLY) | (1u << C_ICMP_DEST_UNREACH)
                       | (1u << C_ICMP_TIME_EXCEEDED))
            passed4 = ~passed4
            if setsockopt(fd, C_SOL_RAW, C_ICMP_FILTER, &passed4, sizeof(passed4)) != 0:
                self.close()
                _raise_errno()
        else:
            for i in range(8):
                words6[i] = 0xFFFFFFFFu
            for one_type in (C_ICMP6_ECHO_REPLY, C_ICMP6_DST_UNREACH, C_ICMP6_TIME_EXCEEDED):
                words6[one_type >> 5] &= ~(1u << (one_type & 31))
            if setsockopt(fd, IPPROTO_ICMPV6, C_ICMP6_FILTER, words6, sizeof(words6)) != 0:
                self.close()
                _raise_errno()
        # A tick's replies arrive in one burst; SO_RCVBUFFORCE (root) passes rmem_max.
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(int)) != 0:
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(int))
        self._ident = make_identifier(fd)
        self._cookie = <uint64_t>int.from_bytes(os.urandom(4), "big") << 32
        self._serial = 0

    def __dealloc__(self):
        if self._fd >= 0:
            c_close(self._fd)
            self._fd = -1
        free(self._slots)
        free(self._free_ring)
        free(self._inflight)
        free(self._parsed)
        free(self._smsg)
        free(self._siov)
        free(self._sname)
        free(self._spkt)
        free(self._sslot)
        free(self._rmsg)
        free(self._riov)
        free(self._rname)
        free(self._rbuf)

    @property
    def family(self):
        return self._family

    @property
    def identifier(self):
        return self._ident

    @property
    def pending(self):
        """Probes in flight (sent, not yet answered or expired)."""
        return self._n_inflight

    @property
    def capacity(self):
        """Free probe slots: how many more targets send() can take now."""
        return self._free_count + (self._cap - self._alloc)

    def fileno(self):
        return self._fd

    def stats(self):
        """Counters: sent, send_errors, replies, unreachables, timeouts, and one per
        reject reason (see REJECT_REASONS)."""
        return {name: self._stats[i] for i, name in enumerate(COUNTERS)}

    cdef int _grow(self) except -1:
        """Called with no free slot: double the table (up to max_inflight) so memory
        follows the peak number of probes in flight.  Returns 1 if it grew."""
        cdef uint32_t old = self._alloc, new, i
        cdef Slot *slots
        cdef uint32_t *ring
        cdef uint32_t *inflight
        if old >= self._cap:
            return 0
        new = min(self._cap, max(<uint32_t>64, old * 2))
        slots = <Slot *>realloc(self._slots, sizeof(Slot) * new)
        if slots == NULL:
            raise MemoryError()
        self._slots = slots
        ring = <uint32_t *>realloc(self._free_ring, sizeof(uint32_t) * new)
        if ring == NULL:
            raise MemoryError()
        self._free_ring = ring
        inflight = <uint32_t *>realloc(self._inflight, sizeof(uint32_t) * new)
        if inflight == NULL:
            raise MemoryError()
        self._inflight = inflight
        # The ring is empty, so it restarts at 0 holding just the new slots.
        for i in range(old, new):
            self._slots[i].pos = -1
            self._free_ring[i - old] = i
        self._free_head = 0
        self._free_count = new - old
        self._names.extend([None] * (new - old))
        self._alloc = new
        return 1

    cdef inline uint32_t _take_slot(self) noexcept nogil:
        cdef uint32_t s = self._free_ring[self._free_head]
        self._free_head = (self._free_head + 1) % self._alloc
        self._free_count -= 1
        return s

    cdef inline void _untake_slot(self, uint32_t s) noexcept nogil:
        # Back at the head: the slot was never used, it may be handed out again first.
        self._free_head = (self._free_head + self._alloc - 1) % self._alloc
        self._free_ring[self._free_head] = s
        self._free_count += 1

    cdef inline void _release(self, uint32_t s) noexcept nogil:
        # Swap-remove from the in-flight array, then queue the slot at the tail so a
        # sequence number is reused as late as possible.
        cdef int32_t pos = self._slots[s].pos
        cdef uint32_t last = self._inflight[self._n_inflight - 1]
        self._inflight[pos] = last
        self._slots[last].pos = pos
        self._n_inflight -= 1
        self._slots[s].pos = -1
        self._free_ring[(self._free_head + self._free_count) % self._alloc] = s
        self._free_count += 1

    cdef int _parse_targets(self, targets, Py_ssize_t n) except -1:
        cdef Py_ssize_t i
        cdef bytes raw
        cdef uint8_t *grown
        if <size_t>n * 16 > self._parsed_cap:
            grown = <uint8_t *>malloc(<size_t>n * 16)
            if grown == NULL:
                raise MemoryError()
            free(self._parsed)
            self._parsed = grown
            self._parsed_cap = <size_t>n * 16
        for i in range(n):
            t = targets[i]
            if not isinstance(t, str):
                raise ValueError(f"address must be str, got {type(t).__name__}")
            if "\0" in <str>t:       # inet_pton would stop at the NUL and accept a prefix
                raise ValueError(f"not an address: {t!r}")
            raw = (<str>t).encode("ascii", "replace")
            if inet_pton(self._family, PyBytes_AS_STRING(raw), self._parsed + i * 16) != 1:
                raise ValueError(f"not an address of family {self._family}: {t!r}")
        return 0

    def send(self, targets, long long now_ns, long long timeout_ns, names=None):
        """Send one echo request to each target; return how many targets were taken.

        ``targets[:n]`` are in flight (or failed at once: their SEND_ERROR comes out
        of the next drain()); ``targets[n:]`` were not sent because the probe table
        or the socket buffer is full.  ValueError, before sending anything, for an
        address that does not parse.  With ``names``, results name a probe by
        ``names[i]`` instead of its address.
        """
        self._require_open()
        cdef Py_ssize_t n = len(targets)
        if names is None:
            names = targets
        elif len(names) != n:
            raise ValueError("names must match targets one for one")
        cdef Py_ssize_t done = 0, k, j, r, start
        cdef uint32_t s
        cdef Slot *slot
        cdef int err
        cdef sockaddr_in *sin
        cdef int64_t deadline = now_ns + timeout_ns
        if n == 0:
            return 0
        self._parse_targets(targets, n)
        while done < n and (self._free_count > 0 or self._grow()):
            # Build one batch of packets straight into the preallocated buffers.
            k = 0
            while k < C_BATCH and done + k < n and (self._free_count > 0 or self._grow()):
                s = self._take_slot()
                self._sslot[k] = s
                slot = &self._slots[s]
                memcpy(slot.addr, self._parsed + (done + k) * 16, self._addrlen)
                self._serial += 1
                slot.token = self._cookie | self._serial
                slot.sent_ns = now_ns
                slot.deadline_ns = deadline
                _build(self._family, self._spkt + k * self._pkt_len, self._ident,
                       <uint16_t>s, slot.token, self._payload_size)
                if self._family == C_AF_INET:
                    sin = <sockaddr_in *>&self._sname[k]
                    memcpy(&sin.sin_addr, slot.addr, 4)
                else:
                    memcpy(&self._sname[k].sin6_addr, slot.addr, 16)
                k += 1
            start = 0
            while start < k:
                with nogil:
                    r = sendmmsg(self._fd, self._smsg + start, k - start, 0)
                    err = errno
                if r > 0:
                    for j in range(start, start + r):
                        self._enter(self._sslot[j], names[done + j])
                    self._stats[S_SENT] += r
                    start += r
                    continue
                if r == 0:
                    err = EAGAIN        # nothing sent and no error: treat as a full buffer
                if err == EINTR:
                    continue
                if err == EAGAIN or err == EWOULDBLOCK or err == ENOBUFS:
                    # Socket buffer full: hand the unsent slots back, the caller retries.
                    for j in range(k - 1, start - 1, -1):
                        self._untake_slot(self._sslot[j])
                    return done + start
                # A per-destination failure (no route, firewall): report it and go on.
                self._untake_slot(self._sslot[start])
                self._stats[S_SEND_ERRORS] += 1
                self._ready.append((names[done + start], SEND_ERROR, err))
                # The vector is contiguous: resume sendmmsg just past the failed one.
                start += 1
            done += k
        return done

    cdef inline void _enter(self, uint32_t s, object name):
        self._slots[s].pos = self._n_inflight
        self._inflight[self._n_inflight] = s
        self._n_inflight += 1
        self._names[s] = name

    def drain(self, long long now_ns, int max_messages=65536, list replies=None):
        """Read every datagram ready (at most ``max_messages``) and return the results
        they complete: ``(address, REPLY, rtt_ns)`` or ``(address, UNREACHABLE,
        type << 8 | code)``, plus any SEND_ERROR from the last send().  With
        ``replies``, a REPLY only appends the probe's name there."""
        self._require_open()
        cdef list results = self._ready
        self._ready = []
        cdef int total = 0, want, r, j, err
        cdef Parsed p
        cdef const uint8_t *src
        cdef Slot *slot
        cdef uint32_t s
        cdef sockaddr_in *sin
        while total < max_messages:
            want = min(C_BATCH, max_messages - total)
            for j in range(want):
                self._rmsg[j].msg_hdr.msg_namelen = sizeof(sockaddr_in6)
                self._rmsg[j].msg_hdr.msg_flags = 0
            with nogil:
                r = recvmmsg(self._fd, self._rmsg, want, MSG_DONTWAIT, NULL)
                err = errno
            if r < 0:
                if err == EINTR:
                    continue
                if err == EAGAIN or err == EWOULDBLOCK:
                    break
                self._ready = results       # keep what we have for the next call
                _raise_errno(err)
            for j in range(r):
                if self._rmsg[j].msg_hdr.msg_flags & MSG_TRUNC:
                    self._stats[S_TRUNCATED] += 1
                    continue
                if self._family == C_AF_INET:
                    sin = <sockaddr_in *>&self._rname[j]
                    src = <const uint8_t *>&sin.sin_addr
                else:
                    src = self._rname[j].sin6_addr.s6_addr
                _parse(self._family, self._rbuf + j * C_RECV_SIZE, self._rmsg[j].msg_len,
                       src, &p)
                if p.kind > K_ERROR:
                    self._stats[S_SHORT + p.kind - K_SHORT] += 1
                    continue
                if p.ident != self._ident:
                    self._stats[S_FOREIGN] += 1
                    continue
                s = p.seq
                if s >= self._alloc or self._slots[s].pos < 0:
                    self._stats[S_STALE] += 1
                    continue
                slot = &self._slots[s]
                if memcmp(slot.addr, p.target, self._addrlen) != 0:
                    self._stats[S_MISMATCH] += 1
                    continue
                if (p.has_token or p.kind == K_REPLY) and (not p.has_token
                                                           or p.token != slot.token):
                    self._stats[S_STALE] += 1      # an earlier probe of this address
                    continue
                name = self._names[s]
                self._names[s] = None
                self._release(s)
                if p.kind == K_REPLY:
                    self._stats[S_REPLIES] += 1
                    if replies is not None:
                        replies.append(name)
                    else:
                        results.append((name, REPLY, now_ns - slot.sent_ns))
                else:
                    self._stats[S_UNREACHABLES] += 1
                    results.append((name, UNREACHABLE, p.detail))
            total += r
            if r < want:
                break
        return results

    def expire(self, long long now_ns):
        """Forget the probes whose deadline is ``<= now_ns``; return their addresses
        (their names, when send() was given names)."""
        cdef list out = []
        cdef uint32_t i = 0, s
        while i < self._n_inflight:
            s = self._inflight[i]
            if self._slots[s].deadline_ns <= now_ns:
                out.append(self._names[s])
                self._names[s] = None
                self._release(s)       # moves the last entry to i: look at i again
            else:
                i += 1
        self._stats[S_TIMEOUTS] += len(out)
        return out

    def close(self):
        if self._fd >= 0:
            c_close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    cdef int _require_open(self) except -1:
        if self._fd < 0:
            raise ValueError("IcmpBatch is closed")
        return 0


cdef int _raise_errno(int err=-1) except -1:
    if err < 0:
        err = errno
    raise OSError(err, strerror(err).decode())


def ping_many(targets, double timeout=1.0, *, int payload_size=16):
    """Blocking convenience: ping every target once, wait at most ``timeout``
    seconds, return ``{address: rtt_seconds or None}``.  Families told apart by ':'.
    """
    wanted = list(dict.fromkeys(targets))
    result = dict.fromkeys(wanted)
    v4 = [t for t in wanted if ":" not in t]
    v6 = [t for t in wanted if ":" in t]
    engines = []
    queues = []
    cdef pollfd fds[2]
    cdef int nfds = 0, wait_ms
    try:
        for fam, queue in ((AF_INET, v4), (AF_INET6, v6)):
            if queue:
                eng = IcmpBatch(fam, payload_size=payload_size)
                engines.append(eng)
                queues.append(queue)
                fds[nfds].fd = eng.fileno()
                fds[nfds].events = POLLIN
                nfds += 1
        deadline = time.monotonic_ns() + int(timeout * 1e9)
        while True:
            now = time.monotonic_ns()
            busy = False
            for i in range(nfds):
                eng = engines[i]
                queue = queues[i]
                if queue:
                    del queue[: eng.send(queue, now, deadline - now)]
                for address, kind, value in eng.drain(time.monotonic_ns()):
                    if kind == REPLY:
                        result[address] = value / 1e9
                busy = busy or eng.pending > 0 or bool(queue)
            now = time.monotonic_ns()
            if now >= deadline or not busy:
                break
            wait_ms = max(1, min(50, (deadline - now) // 1_000_000))
            with nogil:
                poll(fds, nfds, wait_ms)
        return result
    finally:
        for eng in engines:
            eng.close()


# --------------------------------------------------------------------------- the pool

_log = logging.getLogger("hafast.check")

SWEEP_S = _pool.SWEEP_S
RESEND_S = _pool.RESEND_S
BAD_ADDRESS = _pool.BAD_ADDRESS


cdef class Waiter:
    """One attempt's echo (see ``icmp_batch_py.Waiter``)."""

    cdef public object done

    def __init__(self, done):
        self.done = done

    def cancel(self):
        self.done = None


cdef class EchoPool:
    """The PING_CHECKs of one loop over one IcmpBatch; see ``icmp_batch_py.EchoPool``.

    Compiled so that an echo's whole path (submit, the batch, the reply, the
    ``done`` call) runs no Python frame of its own: with the compiled Check, a
    steady PING_CHECK runs the kind's ``start`` and nothing else in Python.
    Only that path is here: the pool's state keeping (a pruned or a partial
    batch, a bad address, the sweep, error replies, close) is
    ``hafast._core.echo_pool``'s, which the pure twin calls too.
    """

    cdef public object loop
    cdef public int family
    cdef public object ok, timeout, fail, engine
    cdef public list addresses, names
    cdef public long long timeout_ns
    cdef public bint flush_armed
    cdef public object sweep_handle
    cdef public int users
    cdef object _flush_cb, _monotonic_ns
    cdef IcmpBatch _batch        # engine, when it is the compiled one

    def __init__(self, loop, int family, ok, timeout, fail, engine=None):
        self.loop = loop
        self.family = family
        self.ok, self.timeout, self.fail = ok, timeout, fail
        self.engine = IcmpBatch(family) if engine is None else engine
        self._batch = self.engine if isinstance(self.engine, IcmpBatch) else None
        self.addresses = []
        self.names = []
        self.timeout_ns = 1_000_000_000
        self.flush_armed = False
        self.sweep_handle = None
        self.users = 0
        self._flush_cb = self.flush
        self._monotonic_ns = time.monotonic_ns
        loop.add_reader(self.engine.fileno(), self.readable)

    def close(self):
        _pool.close(self)

    cdef bint _idle(self) except -1:
        if self._batch is not None:
            return self._batch._n_inflight == 0
        return not self.engine.pending

    def submit(self, address, done, long long timeout_ns):
        cdef Waiter waiter = Waiter.__new__(Waiter)
        waiter.done = done
        self.addresses.append(address)
        self.names.append(waiter)
        if timeout_ns > self.timeout_ns or self._idle():
            self.timeout_ns = timeout_ns
        if not self.flush_armed:
            self.flush_armed = True
            self.loop.call_soon(self._flush_cb)
        return waiter

    def flush(self):
        """Send this tick's batch: every address queued whose attempt still waits."""
        cdef Py_ssize_t taken, i
        cdef list addresses = self.addresses, names = self.names
        self.flush_armed = False
        self.addresses, self.names = [], []
        for i in range(len(names)):
            if (<Waiter>names[i]).done is None:  # cancelled before it went out
                addresses, names = _pool.without_cancelled(addresses, names)
                break
        if not names:
            return
        now = self._monotonic_ns()
        try:
            taken = self.engine.send(addresses, now, self.timeout_ns, names)
        except ValueError:
            taken = _pool.send_one_by_one(self, addresses, names, now)
        # (the steady tick, all taken and the sweep running, calls no Python)
        if taken < len(names) or self.sweep_handle is None:
            _pool.after_send(self, addresses, names, taken)

    def readable(self):
        cdef list replies = []
        errors = self.engine.drain(self._monotonic_ns(), 65536, replies)
        ok = self.ok
        for waiter in replies:
            self._resolve(<Waiter>waiter, ok)
        if errors:
            _pool.failed(self, errors)

    def sweep(self):
        _pool.sweep(self)

    def resolve(self, Waiter waiter, result):
        self._resolve(waiter, result)

    cdef _resolve(self, Waiter waiter, result):
        done = waiter.done
        waiter.done = None
        if done is not None:
            try:
                done(result)
            except Exception:  # one consumer's bug must not lose the others' results
                _log.exception("PING_CHECK: result callback raised")
