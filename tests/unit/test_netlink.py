"""hafast.lib.netlink: framing round trips, and the ack gathering against replies
queued on a datagram socketpair (no kernel: the peer end plays the kernel)."""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections.abc import Iterator
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hafast.lib import netlink as nl


def reply(kind: int, seq: int, body: bytes = b"", flags: int = 0) -> bytes:
    # Built with struct, not with the module under test.
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def ack(seq: int, code: int = 0) -> bytes:
    return reply(nl.NLMSG_ERROR, seq, struct.pack("=i", -code) + bytes(16))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.settimeout(2.0)
    with ours, kernel:
        yield ours, kernel


@given(st.lists(st.tuples(st.integers(0, nl.NLA_TYPE_MASK), st.binary(max_size=40)),
                max_size=8, unique_by=lambda a: a[0]))
def test_attributes_round_trip(attrs: list[tuple[int, bytes]]) -> None:
    packed = b"".join(nl.attr(kind, value) for kind, value in attrs)
    assert len(packed) % 4 == 0
    assert {k: v.tobytes() for k, v in nl.parse_attrs(packed).items()} == dict(attrs)


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
                          st.integers(0, 0xFFFFFFFF), st.binary(max_size=30)), max_size=6))
def test_messages_round_trip(msgs: list[tuple[int, int, int, bytes]]) -> None:
    packed = b"".join(nl.pack_message(k, f, s, b) + bytes(-len(b) % 4) for k, f, s, b in msgs)
    got = [(m.kind, m.flags, m.seq, m.body.tobytes()) for m in nl.messages(packed)]
    assert got == msgs


def test_parsing_stops_at_truncation_and_strips_nested_flags() -> None:
    whole = reply(nl.NLMSG_DONE, 1, bytes(4))
    assert [m.kind for m in nl.messages(whole + whole[:10])] == [nl.NLMSG_DONE]
    assert list(nl.messages(struct.pack("=IHHII", 8, 3, 0, 0, 0))) == []  # length < header
    nested = struct.pack("=HH", 8, 0x8000 | 5) + b"abcd"  # NLA_F_NESTED
    too_long = struct.pack("=HH", 40, 6) + b"xy"
    assert {k: v.tobytes() for k, v in nl.parse_attrs(nested + too_long).items()} == {5: b"abcd"}


def test_request_returns_the_errno_and_skips_other_messages(pair: tuple[socket.socket,
                                                                        socket.socket]) -> None:
    ours, kernel = pair
    kernel.send(ack(4) + reply(24, 5, b"echo") + ack(5, errno.EEXIST))
    msg = nl.pack_message(nl.RTM_NEWADDR, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 5, b"body")
    assert nl.request(ours, 5, msg) == errno.EEXIST
    assert kernel.recv(100) == msg


