"""UDP_CHECK: send ``payload`` to the real server and judge what comes back.

keepalived's rules (``check_udp.c``, ``layer4.c``), kept here:

- the socket is connected, so an ICMP port/host unreachable for it comes back as
  an error on ``recv`` (ECONNREFUSED, EHOSTUNREACH): that is the failure a plain
  UDP_CHECK relies on;
- silence until connect_timeout is *success* unless ``require_reply`` is set;
- with ``require_reply HEX`` a reply must be ``min_reply_length``..``max_reply_length``
  bytes and match the pattern on the first min(len(reply), len(pattern)) bytes,
  an ``X`` digit matching any nibble; ``require_reply`` with no value accepts any reply.

Example::

    >>> pattern("12X4")
    (b'\\x12\\x04', b'\\xff\\x0f')
    >>> reply_matches(b"\\x12\\x34", *pattern("12X4"), 0, 255)
    True
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from hafast.check.api import NO_ATTEMPT, TIMEOUT, Attempt, Done, ProbeKind, ProbeResult
from hafast.check.tcp import failure, open_socket

RECV_SIZE = 65535
OK = ProbeResult(True)


def pattern(text: str) -> tuple[bytes, bytes]:
    """``require_reply`` hex with X wildcards -> (data, mask); a mask bit 1 is checked."""
    digits = text.replace(" ", "")
    if len(digits) % 2:
        digits += "X"  # keepalived pads an odd last digit; a wildcard checks nothing
    data = bytearray()
    mask = bytearray()
    for i in range(0, len(digits), 2):
        byte = m = 0
        for d in digits[i:i + 2]:
            byte <<= 4
            m <<= 4
            if d not in "xX":
                byte |= int(d, 16)
                m |= 0xF
        data.append(byte)
        mask.append(m)
    return bytes(data), bytes(mask)


def reply_matches(reply: bytes, data: bytes, mask: bytes, min_len: int, max_len: int) -> bool:
    """keepalived ``check_udp_reply``: length bounds, then the masked prefix."""
    if not min_len <= len(reply) <= max_len:
        return False
    n = min(len(reply), len(data))
    return all((reply[i] ^ data[i]) & mask[i] == 0 for i in range(n))


class Datagram:
    """A connected datagram socket waiting for one acceptable reply."""

    __slots__ = ("done", "fd", "kind", "sock")

    def __init__(self, kind: DatagramKind, done: Done, sock: socket.socket) -> None:
        self.kind = kind
        self.done = done
        self.sock: socket.socket | None = sock
        self.fd = sock.fileno()

    def begin(self, payload: bytes) -> Attempt:
        sock = self.sock
        assert sock is not None
        target = self.kind.target
        try:
            sock.connect((target.address, target.port or 0))
            sock.send(payload)
        except OSError as exc:
            self.finish(failure(exc.errno or 0, f"send: {exc.strerror}"))
            return NO_ATTEMPT
        loop: Any = self.kind.loop
        loop.add_reader(self.fd, self.readable)
        return self

    def readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            data = sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            # RFC 1122 §4.1.3.3: ICMP errors are passed up to the connected socket.
            self.finish(failure(exc.errno or errno.EIO, f"recv: {exc.strerror}"))
            return
        verdict = self.kind.judge(data)
        if verdict is not None:
            self.finish(verdict)

    def finish(self, result: ProbeResult) -> None:
        self.cancel()
        self.done(result)

    def cancel(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            loop: Any = self.kind.loop
            loop.remove_reader(self.fd)
            sock.close()


class DatagramKind(ProbeKind):
    """Common shell of UDP_CHECK and DNS_CHECK: one datagram out, replies judged."""

    __slots__ = ()

    def payload(self) -> bytes:
        raise NotImplementedError

    def judge(self, data: bytes) -> ProbeResult | None:
        """A verdict on one reply, or None to keep waiting for another."""
        raise NotImplementedError

    def start(self, done: Done) -> Attempt:
        try:
            sock = open_socket(self.target, socket.SOCK_DGRAM)
        except OSError as exc:
            done(failure(exc.errno or 0, f"socket: {exc.strerror}"))
            return NO_ATTEMPT
        return Datagram(self, done, sock).begin(self.payload())


class UdpKind(DatagramKind):
    __slots__ = ("_pattern", "_payload", "_require")
    keyword = "UDP_CHECK"

    def __init__(self, spec: Any, target: Any, loop: Any) -> None:
        super().__init__(spec, target, loop)
        self._payload = bytes.fromhex(spec.payload) if spec.payload else b""
        self._require = spec.require_reply is not None
        self._pattern = pattern(spec.require_reply or "")

    def payload(self) -> bytes:
        return self._payload

    def judge(self, data: bytes) -> ProbeResult | None:
        if not self._require:
            return OK
        if reply_matches(data, *self._pattern, self.spec.min_reply_length,
                         self.spec.max_reply_length):
            return OK
        return ProbeResult(False, "reply", f"reply of {len(data)} bytes does not match")

    def on_deadline(self) -> ProbeResult:
        return TIMEOUT if self._require else OK
