"""Shared pieces of the check-engine lab tests (tests/netns/test_checks_*.py).

- :func:`farm_for` builds a small farm named after this process (torn down by the
  fixture that calls it, even on failure).
- :func:`scenario` runs the real engine on a uvloop loop on a thread that entered
  the director namespace (so every socket and every MISC child is made there), and
  applies faults at fixed loop times; it returns the events with their loop times.
- :func:`udp_server` and friends are the small Python servers for the kinds nginx
  cannot play (UDP, DNS, SMTP), bound in the server namespace on all farm addresses.

Timing constants are the brief's example: retry 2, delay_before_retry 0.2 s,
connect_timeout 0.3 s, delay_loop 0.5 s.  Assertions allow generous slack: the
machine has two cores shared with other work.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hafast.check.engine import Engine
from hafast.check.worker import new_loop
from hafast.config import model as m
from hafast.config.loader import load_text
from hafast.lab import Farm
from hafast.lab.netns import call_in, run_in, socket_in
from hafast.lib.events import ServerEvent
from tests.conftest import require_root, require_tool

PREFIX = f"hck{os.getpid()}"

CONNECT_TIMEOUT = 0.3
RETRY = 2
DELAY_BEFORE_RETRY = 0.2
DELAY_LOOP = 0.5
# DOWN after the fault: the attempt in flight (or next one, up to a delay_loop away)
# times out, then `retry` retries each delay_before_retry + connect_timeout.
DETECT = DELAY_LOOP + CONNECT_TIMEOUT + RETRY * (DELAY_BEFORE_RETRY + CONNECT_TIMEOUT)
RECOVER = DELAY_LOOP + CONNECT_TIMEOUT  # UP within one delay_loop (+ the attempt)
SLACK = 1.0

TIMERS = f"""
    connect_timeout {CONNECT_TIMEOUT}
    retry {RETRY}
    delay_before_retry {DELAY_BEFORE_RETRY}
    delay_loop {DELAY_LOOP}
    warmup 0