def test_exchange_gathers_a_batch_of_acks(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, kernel = pair
    kernel.send(ack(1) + ack(2, errno.ENOENT))
    kernel.send(ack(3))
    errors: dict[int, int] = {}
    msgs = [(s, nl.pack_message(30, nl.NLM_F_REQUEST | nl.NLM_F_ACK, s, b"")) for s in (1, 2, 3)]
    assert nl.exchange(ours, msgs, errors=errors) == []
    assert errors == {2: errno.ENOENT}
    assert kernel.recv(100) == b"".join(m for _, m in msgs)  # one send for the batch


def test_exchange_reads_a_dump_to_its_end(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, kernel = pair
    kernel.send(reply(20, 9, b"a", nl.NLM_F_MULTI) + bytes(3) + reply(20, 9, b"bc", nl.NLM_F_MULTI))
    kernel.send(reply(nl.NLMSG_DONE, 9, bytes(4), nl.NLM_F_MULTI))
    got = nl.exchange(ours, [(9, b"dump")], dump=True)
    assert [m.body.tobytes() for m in got] == [b"a", b"bc"]


def test_exchange_raises_without_an_errors_dict(pair: tuple[socket.socket,
                                                            socket.socket]) -> None:
    ours, kernel = pair
    kernel.send(ack(1, errno.EPERM))
    with pytest.raises(OSError) as info:
        nl.exchange(ours, [(1, b"x")])
    assert info.value.errno == errno.EPERM


def test_a_real_rtnetlink_dump_ends() -> None:
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nl.NETLINK_ROUTE) as s:
        s.settimeout(5.0)
        dump = nl.pack_message(nl.RTM_GETADDR, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, 1, bytes(8))
        replies = nl.exchange(s, [(1, dump)], dump=True)
    assert all(m.kind == nl.RTM_NEWADDR for m in replies)


# --------------------------------------------------------------------------- drain


class Gappy:
    """A socket whose reads fail as listed (an OSError in ``fails``) before going on
    to the real socket: ENOBUFS cannot be provoked on a socketpair."""

    def __init__(self, sock: socket.socket, fails: list[OSError | None]) -> None:
        self.sock, self.fails = sock, fails

    def recv(self, n: int) -> bytes:
        failure = self.fails.pop(0) if self.fails else None
        if failure is not None:
            raise failure
        return self.sock.recv(n)


def test_drain_reads_until_the_queue_is_empty(pair: tuple[socket.socket,
                                                          socket.socket]) -> None:
    ours, kernel = pair
    ours.setblocking(False)
    for data in (b"a", b"bc", b"d"):
        kernel.send(data)
    got: list[bytes] = []
    assert nl.drain(lambda: ours, got.append) == nl.Drained(0, None)
    assert got == [b"a", b"bc", b"d"]
    assert nl.drain(lambda: ours, got.append) == nl.Drained(0, None)  # nothing queued
    assert nl.drain(lambda: None, got.append) == nl.Drained(0, None)  # no socket


def test_drain_stops_when_a_callback_closes_the_socket(pair: tuple[socket.socket,
                                                                   socket.socket]) -> None:
    ours, kernel = pair
    ours.setblocking(False)
    for data in (b"a", b"b", b"c"):
        kernel.send(data)
    owner: dict[str, socket.socket | None] = {"sock": ours}
    got: list[bytes] = []

    def handle(data: bytes) -> None:
        got.append(data)
        if data == b"b":  # as an owner's close() does
            ours.close()
            owner["sock"] = None

    assert nl.drain(lambda: owner["sock"], handle) == nl.Drained(0, None)
    assert got == [b"a", b"b"]  # "c" was never read: no read on the closed socket


def test_drain_goes_on_after_an_overrun(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, kernel = pair
    ours.setblocking(False)
    kernel.send(b"a")
    kernel.send(b"b")
    overrun = OSError(errno.ENOBUFS, "No buffer space available")
    gappy = Gappy(ours, [None, overrun, None, overrun])
    seen: list[bytes | str] = []
    got = nl.drain(lambda: cast(socket.socket, gappy), seen.append,
                   on_overrun=lambda: seen.append("lost"))
    assert got == nl.Drained(2, None)
    assert seen == [b"a", "lost", b"b", "lost"]  # told at the gap, in order


def test_drain_returns_a_read_error_and_lets_a_callback_error_through(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, kernel = pair
    ours.setblocking(False)
    kernel.send(b"a")
    kernel.send(b"b")
    broken = OSError(errno.EBADF, "Bad file descriptor")
    gappy = Gappy(ours, [None, broken])
    seen: list[bytes] = []
    got = nl.drain(lambda: cast(socket.socket, gappy), seen.append)
    assert got == nl.Drained(0, broken) and seen == [b"a"]

    def fails(data: bytes) -> None:
        raise OSError(errno.EEXIST, "the callback's own")

    with pytest.raises(OSError) as info:
        nl.drain(lambda: ours, fails)
    assert info.value.errno == errno.EEXIST


def test_drain_kernel_only_drops_what_a_process_sent() -> None:
    kind = socket.SOCK_RAW | socket.SOCK_NONBLOCK
    with socket.socket(socket.AF_NETLINK, kind, nl.NETLINK_ROUTE) as ours, \
            socket.socket(socket.AF_NETLINK, kind, nl.NETLINK_ROUTE) as other:
        ours.bind((0, 0))
        other.bind((0, 0))
        other.sendto(b"forged", (ours.getsockname()[0], 0))
        # a type below NLMSG_MIN_TYPE with NLM_F_ACK: the kernel only acks it
        ours.send(nl.pack_message(1, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 5, b""))
        got: list[bytes] = []
        assert nl.drain(lambda: ours, got.append, kernel_only=True) == nl.Drained(0, None)
    assert [(m.kind, m.seq) for d in got for m in nl.messages(d)] == [(nl.NLMSG_ERROR, 5)]


def test_event_socket_listens_without_blocking_and_close_watched_survives_a_closed_loop(
) -> None:
    s = nl.event_socket(0x1, rcvbuf=1 << 18)  # RTMGRP_LINK: any process may listen
    try:
        assert s.family == socket.AF_NETLINK
        assert not s.getblocking()
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 1 << 18
        with pytest.raises(BlockingIOError):
            s.recv(4096)  # nothing queued: a read never stalls the loop
    finally:
        loop = asyncio.new_event_loop()
        loop.add_reader(s.fileno(), lambda: None)
        loop.close()  # a watcher closed at shutdown, after its loop
        nl.close_watched(loop, s)
    assert s.fileno() == -1


def test_event_socket_closes_what_it_could_not_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[socket.socket] = []
    real = socket.socket

    class Failing(real):  # type: ignore[misc, valid-type]
        def bind(self, address: object) -> None:
            made.append(self)
            raise OSError(errno.EPERM, "no")

    monkeypatch.setattr(socket, "socket", Failing)
    with pytest.raises(OSError):
        nl.event_socket(0x1)
    assert made and made[0].fileno() == -1
