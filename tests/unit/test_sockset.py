"""TCP_CHECK's connects (``sockset.ConnectSet``), both twins (``twin_flavour``)."""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.conftest import load_twin


@pytest.fixture
def sockset(twin_flavour: str) -> ModuleType:
    return load_twin("sockset", twin_flavour)


# --------------------------------------------------------------------------- ConnectSet


@pytest.fixture
def listening() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _wait(cs: object) -> None:
    select.select([cs.fileno()], [], [], 2.0)  # type: ignore[attr-defined]


def test_connects_report_success_and_refusal_and_close_their_fds(
    sockset: ModuleType, listening: int
) -> None:
    before = _open_fds()
    cs = sockset.ConnectSet()
    try:
        ok = cs.start(socket.AF_INET, "127.0.0.1", listening)
        with socket.socket() as probe:  # a port that refuses: bound, not listening
            probe.bind(("127.0.0.1", 0))
            refused = cs.start(socket.AF_INET, "127.0.0.1", probe.getsockname()[1])
            assert ok >= 0 and refused >= 0 and cs.pending == 2
            got: dict[int, int] = {}
            for _ in range(20):
                _wait(cs)
                got.update(cs.ready())
                if len(got) == 2:
                    break
        assert got == {ok: 0, refused: errno.ECONNREFUSED}
        assert cs.pending == 0 and cs.ready() == []
    finally:
        cs.close()
    assert cs.closed and _open_fds() == before


def test_connect_failures_at_once_are_negative_errnos(sockset: ModuleType) -> None:
    before = _open_fds()
    cs = sockset.ConnectSet()
    assert cs.start(socket.AF_INET, "300.1.2.3", 80) == -errno.EINVAL
    assert cs.start(socket.AF_INET6, "127.0.0.1", 80) == -errno.EINVAL
    assert cs.start(socket.AF_UNIX, "127.0.0.1", 80) == -errno.EINVAL
    with open("/dev/null") as f:  # epoll refuses a file that cannot be polled
        fd = os.dup(f.fileno())
    assert cs.adopt(fd) == -errno.EPERM
    assert cs.pending == 0
    cs.close()
    assert _open_fds() == before
    with pytest.raises(ValueError):
        cs.start(socket.AF_INET, "127.0.0.1", 80)


def test_cancel_and_close_release_connects_in_flight(
    sockset: ModuleType, listening: int
) -> None:
    before = _open_fds()
    cs = sockset.ConnectSet()
    a = cs.start(socket.AF_INET, "127.0.0.1", listening)
    b = cs.start(socket.AF_INET6, "::1", listening)  # refused or unreachable: either
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", listening))
    assert cs.adopt(s.detach()) == 0
    assert cs.pending == 3
    assert cs.cancel(a) is True and cs.cancel(a) is False and cs.pending == 2
    _wait(cs)
    time.sleep(0.05)
    assert a not in dict(cs.ready())
    cs.close()
    assert cs.closed and cs.pending == 0 and _open_fds() == before
    assert cs.ready() == [] and b >= 0


def test_both_sets_refuse_what_the_contract_refuses(sockset: ModuleType) -> None:
    """The refusals are epoll_set's, whichever twin: a batch of no events, a start
    on a closed set, and an adopt on a closed set (which still owns the fd, so
    closes it)."""
    for make in (sockset.ConnectSet, sockset.FetchSet):
        with pytest.raises(ValueError, match="max_events must be at least 1"):
            make(0)
    before = _open_fds()
    cs, fs = sockset.ConnectSet(), sockset.FetchSet()
    cs.close()
    fs.close()
    with pytest.raises(ValueError, match=r"^FetchSet is closed$"):
        fs.start(socket.AF_INET, "127.0.0.1", 80, b"GET /")
    s = socket.socket()
    with pytest.raises(ValueError, match=r"^ConnectSet is closed$"):
        cs.adopt(s.detach())
    assert _open_fds() == before
