"""The batch link's generic-netlink encoding, round-tripped on the host (no kernel).

The kernel side of the same bytes is tested in the IPVS VM (tests/ipvs)."""

from __future__ import annotations

import errno
import struct

from hafast.lib.netlink import parse_attrs as _parse_attrs
from hafast.lvs.backend import (
    ADD_DEST,
    SVC_F_PERSISTENT,
    SVC_F_SCHED2,
    Change,
    Dest,
    Service,
    ServiceKey,
    put_dest,
)
from hafast.lvs.ipvs import (
    BATCH,
    CMD_ATTR_DEST,
    CMD_ATTR_SERVICE,
    CMD_NEW_DEST,
    CMD_SET_DEST,
    SVC_NETMASK,
    BatchLink,
    _dest_attrs,
    _svc_attrs,
    decode_dest,
    decode_service,
)

SERVICES = [
    Service(ServiceKey(4, "TCP", "10.0.0.1", 80), "sh", SVC_F_PERSISTENT | SVC_F_SCHED2, 30, 24),
    Service(ServiceKey(6, "UDP", "fd00::1", 443), "mh", 0, 0, 64),
    Service(ServiceKey(4, "", None, 0, 7), "wrr"),
    Service(ServiceKey(6, "SCTP", "fd00::2", 9), "rr", 0, 0, 128, "sip"),
]
DESTS = [Dest("10.1.0.2", 8080, 3, "NAT", 100, 10), Dest("fd01::2", 0, 0, "TUN"),
         Dest("10.1.0.3", 80, 1, "DR")]


def test_service_attributes_round_trip() -> None:
    for svc in SERVICES:
        assert decode_service(_parse_attrs(_svc_attrs(svc, True))) == svc


def test_dest_attributes_round_trip() -> None:
    for d in DESTS:
        assert decode_dest(_parse_attrs(_dest_attrs(d))) == d


def test_netmask_encoding_follows_the_kernel() -> None:
    v4 = _parse_attrs(_svc_attrs(SERVICES[0], True))[SVC_NETMASK]
    assert bytes(v4) == bytes([255, 255, 255, 0])  # a dotted mask, network order
    v6 = _parse_attrs(_svc_attrs(SERVICES[1], True))[SVC_NETMASK]
    assert struct.unpack("=I", v6)[0] == 64  # a prefix length, host order


def test_request_payload_nests_service_then_dest() -> None:
    c = Change("add-dest", SERVICES[0], DESTS[0])
    top = _parse_attrs(BatchLink.payload(CMD_NEW_DEST, c))
    assert set(top) == {CMD_ATTR_SERVICE, CMD_ATTR_DEST}
    key_only = decode_service(_parse_attrs(top[CMD_ATTR_SERVICE]))
    assert key_only is not None and key_only.key == SERVICES[0].key
    assert decode_dest(_parse_attrs(top[CMD_ATTR_DEST])) == DESTS[0]


def test_flush_is_one_bare_ipvs_cmd_flush() -> None:
    # what ipvsadm -C (libipvs ipvs_flush) sends: IPVS_CMD_FLUSH, no attribute, acked
    link = BatchLink.__new__(BatchLink)
    link.seq, link.family = 0, 0x1d
    sent: list[list[tuple[int, bytes]]] = []
    link._exchange = lambda msgs, dump, errors=None: sent.append(msgs) or []  # type: ignore[method-assign]
    link.flush()
    (((seq, msg),),) = sent
    assert seq == 1
    # nlmsghdr: length 20, the IPVS family, NLM_F_REQUEST|NLM_F_ACK, seq 1, port 0;
    # genlmsghdr: cmd 17 (IPVS_CMD_FLUSH), version 1 (IPVS_GENL_VERSION), reserved 0
    assert msg == struct.pack("=IHHII", 20, 0x1d, 0x05, 1, 0) + bytes([17, 1, 0, 0])


class FakeIpvs:
    """The kernel's answers to destination requests, in order, per sendmsg: NEW on
    an existing one is EEXIST, SET on a missing one ENOENT; ``last_weight`` as
    ip_vs_ctl.c __ip_vs_update_dest keeps it."""

    def __init__(self, link: BatchLink) -> None:
        self.dests: dict[tuple[str, int], tuple[int, int]] = {}  # weight, last_weight
        self.sends: list[int] = []
        link.seq, link.family = 0, 0x1d
        link._exchange = self.exchange  # type: ignore[method-assign]

    def exchange(self, msgs: list[tuple[int, bytes]], dump: bool,
                 errors: dict[int, int] | None = None) -> list[memoryview]:
        self.sends.append(len(msgs))
        for seq, msg in msgs:
            cmd = msg[16]
            d = decode_dest(_parse_attrs(_parse_attrs(memoryview(msg)[20:])[CMD_ATTR_DEST]))
            if cmd == CMD_NEW_DEST and d.key in self.dests:
                assert errors is not None
                errors[seq] = errno.EEXIST
            elif cmd == CMD_SET_DEST and d.key not in self.dests:
                assert errors is not None
                errors[seq] = errno.ENOENT
            else:
                last = d.weight if cmd == CMD_NEW_DEST or d.weight else self.dests[d.key][1]
                self.dests[d.key] = (d.weight, last)
        return []


def test_a_retried_add_does_not_undo_the_edit_behind_it() -> None:
    """A Maglev fleet's dead server goes as an add at its weight and an edit to 0
    (backend.put_dest).  If the kernel already had it (an add answered EEXIST and
    retried as a set after the batch), the edit must still come last: the server
    ends at weight 0 holding the slots of weight 3, not up at weight 3."""
    link = BatchLink.__new__(BatchLink)
    kernel = FakeIpvs(link)
    kernel.dests[("10.1.0.2", 80)] = (0, 0)
    svc = SERVICES[1]
    link.apply(put_dest(svc, None, Dest("10.1.0.2", 80, 0, "DR", last_weight=3)))
    assert kernel.dests[("10.1.0.2", 80)] == (0, 3)


def test_an_add_and_its_edit_go_in_one_sendmsg() -> None:
    link = BatchLink.__new__(BatchLink)
    kernel = FakeIpvs(link)
    svc = SERVICES[1]
    filler = [Change(ADD_DEST, svc, Dest(f"10.2.{i // 256}.{i % 256}", 80, 1, "DR"))
              for i in range(BATCH - 1)]
    link.apply(filler + put_dest(svc, None, Dest("10.1.0.2", 80, 0, "DR", last_weight=3)))
    assert kernel.sends == [BATCH + 1]
    assert kernel.dests[("10.1.0.2", 80)] == (0, 3)
