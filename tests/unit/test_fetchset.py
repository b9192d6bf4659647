"""HTTP_GET's plain fetches (``sockset.FetchSet``), both twins (``twin_flavour``),
against servers on 127.0.0.1 in this process: a reply read to EOF in pieces, a
refused connect, a reset in mid-reply, cancel (a RST), a request larger than the
socket buffer (a partial send, then writability), close with fetches in flight,
a closed fd's number reused at once, and every owner reference released.

Then the shell (``http_fetch.Fetcher``): HTTP_GET end to end on loopback, and, with a
scripted FetchSet, the batch rules (an ended fetch is detached before any
callback, a fetch cancelled by an earlier callback is silent, a raising consumer
does not stop the batch) and the words of every ending."""

from __future__ import annotations

import errno
import gc
import os
import select
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from hafast._core import epoll_set
from tests.conftest import load_twin, require

pytestmark = pytest.mark.timeout(30)

REQUEST = b"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1\r\n\r\n"
REPLY = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"
RST = struct.pack("ii", 1, 0)


@pytest.fixture
def sockset(twin_flavour: str) -> ModuleType:
    return load_twin("sockset", twin_flavour)


class Server:
    """A listening socket on 127.0.0.1; each accepted connection is handed to
    ``handler(conn)`` on a thread.  Everything is closed and joined at the end."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.got: list[bytes] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            t = threading.Thread(target=self._one, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            self.handler(conn)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the FetchSet cancelled or closed the fetch: an RST (SO_LINGER 0) by design
        except BaseException as exc:  # raised again by close(), in the test's thread
            self.errors.append(exc)
        finally:
            conn.close()

    def read_request(self, conn: socket.socket, size: int = len(REQUEST)) -> bytes:
        data = b""
        while len(data) < size:
            piece = conn.recv(1 << 20)
            if not piece:
                break
            data += piece
        self.got.append(data)
        return data

    def close(self) -> None:
        self.stop.set()
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)
        self.sock.close()
        if self.errors:
            raise AssertionError(f"server handler failed: {self.errors!r}") from self.errors[0]


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[socket.socket], None]], Server]]:
    made: list[Server] = []

    def make(handler: Callable[[socket.socket], None]) -> Server:
        server = Server(handler)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


Collected = dict[int, tuple[bytes, int, list[Any]]]


def collect(fs: Any, fds: list[int], seconds: float = 5.0) -> Collected:
    """Drive ``ready`` until every fd in ``fds`` ended: fd -> (data, status, owners)."""
    data: dict[int, bytearray] = {fd: bytearray() for fd in fds}
    owners: dict[int, list[Any]] = {fd: [] for fd in fds}
    ended: dict[int, int] = {}
    end = time.monotonic() + seconds
    while len(ended) < len(fds) and time.monotonic() < end:
        select.select([fs.fileno()], [], [], 0.2)
        for fd, owner, chunk, status in fs.ready():
            if fd not in data:
                continue  # another fetch of the set: not watched here
            assert fd not in ended, fd
            assert chunk is None or (type(chunk) is bytes and chunk)
            assert chunk is not None or status, "an event with nothing to say"
            if chunk:
                data[fd] += chunk
            owners[fd].append(owner)
            if status:
                ended[fd] = status
    assert len(ended) == len(fds), f"not ended in {seconds} s: {set(fds) - set(ended)}"
    return {fd: (bytes(data[fd]), ended[fd], owners[fd]) for fd in fds}


def test_the_twins_share_their_constants(twin_flavour: str) -> None:
    c, py = load_twin("sockset", twin_flavour), load_twin("sockset", "py")
    names = ("OPEN", "EOF", "CONNECT", "SEND", "READ", "SOCKET", "STAGE", "READ_SIZE", "BUDGET")
    assert [getattr(c.FetchSet, n) for n in names] == [getattr(py.FetchSet, n) for n in names]
    assert [getattr(c.FetchSet, n) for n in names] == [getattr(epoll_set, n) for n in names]
    assert c.FetchSet.OPEN == 0 and c.FetchSet.EOF == 1


def test_a_reply_in_pieces_is_read_to_eof(sockset: ModuleType, serve: Any) -> None:
    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        for piece in (REPLY[:7], REPLY[7:20], REPLY[20:]):
            conn.sendall(piece)
            time.sleep(0.05)

    server = serve(handler)
    before = _open_fds()
    fs = sockset.FetchSet()
    owner = object()
    fd = fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST, owner)
    assert fd >= 0 and fs.pending == 1
    ((data, status, owners),) = collect(fs, [fd]).values()
    assert (data, status) == (REPLY, fs.EOF)
    assert len(owners) >= 2 and all(o is owner for o in owners)  # pieces, then the EOF
    assert server.got == [REQUEST] and fs.pending == 0
    with pytest.raises(OSError):
        os.fstat(fd)  # closed by ready(), before it returned
    fs.close()
    assert _open_fds() == before


def test_refused_is_a_connect_failure(sockset: ModuleType) -> None:
    fs = sockset.FetchSet()
    with socket.socket() as probe:  # bound, not listening: refuses
        probe.bind(("127.0.0.1", 0))
        fd = fs.start(socket.AF_INET, "127.0.0.1", probe.getsockname()[1], REQUEST, "o")
        refused = fs.CONNECT | errno.ECONNREFUSED
        if fd >= 0:  # the RST had not been seen by the first send
            ((data, status, owners),) = collect(fs, [fd]).values()
            assert (data, status, owners) == (b"", refused, ["o"])
        else:
            assert fd == -refused
    assert fs.pending == 0
    fs.close()


def test_a_reset_in_mid_reply_reports_the_bytes_then_the_error(
    sockset: ModuleType, serve: Any
) -> None:
    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(REPLY[:20])
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)

    server = serve(handler)
    fs = sockset.FetchSet()
    fd = fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST)
    ((data, status, owners),) = collect(fs, [fd]).values()
    assert (data, status) == (REPLY[:20], fs.READ | errno.ECONNRESET)
    assert owners[-1] is None and status & fs.STAGE == fs.READ
    fs.close()


def test_cancel_closes_with_a_rst_and_reports_nothing(sockset: ModuleType, serve: Any) -> None:
    seen: list[str] = []
    go = threading.Event()

    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        go.wait(5)
        try:
            seen.append("eof" if conn.recv(100) == b"" else "data")
        except ConnectionResetError:
            seen.append("reset")

    server = serve(handler)
    before = _open_fds()
    fs = sockset.FetchSet()
    owner = object()
    fd = fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST, owner)
    end = time.monotonic() + 5
    while not server.got and time.monotonic() < end:
        time.sleep(0.01)
    assert fs.cancel(fd) is True and fs.cancel(fd) is False and fs.pending == 0
    go.set()
    end = time.monotonic() + 5
    while not seen and time.monotonic() < end:
        time.sleep(0.01)
    for t in server.threads:
        t.join(5)
    assert fs.ready() == []
    fs.close()
    assert seen == ["reset"]  # SO_LINGER {1, 0}: the server sees a RST, not a FIN
    assert _open_fds() == before


class Owner:
    """Something a weak reference can follow."""


def test_owners_are_released_on_end_cancel_and_close(sockset: ModuleType, serve: Any) -> None:
    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(REPLY)

    server = serve(handler)
    fs = sockset.FetchSet()
    ended, cancelled, closed = Owner(), Owner(), Owner()
    refs = [weakref.ref(o) for o in (ended, cancelled, closed)]
    a = fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST, ended)
    b = fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST, cancelled)
    c = fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST * 1000, closed)
    del ended, cancelled, closed
    collect(fs, [a])
    fs.cancel(b)
    fs.close()
    gc.collect()
    assert [r() for r in refs] == [None, None, None] and c >= 0


def test_a_request_larger_than_the_socket_buffer_is_sent_in_parts(
    sockset: ModuleType, serve: Any
) -> None:
    big = REQUEST + b"x" * (32 << 20)
    started = threading.Event()

    def handler(conn: socket.socket) -> None:
        started.wait(5)  # let the client's first send fill the buffers
        server.read_request(conn, len(big))
        conn.sendall(REPLY)

    server = serve(handler)
    fs = sockset.FetchSet()
    fd = fs.start(socket.AF_INET, "127.0.0.1", server.port, big)
    assert fd >= 0
    started.set()
    ((data, status, _),) = collect(fs, [fd], seconds=20).values()
    assert (data, status) == (REPLY, fs.EOF)
    assert len(server.got) == 1 and server.got[0] == big
    fs.close()


def test_close_with_fetches_in_flight_releases_everything(
    sockset: ModuleType, serve: Any
) -> None:
    release = threading.Event()

    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        release.wait(5)

    server = serve(handler)
    before = _open_fds()
    fs = sockset.FetchSet()
    fds = [fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST, i) for i in range(8)]
    assert all(fd >= 0 for fd in fds) and fs.pending == 8
    end = time.monotonic() + 5
    while len(server.got) < 8 and time.monotonic() < end:
        time.sleep(0.01)
    fs.close()
    release.set()
    for t in server.threads:  # the server's ends of the connections are ours too
        t.join(5)
    assert fs.closed and fs.pending == 0 and fs.ready() == [] and fs.cancel(fds[0]) is False
    assert _open_fds() == before
    with pytest.raises(ValueError):
        fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST)


def test_a_number_reused_after_the_end_is_a_new_fetch(sockset: ModuleType, serve: Any) -> None:
    hold = threading.Event()

    def handler(conn: socket.socket) -> None:
        request = server.read_request(conn)
        if b"/hold" in request:
            hold.wait(5)
        conn.sendall(REPLY)

    server = serve(handler)
    fs = sockset.FetchSet()
    first = fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST, "first")
    assert collect(fs, [first])[first][1] == fs.EOF
    # The number is free the moment ready() returned: the next fetch takes it.
    second = fs.start(socket.AF_INET, "127.0.0.1", server.port,
                      REQUEST.replace(b"GET /", b"GET /hold"), "second")
    assert second == first
    assert fs.cancel(first) is True  # the same number: now the second fetch's
    assert fs.pending == 0
    hold.set()
    third = fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST, "third")
    ((data, status, owners),) = collect(fs, [third]).values()
    assert (data, status, set(owners)) == (REPLY, fs.EOF, {"third"})
    fs.close()


def test_failures_at_once_are_negative_stage_errnos(sockset: ModuleType) -> None:
    before = _open_fds()
    fs = sockset.FetchSet()
    bad = -(fs.CONNECT | errno.EINVAL)
    assert fs.start(socket.AF_INET, "300.1.2.3", 80, REQUEST) == bad
    assert fs.start(socket.AF_INET6, "127.0.0.1", 80, REQUEST) == bad
    assert fs.start(socket.AF_UNIX, "127.0.0.1", 80, REQUEST) == bad
    assert fs.pending == 0
    fs.close()
    assert _open_fds() == before
    with pytest.raises(ValueError):
        sockset.FetchSet(max_events=0)


def test_many_fetches_at_once(sockset: ModuleType, serve: Any) -> None:
    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(REPLY)

    server = serve(handler)
    fs = sockset.FetchSet(max_events=3)  # fewer than the fetches: several rounds
    fds = [fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST, i) for i in range(20)]
    got = collect(fs, fds)
    assert all(v[:2] == (REPLY, fs.EOF) for v in got.values())
    assert [got[fd][2][-1] for fd in fds] == list(range(20))
    fs.close()


def _full_listener() -> tuple[socket.socket, socket.socket]:
    """A listener whose accept queue is full (backlog 0, one connection waiting):
    Linux drops the next SYN, so a connect stays in SYN_SENT until the SYN is
    sent again (1 s later) and the request waits for writability."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    filler = socket.create_connection(ls.getsockname(), timeout=5)
    return ls, filler


