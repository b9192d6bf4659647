# cython: language_level=3
"""RFC 1071 internet checksum and the VRRPv3 pseudo-header sums (compiled).

Same public names and behaviour as ``checksum_py``; see its docstrings.  Partial
sums are folded 16-bit one's complement sums (``0..0xFFFF``, not complemented).

>>> hex(internet_checksum(bytes.fromhex("0001f203f4f5f6f7")))  # RFC 1071 §3 example
'0x220d'
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint8_t, uint32_t, uint64_t

# csum_fold, csum_add, csum_pseudo_ipv4/6: inline in checksum_c.pxd (read with this file).

# RFC 5798 §5.2.8 / RFC 9568 §5.2.8: the VRRP IP protocol number used in the pseudo-header.
IPPROTO_VRRP = 112

__all__ = [
    "IPPROTO_VRRP",
    "finish",
    "fold",
    "internet_checksum",
    "ones_sum",
    "pseudo_sum_ipv4",
    "pseudo_sum_ipv6",
]


cdef uint32_t _sum_object(object data, uint64_t start) except? 0xFFFFFFFF:
    """Folded sum of any C-contiguous bytes-like object (buffer released here only)."""
    cdef Py_buffer view
    cdef uint32_t result
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        result = csum_add(<const uint8_t *>view.buf, view.len, start)
    finally:
        PyBuffer_Release(&view)
    return result


cdef bytes _address(object addr, Py_ssize_t size, str what):
    cdef bytes raw = bytes(addr)
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def fold(value: int) -> int:
    """Fold a non-negative sum into 16 bits with end-around carry (one's complement)."""
    if value < 0:
        raise ValueError("a one's complement sum is never negative")
    if value <= 0xFFFFFFFFFFFFFFFF:
        return csum_fold(<uint64_t>value)
    return (value - 1) % 0xFFFF + 1


def ones_sum(data, start: int = 0) -> int:
    """Folded 16-bit one's complement sum of ``data`` (big-endian words) plus ``start``."""
    if not 0 <= start <= 0xFFFFFFFF:
        raise ValueError("start must be a partial sum in 0..0xFFFFFFFF")
    return _sum_object(data, <uint64_t>start)


def finish(partial: int) -> int:
    """The checksum field value for a folded partial sum: its one's complement."""
    return ~fold(partial) & 0xFFFF


def internet_checksum(data, start: int = 0) -> int:
    """RFC 1071 checksum of ``data`` (plus an optional folded partial ``start``)."""
    if not 0 <= start <= 0xFFFFFFFF:
        raise ValueError("start must be a partial sum in 0..0xFFFFFFFF")
    return ~_sum_object(data, <uint64_t>start) & 0xFFFF


def pseudo_sum_ipv4(src, dst, length: int, protocol: int = IPPROTO_VRRP) -> int:
    """Folded sum of the IPv4 pseudo-header: src, dst, zero, protocol, length."""
    if not 0 <= length <= 0xFFFF or not 0 <= protocol <= 0xFF:
        raise ValueError("length must fit 16 bits and protocol 8 bits")
    cdef bytes s = _address(src, 4, "IPv4 source")
    cdef bytes d = _address(dst, 4, "IPv4 destination")
    return csum_pseudo_ipv4(<const uint8_t *>(<char *>s), <const uint8_t *>(<char *>d),
                            <uint32_t>length, <uint32_t>protocol)


def pseudo_sum_ipv6(src, dst, length: int, next_header: int = IPPROTO_VRRP) -> int:
    """Folded sum of the RFC 8200 §8.1 (RFC 2460 §8.1) IPv6 pseudo-header."""
    if not 0 <= length <= 0xFFFFFFFF or not 0 <= next_header <= 0xFF:
        raise ValueError("length must fit 32 bits and next header 8 bits")
    cdef bytes s = _address(src, 16, "IPv6 source")
    cdef bytes d = _address(dst, 16, "IPv6 destination")
    return csum_pseudo_ipv6(<const uint8_t *>(<char *>s), <const uint8_t *>(<char *>d),
                            <uint32_t>length, <uint32_t>next_header)
