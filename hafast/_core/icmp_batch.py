"""ICMP echo engine for thousands of targets (compiled, or the pure-Python twin).

``IcmpBatch(family)`` owns one non-blocking raw socket: ``send(targets, now_ns,
timeout_ns)`` puts a tick's echo requests in flight, ``drain(now_ns)`` returns
``(address, REPLY | UNREACHABLE | SEND_ERROR, value)`` results, ``expire(now_ns)``
the addresses whose deadline passed; ``fileno()`` is for ``loop.add_reader``.
``ping_many(targets, timeout)`` is the blocking convenience.  Needs root.

``EchoPool(loop, family, ok, timeout, fail)`` drives one IcmpBatch on an event loop
for every PING_CHECK of it: ``submit(address, done, timeout_ns) -> Waiter`` (with
``cancel()``); ``done`` gets ``ok``, ``timeout`` or ``fail(kind, value, text)``.

>>> from hafast._core.icmp_batch import ping_many
>>> ping_many(["127.0.0.1"], 0.5)                        # doctest: +SKIP
{'127.0.0.1': 4.1e-05}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hafast._core._select import choose

# Callers are type-checked against the compiled module's stub (stubtest holds the
# stub to the .so); the twin has its own annotations and the tests run both.
if TYPE_CHECKING:
    from hafast._core.icmp_batch_c import (
        AF_INET,
        AF_INET6,
        BAD_ADDRESS,
        COUNTERS,
        MAX_INFLIGHT,
        MIN_PAYLOAD,
        PARSE_KINDS,
        REJECT_REASONS,
        REPLY,
        SEND_ERROR,
        UNREACHABLE,
        EchoPool,
        IcmpBatch,
        Waiter,
        build_echo,
        internet_checksum,
        make_identifier,
        parse_packet,
        ping_many,
    )
else:
    _impl = choose("icmp_batch")
    AF_INET = _impl.AF_INET
    AF_INET6 = _impl.AF_INET6
    REPLY = _impl.REPLY
    UNREACHABLE = _impl.UNREACHABLE
    SEND_ERROR = _impl.SEND_ERROR
    MAX_INFLIGHT = _impl.MAX_INFLIGHT
    MIN_PAYLOAD = _impl.MIN_PAYLOAD
    PARSE_KINDS = _impl.PARSE_KINDS
    REJECT_REASONS = _impl.REJECT_REASONS
    COUNTERS = _impl.COUNTERS
    IcmpBatch = _impl.IcmpBatch
    internet_checksum = _impl.internet_checksum
    build_echo = _impl.build_echo
    parse_packet = _impl.parse_packet
    make_identifier = _impl.make_identifier
    ping_many = _impl.ping_many
    EchoPool = _impl.EchoPool
    Waiter = _impl.Waiter
    BAD_ADDRESS = _impl.BAD_ADDRESS

__all__ = [
    "AF_INET",
    "AF_INET6",
    "BAD_ADDRESS",
    "COUNTERS",
    "MAX_INFLIGHT",
    "MIN_PAYLOAD",
    "PARSE_KINDS",
    "REJECT_REASONS",
    "REPLY",
    "SEND_ERROR",
    "UNREACHABLE",
    "EchoPool",
    "IcmpBatch",
    "Waiter",
    "build_echo",
    "internet_checksum",
    "make_identifier",
    "parse_packet",
    "ping_many",
]
