"""ICMP echo engine for thousands of targets: the readable pure-Python twin.

One raw socket per engine (one family per engine), a tick's echo requests sent in
one call, replies drained in one call, and overdue probes expired in one call.
The caller owns the clock (``time.monotonic_ns()`` style integers) and the event
loop: ``fileno()`` is for ``loop.add_reader``.  The compiled twin
(``icmp_batch_c``) does the same with ``sendmmsg``/``recvmmsg``; this one loops
over ``sendto``/``recvmsg`` because Python has no batch calls.

Addresses are text (``"10.0.0.1"``, ``"fd00::1"``).  Results carry the very
string object the caller passed to :meth:`IcmpBatch.send`, so a caller can key
its own tables by it.

A probe is matched on (address, identifier, sequence) and on a 64-bit token
carried in the payload, so a late reply to an earlier probe of the same address
that happened to reuse the sequence is never taken for the current one.

>>> import time
>>> with IcmpBatch(AF_INET) as eng:                     # doctest: +SKIP
...     eng.send(["127.0.0.1"], time.monotonic_ns(), 1_000_000_000)
1
"""

from __future__ import annotations

import errno as _errno
import logging
import os
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

# EchoPool's state keeping, once for both twins.
from hafast._core import echo_pool as _pool

# The one pure-Python RFC 1071 checksum, re-exported: icmp_batch's public name since
# before checksum_py existed.
from hafast._core.checksum_py import internet_checksum

AF_INET = 2
AF_INET6 = 10

# Result kinds returned by drain(): (address, kind, value).
REPLY = 0  # value: round-trip time in the caller's clock units (ns)
UNREACHABLE = 1  # value: (icmp_type << 8) | icmp_code of the error the network returned
SEND_ERROR = 2  # value: errno of the failed send

# RFC 792: echo request 8, echo reply 0; errors quoting our request.
ICMP_ECHOREPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11
# RFC 4443 §4.1/§4.2: echo request 128, echo reply 129; §3.1 unreachable, §3.3 time exceeded.
ICMP6_DST_UNREACH = 1
ICMP6_TIME_EXCEEDED = 3
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

# <linux/icmp.h>: setsockopt(SOL_RAW, ICMP_FILTER, u32) — a SET bit blocks that type.
SOL_RAW = 255
ICMP_FILTER = 1
# RFC 3542 §3.2 / <netinet/icmp6.h>: setsockopt(IPPROTO_ICMPV6, ICMP6_FILTER, u32[8]);
# on Linux a SET bit blocks that type (ICMP6_FILTER_SETBLOCK sets it).
ICMP6_FILTER = 1

HEADER_LEN = 8  # RFC 792 / RFC 4443: type, code, checksum, identifier, sequence
TOKEN_LEN = 8  # our payload starts with the probe token
MIN_PAYLOAD = TOKEN_LEN
MAX_INFLIGHT = 65536  # the sequence number is 16 bits and is our slot index
RECV_SIZE = 256  # our replies and the errors quoting our requests are far smaller

# Parse outcomes (parse_packet's first field).  The reject names are also the keys of
# stats() that count them.
PARSE_KINDS = ("reply", "error", "short", "bad_checksum", "other_type")
REJECT_REASONS = (
    "short",  # too short to hold the headers we must read
    "bad_checksum",  # RFC 792: checksum over the ICMP message does not verify
    "other_type",  # an ICMP type or quoted packet that is not about an echo request
    "truncated",  # larger than our receive buffer: never one of ours
    "foreign",  # identifier is not ours: another engine or another process's ping
    "stale",  # ours, but that probe is no longer in flight (late, duplicate, re-sent)
    "mismatch",  # ours and in flight, but from another address than the one probed
)
COUNTERS = ("sent", "send_errors", "replies", "unreachables", "timeouts", *REJECT_REASONS)

_ident_seed = 0x9E3779B1


