from collections.abc import Iterable, Sequence
from typing import Any

from typing_extensions import disjoint_base

from hafast._core.checksum_c import internet_checksum as internet_checksum

AF_INET: int
AF_INET6: int
REPLY: int
UNREACHABLE: int
SEND_ERROR: int
ICMP_ECHOREPLY: int
ICMP_DEST_UNREACH: int
ICMP_ECHO: int
ICMP_TIME_EXCEEDED: int
ICMP6_DST_UNREACH: int
ICMP6_TIME_EXCEEDED: int
ICMP6_ECHO_REQUEST: int
ICMP6_ECHO_REPLY: int
HEADER_LEN: int
TOKEN_LEN: int
MIN_PAYLOAD: int
MAX_INFLIGHT: int
RECV_SIZE: int
PARSE_KINDS: tuple[str, ...]
REJECT_REASONS: tuple[str, ...]
COUNTERS: tuple[str, ...]

def build_echo(
    family: int, identifier: int, sequence: int, token: int, payload_size: int = 16
) -> bytes: ...
def parse_packet(
    family: int, data: bytes, source: bytes
) -> tuple[str, int, int, int, bytes, int]: ...
def make_identifier(fd: int) -> int: ...

@disjoint_base
class IcmpBatch:
    def __init__(
        self,
        family: int = ...,
        *,
        max_inflight: int = ...,
        payload_size: int = 16,
        rcvbuf: int = ...,
    ) -> None: ...
    @property
    def family(self) -> int: ...
    @property
    def identifier(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    def fileno(self) -> int: ...
    def stats(self) -> dict[str, int]: ...
    def send(self, targets: Sequence[str], now_ns: int, timeout_ns: int,
             names: Sequence[Any] | None = None) -> int: ...
    def drain(self, now_ns: int, max_messages: int = 65536,
              replies: list[Any] | None = None) -> list[tuple[Any, int, int]]: ...
    def expire(self, now_ns: int) -> list[Any]: ...
    def close(self) -> None: ...
    def __enter__(self) -> IcmpBatch: ...
    def __exit__(self, *exc: object) -> None: ...

def ping_many(
    targets: Iterable[str], timeout: float = 1.0, *, payload_size: int = 16
) -> dict[str, float | None]: ...

SWEEP_S: float
RESEND_S: float
BAD_ADDRESS: int

@disjoint_base
class Waiter:
    done: Any
    def __init__(self, done: Any) -> None: ...
    def cancel(self) -> None: ...

@disjoint_base
class EchoPool:
    loop: Any
    family: int
    ok: Any
    timeout: Any
    fail: Any
    engine: Any
    addresses: list[Any]
    names: list[Any]
    timeout_ns: int
    flush_armed: bool
    sweep_handle: Any
    users: int
    def __init__(self, loop: Any, family: int, ok: Any, timeout: Any, fail: Any,
                 engine: Any = None) -> None: ...
    def close(self) -> None: ...
    def submit(self, address: Any, done: Any, timeout_ns: int) -> Waiter: ...
    def flush(self) -> None: ...
    def readable(self) -> None: ...
    def sweep(self) -> None: ...
    def resolve(self, waiter: Waiter, result: Any) -> None: ...
