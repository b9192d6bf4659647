"""Issue 12 items 5 and 6 on the full daemon (parent + workers, nft pools) in namespaces.

Hostile VRRP packets come from the second director's namespace (no daemon runs
there) over the lab bridge to 224.0.0.18: each drop reason must show in
``status --json``, in the SIGUSR2 stats dump and in /metrics, and the MASTER must
not notice.  Then a flood while the VRRP worker is stopped (SIGSTOP) overflows the
receive buffer that ``vrrp_rx_bufs_policy`` sized: every packet is either counted
by reason or reported as a kernel drop.  Item 6: ``auth_type`` is keepalived's
number, and SIGTERM removes the nft table hafast made (``-I`` keeps it).
"""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hafast._core.vrrp_codec import encode_ipv4
from hafast._core.vrrp_constants import AUTH_PASS, VRRP_GROUP4, auth_data_from_pass
from hafast.lab.netns import call_in, run_in, socket_in
from tests.conftest import require_root, require_tool
from tests.netns.daemon_fixtures import VIP, VRID, Daemon, PairLab

pytestmark = pytest.mark.timeout(120)

EACH = 200  # hostile packets per reason
FLOOD = 600  # unknown-VRID packets sent while the VRRP worker is stopped
RX_BUF = 65536  # vrrp_rx_bufs_policy; the kernel doubles it
METRICS = "127.0.0.1:19651"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[PairLab]:
    require_root()
    require_tool("nginx")
    require_tool("nft")
    lab = PairLab(count=2, dir=tmp_path)
    try:
        yield lab.build()
    finally:
        lab.close()


def hostile_packets(src: str) -> dict[str, bytes]:
    """One packet per reason, each failing exactly one receive check of d1's VI_1
    (VRRPv2, VRID 51, PASS 1111)."""
    s, vip = socket.inet_aton(src), socket.inet_aton(VIP)
    pw = auth_data_from_pass("1111")

    def v2(vrid: int) -> bytes:
        return encode_ipv4(2, vrid, 50, [vip], 1, src=s, dst=VRRP_GROUP4,
                           auth_type=AUTH_PASS, auth_data=pw)

    bad_sum = bytearray(v2(VRID))
    bad_sum[20 + 6] ^= 0xFF  # RFC 3768 §5.3.8: the checksum no longer verifies
    return {
        "checksum_err": bytes(bad_sum),
        "version_err": encode_ipv4(3, VRID, 50, [vip], 100, src=s, dst=VRRP_GROUP4),
        "unknown_vrid": v2(VRID + 26),
        # VRID 51 readable, header cut short: keepalived's packet_len_err
        "packet_len_err": v2(VRID)[:20 + 4],
    }


def send(sock: socket.socket, packets: list[bytes], *, burst: int, pause: float) -> None:
    for i, pkt in enumerate(packets):
        sock.sendto(pkt, ("224.0.0.18", 0))
        if burst and (i + 1) % burst == 0:
            time.sleep(pause)  # paced: the receive buffer must not overflow here


def raw_sender(ns: str) -> socket.socket:
    # IPPROTO_RAW implies IP_HDRINCL: TTL 255 and the source come from our header.
    s = socket_in(ns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"srv0")
    return s


def vrrp_socket(st: dict[str, Any]) -> dict[str, Any]:
    sock: dict[str, Any] = st["vrrp"][0]["socket"]
    return sock


def counted(st: dict[str, Any]) -> int:
    sock = vrrp_socket(st)
    return int(sum(sock["drops"].values()) + sock["kernel_drops"])


def scrape(ns: str) -> dict[str, Any]:
    def get() -> str:
        with urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=5) as r:
            return str(r.read().decode())

    return {f.name: f for f in text_string_to_metric_families(call_in(ns, get))}