def build_echo(
    family: int, identifier: int, sequence: int, token: int, payload_size: int = 16
) -> bytes:
    """One echo request (ICMP header + payload, no IP header).

    The payload is the 8-byte big-endian token, then zero padding up to
    ``payload_size``.  IPv4 gets its RFC 792 checksum here; for IPv6 the field
    stays 0 because the kernel always fills the ICMPv6 checksum (RFC 3542 §3.1).

    >>> build_echo(AF_INET, 1, 2, 3, 8).hex()
    '0800f7f9000100020000000000000003'
    """
    if payload_size < MIN_PAYLOAD:
        raise ValueError(f"payload_size must be >= {MIN_PAYLOAD}, got {payload_size}")
    icmp_type = ICMP_ECHO if family == AF_INET else ICMP6_ECHO_REQUEST
    body = struct.pack("!Q", token & 0xFFFFFFFFFFFFFFFF) + bytes(payload_size - TOKEN_LEN)
    header = struct.pack("!BBHHH", icmp_type, 0, 0, identifier & 0xFFFF, sequence & 0xFFFF)
    if family != AF_INET:
        return header + body
    packet = header + body
    csum = internet_checksum(packet)
    return packet[:2] + struct.pack("!H", csum) + packet[4:]


def _quoted_echo(inner: bytes, family: int) -> tuple[str, int, int, int, bytes]:
    """Read the echo request an ICMP error quotes (RFC 792 / RFC 4443 §3)."""
    if family == AF_INET:
        if len(inner) < 20:
            return ("short", 0, 0, -1, b"")
        ihl = (inner[0] & 0x0F) * 4
        if inner[0] >> 4 != 4 or ihl < 20 or inner[9] != socket.IPPROTO_ICMP:
            return ("other_type", 0, 0, -1, b"")
        target = inner[16:20]
        echo_type = ICMP_ECHO
    else:
        if len(inner) < 40:
            return ("short", 0, 0, -1, b"")
        # Extension headers between the IPv6 header and ICMPv6 are never in our requests.
        if inner[0] >> 4 != 6 or inner[6] != socket.IPPROTO_ICMPV6:
            return ("other_type", 0, 0, -1, b"")
        ihl = 40
        target = inner[24:40]
        echo_type = ICMP6_ECHO_REQUEST
    quoted = inner[ihl:]
    if len(quoted) < HEADER_LEN:
        return ("short", 0, 0, -1, b"")
    if quoted[0] != echo_type:
        return ("other_type", 0, 0, -1, b"")
    ident, seq = struct.unpack_from("!HH", quoted, 4)
    # RFC 792 only promises 8 bytes of the original datagram; Linux quotes more, and
    # when the token is there it is checked too.
    token = struct.unpack_from("!Q", quoted, 8)[0] if len(quoted) >= 16 else -1
    return ("error", ident, seq, token, target)


def parse_packet(family: int, data: bytes, source: bytes) -> tuple[str, int, int, int, bytes, int]:
    """Classify one received datagram without any engine state.

    ``data`` is what a raw socket returns (IPv4: with the IP header; IPv6: the
    ICMPv6 message alone) and ``source`` the packed sender address.  Returns
    ``(kind, identifier, sequence, token, target, detail)``: kind is "reply"
    (target = source), "error" (target = the destination of the quoted request,
    detail = type << 8 | code, token = -1 when not quoted), or a reject reason
    ("short", "bad_checksum", "other_type").

    >>> pkt = bytes.fromhex("0000ffff00010002") + bytes(8)
    >>> parse_packet(AF_INET6, bytes([129]) + pkt[1:], bytes(16))[:4]
    ('reply', 1, 2, 0)
    """
    if family == AF_INET:
        if len(data) < 20:
            return ("short", 0, 0, -1, b"", 0)
        ihl = (data[0] & 0x0F) * 4
        if ihl < 20 or len(data) < ihl + HEADER_LEN:
            return ("short", 0, 0, -1, b"", 0)
        icmp = data[ihl:]
        # RFC 792: the checksum covers the whole ICMP message; the kernel hands raw
        # sockets the packet unverified.
        if internet_checksum(icmp) != 0:
            return ("bad_checksum", 0, 0, -1, b"", 0)
        reply_type, error_types = ICMP_ECHOREPLY, (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED)
        source = data[12:16]
    else:
        # RFC 3542 §3.1: the kernel verified the ICMPv6 checksum before delivery.
        icmp = data
        if len(icmp) < HEADER_LEN:
            return ("short", 0, 0, -1, b"", 0)
        reply_type, error_types = ICMP6_ECHO_REPLY, (ICMP6_DST_UNREACH, ICMP6_TIME_EXCEEDED)
    icmp_type, code = icmp[0], icmp[1]
    if icmp_type == reply_type:
        if code != 0:  # RFC 792 / RFC 4443 §4.2: echo reply code is 0
            return ("other_type", 0, 0, -1, b"", 0)
        ident, seq = struct.unpack_from("!HH", icmp, 4)
        token = struct.unpack_from("!Q", icmp, 8)[0] if len(icmp) >= 16 else -1
        return ("reply", ident, seq, token, bytes(source), 0)
    if icmp_type in error_types:
        kind, ident, seq, token, target = _quoted_echo(icmp[8:], family)
        if kind != "error":
            return (kind, 0, 0, -1, b"", 0)
        return (kind, ident, seq, token, target, (icmp_type << 8) | code)
    return ("other_type", 0, 0, -1, b"", 0)


