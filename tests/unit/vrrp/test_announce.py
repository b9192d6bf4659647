"""GARP / unsolicited NA builders and cadence, against keepalived 2.2.7 captures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hafast._core.checksum import internet_checksum, pseudo_sum_ipv6
from hafast.vrrp import announce as a
from hafast.vrrp.fsm import (
    GarpTimerFired,
    MasterDownTimerFired,
    SendGratuitous,
    StartTimer,
    Startup,
    TimerKind,
    VrrpMachine,
)
from hafast.vrrp.params import VrrpParams
from tests.vectors.pcap import ETHERTYPE_ARP, ETHERTYPE_IPV6, Frame, read_pcap

VIP4 = bytes([192, 168, 77, 100])
VIP6 = bytes.fromhex("fd000077000000000000000000000100")
MAC1 = bytes.fromhex("020000770001")
MAC2 = bytes.fromhex("020000770002")
VMAC = bytes.fromhex("00005e000133")


def raw(frame: Frame) -> bytes:
    return frame.eth_dst + frame.eth_src + frame.ethertype.to_bytes(2, "big") + frame.l3


def bursts(frames: list[Frame], gap_us: int = 100_000) -> list[tuple[int, bytes, int]]:
    """(start µs, sender MAC, count): frames from one sender closer than ``gap_us``."""
    out: list[tuple[int, bytes, int]] = []
    last = -(10**18)
    for f in frames:
        t = round(f.time * 1_000_000)
        if out and out[-1][1] == f.eth_src and t - last < gap_us:
            start, mac, n = out[-1]
            out[-1] = (start, mac, n + 1)
        else:
            out.append((t, f.eth_src, 1))
        last = t
    return out


@pytest.fixture(scope="module")
def garp_frames() -> list[Frame]:
    from tests.conftest import VECTORS, require

    path = Path(VECTORS) / "garp_takeover_v2.pcap"
    require(path.is_file(), f"capture missing: {path}")
    return read_pcap(path)


@pytest.fixture(scope="module")
def una_frames() -> list[Frame]:
    from tests.conftest import VECTORS, require

    path = Path(VECTORS) / "una_takeover_v6.pcap"
    require(path.is_file(), f"capture missing: {path}")
    return read_pcap(path)


# ------------------------------------------------------------ GARP


def test_garp_matches_keepalived_byte_for_byte(garp_frames: list[Frame]) -> None:
    assert len(garp_frames) == 30
    for frame in garp_frames:
        assert frame.ethertype == ETHERTYPE_ARP
        built = a.gratuitous_arp(VIP4, frame.eth_src)
        captured = raw(frame)
        assert captured[: len(built)] == built
        assert not any(captured[len(built) :])  # only link padding after it


def test_garp_layout() -> None:
    frame = a.gratuitous_arp(VIP4, MAC2)
    assert frame == bytes.fromhex(
        "ffffffffffff 020000770002 0806"
        "0001 0800 06 04 0001 020000770002 c0a84d64 ffffffffffff c0a84d64"
    )


def test_garp_with_vmac_and_reply_form() -> None:
    frame = a.gratuitous_arp(VIP4, VMAC)
    assert frame[6:12] == VMAC and frame[22:28] == VMAC
    reply = a.gratuitous_arp(VIP4, MAC1, eth_src=VMAC, op=a.ARP_OP_REPLY, target_mac=MAC1)
    assert reply[6:12] == VMAC
    assert reply[20:22] == b"\x00\x02"
    assert reply[22:28] == MAC1 and reply[32:38] == MAC1


# ------------------------------------------------------------ NA


def test_na_matches_keepalived_byte_for_byte(una_frames: list[Frame]) -> None:
    # keepalived sets R only with forwarding on; the capture has Override alone.
    assert len(una_frames) == 30
    for frame in una_frames:
        assert frame.ethertype == ETHERTYPE_IPV6
        assert raw(frame)[:86] == a.unsolicited_na(VIP6, frame.eth_src, router=False)


def test_na_fields() -> None:
    frame = a.unsolicited_na(VIP6, MAC2)
    assert frame[:6] == bytes.fromhex("333300000001")
    ip = frame[14:54]
    assert ip[0] >> 4 == 6
    assert int.from_bytes(ip[4:6], "big") == 32
    assert ip[6] == 58
    assert ip[7] == 255  # RFC 4861 §7.1.2
    assert ip[8:24] == VIP6
    assert ip[24:40] == a.ALL_NODES
    msg = frame[54:]
    assert msg[0] == 136 and msg[1] == 0
    # RFC 5798 §6.4.1 / §8.2: Router flag; Override so caches update.
    assert msg[4] == a.NA_FLAG_ROUTER | a.NA_FLAG_OVERRIDE
    assert msg[8:24] == VIP6
    assert msg[24:32] == bytes([2, 1]) + MAC2
    assert internet_checksum(msg, pseudo_sum_ipv6(VIP6, a.ALL_NODES, 32, 58)) == 0


def test_na_router_flag_only_changes_flags_and_checksum(una_frames: list[Frame]) -> None:
    ours = a.unsolicited_na(VIP6, MAC2)
    theirs = raw(una_frames[0])[:86]
    diff = [i for i in range(86) if ours[i] != theirs[i]]
    assert set(diff) <= {56, 57, 58}


def test_neighbor_advert_from_link_local_source() -> None:
    ll = bytes.fromhex("fe800000000000000000000000000001")
    msg = a.neighbor_advert(VIP6, MAC1, src=ll)
    assert internet_checksum(msg, pseudo_sum_ipv6(ll, a.ALL_NODES, len(msg), 58)) == 0
    frame = a.unsolicited_na(VIP6, MAC1, src=ll, eth_src=VMAC)
    assert frame[6:12] == VMAC and frame[22:38] == ll


def test_ipv6_multicast_mac() -> None:
    assert a.ipv6_multicast_mac(bytes.fromhex("ff020000000000000000000000000012")) == (
        bytes.fromhex("333300000012")
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: a.gratuitous_arp(b"\x01\x02\x03", MAC1),
        lambda: a.gratuitous_arp(VIP4, b"\x01"),
        lambda: a.unsolicited_na(VIP4, MAC1),
        lambda: a.neighbor_advert(VIP6, MAC1, dst=b"\xff"),
        lambda: a.burst_schedule(0, [1], -1),
    ],
)
def test_bad_inputs(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()


# ------------------------------------------------------------ cadence


def test_captured_bursts_are_five_at_once(
    garp_frames: list[Frame], una_frames: list[Frame]
) -> None:
    for frames in (garp_frames, una_frames):
        assert [n for _, _, n in bursts(frames)] == [5] * 6


@pytest.mark.parametrize("which", ["garp", "una"])
def test_second_burst_five_seconds_later(
    which: str, garp_frames: list[Frame], una_frames: list[Frame]
) -> None:
    # The capture: node 2 takes over (t0), node 1 preempts, node 2 takes over
    # again at t1 after node 1's graceful stop, node 1 returns.  Every takeover
    # by node 2 that outlived 5 s shows keepalived's second burst at +5 s.
    # (keepalived 2.2.7 also sent t0's delayed burst at t0 + 5 s, because its
    # GARP thread is not cancelled and node 2 was master again by then; hafast
    # cancels the pending burst on leaving master and arms a fresh one at t1.)
    got = bursts(garp_frames if which == "garp" else una_frames)
    node2 = [t for t, mac, _ in got if mac == MAC2]
    t1 = node2[1]
    plan = a.takeover_plan(t1, t1 + 6_000_000)
    assert [n for _, n in plan] == [5, 5]
    assert plan[1][0] - plan[0][0] == 5_000_000
    delayed = [t for t in node2 if t > t1]
    assert delayed and abs(delayed[-1] - plan[1][0]) < 50_000


def test_fsm_produces_the_same_cadence() -> None:
    p = VrrpParams(priority=100, src_addr=1)
    m = VrrpMachine(p)
    m.handle(Startup(0))
    at = m.state.master_down_at
    assert at is not None
    actions = m.handle(MasterDownTimerFired(at, at))
    assert SendGratuitous(5) in actions
    delay = next(x for x in actions if isinstance(x, StartTimer) and x.kind is TimerKind.GARP_DELAY)
    second = m.handle(GarpTimerFired(delay.at_us, TimerKind.GARP_DELAY, delay.at_us))
    plan = a.takeover_plan(at, at + 6_000_000)
    assert plan == [(at, 5), (delay.at_us, second[0].repeat)]  # type: ignore[union-attr]


def test_burst_schedule_spacing() -> None:
    sched = a.burst_schedule(100, [VIP4, b"\x0a\x00\x00\x01"], 3, 2_000)
    assert [t for t, _ in sched] == [100 + 2_000 * i for i in range(6)]
    assert [v for _, v in sched][:2] == [VIP4, b"\x0a\x00\x00\x01"]
    assert a.burst_schedule(0, ["x"], 0) == []
    assert [t for t, _ in a.burst_schedule(7, ["x", "y"], 5)] == [7] * 10


def test_takeover_plan_options() -> None:
    assert a.takeover_plan(0, 10_000_000, delay_us=0) == [(0, 5)]
    assert a.takeover_plan(0, 10_000_000, repeat=0) == []
    assert a.takeover_plan(0, 4_000_000) == [(0, 5)]  # left master before the delay
    assert a.takeover_plan(
        1_000_000, 200_000_000, repeat=1, delay_us=0, refresh_us=60_000_000, refresh_repeat=2
    ) == [(1_000_000, 1), (61_000_000, 2), (121_000_000, 2), (181_000_000, 2)]
