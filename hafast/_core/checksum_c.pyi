"""Stub for the compiled RFC 1071 checksum module (twin: checksum_py)."""

from typing import TypeAlias

_Buffer: TypeAlias = bytes | bytearray | memoryview

IPPROTO_VRRP: int
__all__ = [
    "IPPROTO_VRRP",
    "finish",
    "fold",
    "internet_checksum",
    "ones_sum",
    "pseudo_sum_ipv4",
    "pseudo_sum_ipv6",
]

def fold(value: int) -> int: ...
def ones_sum(data: _Buffer, start: int = 0) -> int: ...
def finish(partial: int) -> int: ...
def internet_checksum(data: _Buffer, start: int = 0) -> int: ...
def pseudo_sum_ipv4(src: _Buffer, dst: _Buffer, length: int, protocol: int = 112) -> int: ...
def pseudo_sum_ipv6(src: _Buffer, dst: _Buffer, length: int, next_header: int = 112) -> int: ...