"""


def prerequisites() -> None:
    require_root()
    require_tool("nginx")
    require_tool("nft")
    require_tool("nsenter")


@contextlib.contextmanager
def farm_for(suffix: str, count: int = 16) -> Iterator[Farm]:
    prerequisites()
    lab = Farm(count, name=f"{PREFIX}{suffix}", workers=1)
    try:
        lab.build()
        # The kernel rate-limits ICMP errors per peer (one a second after a burst of
        # six): the checks here all come from one director and count on each port
        # unreachable, as UDP_CHECK does, so the limit is off in the server namespace.
        run_in(lab.server_ns, ["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])
        yield lab
    finally:
        lab.close()


def config_for(addresses: list[str], port: int | None, checker: str, body: str = "",
               alpha: bool = False) -> m.Config:
    """One virtual server, one real server per address, one checker each."""
    port_text = "" if port is None else f" {port}"
    rss = "\n".join(
        f"  real_server {a}{port_text} {{\n    {checker} {{\n{TIMERS}{body}\n"
        f"{'      alpha' if alpha else ''}\n    }}\n  }}"
        for a in addresses
    )
    text = f"virtual_server 10.250.0.1 80 {{\n  delay_loop {DELAY_LOOP}\n{rss}\n}}\n"
    res = load_text(text)
    assert not res.errors, res.errors
    return res.config


@dataclass
class Timeline:
    t0: float = 0.0
    events: list[tuple[float, ServerEvent]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def states(self, address: str) -> list[str]:
        return [e.state for _, e in self.events if e.real_server[0] == address]

    def first(self, address: str, state: str, after: str | None = None) -> float:
        """Seconds from mark ``after`` (or t0) to the first ``state`` event of ``address``."""
        since = self.marks[after] if after else self.t0
        for t, e in self.events:
            if e.real_server[0] == address and e.state == state and t >= since:
                return t - since
        raise AssertionError(f"no {state} for {address} after {after}: {self.events}")


def scenario(
    farm: Farm,
    config: m.Config,
    steps: list[tuple[float, str, Callable[[], object]]],
    duration: float,
) -> Timeline:
    """Run the engine for ``duration`` seconds in the director namespace; at each
    ``(at, name, action)`` call ``action()`` and mark ``name`` with the loop time."""
    tl = Timeline()

    def body() -> None:
        loop = new_loop()
        try:
            engine = Engine(config, loop, lambda e: tl.events.append((loop.time(), e)))
            tl.t0 = loop.time()
            for at, name, action in steps:
                def run(name: str = name, action: Callable[[], object] = action) -> None:
                    action()
                    tl.marks[name] = loop.time()

                loop.call_at(tl.t0 + at, run)
            engine.start()
            stop = loop.create_future()
            loop.call_at(tl.t0 + duration, stop.set_result, None)
            loop.run_until_complete(stop)
            engine.stop()
            tl.counters = dict(engine.runner.counters)
        finally:
            loop.close()

    call_in(farm.director_ns, body)
    return tl


# --------------------------------------------------------------------------- servers


@contextlib.contextmanager
def serve(farm: Farm, sock_type: int, port: int, handle: Callable[[socket.socket], None],
          ) -> Iterator[None]:
    """A Python server on 0.0.0.0:``port`` in the server namespace (every farm
    address is local there), run by ``handle(sock)`` in a loop on a thread."""
    s = socket_in(farm.server_ns, socket.AF_INET, sock_type)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    if sock_type == socket.SOCK_STREAM:
        s.listen(64)
    s.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                handle(s)

    t = threading.Thread(target=run, daemon=True, name=f"{PREFIX}-server-{port}")
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(3)
        s.close()


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def udp_reply(reply: Callable[[bytes], bytes | None]) -> Callable[[socket.socket], None]:
    """Answer each datagram from the very address it was sent to: a socket bound to
    0.0.0.0 would otherwise answer from the link address, and the checker's
    connected socket rightly ignores a reply from anyone but the real server."""

    def handle(s: socket.socket) -> None:
        if not s.getsockopt(socket.IPPROTO_IP, IP_PKTINFO):
            s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        try:
            data, anc, _flags, peer = s.recvmsg(2048, 256)
        except TimeoutError:
            return
        out = reply(data)
        if out is None:
            return
        dst = b"\0\0\0\0"
        for level, kind, value in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                dst = value[8:12]  # struct in_pktinfo: ifindex, spec_dst, addr
        info = struct.pack("i4s4s", 0, dst, b"\0\0\0\0")
        s.sendmsg([out], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0, peer)

    return handle


def dns_answer(query: bytes) -> bytes:
    """NOERROR with the question echoed (RFC 1035 §4.1.1: QR set, RD copied, RA)."""
    qid = struct.unpack_from("!H", query)[0]
    return struct.pack("!6H", qid, 0x8180, 1, 0, 0, 0) + query[12:]


def smtp_session(s: socket.socket) -> None:
    try:
        conn, _ = s.accept()
    except TimeoutError:
        return
    with conn:
        conn.settimeout(2.0)
        conn.sendall(b"220 lab ESMTP\r\n")
        data = b""
        while b"\n" not in data:
            chunk = conn.recv(512)
            if not chunk:
                return
            data += chunk
        if data.startswith(b"HELO "):
            conn.sendall(b"250 lab\r\n")
        else:
            conn.sendall(b"500 what\r\n")
        with contextlib.suppress(OSError):
            conn.recv(512)


def silent_listener(farm: Farm, port: int) -> socket.socket:
    """A TCP socket that listens and never accepts, reads or writes."""
    s = socket_in(farm.server_ns)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    return s


def apply(farm: Farm, addrs: list[str], kind: str) -> Callable[[], object]:
    return lambda: farm.faults.apply(addrs, kind)


def recover(farm: Farm, addrs: list[str]) -> Callable[[], object]:
    return lambda: farm.faults.recover(addrs)


def no_op() -> Callable[[], Any]:
    return lambda: None
