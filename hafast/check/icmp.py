"""PING_CHECK: ICMP echo through ONE engine per address family for the whole worker.

Every PING_CHECK of a loop shares an ``EchoPool`` (``hafast._core.icmp_batch``,
compiled beside its twin; one raw socket per family): an attempt queues its address,
and the pool sends everything queued in this loop iteration as one batch
(``sendmmsg`` in the compiled engine), drains replies with one ``recvmmsg`` when
the socket is readable, and expires overdue probes on a sweep timer that runs only
while probes are in flight.  Each attempt sends its own echo, and its reply leads
straight back to it.  The runner still owns each attempt's deadline; cancelling an
attempt only forgets its callback.

keepalived uses an unprivileged ICMP datagram socket per check; the raw socket here
needs root (the daemon has it) and costs one descriptor for ten thousand checks.
``bindto``/``bind_if``/``fwmark`` are not applied to echoes.

Example::

    kind = PingKind(PingCheck(), Target("10.0.0.1"), loop)
    kind.start(print)                 # ProbeResult(ok=True) once the reply is in
"""

from __future__ import annotations

from typing import Any

from hafast._core import icmp_batch
from hafast.check.api import NO_ATTEMPT, TIMEOUT, Attempt, Done, ProbeKind, ProbeResult
from hafast.check.perloop import PerLoop
from hafast.check.tcp import failure

OK = ProbeResult(True)

_pools: PerLoop[Any] = PerLoop()


def _failure(kind: int, value: int, text: str) -> ProbeResult:
    """The result of an echo that came back as an error (``EchoPool``'s ``fail``)."""
    if kind == icmp_batch.UNREACHABLE:
        return ProbeResult(False, "unreachable", f"ICMP type {value >> 8} code {value & 0xFF}")
    if kind == icmp_batch.BAD_ADDRESS:
        return ProbeResult(False, "address", text)
    return failure(value, "send")


def new_pool(loop: Any, family: int, engine: Any = None) -> Any:
    """An :class:`~hafast._core.icmp_batch.EchoPool` with PING_CHECK's results."""
    return icmp_batch.EchoPool(loop, family, OK, TIMEOUT, _failure, engine)


def acquire(loop: Any, family: int) -> Any:
    """The loop's pool for ``family``, made on first use; ``release`` when done."""
    return _pools.acquire(loop, lambda: new_pool(loop, family), family)


def release(pool: Any) -> None:
    _pools.release(pool, pool.family)


class PingKind(ProbeKind):
    __slots__ = ("address", "pool", "timeout_ns")
    keyword = "PING_CHECK"

    def __init__(self, spec: Any, target: Any, loop: Any) -> None:
        super().__init__(spec, target, loop)
        self.pool: Any = None
        self.address: str = target.address
        self.timeout_ns = self.deadline_us() * 1000  # the spec is frozen: once

    def start(self, done: Done) -> Attempt:
        pool = self.pool
        if pool is None:
            family = icmp_batch.AF_INET6 if ":" in self.address else icmp_batch.AF_INET
            try:
                pool = self.pool = acquire(self.loop, family)
            except OSError as exc:
                done(failure(exc.errno or 0, f"raw socket: {exc.strerror}"))
                return NO_ATTEMPT
        return pool.submit(self.address, done, self.timeout_ns)

    def close(self) -> None:
        if self.pool is not None:
            release(self.pool)
            self.pool = None
