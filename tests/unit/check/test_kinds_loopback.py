"""Each connection-based kind and MISC_CHECK on a real uvloop loop against small
servers on 127.0.0.1 (no privileges).  The lab tests (tests/netns/test_checks_*.py)
do the same against real servers in namespaces with injected faults."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hafast.check.api import ProbeKind, ProbeResult, Target
from hafast.check.dns import DnsKind
from hafast.check.misc import MiscKind
from hafast.check.smtp import SmtpKind
from hafast.check.tcp import SO_BINDTODEVICE, SO_MARK, TcpKind, open_socket
from hafast.check.udp import UdpKind
from hafast.check.worker import new_loop
from hafast.config import model as m
from tests.conftest import require, require_root

S = 1_000_000


def probe(cls: type[ProbeKind], spec: Any, target: Target, **extras: Any) -> ProbeResult:
    """One attempt the way the runner makes it: the deadline cancels the attempt."""
    loop = new_loop()
    try:
        kind = cls(spec, target, loop, **extras)
        fut = loop.create_future()

        def done(result: ProbeResult) -> None:
            if not fut.done():
                fut.set_result(result)

        attempt = kind.start(done)

        def expire() -> None:
            if not fut.done():
                attempt.cancel()
                fut.set_result(kind.on_deadline())

        loop.call_later(kind.deadline_us() / S, expire)
        result: ProbeResult = loop.run_until_complete(fut)
        kind.close()
        return result
    finally:
        loop.close()


@contextlib.contextmanager
def server(sock_type: int, handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A server on 127.0.0.1 served by ``handle`` on a thread; yields its port."""
    s = socket.socket(socket.AF_INET, sock_type)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    if sock_type == socket.SOCK_STREAM:
        s.listen(16)
    s.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                handle(s)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield s.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        s.close()


def free_port(sock_type: int) -> int:
    with socket.socket(socket.AF_INET, sock_type) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --------------------------------------------------------------------------- TCP


def test_tcp_connect_ok_even_when_the_server_never_answers() -> None:
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(4)  # accepted by the kernel; nobody ever reads or writes
        r = probe(TcpKind, m.TcpCheck(connect_timeout_us=S), Target("127.0.0.1",
                                                                     lst.getsockname()[1]))
    assert r.ok


def test_tcp_refused() -> None:
    r = probe(TcpKind, m.TcpCheck(connect_timeout_us=S),
              Target("127.0.0.1", free_port(socket.SOCK_STREAM)))
    assert (r.ok, r.reason) == (False, "refused")


def test_tcp_bind_options() -> None:
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(4)
        port = lst.getsockname()[1]
        ok = probe(TcpKind, m.TcpCheck(), Target("127.0.0.1", port, bindto="127.0.0.2"))
        assert ok.ok
        bad = probe(TcpKind, m.TcpCheck(), Target("127.0.0.1", port, bindto="192.0.2.77"))
        assert (bad.ok, bad.reason) == (False, "bind")
        dev = probe(TcpKind, m.TcpCheck(), Target("127.0.0.1", port, bind_if="hafast-none0"))
        assert not dev.ok


@pytest.mark.parametrize("target", [
    Target("10.0.0.1", 80), Target("10.0.0.1"), Target("fd00::1", 443),
    Target("10.0.0.1", 80, bindto="10.0.0.9"), Target("10.0.0.1", 80, fwmark=7)])
def test_tcp_kind_gives_back_the_target_it_was_made_for(target: Target) -> None:
    """A plain target is not kept but made again (issue 16); it must equal the one the
    kind was made for, port None included (the reload adopts a check by it).  One
    with options is the same object."""
    kind = TcpKind(m.TcpCheck(), target, None)
    assert kind.target == target and kind.family == target.family
    assert (kind.target is target) is (not kind.plain)


# --------------------------------------------------------------------------- UDP


def _echo(reply: Callable[[bytes], bytes | None]) -> Callable[[socket.socket], None]:
    def handle(s: socket.socket) -> None:
        try:
            data, peer = s.recvfrom(2048)
        except TimeoutError:
            return
        out = reply(data)
        if out is not None:
            s.sendto(out, peer)

    return handle


def udp_spec(**kw: Any) -> m.UdpCheck:
    return m.UdpCheck(connect_timeout_us=300_000, **kw)


def test_udp_reply_and_patterns() -> None:
    with server(socket.SOCK_DGRAM, _echo(lambda d: b"\xab\xcd" + d)) as port:
        t = Target("127.0.0.1", port)
        assert probe(UdpKind, udp_spec(payload="0102"), t).ok
        assert probe(UdpKind, udp_spec(payload="01", require_reply="ABXX01"), t).ok
        r = probe(UdpKind, udp_spec(payload="01", require_reply="ABCD02"), t)
        assert (r.ok, r.reason) == (False, "reply")
        r = probe(UdpKind, udp_spec(payload="01", require_reply="", min_reply_length=4), t)
        assert not r.ok


