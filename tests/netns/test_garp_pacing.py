"""garp_group, vrrp_garp_interval and vrrp_min_garp: hafast and Debian's keepalived 2.2.7
side by side, on the wire.

The same config runs in r1 under keepalived, then under hafast; r1 becomes master
alone, and a packet socket in ``cl`` (kernel receive stamps) records every gratuitous
ARP for the two VIPs from the first one on, for a bounded time.  The two recordings
must send the same VIPs in the same order, and the pacing's gaps must hold under
both (a gap may be longer under load, never much shorter).

keepalived's pacing collapses the rounds of a burst (a VIP offered while the link
waits is marked pending once), so with ``garp_interval 0.5``, the default repeat of
5 and a second burst 3 s later, it sends a, a, b, then a, a, b: six frames, not twenty
(hafast.vrrp.announce.GarpPacer).  ``vrrp_min_garp`` sends each VIP once, with no
second burst.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from hafast.lab.netns import socket_in
from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import KEEPALIVED, SUBNET4, VrrpLab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(240)]

PREFIX = f"gp{os.getpid() % 100000}"
ETH_P_ARP = 0x0806
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
VIPS = (f"{SUBNET4}.100", f"{SUBNET4}.101")
FIRST_WAIT_S = 20.0  # keepalived starts BACKUP: master after its down interval
SLACK_S = 0.05  # a gap may come this much short of the interval (stamps, timer grain)


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool(KEEPALIVED)
    with VrrpLab(PREFIX) as built:
        yield built


def config(global_extra: str = "", top_extra: str = "") -> str:
    return "\n".join([
        "global_defs {", global_extra, "}", top_extra,
        "vrrp_instance VI_1 {", "  state MASTER", "  interface eth0",
        "  virtual_router_id 61", "  priority 200", "  advert_int 1",
        "  virtual_ipaddress {", *(f"    {v}/24" for v in VIPS), "  }", "}", ""])


def _garps(sock: socket.socket, window_s: float) -> list[tuple[float, str]]:
    """(seconds after the first, VIP) of each gratuitous ARP for VIPS: from the first
    one (waited for up to FIRST_WAIT_S) until ``window_s`` after it."""
    got: list[tuple[float, str]] = []
    first: float | None = None
    deadline = time.monotonic() + FIRST_WAIT_S
    while time.monotonic() < deadline:
        try:
            frame, anc, _flags, _addr = sock.recvmsg(2048, 64)
        except TimeoutError:
            continue
        arp = frame[14:]
        if len(arp) < 28 or arp[6:8] != b"\x00\x01" or arp[14:18] != arp[24:28]:
            continue  # not a gratuitous request (sender IP = target IP)
        vip = socket.inet_ntoa(arp[14:18])
        if vip not in VIPS:
            continue
        stamp = time.time()
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", data[:16])
                stamp = sec + nsec / 1e9
        if first is None:
            first = stamp
            deadline = time.monotonic() + window_s
        got.append((stamp - first, vip))
    return got


def record(lab: VrrpLab, kind: str, conf: str, window_s: float) -> list[tuple[float, str]]:
    sock = socket_in(lab.ns("cl"), socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        sock.bind(("eth0", 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.settimeout(0.1)
        router = lab.start("r1", kind, conf)
        try:
            got = _garps(sock, window_s)
        finally:
            lab.stop(router)
            lab.flush_vips("r1")
    finally:
        sock.close()
    assert got, f"{kind} sent no gratuitous ARP\n{router.log_text()[-3000:]}"
    return got


def gaps(got: list[tuple[float, str]]) -> list[float]:
    return [b[0] - a[0] for a, b in itertools.pairwise(got)]


PACED = {
    "garp_group": config("  vrrp_garp_master_delay 3",
                         "garp_group {\n  garp_interval 0.5\n  interface eth0\n}"),
    # the global interval is keepalived's default garp_delay of each interface
    "vrrp_garp_interval": config("  vrrp_garp_master_delay 3\n  vrrp_garp_interval 0.5"),
}


@pytest.mark.parametrize("case", sorted(PACED))
def test_paced_garps_match_keepalived(lab: VrrpLab, case: str) -> None:
    conf = PACED[case]
    theirs = record(lab, "keepalived", conf, 6.0)
    ours = record(lab, "hafast", conf, 6.0)
    a, b = VIPS
    # what keepalived 2.2.7 sends (the burst collapses; the second one 3 s later)
    assert [v for _, v in theirs] == [a, a, b, a, a, b], theirs
    assert [v for _, v in ours] == [v for _, v in theirs], (ours, theirs)
    for got in (theirs, ours):
        assert min(gaps(got)) >= 0.5 - SLACK_S, got
        # the second burst: 3 s after the first (loose: one loaded machine)
        assert 2.5 < got[3][0] < 4.5, got


def test_min_garp_sends_each_vip_once_like_keepalived(lab: VrrpLab) -> None:
    conf = config("  vrrp_min_garp")
    theirs = record(lab, "keepalived", conf, 7.0)
    ours = record(lab, "hafast", conf, 7.0)
    assert sorted(v for _, v in theirs) == sorted(VIPS), theirs
    assert sorted(v for _, v in ours) == sorted(VIPS), ours


def test_without_pacing_a_burst_is_every_round(lab: VrrpLab) -> None:
    """The baseline the two tests above differ from: 5 rounds over both VIPs at once,
    then again 3 s later, under both daemons."""
    conf = config("  vrrp_garp_master_delay 3")
    theirs = record(lab, "keepalived", conf, 5.0)
    ours = record(lab, "hafast", conf, 5.0)
    assert len(theirs) == len(ours) == 20, (theirs, ours)
