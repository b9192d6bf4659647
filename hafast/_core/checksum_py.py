"""RFC 1071 internet checksum and the VRRPv3 pseudo-header sums, in pure Python.

The readable twin of ``checksum_c``.  Partial sums are *folded*: a 16-bit one's
complement sum in ``0..0xFFFF`` (not complemented).  Folded sums add with
``ones_sum(data, start=previous)`` or ``fold(a + b)``, so a caller can sum a
pseudo-header and a message separately and complement once at the end with
``finish``.  A buffer of odd length is summed as if followed by one zero byte
(RFC 1071 §4.1), so a partial sum only composes with what follows it when the
buffer before it had an even length.

>>> hex(internet_checksum(bytes.fromhex("0001f203f4f5f6f7")))  # RFC 1071 §3 example
'0x220d'
>>> internet_checksum(bytes.fromhex("0001f203f4f5f6f7220d"))  # a valid message sums to 0
0
"""

from __future__ import annotations

from typing import TypeAlias

# Anything with the buffer protocol: bytes, bytearray, memoryview, array...
_Buffer: TypeAlias = bytes | bytearray | memoryview

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


def fold(value: int) -> int:
    """Fold a non-negative sum into 16 bits with end-around carry (one's complement).

    The result is 0 only for a zero sum; a non-zero multiple of 0xFFFF folds to
    0xFFFF ("negative zero"), just as repeated carry folding would leave it.

    >>> hex(fold(0x1FFFE))
    '0xffff'
    """
    if value < 0:
        raise ValueError("a one's complement sum is never negative")
    if value == 0:
        return 0
    return (value - 1) % 0xFFFF + 1


def ones_sum(data: _Buffer, start: int = 0) -> int:
    """Folded 16-bit one's complement sum of ``data`` (big-endian words) plus ``start``.

    ``start`` is a previous partial sum, folded or not, in ``0..0xFFFFFFFF``.

    >>> hex(ones_sum(b"\\x00\\x01\\xf2\\x03\\xf4\\xf5\\xf6\\xf7"))
    '0xddf2'
    >>> ones_sum(b"\\x01") == 0x0100  # odd length: padded with one zero byte
    True
    """
    if not 0 <= start <= 0xFFFFFFFF:
        raise ValueError("start must be a partial sum in 0..0xFFFFFFFF")
    view = memoryview(data).cast("B")
    if len(view) % 2:
        # RFC 1071 §4.1: the odd byte is the high byte of a last word padded with zero.
        view = memoryview(view.tobytes() + b"\x00")
    # The buffer read as one big-endian integer is sum(word_i * 65536**i), and
    # 65536 == 1 (mod 0xFFFF): the whole integer is congruent to the plain sum
    # of its words, which is what end-around-carry addition computes (RFC 1071 §2).
    return fold(int.from_bytes(view, "big") + start)


def finish(partial: int) -> int:
    """The checksum field value for a folded partial sum: its one's complement.

    >>> hex(finish(0xDDF2))
    '0x220d'
    """
    return ~fold(partial) & 0xFFFF


def internet_checksum(data: _Buffer, start: int = 0) -> int:
    """RFC 1071 checksum of ``data`` (plus an optional folded partial ``start``).

    Computing it over a message whose checksum field is filled in gives 0 when the
    checksum is right.

    >>> hex(internet_checksum(b"\\x45\\x00\\x00\\x1c"))
    '0xbae3'
    """
    return finish(ones_sum(data, start))


def _check_address(addr: _Buffer, size: int, what: str) -> bytes:
    raw = bytes(addr)
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def pseudo_sum_ipv4(src: _Buffer, dst: _Buffer, length: int, protocol: int = IPPROTO_VRRP) -> int:
    """Folded sum of the IPv4 pseudo-header: src, dst, zero, protocol, length.

    The form keepalived and FRR add to the VRRPv3 checksum over IPv4 by default
    (RFC 5798 §5.2.8 read with RFC 768's pseudo-header; RFC 9568 drops it).

    >>> hex(pseudo_sum_ipv4(bytes([192, 168, 77, 1]), bytes([224, 0, 0, 18]), 12))
    '0xee38'
    """
    if not 0 <= length <= 0xFFFF or not 0 <= protocol <= 0xFF:
        raise ValueError("length must fit 16 bits and protocol 8 bits")
    header = (
        _check_address(src, 4, "IPv4 source")
        + _check_address(dst, 4, "IPv4 destination")
        + bytes((0, protocol))
        + length.to_bytes(2, "big")
    )
    return ones_sum(header)


def pseudo_sum_ipv6(
    src: _Buffer, dst: _Buffer, length: int, next_header: int = IPPROTO_VRRP
) -> int:
    """Folded sum of the RFC 8200 §8.1 (RFC 2460 §8.1) IPv6 pseudo-header.

    Source, destination, 32-bit upper-layer length, three zero bytes, next header.

    >>> src = bytes.fromhex("fe80000000000000000000fffe770002")
    >>> dst = bytes.fromhex("ff020000000000000000000000000012")
    >>> hex(pseudo_sum_ipv6(src, dst, 24))
    '0xfd96'
    """
    if not 0 <= length <= 0xFFFFFFFF or not 0 <= next_header <= 0xFF:
        raise ValueError("length must fit 32 bits and next header 8 bits")
    header = (
        _check_address(src, 16, "IPv6 source")
        + _check_address(dst, 16, "IPv6 destination")
        + length.to_bytes(4, "big")
        + bytes((0, 0, 0, next_header))
    )
    return ones_sum(header)