def test_udp_port_unreachable_fails() -> None:
    r = probe(UdpKind, udp_spec(payload="00"), Target("127.0.0.1",
                                                      free_port(socket.SOCK_DGRAM)))
    assert (r.ok, r.reason) == (False, "refused")


def test_udp_silence_is_success_unless_a_reply_is_required() -> None:
    with server(socket.SOCK_DGRAM, _echo(lambda d: None)) as port:
        t = Target("127.0.0.1", port)
        assert probe(UdpKind, udp_spec(payload="00"), t).ok
        r = probe(UdpKind, udp_spec(payload="00", require_reply=""), t)
        assert (r.ok, r.reason) == (False, "timeout")


# --------------------------------------------------------------------------- DNS


def _dns(rcode: int, same_id: bool = True, first_junk: bool = False
         ) -> Callable[[bytes], bytes | None]:
    def reply(query: bytes) -> bytes | None:
        qid = struct.unpack_from("!H", query)[0]
        if not same_id:
            qid ^= 1
        return struct.pack("!6H", qid, 0x8180 | rcode, 1, 0, 0, 0) + query[12:]

    return reply


def dns_spec(**kw: Any) -> m.DnsCheck:
    return m.DnsCheck(connect_timeout_us=300_000, **kw)


@pytest.mark.parametrize(("rcode", "ok"), [(0, True), (3, False), (2, False), (5, False)])
def test_dns_rcode(rcode: int, ok: bool) -> None:
    seen: list[bytes] = []

    def reply(q: bytes) -> bytes | None:
        seen.append(q)
        return _dns(rcode)(q)

    with server(socket.SOCK_DGRAM, _echo(reply)) as port:
        r = probe(DnsKind, dns_spec(type="A", name="example.com"), Target("127.0.0.1", port))
    assert r.ok is ok
    assert seen[0][12:] == b"\x07example\x03com\x00\x00\x01\x00\x01"


def test_dns_other_id_is_ignored_until_the_deadline() -> None:
    with server(socket.SOCK_DGRAM, _echo(_dns(0, same_id=False))) as port:
        r = probe(DnsKind, dns_spec(), Target("127.0.0.1", port))
    assert (r.ok, r.reason) == (False, "timeout")


def test_dns_refused_port() -> None:
    r = probe(DnsKind, dns_spec(), Target("127.0.0.1", free_port(socket.SOCK_DGRAM)))
    assert (r.ok, r.reason) == (False, "refused")


# --------------------------------------------------------------------------- SMTP


def _smtp(greeting: bytes, helo_reply: bytes, seen: list[bytes]) -> Callable[[socket.socket],
                                                                             None]:
    def handle(s: socket.socket) -> None:
        try:
            conn, _ = s.accept()
        except TimeoutError:
            return
        with conn:
            conn.settimeout(1.0)
            if greeting:
                conn.sendall(greeting)
            with contextlib.suppress(OSError):
                data = b""
                while b"\n" not in data:
                    chunk = conn.recv(512)
                    if not chunk:
                        return
                    data += chunk
                seen.append(data)
                conn.sendall(helo_reply)
                seen.append(conn.recv(512))

    return handle


def smtp_spec(**kw: Any) -> m.SmtpCheck:
    return m.SmtpCheck(connect_timeout_us=500_000, **kw)


def test_smtp_dialogue() -> None:
    seen: list[bytes] = []
    with server(socket.SOCK_STREAM, _smtp(b"220-mx ESMTP\r\n220 ready\r\n",
                                          b"250 hello\r\n", seen)) as port:
        r = probe(SmtpKind, smtp_spec(helo_name="lb.example"), Target("127.0.0.1", port))
        for _ in range(50):
            if len(seen) == 2:
                break
            time.sleep(0.02)
    assert r.ok
    assert seen == [b"HELO lb.example\r\n", b"QUIT\r\n"]


@pytest.mark.parametrize(
    ("greeting", "helo_reply", "reason"),
    [
        (b"554 go away\r\n", b"", "status"),
        (b"220 ok\r\n", b"500 what\r\n", "status"),
        (b"", b"", "timeout"),  # connects, never greets
    ],
)
def test_smtp_failures(greeting: bytes, helo_reply: bytes, reason: str) -> None:
    with server(socket.SOCK_STREAM, _smtp(greeting, helo_reply, [])) as port:
        r = probe(SmtpKind, smtp_spec(helo_name="x"), Target("127.0.0.1", port))
    assert (r.ok, r.reason) == (False, reason)


def test_smtp_refused() -> None:
    r = probe(SmtpKind, smtp_spec(), Target("127.0.0.1", free_port(socket.SOCK_STREAM)))
    assert (r.ok, r.reason) == (False, "refused")


# --------------------------------------------------------------------------- MISC


def misc_spec(argv: tuple[str, ...], **kw: Any) -> m.MiscCheck:
    return m.MiscCheck(misc_path=m.Script(argv), misc_timeout_us=kw.pop("timeout", 2 * S),
                       **kw)


