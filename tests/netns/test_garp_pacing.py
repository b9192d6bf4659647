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
(hafast.vrrp.announce.GarpPacer).  The same for unsolicited NAs and a group's
``gna_interval``.  ``vrrp_min_garp`` sends each VIP once, with no second burst.

``garp_extra_if 2 all``: while master, one gratuitous ARP every 2 s for a VIP on
another interface than the instance's, sent as an advert goes out: keepalived 2.2.7
sent them 2.0, 4.0, 6.0 s after the takeover burst (hafast first sent them with the
advert after, 3.0 s, until the instance took the advert at the period's end).
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
from tests.netns.vrrp_fixtures import KEEPALIVED, SUBNET4, SUBNET6, VrrpLab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(240)]

PREFIX = f"gp{os.getpid() % 100000}"
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
VIPS = (f"{SUBNET4}.100", f"{SUBNET4}.101")
VIPS6 = (f"{SUBNET6}100", f"{SUBNET6}101")
FIRST_WAIT_S = 20.0  # keepalived starts BACKUP: master after its down interval
SLACK_S = 0.05  # a gap may come this much short of the interval (stamps, timer grain)


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    require_tool(KEEPALIVED)
    with VrrpLab(PREFIX) as built:
        yield built


def config(global_extra: str = "", top_extra: str = "", vips: tuple[str, ...] = VIPS) -> str:
    plen = 64 if ":" in vips[0] else 24
    return "\n".join([
        "global_defs {", global_extra, "}", top_extra,
        "vrrp_instance VI_1 {", "  state MASTER", "  interface eth0",
        "  virtual_router_id 61", "  priority 200", "  advert_int 1",
        "  virtual_ipaddress {", *(f"    {v}/{plen}" for v in vips), "  }", "}", ""])


def _announced(frame: bytes) -> str | None:
    """The VIP a gratuitous ARP (sender IP = target IP) or an unsolicited NA (ICMPv6
    type 136) announces, else None."""
    if frame[12:14] == b"\x08\x06":
        arp = frame[14:]
        if len(arp) >= 28 and arp[6:8] == b"\x00\x01" and arp[14:18] == arp[24:28]:
            return socket.inet_ntoa(arp[14:18])
    elif frame[12:14] == b"\x86\xdd" and len(frame) >= 78 and frame[20] == 58 \
            and frame[54] == 136:
        return socket.inet_ntop(socket.AF_INET6, frame[62:78])
    return None


def _garps(sock: socket.socket, window_s: float, vips: tuple[str, ...]
           ) -> list[tuple[float, str]]:
    """(seconds after the first, VIP) of each gratuitous ARP or NA for ``vips``: from
    the first one (waited for up to FIRST_WAIT_S) until ``window_s`` after it."""
    got: list[tuple[float, str]] = []
    first: float | None = None
    deadline = time.monotonic() + FIRST_WAIT_S
    while time.monotonic() < deadline:
        try:
            frame, anc, _flags, _addr = sock.recvmsg(2048, 64)
        except TimeoutError:
            continue
        vip = _announced(frame)
        if vip not in vips:
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


def record(lab: VrrpLab, kind: str, conf: str, window_s: float, *, dev: str = "eth0",
           vips: tuple[str, ...] = VIPS) -> list[tuple[float, str]]:
    proto = ETH_P_IPV6 if ":" in vips[0] else ETH_P_ARP
    sock = socket_in(lab.ns("cl"), socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    try:
        sock.bind((dev, 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.settimeout(0.1)
        router = lab.start("r1", kind, conf)
        try:
            got = _garps(sock, window_s, vips)
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
    # unsolicited NAs: the group's gna_interval
    "garp_group_gna": config("  vrrp_garp_master_delay 3\n  vrrp_version 3",
                             "garp_group {\n  gna_interval 0.5\n  interface eth0\n}", VIPS6),
}


@pytest.mark.parametrize("case", sorted(PACED))
def test_paced_garps_match_keepalived(lab: VrrpLab, case: str) -> None:
    conf = PACED[case]
    vips = VIPS6 if case.endswith("gna") else VIPS
    theirs = record(lab, "keepalived", conf, 6.0, vips=vips)
    ours = record(lab, "hafast", conf, 6.0, vips=vips)
    a, b = vips
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


EXTRA_VIP = "10.88.0.1"


# (where to listen, for which VIP, what else the instance says)
EXTRA_CASES = {
    "other_link": ("eth1", EXTRA_VIP, ""),
    # keepalived announces the macvlan's own VIPs too "unless xmit_base" is not set
    "vmac_xmit_base": ("eth0", VIPS[0], "  use_vmac\n  vmac_xmit_base\n"),
}


@pytest.mark.parametrize("case", sorted(EXTRA_CASES))
def test_garp_extra_if_repeats_like_keepalived(lab: VrrpLab, case: str) -> None:
    dev, vip, extra = EXTRA_CASES[case]
    lab.reg.add_veth(lab.ns("r1"), "eth1", lab.ns("cl"), "eth1")
    conf = config("  vrrp_garp_master_delay 0").replace(
        "  virtual_ipaddress {",
        f"{extra}  garp_extra_if 2 all\n  virtual_ipaddress {{\n    {EXTRA_VIP}/24 dev eth1")
    runs = {kind: record(lab, kind, conf, 7.5, dev=dev, vips=(vip,))
            for kind in ("keepalived", "hafast")}
    periodic = {}
    for kind, got in runs.items():
        burst = [t for t, _ in got if t < 0.5]
        assert len(burst) == 5, (kind, got)  # the takeover's
        periodic[kind] = [t for t, _ in got if t >= 0.5]
        assert periodic[kind], (kind, "no periodic GARP", got)
        # one each period, with an advert (advert_int 1): the first 2 s after the
        # takeover, then 2 s apart (a loaded machine may make one an advert late)
        assert 2 - SLACK_S < periodic[kind][0] < 2.5, (kind, got)
        assert all(2 - SLACK_S < g < 3.5 for g in gaps([(t, "") for t in periodic[kind]])), \
            (kind, got)
    assert len(periodic["hafast"]) >= 3 and len(periodic["keepalived"]) >= 3, runs
