# C-level RFC 1071 sums for other Cython modules (vrrp_codec_c cimports these).
#
# Every sum here is *folded*: a 16-bit one's complement sum in 0..0xFFFF, not
# complemented; 0 only for an all-zero input.  Complement once, at the end:
# ``(~csum_fold(a + b)) & 0xFFFF``.

from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef uint32_t csum_fold(uint64_t total) noexcept nogil
# Folded sum of the big-endian 16-bit words at p[0:n] plus ``start`` (an odd last
# byte is the high half of a word padded with zero, RFC 1071 §4.1).
cdef uint32_t csum_add(const uint8_t *p, Py_ssize_t n, uint64_t start) noexcept nogil
# Folded IPv4 pseudo-header sum: src(4), dst(4), zero, protocol, length(16 bits).
cdef uint32_t csum_pseudo_ipv4(const uint8_t *src, const uint8_t *dst,
                               uint32_t length, uint32_t protocol) noexcept nogil
# Folded RFC 8200 §8.1 pseudo-header sum: src(16), dst(16), length(32 bits), 3 zeros, next header.
cdef uint32_t csum_pseudo_ipv6(const uint8_t *src, const uint8_t *dst,
                               uint32_t length, uint32_t next_header) noexcept nogil