@pytest.mark.parametrize(
    ("argv", "dynamic", "ok", "weight"),
    [
        (("/bin/true",), False, True, None),
        (("/bin/false",), False, False, None),
        (("/bin/sh", "-c", "exit 9"), True, True, 7),
        (("/bin/sh", "-c", "exit 9"), False, False, None),
        (("/nonexistent/script",), False, False, None),
    ],
)
def test_misc_exit_status(argv: tuple[str, ...], dynamic: bool, ok: bool,
                          weight: int | None) -> None:
    r = probe(MiscKind, misc_spec(argv, misc_dynamic=dynamic), Target("10.0.0.1"))
    assert (r.ok, r.weight) == (ok, weight)


def test_misc_no_shell_splitting() -> None:
    # the argv is passed as is: a ';' is an argument, not a shell operator
    r = probe(MiscKind, misc_spec(("/bin/sh", "-c", 'test "$0" = ";"', ";")), Target("x"))
    assert r.ok


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    return True


def test_misc_hang_with_forked_child_is_killed_as_a_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 30 & echo $! > {pids}; echo $$ >> {pids}; sleep 30"
    start = time.monotonic()
    r = probe(MiscKind, misc_spec(("/bin/sh", "-c", script), timeout=400_000), Target("x"))
    elapsed = time.monotonic() - start
    assert (r.ok, r.reason) == (False, "timeout")
    assert elapsed < 5  # the deadline, not the 30 s sleep
    children = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in children), "process group survived the timeout"


def test_misc_leaves_no_zombie(tmp_path: Path) -> None:
    loop = new_loop()
    try:
        kind = MiscKind(misc_spec(("/bin/sh", "-c", "sleep 30"), timeout=200_000),
                        Target("x"), loop)
        attempt = kind.start(lambda r: None)
        child: Any = attempt
        loop.run_until_complete(_sleep(loop, 0.1))
        attempt.cancel()
        loop.run_until_complete(_sleep(loop, 0.3))
        assert not _exists(child.pid) or not _alive(child.pid)
        with pytest.raises(ChildProcessError):
            os.waitpid(child.pid, os.WNOHANG)  # already reaped by the kind
        kind.close()
    finally:
        loop.close()


def _exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def _sleep(loop: Any, seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_misc_user_option_needs_root() -> None:
    if os.geteuid() != 0:
        r = probe(MiscKind, misc_spec(("/usr/bin/id", "-u"), user=("nobody",)), Target("x"))
        assert not r.ok  # an unprivileged worker cannot switch user: a failure, not a crash
        return
    out = Path(f"/tmp/hafast-misc-{os.getpid()}")
    try:
        r = probe(MiscKind, misc_spec(("/bin/sh", "-c", f"id -u > {out}"),
                                      user=("nobody",)), Target("x"))
        assert r.ok
        import pwd

        assert int(out.read_text()) == pwd.getpwnam("nobody").pw_uid
    finally:
        out.unlink(missing_ok=True)


def test_sigchld_default_is_untouched() -> None:
    assert signal.getsignal(signal.SIGCHLD) in (signal.SIG_DFL, None)


def test_misc_path_as_the_model_gives_it() -> None:
    spec = m.MiscCheck(misc_path=m.Script(("/bin/sh", "-c", "exit 4")), misc_dynamic=True,
                       misc_timeout_us=2 * S)
    r = probe(MiscKind, spec, Target("x"))
    assert (r.ok, r.weight) == (True, 2)


def test_tcp_over_ipv6_loopback() -> None:
    require(socket.has_ipv6 and Path("/proc/net/if_inet6").exists(), "needs IPv6")
    with socket.socket(socket.AF_INET6) as lst:
        try:
            lst.bind(("::1", 0))
        except OSError as exc:
            require(False, f"no ::1 here: {exc}")
        lst.listen(4)
        port = lst.getsockname()[1]
        assert probe(TcpKind, m.TcpCheck(), Target("::1", port)).ok
    assert probe(TcpKind, m.TcpCheck(), Target("::1", port)).reason == "refused"


def test_open_socket_applies_mark_and_device() -> None:
    require_root()
    sock = open_socket(Target("127.0.0.1", 80, fwmark=0x5A, bind_if="lo", bindto="127.0.0.1",
                              bind_port=0), socket.SOCK_STREAM)
    with sock:
        assert sock.getsockopt(socket.SOL_SOCKET, SO_MARK) == 0x5A
        dev = sock.getsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, 16).rstrip(b"\0")
        assert dev == b"lo"
        assert sock.getsockname()[0] == "127.0.0.1"
        assert not sock.getblocking()


def test_misc_that_exits_leaving_a_child_behind_loses_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    r = probe(MiscKind, misc_spec(("/bin/sh", "-c", f"sleep 30 & echo $! > {pid_file}")),
              Target("x"))
    assert r.ok
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