def wait_file(path: Path, cond: Callable[[str], bool], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if cond(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def master(lab: PairLab, *extra: str, rx_buf: int | None = None) -> Daemon:
    glob = f"  vrrp_rx_bufs_policy {rx_buf}" if rx_buf else ""
    d1 = lab.start("d1", lab.conf("d1", lab.servers, extra_global=glob), *extra)
    d1.wait_ready()
    d1.wait_for(lambda s: s["vrrp"] and s["vrrp"][0]["data"]["state_name"] == "MASTER",
                10, "d1 MASTER")
    d1.wait_for(lambda s: len(s["pools"]["virtual_servers"][0]["real_servers"]) == 2 and
                all(r["pool_weight"] == 1
                    for r in s["pools"]["virtual_servers"][0]["real_servers"]),
                10, "the pool settled")
    return d1


def test_hostile_vrrp_packets_are_counted_everywhere(lab: PairLab) -> None:
    d1 = master(lab, "--metrics", METRICS, rx_buf=RX_BUF)
    assert lab.fifos is not None
    fifo = lab.fifos["d1"]
    lab.wait(lambda: fifo.lines()[-1:] == ['INSTANCE "VI_1" MASTER 100'], 5, "MASTER in FIFO")
    seen = fifo.lines()
    st = d1.status()
    assert st["vrrp"][0]["data"]["auth_type"] == 1  # item 6: keepalived's PASS
    sock0 = vrrp_socket(st)
    assert sock0["rcvbuf"] == 2 * RX_BUF  # vrrp_rx_bufs_policy reached SO_RCVBUF
    before = counted(st)

    sender = raw_sender(lab.ns("d2"))
    try:
        pkts = hostile_packets(lab.farm.directors[1].address)
        # interleaved, so every reason meets the same socket state
        send(sender, [p for _ in range(EACH) for p in pkts.values()], burst=20, pause=0.02)
        st = d1.wait_for(lambda s: counted(s) - before >= 4 * EACH, 10, "every packet counted")
        drops = vrrp_socket(st)["drops"]
        assert {r: drops[r] for r in pkts} == dict.fromkeys(pkts, EACH)
        assert vrrp_socket(st)["kernel_drops"] == sock0["kernel_drops"]
        inst = st["vrrp"][0]
        assert inst["stats"]["packet_len_err"] == EACH  # keepalived's per-instance counter
        assert inst["rejects"] == {"checksum_err": EACH, "version_err": EACH,
                                   "packet_len_err": EACH}
        # the MASTER never noticed
        assert inst["data"]["state_name"] == "MASTER" and inst["stats"]["become_master"] == 1
        assert st["workers"][0]["restarts"] == 0

        # SIGUSR2: keepalived's stats file, the socket's drops after the instances
        stats = d1.dir / "d1-dump.stats"
        d1.signal(signal.SIGUSR2)
        text = wait_file(stats, lambda t: "Kernel drops" in t, 5)
        head, sep, tail = text.partition("VRRP Socket: srv0/v4\n")
        assert sep and "VRRP Instance: VI_1\n" in head
        assert f"    Length: {EACH}\n" in head
        for reason in pkts:
            assert f"    {reason}: {EACH}\n" in tail

        # /metrics from inside d1's namespace
        fams = scrape(lab.ns("d1"))
        dropped = {s.labels["reason"]: s.value
                   for s in fams["hafast_vrrp_dropped_packets"].samples
                   if s.labels["intf"] == "srv0"}
        assert {r: dropped[r] for r in pkts} == dict.fromkeys(pkts, float(EACH))
        assert "hafast_vrrp_kernel_dropped_packets" in fams
        length = fams["keepalived_packet_length_errors"].samples[0]
        assert length.labels["iname"] == "VI_1" and length.value == EACH

        # a flood the worker cannot read: the buffer overflows, the kernel says so
        before = counted(st)
        vrrp_pid = d1.worker_pid("vrrp")
        os.kill(vrrp_pid, signal.SIGSTOP)
        try:
            send(sender, [pkts["unknown_vrid"]] * FLOOD, burst=0, pause=0)
            time.sleep(0.2)
        finally:
            os.kill(vrrp_pid, signal.SIGCONT)
        st = d1.wait_for(lambda s: counted(s) - before >= FLOOD, 10, "the flood accounted")
        assert counted(st) - before == FLOOD
        kernel = vrrp_socket(st)["kernel_drops"] - sock0["kernel_drops"]
        assert 0 < kernel < FLOOD
        fams = scrape(lab.ns("d1"))
        assert fams["hafast_vrrp_kernel_dropped_packets"].samples[0].value == \
            vrrp_socket(st)["kernel_drops"]
    finally:
        sender.close()
    st = d1.status()
    assert st["vrrp"][0]["data"]["state_name"] == "MASTER"
    assert st["workers"][0]["restarts"] == 0
    assert fifo.lines() == seen  # no transition, no notify
    assert d1.stop() == 0


def nft_tables(lab: PairLab) -> str:
    return run_in(lab.ns("d1"), ["nft", "list", "tables"]).stdout


def test_sigterm_removes_the_nft_table_unless_dont_release_ipvs(lab: PairLab) -> None:
    d1 = master(lab)
    assert "hafast_lvs" in nft_tables(lab)
    assert d1.stop() == 0
    assert "hafast_lvs" not in nft_tables(lab)

    d1 = master(lab, "-I")
    assert d1.stop() == 0
    assert "table inet hafast_lvs" in nft_tables(lab)
    assert VIP in lab.nft_services("d1")  # with its content
