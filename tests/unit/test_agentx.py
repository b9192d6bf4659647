"""The AgentX codec (RFC 2741) and the KEEPALIVED-MIB answers built on it."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hafast.status import agentx as ax
from hafast.status.snmp import parse_socket
from hafast.status.snmp_mib import GLOBAL, VRRP_INSTANCE_ENTRY, answer, keepalived_rows

u32 = st.integers(0, 0xFFFFFFFF)
oids = st.one_of(
    st.lists(u32, max_size=12).map(tuple),
    # the RFC 2741 §5.1 prefix form
    st.tuples(st.integers(1, 255), st.lists(u32, max_size=10)).map(
        lambda t: (1, 3, 6, 1, t[0], *t[1])),
)
varbinds = st.one_of(
    st.builds(ax.VarBind, st.just(ax.INTEGER), oids, st.integers(-(2**31), 2**31 - 1)),
    st.builds(ax.VarBind, st.sampled_from([ax.COUNTER32, ax.GAUGE32, ax.TIME_TICKS]), oids,
              u32),
    st.builds(ax.VarBind, st.just(ax.COUNTER64), oids, st.integers(0, 2**64 - 1)),
    st.builds(ax.VarBind, st.sampled_from([ax.OCTET_STRING, ax.IP_ADDRESS, ax.OPAQUE]), oids,
              st.binary(max_size=40)),
    st.builds(ax.VarBind, st.just(ax.OBJECT_IDENTIFIER), oids, oids),
    st.builds(ax.VarBind, st.sampled_from([ax.NULL, ax.NO_SUCH_OBJECT, ax.NO_SUCH_INSTANCE,
                                           ax.END_OF_MIB_VIEW]), oids),
)
ranges = st.lists(st.builds(ax.SearchRange, oids, oids, st.booleans()), max_size=5).map(tuple)
head = {"session_id": u32, "transaction_id": u32, "packet_id": u32,
        "flags": st.integers(0, 7)}
ctx = {**head, "context": st.one_of(st.none(), st.binary(max_size=20))}
vbs = st.lists(varbinds, max_size=5).map(tuple)
pdus = st.one_of(
    st.builds(ax.Open, **head, timeout=st.integers(0, 255), oid=oids, descr=st.binary(max_size=30)),
    st.builds(ax.Close, **head, reason=st.integers(1, 6)),
    st.builds(ax.Register, **ctx, timeout=st.integers(0, 255), priority=st.integers(0, 255),
              subtree=oids, range_subid=st.just(0)),
    st.builds(ax.Register, **ctx, subtree=oids.filter(len), range_subid=st.integers(1, 255),
              upper_bound=u32),
    st.builds(ax.Get, **ctx, ranges=ranges),
    st.builds(ax.GetNext, **ctx, ranges=ranges),
    st.builds(ax.GetBulk, **ctx, non_repeaters=st.integers(0, 65535),
              max_repetitions=st.integers(0, 65535), ranges=ranges),
    st.builds(ax.Notify, **ctx, varbinds=vbs),
    st.builds(ax.Ping, **ctx),
    st.builds(ax.Response, **head, sys_uptime=u32, error=st.integers(0, 65535),
              index=st.integers(0, 65535), varbinds=vbs),
    st.builds(ax.Other, **head, type=st.sampled_from([ax.TESTSET, ax.COMMITSET, ax.CLEANUPSET]),
              payload=st.binary(max_size=12).map(lambda b: b + b"\0" * (-len(b) % 4))),
)


@given(pdus)
def test_every_pdu_round_trips(pdu: ax.Pdu) -> None:
    raw = ax.encode(pdu)
    assert raw[2] & ax.NETWORK_BYTE_ORDER
    assert len(raw) % 4 == 0
    assert ax.decode(raw) == pdu


@given(st.lists(pdus, min_size=1, max_size=4), st.lists(st.integers(0, 400), max_size=6))
def test_the_decoder_frames_a_stream_however_it_is_cut(batch: list[ax.Pdu],
                                                       cuts: list[int]) -> None:
    stream = b"".join(ax.encode(p) for p in batch)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    dec = ax.Decoder()
    got: list[ax.Pdu] = []
    for a, b in itertools.pairwise(points):
        got += dec.feed(stream[a:b])
    assert got == batch


@given(st.binary(max_size=80))
def test_garbage_is_a_parse_error_not_a_crash(data: bytes) -> None:
    try:
        ax.decode(data)
    except ax.AgentXError:
        pass
    try:
        ax.Decoder().feed(data)
    except ax.AgentXError:
        pass


def test_a_little_endian_master_is_read_in_its_order() -> None:
    # RFC 2741 §6.1: without NETWORK_BYTE_ORDER every integer is little-endian
    oid = bytes([2, 4, 0, 0]) + struct.pack("<II", 9586, 100)  # 1.3.6.1.4.9586.100
    body = oid + bytes([0, 0, 0, 0])  # an empty end
    raw = bytes([1, ax.GETNEXT, 0, 0]) + struct.pack("<IIII", 5, 6, 7, len(body)) + body
    pdu = ax.decode(raw)
    assert pdu == ax.GetNext(session_id=5, transaction_id=6, packet_id=7,
                             ranges=(ax.SearchRange((1, 3, 6, 1, 4, 9586, 100)),))


def test_a_payload_length_that_is_not_a_multiple_of_four_is_refused() -> None:
    raw = bytearray(ax.encode(ax.Ping(session_id=1)))
    raw[16:20] = struct.pack("!I", 3)
    with pytest.raises(ax.AgentXError):
        ax.Decoder().feed(bytes(raw))


# ------------------------------------------------------------------------ the MIB answers

STATUS = {"vrrp": [{"data": {
    "iname": "VI_1", "ifp_ifname": "eth0", "vrid": 51, "version": 2, "base_priority": 150,
    "effective_priority": 140, "state": 2, "wantstate": 2, "vipset": True, "adver_int": 1.0,
    "nopreempt": 0, "preempt_delay": 0.0}}]}
NAME = (*VRRP_INSTANCE_ENTRY, 2, 1)


def rows() -> list[ax.VarBind]:
    return keepalived_rows(STATUS, None, router_id="r1")


def test_rows_are_sorted_and_use_keepalived_types() -> None:
    got = rows()
    assert [vb.name for vb in got] == sorted(vb.name for vb in got)
    by = {vb.name: vb for vb in got}
    assert by[(*GLOBAL, 2, 0)].value == b"r1"
    assert by[NAME] == ax.VarBind(ax.OCTET_STRING, NAME, b"VI_1")
    assert by[(*VRRP_INSTANCE_ENTRY, 3, 1)] == ax.VarBind(ax.GAUGE32,
                                                          (*VRRP_INSTANCE_ENTRY, 3, 1), 51)
    assert by[(*VRRP_INSTANCE_ENTRY, 8, 1)].value == 140


def test_get_getnext_and_getbulk() -> None:
    r = rows()
    get = answer(ax.Get(packet_id=3, ranges=(ax.SearchRange(NAME),
                                             ax.SearchRange((*NAME[:-1], 9)),
                                             ax.SearchRange((1, 3, 6, 1, 9)))), r)
    assert get.packet_id == 3
    assert [vb.type for vb in get.varbinds] == [ax.OCTET_STRING, ax.NO_SUCH_INSTANCE,
                                                ax.NO_SUCH_OBJECT]
    nxt = answer(ax.GetNext(ranges=(ax.SearchRange(NAME), ax.SearchRange(NAME, include=True),
                                    ax.SearchRange(NAME, end=(*NAME[:-1], 1, 5)),
                                    ax.SearchRange((9,)))), r)
    assert nxt.varbinds[0].name == (*VRRP_INSTANCE_ENTRY, 3, 1)
    assert nxt.varbinds[1].name == NAME
    assert nxt.varbinds[2] == ax.VarBind(ax.END_OF_MIB_VIEW, NAME)
    assert nxt.varbinds[3].type == ax.END_OF_MIB_VIEW
    bulk = answer(ax.GetBulk(non_repeaters=1, max_repetitions=3,
                             ranges=(ax.SearchRange(GLOBAL), ax.SearchRange(NAME))), r)
    assert [vb.name[-2:] for vb in bulk.varbinds] == [(1, 0), (3, 1), (4, 1), (5, 1)]


def test_a_set_is_refused() -> None:
    res = answer(ax.Other(type=ax.TESTSET, packet_id=9), rows())
    assert res.error == ax.NOT_WRITABLE and res.packet_id == 9


def test_snmp_socket_forms() -> None:
    assert parse_socket(None) == ("unix", "/var/agentx/master", 0)
    assert parse_socket("/run/ax") == ("unix", "/run/ax", 0)
    assert parse_socket("localhost:705") == ("tcp", "localhost", 705)
    with pytest.raises(ValueError):
        parse_socket("tcp:nowhere")