def test_a_handshake_that_completes_later_sends_on_writability(sockset: ModuleType) -> None:
    ls, filler = _full_listener()
    got: list[bytes] = []

    def serve_one() -> None:
        ls.accept()[0].close()  # the filler: room for the SYN sent again
        conn, _ = ls.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while not data.endswith(b"\r\n\r\n"):
                data += conn.recv(4096)
            got.append(data)
            conn.sendall(REPLY)

    fs = sockset.FetchSet()
    try:
        fd = fs.start(socket.AF_INET, "127.0.0.1", ls.getsockname()[1], REQUEST, "late")
        assert fd >= 0 and fs.ready() == []  # SYN_SENT: nothing sent, nothing read
        server = threading.Thread(target=serve_one, daemon=True)
        server.start()
        ((data, status, owners),) = collect(fs, [fd], seconds=10).values()
        server.join(5)
        assert (data, status, set(owners)) == (REPLY, fs.EOF, {"late"})
        assert got == [REQUEST]
    finally:
        fs.close()
        filler.close()
        ls.close()


def test_a_connect_refused_after_syn_sent_is_a_connect_failure(sockset: ModuleType) -> None:
    ls, filler = _full_listener()
    fs = sockset.FetchSet()
    try:
        fd = fs.start(socket.AF_INET, "127.0.0.1", ls.getsockname()[1], REQUEST, "o")
        assert fd >= 0
        ls.close()  # the SYN sent again meets a closed port: a RST
        filler.close()
        ((data, status, _),) = collect(fs, [fd], seconds=10).values()
        assert (data, status) == (b"", fs.CONNECT | errno.ECONNREFUSED)
    finally:
        fs.close()
        filler.close()
        ls.close()