def make_identifier(fd: int) -> int:
    """Echo identifier for the engine owning socket ``fd``.

    pid-derived so that other processes' engines differ, and offset by the fd,
    which is unique among this process's open sockets, so two live engines of
    one process (of either twin) never share an identifier.
    """
    return (os.getpid() * _ident_seed + fd) & 0xFFFF


class _Probe:
    __slots__ = ("address", "deadline", "packed", "sent", "token")

    def __init__(self, address: str, packed: bytes, token: int, sent: int, deadline: int):
        self.address = address
        self.packed = packed
        self.token = token
        self.sent = sent
        self.deadline = deadline


class IcmpBatch:
    """Echo engine for one address family, driven by the caller's clock.

    ``send(targets, now_ns, timeout_ns)`` puts a tick's probes in flight,
    ``drain(now_ns)`` returns the results that arrived, ``expire(now_ns)`` the
    addresses whose deadline passed.  The probe table grows with the peak number
    of probes in flight and never past ``max_inflight`` (at most 65536, the
    sequence space: the sequence number is the slot).  Needs root (raw socket).
    Not thread-safe: one engine belongs to one event loop.

    >>> eng = IcmpBatch(AF_INET)                            # doctest: +SKIP
    >>> loop.add_reader(eng.fileno(), on_readable)          # doctest: +SKIP
    """

    def __init__(
        self,
        family: int = AF_INET,
        *,
        max_inflight: int = MAX_INFLIGHT,
        payload_size: int = 16,
        rcvbuf: int = 4 << 20,
    ) -> None:
        if family not in (AF_INET, AF_INET6):
            raise ValueError(f"family must be AF_INET or AF_INET6, got {family}")
        if not 1 <= max_inflight <= MAX_INFLIGHT:
            raise ValueError(f"max_inflight must be in 1..{MAX_INFLIGHT}, got {max_inflight}")
        if payload_size < MIN_PAYLOAD or payload_size > RECV_SIZE - 60 - HEADER_LEN:
            raise ValueError(f"payload_size must be in {MIN_PAYLOAD}..{RECV_SIZE - 68}")
        self._family = family
        self._payload_size = payload_size
        self._max_inflight = max_inflight
        proto = socket.IPPROTO_ICMP if family == AF_INET else socket.IPPROTO_ICMPV6
        self._sock: socket.socket | None = socket.socket(family, socket.SOCK_RAW, proto)
        try:
            self._sock.setblocking(False)
            if family == AF_INET:
                passed = (
                    (1 << ICMP_ECHOREPLY) | (1 << ICMP_DEST_UNREACH) | (1 << ICMP_TIME_EXCEEDED)
                )
                self._sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~passed & 0xFFFFFFFF))
            else:
                words = [0xFFFFFFFF] * 8
                for t in (ICMP6_ECHO_REPLY, ICMP6_DST_UNREACH, ICMP6_TIME_EXCEEDED):
                    words[t >> 5] &= ~(1 << (t & 31))
                blocked = struct.pack("=8I", *words)
                self._sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, blocked)
            # Thousands of replies land in one burst; the default 208 KiB drops some.
            # SO_RCVBUFFORCE (root) passes net.core.rmem_max.
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
            except OSError:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        except BaseException:
            self._sock.close()
            raise
        self._fd = self._sock.fileno()
        self._identifier = make_identifier(self._fd)
        self._cookie = int.from_bytes(os.urandom(4), "big") << 32
        self._serial = 0
        # Recycled sequence numbers first, fresh ones only when none is free: memory
        # follows the peak number of probes in flight, never max_inflight itself.
        self._free: deque[int] = deque()
        self._fresh = 0  # sequence numbers below this have been handed out before
        self._inflight: dict[int, _Probe] = {}
        self._ready: list[tuple[str, int, int]] = []
        self._stats = dict.fromkeys(COUNTERS, 0)

    # -- properties -------------------------------------------------------------
    @property
    def family(self) -> int:
        return self._family

    @property
    def identifier(self) -> int:
        return self._identifier

    @property
    def pending(self) -> int:
        """Probes in flight (sent, not yet answered or expired)."""
        return len(self._inflight)

    @property
    def capacity(self) -> int:
        """Free probe slots: how many more targets send() can take now."""
        return len(self._free) + self._max_inflight - self._fresh

    def fileno(self) -> int:
        return self._fd

    def stats(self) -> dict[str, int]:
        """Counters: sent, send_errors, replies, unreachables, timeouts, and one per
        reject reason (see REJECT_REASONS)."""
        return dict(self._stats)

    # -- the three calls of a tick ----------------------------------------------
    def send(self, targets: Sequence[str], now_ns: int, timeout_ns: int,
             names: Sequence[Any] | None = None) -> int:
        """Send one echo request to each target; return how many targets were taken.

        ``targets[:n]`` are in flight (or failed at once: their SEND_ERROR comes
        out of the next drain()); ``targets[n:]`` were not sent because the probe
        table or the socket buffer is full — offer them again later.  Raises
        ValueError (before sending anything) for an address that does not parse.
        With ``names``, results name a probe by ``names[i]`` instead of its address.
        """
        if names is not None and len(names) != len(targets):
            raise ValueError("names must match targets one for one")
        sock = self._require_open()
        family = self._family
        try:
            packed_list = [socket.inet_pton(family, t) for t in targets]
        except (OSError, TypeError) as exc:
            raise ValueError(f"not an address of family {family}: {exc}") from None
        sent = 0
        deadline = now_ns + timeout_ns
        for i, (target, packed) in enumerate(zip(targets, packed_list, strict=True)):
            name = target if names is None else names[i]
            if self._free:
                seq = self._free.popleft()
            elif self._fresh < self._max_inflight:
                seq = self._fresh
                self._fresh += 1
            else:
                break
            self._serial = (self._serial + 1) & 0xFFFFFFFF
            token = self._cookie | self._serial
            packet = build_echo(family, self._identifier, seq, token, self._payload_size)
            try:
                sock.sendto(packet, (target, 0))
            except (BlockingIOError, InterruptedError):
                self._free.appendleft(seq)
                break
            except OSError as exc:
                self._free.appendleft(seq)
                if exc.errno == _errno.ENOBUFS:  # queue full: a later tick can retry
                    break
                self._stats["send_errors"] += 1
                self._ready.append((name, SEND_ERROR, exc.errno or 0))
                sent += 1
                continue
            self._inflight[seq] = _Probe(name, packed, token, now_ns, deadline)
            self._stats["sent"] += 1
            sent += 1
        return sent

    def drain(self, now_ns: int, max_messages: int = 65536,
              replies: list[Any] | None = None) -> list[tuple[Any, int, int]]:
        """Read every datagram ready (at most ``max_messages``) and return the results
        they complete: ``(address, REPLY, rtt_ns)`` or ``(address, UNREACHABLE,
        type << 8 | code)``, plus any SEND_ERROR from the last send().  With
        ``replies``, a REPLY only appends the probe's name there (no tuple, no rtt:
        the steady case of a prober that only asks "did it answer")."""
        sock = self._require_open()
        results, self._ready = self._ready, []
        stats = self._stats
        family = self._family
        for _ in range(max_messages):
            try:
                data, _anc, flags, addr = sock.recvmsg(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._ready = results  # keep what was matched for the next call
                raise
            if flags & socket.MSG_TRUNC:
                stats["truncated"] += 1
                continue
            source = socket.inet_pton(family, addr[0].split("%")[0])
            kind, ident, seq, token, target, detail = parse_packet(family, data, source)
            if kind not in ("reply", "error"):
                stats[kind] += 1
                continue
            if ident != self._identifier:
                stats["foreign"] += 1
                continue
            probe = self._inflight.get(seq)
            if probe is None:
                stats["stale"] += 1
                continue
            if probe.packed != target:
                stats["mismatch"] += 1
                continue
            if token != probe.token and (kind == "reply" or token != -1):
                stats["stale"] += 1  # an earlier probe of this address, same slot
                continue
            del self._inflight[seq]
            self._free.append(seq)
            if kind == "reply":
                stats["replies"] += 1
                if replies is not None:
                    replies.append(probe.address)
                else:
                    results.append((probe.address, REPLY, now_ns - probe.sent))
            else:
                stats["unreachables"] += 1
                results.append((probe.address, UNREACHABLE, detail))
        return results

    def expire(self, now_ns: int) -> list[Any]:
        """Forget the probes whose deadline is ``<= now_ns``; return their addresses
        (their names, when send() was given names)."""
        overdue = [seq for seq, p in self._inflight.items() if p.deadline <= now_ns]
        out = []
        for seq in overdue:
            out.append(self._inflight.pop(seq).address)
            self._free.append(seq)
        self._stats["timeouts"] += len(out)
        return out

    # -- lifetime ----------------------------------------------------------------
    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> IcmpBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> socket.socket:
        if self._sock is None:
            raise ValueError("IcmpBatch is closed")
        return self._sock


def ping_many(
    targets: Iterable[str], timeout: float = 1.0, *, payload_size: int = 16
) -> dict[str, float | None]:
    """Blocking convenience: ping every target once, wait at most ``timeout``
    seconds, return ``{address: rtt_seconds or None}`` (None: timed out,
    unreachable or not sent).  Families are told apart by ':'.

    >>> ping_many(["127.0.0.1"], 0.5)                        # doctest: +SKIP
    {'127.0.0.1': 4.1e-05}
    """
    wanted = list(dict.fromkeys(targets))
    result: dict[str, float | None] = dict.fromkeys(wanted)
    by_family: dict[int, list[str]] = {}
    for t in wanted:
        by_family.setdefault(AF_INET6 if ":" in t else AF_INET, []).append(t)
    engines = [IcmpBatch(f, payload_size=payload_size) for f in by_family]
    try:
        start = time.monotonic_ns()
        deadline = start + int(timeout * 1e9)
        queues = dict(zip(engines, by_family.values(), strict=True))
        poller = select.poll()
        for eng in engines:
            poller.register(eng.fileno(), select.POLLIN)
        while True:
            now = time.monotonic_ns()
            for eng, queue in queues.items():
                if queue:
                    del queue[: eng.send(queue, now, deadline - now)]
            busy = False
            for eng in engines:
                for address, kind, value in eng.drain(time.monotonic_ns()):
                    if kind == REPLY:
                        result[address] = value / 1e9
                busy = busy or eng.pending > 0
            now = time.monotonic_ns()
            if now >= deadline or not (busy or any(queues.values())):
                break
            poller.poll(max(1, min(50, (deadline - now) // 1_000_000)))
        return result
    finally:
        for eng in engines:
            eng.close()


# --------------------------------------------------------------------------- the pool

_log = logging.getLogger("hafast.check")

SWEEP_S = _pool.SWEEP_S
RESEND_S = _pool.RESEND_S
BAD_ADDRESS = _pool.BAD_ADDRESS


class Waiter:
    """One attempt's echo: its ``done`` until the result or ``cancel()``."""

    __slots__ = ("done",)

    def __init__(self, done: Any) -> None:
        self.done: Any = done

    def cancel(self) -> None:
        self.done = None


class EchoPool:
    """One :class:`IcmpBatch` on one event loop, shared by every PING_CHECK of it.

    An attempt queues its address (``submit``); everything queued in one loop
    iteration goes out as one batch, each probe named by its attempt's
    :class:`Waiter`, so a reply leads straight to its attempt (no table by
    address); replies are drained with one call when the socket is readable;
    overdue probes are expired by a sweep timer that runs only while probes are in
    flight.  A cancelled attempt's probe stays in flight and its reply is dropped:
    the engine's token tells it from a later probe of the same address.  The
    results handed to ``done`` are the caller's: ``ok`` for a reply, ``timeout`` for
    an expired probe, ``fail(kind, value, text)`` for an UNREACHABLE, a SEND_ERROR or
    a BAD_ADDRESS.  ``engine`` replaces the IcmpBatch (tests).

    Only the hot path is here (submit, the batch, the replies), as in the compiled
    twin; the rest, the pool's state keeping, is ``hafast._core.echo_pool``'s, for
    both twins.  The loop needs ``add_reader``, ``remove_reader``, ``call_soon``,
    ``call_later``.
    """

    def __init__(self, loop: Any, family: int, ok: Any, timeout: Any, fail: Any,
                 engine: Any = None) -> None:
        self.loop = loop
        self.family = family
        self.ok, self.timeout, self.fail = ok, timeout, fail
        self.engine = IcmpBatch(family) if engine is None else engine
        self.addresses: list[str] = []  # the next batch: addresses and their waiters
        self.names: list[Waiter] = []
        self.timeout_ns = 1_000_000_000
        self.flush_armed = False
        self.sweep_handle: Any = None
        self.users = 0
        loop.add_reader(self.engine.fileno(), self.readable)

    def close(self) -> None:
        _pool.close(self)

    def submit(self, address: str, done: Any, timeout_ns: int) -> Waiter:
        waiter = Waiter(done)
        self.addresses.append(address)
        self.names.append(waiter)
        # The longest timeout asked for while probes are in flight (one sweep for all).
        if timeout_ns > self.timeout_ns or not self.engine.pending:
            self.timeout_ns = timeout_ns
        if not self.flush_armed:
            self.flush_armed = True
            self.loop.call_soon(self.flush)
        return waiter

    def flush(self) -> None:
        """Send this tick's batch: every address queued whose attempt still waits."""
        self.flush_armed = False
        addresses, names = self.addresses, self.names
        self.addresses, self.names = [], []
        if any(w.done is None for w in names):  # cancelled before it went out
            addresses, names = _pool.without_cancelled(addresses, names)
        if not names:
            return
        now = time.monotonic_ns()
        try:
            taken = self.engine.send(addresses, now, self.timeout_ns, names)
        except ValueError:
            taken = _pool.send_one_by_one(self, addresses, names, now)
        _pool.after_send(self, addresses, names, taken)

    def readable(self) -> None:
        replies: list[Waiter] = []
        errors = self.engine.drain(time.monotonic_ns(), 65536, replies)
        ok, resolve = self.ok, self.resolve
        for waiter in replies:
            resolve(waiter, ok)
        if errors:
            _pool.failed(self, errors)

    def sweep(self) -> None:
        _pool.sweep(self)

    def resolve(self, waiter: Waiter, result: Any) -> None:
        done, waiter.done = waiter.done, None
        if done is not None:
            try:
                done(result)
            except Exception:  # one consumer's bug must not lose the others' results
                _log.exception("PING_CHECK: result callback raised")
