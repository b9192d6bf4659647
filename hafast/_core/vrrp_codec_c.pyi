"""Stub for the compiled VRRP codec (twin: vrrp_codec_py, which documents the behaviour)."""

from collections.abc import Sequence
from typing import TypeAlias

from typing_extensions import disjoint_base

_Buffer: TypeAlias = bytes | bytearray | memoryview

__all__ = ["Advert", "Expect", "decode_ipv4", "decode_payload", "encode", "encode_ipv4"]

@disjoint_base
class Advert:
    def __init__(self, reason: str = "ok", family: int = 0) -> None: ...
    @property
    def reason(self) -> str: ...
    @property
    def family(self) -> int: ...
    @property
    def src(self) -> bytes: ...
    @property
    def dst(self) -> bytes: ...
    @property
    def ttl(self) -> int: ...
    @property
    def ah(self) -> bool: ...
    @property
    def ah_spi(self) -> int: ...
    @property
    def ah_seq(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def type(self) -> int: ...
    @property
    def vrid(self) -> int: ...
    @property
    def priority(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def auth_type(self) -> int: ...
    @property
    def adver_int(self) -> int: ...
    @property
    def checksum(self) -> int: ...
    @property
    def checksum_mode(self) -> str: ...
    @property
    def addresses(self) -> tuple[bytes, ...]: ...
    @property
    def auth_data(self) -> bytes: ...
    @property
    def ok(self) -> bool: ...
    def fields(self) -> tuple[object, ...]: ...

@disjoint_base
class Expect:
    def __init__(
        self,
        version: int = 0,
        auth_type: int = -1,
        auth_data: _Buffer | None = None,
        adver_int: int = 0,
        v3_checksum: str = "any",
        check_ttl: bool = True,
    ) -> None: ...
    @property
    def version(self) -> int: ...
    @property
    def auth_type(self) -> int: ...
    @property
    def auth_data(self) -> bytes | None: ...
    @property
    def adver_int(self) -> int: ...
    @property
    def v3_checksum(self) -> str: ...
    @property
    def check_ttl(self) -> bool: ...

def decode_ipv4(
    packet: _Buffer,
    expect: Expect | None = None,
    *,
    check_ttl: bool = True,
    version: int = 0,
    auth_type: int = -1,
    auth_data: _Buffer | None = None,
    adver_int: int = 0,
    v3_checksum: str = "any",
) -> Advert: ...
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
    v3_checksum: str = "any",
) -> Advert: ...
def encode(
    version: int,
    vrid: int,
    priority: int,
    addresses: Sequence[_Buffer],
    adver_int: int,
    *,
    family: int = 4,
    auth_type: int = 0,
    auth_data: _Buffer = b"",
    src: _Buffer | None = None,
    dst: _Buffer | None = None,
    v3_checksum: str = "pseudo_header",
) -> bytes: ...
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
    auth_type: int = 0,
    auth_data: _Buffer = b"",
    v3_checksum: str = "pseudo_header",
    ttl: int = 255,
    tos: int = 192,
    ah_seq: int = 0,
    unicast: bool = False,
) -> bytes: ...