def test_ipv6_fetches(sockset: ModuleType) -> None:
    try:
        ls = socket.socket(socket.AF_INET6)
        ls.bind(("::1", 0))
    except OSError as exc:
        require(False, f"no IPv6 loopback: {exc}")
    ls.listen(4)

    def serve_one() -> None:
        conn, _ = ls.accept()
        with conn:
            conn.settimeout(5)
            conn.recv(4096)
            conn.sendall(REPLY)

    server = threading.Thread(target=serve_one, daemon=True)
    server.start()
    fs = sockset.FetchSet()
    try:
        fd = fs.start(socket.AF_INET6, "::1", ls.getsockname()[1], REQUEST)
        ((data, status, _),) = collect(fs, [fd]).values()
        assert (data, status) == (REPLY, fs.EOF)
    finally:
        server.join(5)
        fs.close()
        ls.close()


# --------------------------------------------------------------------------- the shell


def _kind(loop: Any, *urls: Any, port: int = 80) -> Any:
    from hafast.check.http import HttpGetKind
    from hafast.config.model import HttpGetCheck, Url

    return HttpGetKind(HttpGetCheck(urls=urls or (Url("/"),)), _target(port), loop)


def _target(port: int) -> Any:
    from hafast.check.api import Target

    return Target("127.0.0.1", port)


