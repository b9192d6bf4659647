"""PING_CHECK: ICMP echo through ONE engine per address family for the whole worker.

Every PING_CHECK of a loop shares an :class:`EchoPool` (one raw socket per family,
``hafast._core.icmp_batch``): an attempt queues its address, and the pool sends
everything queued in this loop iteration as one batch (``sendmmsg`` in the
compiled engine), drains replies with one ``recvmmsg`` when the socket is
readable, and expires overdue probes on a sweep timer that runs only while
probes are in flight.  Two checks of one address in flight together share one
echo.  The runner still owns each attempt's deadline; cancelling an attempt only
forgets its callback.

keepalived uses an unprivileged ICMP datagram socket per check; the raw socket here
needs root (the daemon has it) and costs one descriptor for ten thousand checks.
``bindto``/``bind_if``/``fwmark`` are not applied to echoes.

Example::

    kind = PingKind(PingCheck(), Target("10.0.0.1"), loop)
    kind.start(print)                 # ProbeResult(ok=True) once the reply is in
"""

from __future__ import annotations

import time
from typing import Any

from hafast._core import icmp_batch
from hafast.check.api import NO_ATTEMPT, TIMEOUT, Attempt, Done, ProbeKind, ProbeResult, register
from hafast.check.tcp import failure

OK = ProbeResult(True)
SWEEP_S = 0.1  # how often overdue probes are expired while any is in flight
RESEND_S = 0.001  # a batch the engine could not take whole is offered again this soon

_pools: dict[tuple[int, int], EchoPool] = {}


class Waiter:
    """One attempt waiting for an address's echo; the attempts waiting for the same
    address are chained through ``next`` (no list per echo: almost always one)."""

    __slots__ = ("address", "done", "next", "pool")

    def __init__(self, pool: EchoPool, address: str, done: Done) -> None:
        self.pool = pool
        self.address = address
        self.done: Done | None = done
        self.next: Waiter | None = None

    def cancel(self) -> None:
        if self.done is not None:
            self.done = None
            self.pool.forget(self)


class EchoPool:
    """One :class:`~hafast._core.icmp_batch.IcmpBatch` on one loop, shared by kinds."""

    def __init__(self, loop: Any, family: int) -> None:
        self.loop = loop
        self.family = family
        self.engine = icmp_batch.IcmpBatch(family)
        self.queue: list[str] = []
        self.waiters: dict[str, Waiter] = {}  # address -> first of its chain
        self.inflight: set[str] = set()
        self.timeout_ns = 1_000_000_000
        self.flush_armed = False
        self.sweep_handle: Any = None
        self.users = 0
        loop.add_reader(self.engine.fileno(), self.readable)

    @classmethod
    def acquire(cls, loop: Any, family: int) -> EchoPool:
        key = (id(loop), family)
        pool = _pools.get(key)
        if pool is None or pool.loop is not loop:
            pool = _pools[key] = cls(loop, family)
        pool.users += 1
        return pool

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self.close()

    def close(self) -> None:
        key = (id(self.loop), self.family)
        if _pools.get(key) is self:
            del _pools[key]
        if self.sweep_handle is not None:
            self.sweep_handle.cancel()
            self.sweep_handle = None
        self.loop.remove_reader(self.engine.fileno())
        self.engine.close()
        self.waiters.clear()

    def submit(self, address: str, done: Done, timeout_ns: int) -> Waiter:
        waiter = Waiter(self, address, done)
        first = self.waiters.get(address)
        if first is None:
            self.waiters[address] = waiter
            if address not in self.inflight:
                self.queue.append(address)
        else:
            while first.next is not None:
                first = first.next
            first.next = waiter
        if timeout_ns > self.timeout_ns or not self.inflight:
            self.timeout_ns = timeout_ns
        if not self.flush_armed:
            self.flush_armed = True
            self.loop.call_soon(self.flush)
        return waiter

    def forget(self, waiter: Waiter) -> None:
        first = self.waiters.get(waiter.address)
        if first is waiter:
            if waiter.next is None:
                del self.waiters[waiter.address]
            else:
                self.waiters[waiter.address] = waiter.next
            return
        while first is not None and first.next is not None:
            if first.next is waiter:
                first.next = waiter.next
                return
            first = first.next

    def flush(self) -> None:
        """Send this tick's batch: every address queued and still wanted."""
        self.flush_armed = False
        batch = [a for a in self.queue if a in self.waiters and a not in self.inflight]
        self.queue = []
        if not batch:
            return
        try:
            taken = self.engine.send(batch, time.monotonic_ns(), self.timeout_ns)
        except ValueError as exc:  # an address that does not parse: fail them all
            for address in batch:
                self.resolve(address, ProbeResult(False, "address", str(exc)))
            return
        self.inflight.update(batch[:taken])
        if taken < len(batch):
            self.queue = batch[taken:]
            self.flush_armed = True
            self.loop.call_later(RESEND_S, self.flush)
        if self.sweep_handle is None:
            self.sweep_handle = self.loop.call_later(SWEEP_S, self.sweep)

    def readable(self) -> None:
        inflight, resolve, reply = self.inflight, self.resolve, icmp_batch.REPLY
        for address, kind, value in self.engine.drain(time.monotonic_ns()):
            inflight.discard(address)
            if kind == reply:
                resolve(address, OK)
            elif kind == icmp_batch.UNREACHABLE:
                resolve(address, ProbeResult(False, "unreachable",
                                             f"ICMP type {value >> 8} code {value & 0xFF}"))
            else:
                resolve(address, failure(value, "send"))

    def sweep(self) -> None:
        self.sweep_handle = None
        for address in self.engine.expire(time.monotonic_ns()):
            self.inflight.discard(address)
            self.resolve(address, TIMEOUT)
        if self.engine.pending:
            self.sweep_handle = self.loop.call_later(SWEEP_S, self.sweep)

    def resolve(self, address: str, result: ProbeResult) -> None:
        waiter = self.waiters.pop(address, None)
        while waiter is not None:
            done, waiter.done = waiter.done, None
            if done is not None:
                done(result)
            waiter = waiter.next


@register
class PingKind(ProbeKind):
    __slots__ = ("pool", "timeout_ns")
    keyword = "PING_CHECK"

    def __init__(self, spec: Any, target: Any, loop: Any) -> None:
        super().__init__(spec, target, loop)
        self.pool: EchoPool | None = None
        self.timeout_ns = self.deadline_us() * 1000  # the spec is frozen: once

    def start(self, done: Done) -> Attempt:
        pool = self.pool
        if pool is None:
            family = (icmp_batch.AF_INET6 if ":" in self.target.address
                      else icmp_batch.AF_INET)
            try:
                pool = self.pool = EchoPool.acquire(self.loop, family)
            except OSError as exc:
                done(failure(exc.errno or 0, f"raw socket: {exc.strerror}"))
                return NO_ATTEMPT
        return pool.submit(self.target.address, done, self.timeout_ns)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.release()
            self.pool = None
