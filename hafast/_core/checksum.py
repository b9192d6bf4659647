"""RFC 1071 internet checksum and VRRPv3 pseudo-header sums: compiled or twin.

Partial sums are folded 16-bit one's complement sums (``0..0xFFFF``, not
complemented); add them with ``ones_sum(data, start=partial)`` and complement
once with ``finish``.  See ``checksum_py`` for the reference behaviour.

>>> msg = bytes.fromhex("3133 5a01 0064 0000") + bytes(16)
>>> part = pseudo_sum_ipv6(bytes(16), bytes(16), len(msg))
>>> 0 <= internet_checksum(msg, part) <= 0xFFFF
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hafast._core._select import choose

# Callers are type-checked against the compiled module's stub (stubtest holds the
# stub to the .so); the twin has its own annotations and the tests run both.
if TYPE_CHECKING:
    from hafast._core.checksum_c import (
        IPPROTO_VRRP,
        finish,
        fold,
        internet_checksum,
        ones_sum,
        pseudo_sum_ipv4,
        pseudo_sum_ipv6,
    )
else:
    _impl = choose("checksum")
    IPPROTO_VRRP = _impl.IPPROTO_VRRP
    finish = _impl.finish
    fold = _impl.fold
    internet_checksum = _impl.internet_checksum
    ones_sum = _impl.ones_sum
    pseudo_sum_ipv4 = _impl.pseudo_sum_ipv4
    pseudo_sum_ipv6 = _impl.pseudo_sum_ipv6

__all__ = [
    "IPPROTO_VRRP",
    "finish",
    "fold",
    "internet_checksum",
    "ones_sum",
    "pseudo_sum_ipv4",
    "pseudo_sum_ipv6",
]