def test_plain_http_get_on_loopback_reads_every_url_in_order(serve: Any) -> None:
    import uvloop

    from hafast.check import http_fetch
    from hafast.check.http_parse import md5_hex
    from hafast.config.model import Url

    bodies = {b"/a": b"alpha", b"/b": b"bravo" * 50_000}  # /b: a reply in many reads

    def handler(conn: socket.socket) -> None:
        request = server.read_request(conn, 1)
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        body = bodies[request.split()[1]]
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + body)

    server = serve(handler)
    loop = uvloop.new_event_loop()
    try:
        kind = _kind(loop, Url("/a", digest=md5_hex(b"alpha")),
                     Url("/b", digest=md5_hex(bodies[b"/b"])),
                     Url("/a", digest="0" * 32), port=server.port)
        assert kind.plain
        got: list[Any] = []
        attempt = kind.start(got.append)
        assert kind.fetcher is not None and kind.fetcher.fetches.pending == 1
        end = loop.time() + 10
        while not got and loop.time() < end:
            loop.run_until_complete(asyncio_sleep(0.01))
        (result,) = got
        assert (result.ok, result.reason) == (False, "digest")
        assert result.detail.startswith("/a:")
        assert [r.split()[1] for r in server.got] == [b"/a", b"/b", b"/a"]
        attempt.cancel()  # after the result: harmless
        fetcher = kind.fetcher
        kind.close()
        assert fetcher.fetches.closed and not len(http_fetch._fetchers)
    finally:
        loop.close()


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


