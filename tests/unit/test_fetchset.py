"""HTTP_GET's plain fetches (``checkq.FetchSet``), both twins (``twin_flavour``),
against servers on 127.0.0.1 in this process: a reply read to EOF in pieces, a
refused connect, a reset in mid-reply, cancel (a RST), a request larger than the
socket buffer (a partial send, then writability), close with fetches in flight,
a closed fd's number reused at once, and every owner reference released."""

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

from tests.conftest import load_twin

pytestmark = pytest.mark.timeout(30)

REQUEST = b"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1\r\n\r\n"
REPLY = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"
RST = struct.pack("ii", 1, 0)


@pytest.fixture
def checkq(twin_flavour: str) -> ModuleType:
    return load_twin("checkq", twin_flavour)


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
        except BaseException as exc:  # reported by the test that cares
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
    c, py = load_twin("checkq", twin_flavour), load_twin("checkq", "py")
    names = ("OPEN", "EOF", "CONNECT", "SEND", "READ", "SOCKET", "STAGE", "READ_SIZE", "BUDGET")
    assert [getattr(c.FetchSet, n) for n in names] == [getattr(py.FetchSet, n) for n in names]
    assert c.FetchSet.OPEN == 0 and c.FetchSet.EOF == 1


def test_a_reply_in_pieces_is_read_to_eof(checkq: ModuleType, serve: Any) -> None:
    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        for piece in (REPLY[:7], REPLY[7:20], REPLY[20:]):
            conn.sendall(piece)
            time.sleep(0.05)

    server = serve(handler)
    before = _open_fds()
    fs = checkq.FetchSet()
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


def test_refused_is_a_connect_failure(checkq: ModuleType) -> None:
    fs = checkq.FetchSet()
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
    checkq: ModuleType, serve: Any
) -> None:
    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(REPLY[:20])
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)

    server = serve(handler)
    fs = checkq.FetchSet()
    fd = fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST)
    ((data, status, owners),) = collect(fs, [fd]).values()
    assert (data, status) == (REPLY[:20], fs.READ | errno.ECONNRESET)
    assert owners[-1] is None and status & fs.STAGE == fs.READ
    fs.close()


def test_cancel_closes_with_a_rst_and_reports_nothing(checkq: ModuleType, serve: Any) -> None:
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
    fs = checkq.FetchSet()
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


def test_owners_are_released_on_end_cancel_and_close(checkq: ModuleType, serve: Any) -> None:
    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(REPLY)

    server = serve(handler)
    fs = checkq.FetchSet()
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
    checkq: ModuleType, serve: Any
) -> None:
    big = REQUEST + b"x" * (32 << 20)
    started = threading.Event()

    def handler(conn: socket.socket) -> None:
        started.wait(5)  # let the client's first send fill the buffers
        server.read_request(conn, len(big))
        conn.sendall(REPLY)

    server = serve(handler)
    fs = checkq.FetchSet()
    fd = fs.start(socket.AF_INET, "127.0.0.1", server.port, big)
    assert fd >= 0
    started.set()
    ((data, status, _),) = collect(fs, [fd], seconds=20).values()
    assert (data, status) == (REPLY, fs.EOF)
    assert len(server.got) == 1 and server.got[0] == big
    fs.close()


def test_close_with_fetches_in_flight_releases_everything(
    checkq: ModuleType, serve: Any
) -> None:
    release = threading.Event()

    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        release.wait(5)

    server = serve(handler)
    before = _open_fds()
    fs = checkq.FetchSet()
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


def test_a_number_reused_after_the_end_is_a_new_fetch(checkq: ModuleType, serve: Any) -> None:
    hold = threading.Event()

    def handler(conn: socket.socket) -> None:
        request = server.read_request(conn)
        if b"/hold" in request:
            hold.wait(5)
        conn.sendall(REPLY)

    server = serve(handler)
    fs = checkq.FetchSet()
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


def test_failures_at_once_are_negative_stage_errnos(checkq: ModuleType) -> None:
    before = _open_fds()
    fs = checkq.FetchSet()
    bad = -(fs.CONNECT | errno.EINVAL)
    assert fs.start(socket.AF_INET, "300.1.2.3", 80, REQUEST) == bad
    assert fs.start(socket.AF_INET6, "127.0.0.1", 80, REQUEST) == bad
    assert fs.start(socket.AF_UNIX, "127.0.0.1", 80, REQUEST) == bad
    assert fs.pending == 0
    fs.close()
    assert _open_fds() == before
    with pytest.raises(ValueError):
        checkq.FetchSet(max_events=0)


def test_many_fetches_at_once(checkq: ModuleType, serve: Any) -> None:
    def handler(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(REPLY)

    server = serve(handler)
    fs = checkq.FetchSet(max_events=3)  # fewer than the fetches: several rounds
    fds = [fs.start(socket.AF_INET, "127.0.0.1", server.port, REQUEST, i) for i in range(20)]
    got = collect(fs, fds)
    assert all(v[:2] == (REPLY, fs.EOF) for v in got.values())
    assert [got[fd][2][-1] for fd in fds] == list(range(20))
    fs.close()
