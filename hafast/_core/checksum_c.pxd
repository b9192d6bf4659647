# RFC 1071 sums in C, written once: checksum_c exposes them to Python, and other
# Cython modules (vrrp_codec_c, icmp_batch_c) cimport them.  They are inline here,
# not declared here and defined in checksum_c.pyx, so a cimporting module compiles
# its own copy into its inner loop instead of calling through checksum_c's C-API
# capsule (and so needs no import of checksum_c at run time).
#
# Every sum here is *folded*: a 16-bit one's complement sum in 0..0xFFFF, not
# complemented; 0 only for an all-zero input.  Complement once, at the end:
# ``(~csum_fold(a + b)) & 0xFFFF``.

from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef inline uint32_t csum_fold(uint64_t total) noexcept nogil:
    # End-around carry: two rounds bring any 64-bit total into 17 bits, a third
    # into 16; looping keeps it obviously right for every input.
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return <uint32_t>total


# Folded sum of the big-endian 16-bit words at p[0:n] plus ``start`` (an odd last
# byte is the high half of a word padded with zero, RFC 1071 §4.1).
cdef inline uint32_t csum_add(const uint8_t *p, Py_ssize_t n, uint64_t start) noexcept nogil:
    cdef uint64_t total = start
    cdef Py_ssize_t i = 0
    # Two words per step; a 64-bit accumulator cannot overflow for any buffer
    # Python can hold (2**48 words of at most 0xFFFF).
    while i + 4 <= n:
        total += ((<uint32_t>p[i] << 8) | p[i + 1]) + ((<uint32_t>p[i + 2] << 8) | p[i + 3])
        i += 4
    if i + 2 <= n:
        total += (<uint32_t>p[i] << 8) | p[i + 1]
        i += 2
    if i < n:
        total += <uint32_t>p[i] << 8  # RFC 1071 §4.1: pad the odd byte with zero
    return csum_fold(total)


# The RFC 1071 checksum field value of p[0:n]: the complemented sum.
cdef inline uint32_t csum_finish(const uint8_t *p, Py_ssize_t n, uint64_t start) noexcept nogil:
    return ~csum_add(p, n, start) & 0xFFFF


# Folded IPv4 pseudo-header sum: src(4), dst(4), zero, protocol, length(16 bits).
cdef inline uint32_t csum_pseudo_ipv4(const uint8_t *src, const uint8_t *dst,
                                      uint32_t length, uint32_t protocol) noexcept nogil:
    cdef uint64_t total = protocol + length
    total = csum_add(src, 4, total)
    return csum_add(dst, 4, total)


# Folded RFC 8200 §8.1 pseudo-header sum: src(16), dst(16), length(32 bits), 3 zeros, next header.
cdef inline uint32_t csum_pseudo_ipv6(const uint8_t *src, const uint8_t *dst,
                                      uint32_t length, uint32_t next_header) noexcept nogil:
    cdef uint64_t total = (length >> 16) + (length & 0xFFFF) + next_header
    total = csum_add(src, 16, total)
    return csum_add(dst, 16, total)