class FakeFetches:
    """Stands in for the FetchSet: scripted ``ready`` batches, recorded cancels."""

    def __init__(self) -> None:
        self.next_fd = 10
        self.batch: list[Any] = []
        self.cancelled: list[int] = []

    def fileno(self) -> int:
        return 99

    def start(self, family: int, address: str, port: int, request: bytes, owner: Any) -> int:
        self.next_fd += 1
        return self.next_fd - 1

    def ready(self) -> list[Any]:
        batch, self.batch = self.batch, []
        return batch

    def cancel(self, fd: int) -> bool:
        self.cancelled.append(fd)
        return True

    def close(self) -> None:
        pass


def _shell() -> tuple[Any, FakeFetches, Any]:
    from hafast.check import http_fetch
    from tests.unit.check.fakeloop import FakeLoop

    loop = FakeLoop()
    fetcher = http_fetch.Fetcher(loop)
    fetcher.fetches.close()
    fake = FakeFetches()
    fetcher.fetches = fake  # type: ignore[assignment]
    return loop, fake, fetcher


REPLY_OK = b"HTTP/1.0 200 OK\r\n\r\nfine"


def test_a_callback_that_cancels_a_later_fetch_of_the_batch_silences_it() -> None:
    from hafast.check import http_fetch

    loop, fake, fetcher = _shell()
    kinds = [_kind(loop), _kind(loop)]
    for k in kinds:
        k.fetcher = fetcher
    got: dict[str, list[Any]] = {"a": [], "b": []}
    attempts: list[Any] = []

    def done_a(r: Any) -> None:
        got["a"].append(r)
        attempts[1].cancel()  # e.g. a reload that drops the other checker

    attempts.append(kinds[0].start(done_a))
    attempts.append(kinds[1].start(got["b"].append))
    fa, fb = attempts[0].fd, attempts[1].fd
    fake.batch = [(fa, attempts[0], REPLY_OK, http_fetch.FetchSet.EOF),
                  (fb, attempts[1], REPLY_OK[:5], 0)]
    fetcher.ready()
    assert [r.ok for r in got["a"]] == [True] and got["b"] == []
    assert fake.cancelled == [fb] and attempts[1].fd == -1


def test_an_ended_fetch_is_detached_before_any_callback_runs() -> None:
    from hafast.check import http_fetch

    loop, fake, fetcher = _shell()
    kinds = [_kind(loop), _kind(loop)]
    for k in kinds:
        k.fetcher = fetcher
    got: list[Any] = []
    attempts: list[Any] = []

    def done_a(r: Any) -> None:
        got.append(("a", r.ok))
        attempts[1].cancel()  # its fetch ended in this batch: nothing to close

    attempts.append(kinds[0].start(done_a))
    attempts.append(kinds[1].start(lambda r: got.append(("b", r.ok))))
    fa, fb = attempts[0].fd, attempts[1].fd
    fake.batch = [(fa, attempts[0], REPLY_OK, http_fetch.FetchSet.EOF),
                  (fb, attempts[1], None, http_fetch.FetchSet.READ | errno.ECONNRESET)]
    fetcher.ready()
    # b's number may belong to a new fetch by now: its cancel must not close it,
    # and b was cancelled before its turn: no callback.
    assert got == [("a", True)] and fake.cancelled == []


