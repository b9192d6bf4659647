"""``EchoPool``'s logic outside its inner loops: once, for both ``icmp_batch`` twins.

The pool's hot path is in each twin (compiled in ``icmp_batch_c``, plain in
``icmp_batch_py``): ``submit`` queues an echo, ``flush`` sends a tick's batch,
``readable`` hands each reply to its attempt.  The rest is rare, and it is the
pool's state keeping: a batch with cancelled echoes is pruned, a batch the engine
could not take whole is offered again, an address that does not parse fails
alone, the sweep timer runs while probes are in flight and expires the overdue
ones, an error reply becomes the caller's failure.  It lives here, and both twins
call it with themselves as ``pool``; so a change here is a change to both.

``pool`` is duck-typed: ``loop``, ``engine``, ``addresses``, ``names``,
``timeout_ns``, ``flush_armed``, ``sweep_handle``, ``timeout``, ``fail``,
``flush()``, ``sweep()``, ``resolve(waiter, result)``.

Example, a batch the engine took one of::

    >>> class Loop:
    ...     def call_later(self, delay, cb): return (delay, cb)
    >>> class Pool:
    ...     loop, addresses, names, flush_armed, sweep_handle = Loop(), [], [], False, None
    ...     def flush(self): pass
    ...     def sweep(self): pass
    >>> pool = Pool()
    >>> after_send(pool, ["10.0.0.1", "10.0.0.2"], ["w1", "w2"], 1)
    >>> pool.addresses, pool.flush_armed, pool.sweep_handle[0]
    (['10.0.0.2'], True, 0.1)
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["BAD_ADDRESS", "RESEND_S", "SWEEP_S", "after_send", "close", "failed",
           "send_one_by_one", "sweep", "without_cancelled"]

SWEEP_S = 0.1  # how often overdue probes are expired while any is in flight
RESEND_S = 0.001  # a batch the engine could not take whole is offered again this soon
BAD_ADDRESS = -1  # fail(kind, ...) for an address the engine would not parse


def without_cancelled(addresses: list[Any], names: list[Any]) -> tuple[list[Any], list[Any]]:
    """The batch less the echoes whose attempt was cancelled before it went out."""
    kept = [i for i, w in enumerate(names) if w.done is not None]
    return [addresses[i] for i in kept], [names[i] for i in kept]


def after_send(pool: Any, addresses: list[Any], names: list[Any], taken: int) -> None:
    """The engine took ``taken`` of the batch: offer the rest again ``RESEND_S``
    later, ahead of what was queued since, and keep the sweep running while probes
    are in flight.  (Nothing to do when it took all and the sweep runs: the twins
    may skip the call then.)"""
    loop = pool.loop
    if taken < len(names):
        pool.addresses = addresses[taken:] + pool.addresses
        pool.names = names[taken:] + pool.names
        pool.flush_armed = True
        loop.call_later(RESEND_S, pool.flush)
    if pool.sweep_handle is None:
        pool.sweep_handle = loop.call_later(SWEEP_S, pool.sweep)


def send_one_by_one(pool: Any, addresses: list[Any], names: list[Any], now: int) -> int:
    """The batch had an address that does not parse: fail that one alone, send the
    rest.  Returns how many the engine took or failed (it may fill up first)."""
    engine, timeout_ns = pool.engine, pool.timeout_ns
    for i, (address, waiter) in enumerate(zip(addresses, names, strict=True)):
        try:
            if not engine.send([address], now, timeout_ns, [waiter]):
                return i
        except ValueError as exc:
            pool.resolve(waiter, pool.fail(BAD_ADDRESS, 0, str(exc)))
    return len(names)


def failed(pool: Any, errors: list[tuple[Any, int, int]]) -> None:
    """Error replies (UNREACHABLE, SEND_ERROR) from one drain: the caller's failures."""
    fail, resolve = pool.fail, pool.resolve
    for waiter, kind, value in errors:
        resolve(waiter, fail(kind, value, ""))


def sweep(pool: Any) -> None:
    """The sweep timer: time out the overdue probes; again while any is in flight."""
    pool.sweep_handle = None
    timeout, resolve = pool.timeout, pool.resolve
    engine = pool.engine
    for waiter in engine.expire(time.monotonic_ns()):
        resolve(waiter, timeout)
    if engine.pending:
        pool.sweep_handle = pool.loop.call_later(SWEEP_S, pool.sweep)


def close(pool: Any) -> None:
    """Stop the sweep, the reader and the engine; drop what was queued."""
    if pool.sweep_handle is not None:
        pool.sweep_handle.cancel()
        pool.sweep_handle = None
    pool.loop.remove_reader(pool.engine.fileno())
    pool.engine.close()
    pool.addresses, pool.names = [], []
