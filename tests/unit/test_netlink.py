"""hafast.lib.netlink: framing round trips, and the ack gathering against replies
queued on a datagram socketpair (no kernel: the peer end plays the kernel)."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator

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
