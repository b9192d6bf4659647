"""SMTP_CHECK: connect, read the 220 greeting, ``HELO helo_name``, expect 250, QUIT.

The dialogue is a table of steps (what reply code we wait for, what we send when
it comes).  Replies may be multi-line (RFC 5321 §4.2.1: ``250-...`` continues,
``250 ...`` ends); only the final line's code counts.  We send QUIT and close
without waiting for 221: the server has already proved it speaks SMTP.

Example::

    >>> final_reply(b"220-hello\\r\\n220 ready\\r\\n")
    (220, 22)
    >>> final_reply(b"220-hello\\r\\n") is None
    True
"""

from __future__ import annotations

import socket
from typing import Any

from hafast.check.api import NO_ATTEMPT, Attempt, Done, ProbeKind, ProbeResult
from hafast.check.tcp import Connect, failure, open_socket

MAX_REPLY = 4096  # a greeting longer than this is not one we wait for

# (expected code, what to send when it arrives); RFC 5321 §3.1 greeting 220,
# §4.1.1.1 HELO -> 250, §4.1.1.10 QUIT.
STEPS: tuple[tuple[int, str], ...] = ((220, "HELO {helo}\r\n"), (250, "QUIT\r\n"))


def final_reply(buf: bytes) -> tuple[int, int] | None:
    """The code of the first complete reply in ``buf`` and the bytes it used, or None."""
    start = 0
    while True:
        end = buf.find(b"\n", start)
        if end < 0:
            return None
        line = buf[start:end]
        start = end + 1
        if len(line) < 3 or not line[:3].isdigit():
            return (0, start)  # not SMTP: code 0 never matches a step
        if len(line) == 3 or line[3:4] != b"-":
            return (int(line[:3]), start)


class SmtpDialogue(Connect):
    __slots__ = ("buf", "step")

    def __init__(self, kind: ProbeKind, done: Done, sock: socket.socket) -> None:
        super().__init__(kind, done, sock)
        self.buf = b""
        self.step = 0

    def connected(self) -> None:
        loop: Any = self.kind.loop
        loop.add_reader(self.fd, self.readable)

    def readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            data = sock.recv(MAX_REPLY)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.finish(failure(exc.errno or 0, f"recv: {exc.strerror}"))
            return
        if not data:
            self.finish(ProbeResult(False, "closed", f"closed during step {self.step}"))
            return
        self.buf += data
        while True:
            got = final_reply(self.buf)
            if got is None:
                if len(self.buf) > MAX_REPLY:
                    self.finish(ProbeResult(False, "protocol", "reply line too long"))
                return
            code, used = got
            self.buf = self.buf[used:]
            expected, send = STEPS[self.step]
            if code != expected:
                self.finish(ProbeResult(False, "status", f"got {code}, wanted {expected}"))
                return
            try:
                sock.send(send.format(helo=self.kind.helo).encode())  # type: ignore[attr-defined]
            except OSError as exc:
                self.finish(failure(exc.errno or 0, f"send: {exc.strerror}"))
                return
            self.step += 1
            if self.step == len(STEPS):
                self.finish(ProbeResult(True))
                return


class SmtpKind(ProbeKind):
    __slots__ = ("helo",)
    keyword = "SMTP_CHECK"

    def __init__(self, spec: Any, target: Any, loop: Any) -> None:
        super().__init__(spec, target, loop)
        # keepalived: helo_name defaults to the local host name.
        self.helo: str = spec.helo_name or socket.gethostname()

    def start(self, done: Done) -> Attempt:
        try:
            sock = open_socket(self.target, socket.SOCK_STREAM)
        except OSError as exc:
            done(failure(exc.errno or 0, f"socket: {exc.strerror}"))
            return NO_ATTEMPT
        return SmtpDialogue(self, done, sock).begin()