def test_a_raising_consumer_is_logged_and_the_batch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from hafast.check import http_fetch

    loop, fake, fetcher = _shell()
    kinds = [_kind(loop), _kind(loop)]
    for k in kinds:
        k.fetcher = fetcher
    got: list[Any] = []

    def boom(r: Any) -> None:
        raise RuntimeError("consumer bug")

    a = kinds[0].start(boom)
    b = kinds[1].start(got.append)
    fake.batch = [(a.fd, a, REPLY_OK, http_fetch.FetchSet.EOF),  # type: ignore[attr-defined]
                  (b.fd, b, None, http_fetch.FetchSet.CONNECT | errno.ECONNREFUSED)]  # type: ignore[attr-defined]
    with caplog.at_level("ERROR", logger="hafast.check"):
        fetcher.ready()
    assert "consumer bug" in caplog.text
    assert [(r.ok, r.reason, r.detail) for r in got] == [
        (False, "refused", "/: connect: ECONNREFUSED")]


@pytest.mark.parametrize(("status", "reason", "detail"), [
    (0x10000 | errno.EHOSTUNREACH, "unreachable", "connect: EHOSTUNREACH"),
    (0x20000 | errno.EPIPE, "send", "send: [Errno 32] Broken pipe"),
    (0x30000 | errno.ECONNRESET, "reset", "read: [Errno 104] Connection reset by peer"),
    (0x30000 | errno.EIO, "read", "read: [Errno 5] Input/output error"),
    (0x40000 | errno.EINVAL, "socket", "socket: [Errno 22] Invalid argument"),
    # the worker's own limit: rescheduled, not the server's failure (check.runner)
    (0x40000 | errno.EMFILE, "fd-limit", "socket: [Errno 24] Too many open files"),
])
def test_endings_name_the_stage_as_the_exchange_does(status: int, reason: str, detail: str) -> None:
    loop, fake, fetcher = _shell()
    kind = _kind(loop)
    kind.fetcher = fetcher
    got: list[Any] = []
    a = kind.start(got.append)
    fake.batch = [(a.fd, a, None, status)]  # type: ignore[attr-defined]
    fetcher.ready()
    assert [(r.ok, r.reason, r.detail) for r in got] == [(False, reason, "/: " + detail)]


def test_a_refused_reply_cancels_the_open_fetch() -> None:
    loop, fake, fetcher = _shell()
    kind = _kind(loop)
    kind.body_cap = 8  # the parser's cap; the shell stops the fetch
    kind.fetcher = fetcher
    got: list[Any] = []
    a = kind.start(got.append)
    fd = a.fd  # type: ignore[attr-defined]
    fake.batch = [(fd, a, b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 9, 0)]
    fetcher.ready()
    assert [(r.reason, r.detail) for r in got] == [
        ("body-too-large", "/: reply refused: body-too-large")]
    assert fake.cancelled == [fd] and a.fd == -1  # type: ignore[attr-defined]


def test_fetchers_are_per_loop_and_those_of_closed_loops_go() -> None:
    import uvloop

    from hafast.check import http_fetch
    from tests.unit.check.fakeloop import FakeLoop

    fake = FakeLoop()  # no is_closed(): left alone by the sweep
    kept = http_fetch.Fetcher.acquire(fake)
    first, second = uvloop.new_event_loop(), uvloop.new_event_loop()
    try:
        a = http_fetch.Fetcher.acquire(first)
        assert http_fetch.Fetcher.acquire(first) is a and a.users == 2
        first.close()
        b = http_fetch.Fetcher.acquire(second)  # sweeps the closed loop's
        assert b is not a and a.fetches.closed and not kept.fetches.closed
        assert set(http_fetch._fetchers) == {kept, b}
        b.release()
        kept.release()
        assert b.fetches.closed and kept.fetches.closed and not len(http_fetch._fetchers)
    finally:
        first.close()
        second.close()
