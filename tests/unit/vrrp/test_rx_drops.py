"""Issue 12 item 5: every VRRP receive drop is counted and reaches the parent's views,
and the receive buffer is sized as keepalived's ``vrrp_rx_bufs_policy`` says.

No privileges: sockets are fakes (as in test_transport.py), /proc/net/raw is text.
"""

from __future__ import annotations

import doctest
import logging
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import hafast.vrrp.rxbufs
from hafast._core.vrrp_codec import encode_ipv4
from hafast._core.vrrp_constants import AUTH_AH, AUTH_PASS, auth_data_from_pass
from hafast.config.loader import load_text
from hafast.status import dump, metrics
from hafast.vrrp import transport as tr
from hafast.vrrp.from_config import channel_for, rx_bufs_of
from hafast.vrrp.report import instance_json
from hafast.vrrp.rxbufs import DEFAULT_RX_BUF, RxBufs, RxMember, advert_len, rx_buf_size

GROUP4 = bytes([224, 0, 0, 18])
SRC = bytes([10, 0, 0, 1])
PEER = bytes([10, 0, 0, 2])
VIP = bytes([10, 0, 0, 100])
PASS = auth_data_from_pass("1111")


class FakeSock:
    """What VrrpSocket asks of its socket object, recorded."""

    def __init__(self, fd: int = 7) -> None:
        self.opts: dict[tuple[int, int], int] = {}
        self.fd = fd

    def setsockopt(self, level: int, opt: int, value: int) -> None:
        self.opts[(level, opt)] = value

    def getsockopt(self, level: int, opt: int) -> int:
        # The kernel doubles SO_RCVBUF (socket(7)); rmem_max is not modelled here.
        return 2 * self.opts.get((level, opt), 106496)

    def fileno(self) -> int:
        return self.fd


def fake_socket(ifname: str = "eth0", family: int = 4, inode: int = 4242) -> tr.VrrpSocket:
    s = tr.VrrpSocket.__new__(tr.VrrpSocket)
    s.ifname, s.family, s.ifindex = ifname, family, 2
    s.counters = tr.SocketCounters()
    s._channels = {}
    s._groups = set()
    s._ip_id = 0
    s._rlog = tr.RateLimitedLog(logging.getLogger("test"))
    s.sock = FakeSock()  # type: ignore[assignment]
    s.ah_sock = None
    s.inodes = (inode,)
    return s


def channel(s: tr.VrrpSocket, **cfg: Any) -> tr.Channel:
    base: dict[str, Any] = {"ifname": s.ifname, "family": 4, "vrid": 51, "version": 2,
                            "adver_int": 1, "addresses": (VIP,), "src": SRC, "group": GROUP4,
                            "auth_type": AUTH_PASS, "auth_data": PASS}
    base.update(cfg)
    ch = tr.Channel(s, tr.ChannelConfig(**base), lambda adv, at: None)
    s.register(ch)
    return ch


def good(vrid: int = 51, version: int = 2) -> bytes:
    if version == 3:
        return encode_ipv4(3, vrid, 90, [VIP], 100, src=PEER, dst=GROUP4)
    return encode_ipv4(2, vrid, 90, [VIP], 1, src=PEER, dst=GROUP4, auth_type=AUTH_PASS,
                       auth_data=PASS)


def hostile() -> dict[str, bytes]:
    """One packet per drop reason the netns test sends too."""
    pkt = bytearray(good())
    pkt[26] ^= 0xFF  # VRRP checksum (IP header 20 + offset 6)
    return {"checksum_err": bytes(pkt), "version_err": good(version=3),
            "unknown_vrid": good(vrid=77), "packet_len_err": good()[:21]}


# --------------------------------------------------------------------------- rx bufs


@pytest.mark.parametrize("module", [hafast.vrrp.rxbufs, tr])
def test_doctests(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(("bufs", "members", "size"), [
    (RxBufs(), [RxMember(40, 1500)], 0),  # nothing asked: the transport's default
    (RxBufs("MTU"), [RxMember(40, 1500), RxMember(40, 1500)], 2 * 3 * 1500),
    (RxBufs("MTU", 5), [RxMember(40, 9000)], 5 * 9000),
    (RxBufs("ADVERT"), [RxMember(40, 1500), RxMember(64, 1500)], 3 * 40 + 3 * 64),
    (RxBufs(100000), [RxMember(40, 1500), RxMember(40, 1500)], 200000),
    # kernel_rx_buf_size wins over the policy, and counts even without one
    (RxBufs("MTU"), [RxMember(40, 1500, 8192), RxMember(40, 1500)], 8192 + 4500),
    (RxBufs(), [RxMember(40, 1500, 8192)], 8192),
    (RxBufs(2**31), [RxMember(40, 1500)], 2**31 - 1),  # SO_RCVBUF is an int
])
def test_rx_buf_size_sums_one_term_per_instance(bufs: RxBufs, members: list[RxMember],
                                                 size: int) -> None:
    assert rx_buf_size(bufs, members) == size


def test_advert_len_is_keepalived_vrrp_adv_len() -> None:
    # IPv4: IP header + VRRP header (+ v2 auth data, + AH) + 4 per VIP; IPv6: no IP header.
    assert advert_len(4, 2, 3) == 20 + 8 + 8 + 12
    assert advert_len(4, 2, 1, AUTH_AH) == 20 + 24 + 8 + 8 + 4
    assert advert_len(4, 3, 1) == 20 + 8 + 4
    assert advert_len(6, 3, 2) == 8 + 32


@pytest.mark.parametrize(("text", "policy", "mult"), [
    ("vrrp_rx_bufs_policy MTU", "MTU", 3),
    ("vrrp_rx_bufs_policy advert\n vrrp_rx_bufs_multiplier 7", "ADVERT", 7),
    ("vrrp_rx_bufs_policy 262144", 262144, 3),
    ("", None, 3),
])
def test_loader_reads_the_rx_bufs_keywords(text: str, policy: object, mult: int) -> None:
    res = load_text(f"global_defs {{\n {text}\n}}\nvrrp_instance V {{ interface lo\n"
                    " virtual_router_id 7\n kernel_rx_buf_size 4096\n}\n")
    assert not res.errors, res.errors
    assert not [d for d in res.warnings if "not yet supported" in d.message]
    gd = res.config.global_defs
    assert rx_bufs_of(gd) == RxBufs(policy, mult)  # type: ignore[arg-type]
    ch = channel_for(res.config.vrrp_instances[0], gd)
    assert ch.kernel_rx_buf_size == 4096


@pytest.mark.parametrize(("text", "message"), [
    ("vrrp_rx_bufs_policy MTU ADVERT", "MTU and ADVERT"),
    ("vrrp_rx_bufs_policy MTU 4096", "a size and a policy"),
    ("vrrp_rx_bufs_policy lots", "MTU, ADVERT or a size"),
])
def test_loader_refuses_what_keepalived_reports_as_a_config_error(text: str,
                                                                  message: str) -> None:
    res = load_text(f"global_defs {{\n {text}\n}}\n")
    assert res.errors and message in res.errors[0].message, res.errors


def test_socket_asks_for_the_configured_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tr, "interface_mtu", lambda ifname: 1500)
    s = fake_socket()
    channel(s)
    channel(s, vrid=52, kernel_rx_buf_size=10000)
    s.size_rx_bufs(RxBufs())
    assert s.sock.opts[(tr.socket.SOL_SOCKET, tr.socket.SO_RCVBUF)] == 10000  # type: ignore[attr-defined]
    s.size_rx_bufs(RxBufs("MTU"))
    assert s.sock.opts[(tr.socket.SOL_SOCKET, tr.socket.SO_RCVBUF)] == 10000 + 4500  # type: ignore[attr-defined]
    assert s.rcvbuf == 2 * (10000 + 4500)  # what the kernel granted, as reported
    s2 = fake_socket()
    channel(s2)
    s2.size_rx_bufs(RxBufs())  # nothing configured: hafast's default
    assert s2.sock.opts[(tr.socket.SOL_SOCKET, tr.socket.SO_RCVBUF)] == DEFAULT_RX_BUF  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- drops

# /proc/net/raw as Linux writes it (net/ipv4/raw.c raw_sock_seq_show), 13 columns.
PROC_NET_RAW = "\n".join([
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
    "  timeout inode ref pointer drops",
    " 112: 00000000:0070 00000000:0000 07 00000000:00000000 00:00000000 00000000     0"
    "        0 4242 2 0000000000000000 14791",
    " 255: 00000000:00FF 00000000:0000 07 00000000:00000000 00:00000000 00000000     0"
    "        0 999 2 0000000000000000 3", ""])


def test_kernel_drops_from_proc_net_raw() -> None:
    assert tr.parse_proc_net_raw(PROC_NET_RAW) == {4242: 14791, 999: 3}
    assert tr.parse_proc_net_raw("") == {}
    assert tr.parse_proc_net_raw(PROC_NET_RAW.splitlines()[0] + "\n 1: garbage\n") == {}


def test_every_receive_drop_is_counted_per_socket_by_reason() -> None:
    s = fake_socket()
    channel(s)
    for _ in range(3):
        for pkt in hostile().values():
            s._rx4(pkt)
    s._rx4(good())
    view = s.view({4242: 14791})
    assert view["name"] == "eth0/v4" and view["rx_packets"] == 13
    drops = view["drops"]
    assert {k: v for k, v in drops.items() if v} == {
        "checksum_err": 3, "version_err": 3, "unknown_vrid": 3, "packet_len_err": 3}
    assert set(drops) >= set(tr.DROP_REASONS)  # every reason present, zeros included
    assert view["kernel_drops"] == 14791
    assert view["rcvbuf"] == s.rcvbuf


def test_transport_counters_read_the_kernel_drops_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tr, "read_kernel_drops", lambda: {4242: 5, 4343: 2})
    t = tr.Transport.__new__(tr.Transport)
    t.sockets = {("eth0", 4): fake_socket(), ("eth1", 4): fake_socket("eth1", inode=4343)}
    out = t.counters()
    assert out["eth0/v4"]["kernel_drops"] == 5 and out["eth1/v4"]["kernel_drops"] == 2
    assert out["eth0/v4"]["unknown_vrid"] == 0  # the keys the standalone dump had stay


# --------------------------------------------------------------------------- to the parent


class FakeInstance:
    def __init__(self, ch: tr.Channel) -> None:
        from hafast.vrrp.fsm import State
        from hafast.vrrp.instance import COUNTER_NAMES
        from hafast.vrrp.params import VrrpParams

        self.name = "VI_1"
        self.sender = ch
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self.counters["packet_len_err"] = 2
        self.rejects = {"checksum_err": 3, "packet_len_err": 2}
        self.transitions: list[Any] = []
        params = VrrpParams(priority=100, version=2, garp_master_delay_us=0)
        self.spec = type("S", (), {"params": params, "ifname": "eth0", "vips": (),
                                   "excluded": ()})()
        st = type("St", (), {"state": State.MASTER, "base_priority": 100, "priority": 100})()
        self.machine = type("M", (), {"state": st})()


def parent_status(s: tr.VrrpSocket) -> dict[str, Any]:
    """What the parent's status() makes of one VRRP worker reply: its instances."""
    cfg = load_text("vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n"
                    " authentication {\n  auth_type PASS\n  auth_pass 1111\n }\n}\n")
    inst = FakeInstance(next(iter(s._channels.values())))
    sockets = {s.name: s.view({4242: 14791})}
    entry = instance_json(inst, cfg.config.vrrp_instances[0], sockets)
    return {"vrrp": [entry], "workers": [], "checkers": [], "pools": None}


def test_instance_json_carries_auth_type_rejects_and_its_socket() -> None:
    s = fake_socket()
    channel(s)
    for pkt in hostile().values():
        s._rx4(pkt)
    (entry,) = parent_status(s)["vrrp"]
    assert entry["data"]["auth_type"] == 1  # keepalived: PASS 1, AH 2
    assert entry["rejects"] == {"checksum_err": 3, "packet_len_err": 2}
    assert entry["socket"]["name"] == "eth0/v4"
    assert entry["socket"]["drops"]["unknown_vrid"] == 1
    assert entry["socket"]["kernel_drops"] == 14791
    assert set(dump.vrrp_json(parent_status(s))[0]) == {"data", "stats"}  # exporters' shape


def test_stats_dump_lists_the_drops_after_the_instances() -> None:
    s = fake_socket()
    channel(s)
    for pkt in hostile().values():
        s._rx4(pkt)
    text = dump.stats_text(parent_status(s))
    head, sep, tail = text.partition("VRRP Socket: eth0/v4\n")
    assert sep and head.startswith("VRRP Instance: VI_1\n")
    assert "    Length: 2\n" in head  # keepalived's per-instance block unchanged
    for line in ("  Dropped:\n", "    checksum_err: 1\n", "    version_err: 1\n",
                 "    unknown_vrid: 1\n", "    packet_len_err: 1\n", "  Kernel drops: 14791\n"):
        assert line in tail


def test_metrics_export_the_drops_by_reason_and_the_kernel_drops() -> None:
    from prometheus_client import generate_latest

    s = fake_socket()
    channel(s)
    for pkt in hostile().values():
        s._rx4(pkt)
    server = metrics.MetricsServer("127.0.0.1:0", lambda: parent_status(s))
    fams = {f.name: f for f in text_string_to_metric_families(
        generate_latest(server.registry).decode())}
    dropped = {s.labels["reason"]: s.value
               for s in fams["hafast_vrrp_dropped_packets"].samples}
    assert {k: v for k, v in dropped.items() if v} == {
        "checksum_err": 1, "version_err": 1, "unknown_vrid": 1, "packet_len_err": 1}
    sample = fams["hafast_vrrp_dropped_packets"].samples[0]
    assert sample.name == "hafast_vrrp_dropped_packets_total"
    assert sample.labels["intf"] == "eth0" and sample.labels["family"] == "4"
    assert fams["hafast_vrrp_kernel_dropped_packets"].samples[0].value == 14791
    # per instance, keepalived_exporter's name
    assert fams["keepalived_packet_length_errors"].samples[0].value == 2


def test_status_table_shows_the_socket_drops() -> None:
    from hafast.app.status_cli import render

    s = fake_socket()
    channel(s)
    for pkt in hostile().values():
        s._rx4(pkt)
    st = {"pid": 1, "config": "k.conf", "uptime": 1.0, "reloads": 0, "reload_errors": 0,
          **parent_status(s)}
    line = next(x for x in render(st).splitlines() if "socket eth0/v4" in x)
    assert "dropped 4 (unknown_vrid 1, packet_len_err 1, version_err 1, checksum_err 1)" \
        in line and "kernel drops 14791" in line


def test_the_instance_s_own_drops_are_counted_on_the_socket_too() -> None:
    """Issue 17: an advert that passes the codec but lists other VIPs (or another
    count of them) is dropped by the instance as keepalived's ``addr_list_err``;
    the socket's drops, which /metrics and the stats dump show per reason, count it
    as well, so every packet received and not acted on is there once.  A Count IP
    Addrs that disagrees with the length is keepalived's ``packet_len_err``."""
    from hafast._core.checksum import internet_checksum
    from hafast.config.model import VirtualAddress
    from hafast.net.vip import MemoryVips
    from hafast.vrrp.instance import Instance, InstanceSpec, ManualTimers, NullAnnouncer
    from hafast.vrrp.params import VrrpParams

    params = VrrpParams(priority=100, src_addr=0x0A000001, garp_master_delay_us=0)
    spec = InstanceSpec(name="VI_1", ifname="eth0", family=4, params=params,
                        vips=(VirtualAddress("10.0.0.100", 24, 4),))
    inst = Instance(spec, timers=ManualTimers(), vips=MemoryVips(),
                    announcer=NullAnnouncer(), notifier=None)
    s = fake_socket()
    ch = tr.Channel(s, tr.ChannelConfig(
        ifname="eth0", family=4, vrid=51, version=2, adver_int=1, addresses=(VIP,),
        src=SRC, group=GROUP4, auth_type=AUTH_PASS, auth_data=PASS), inst.on_advert)
    s.register(ch)
    inst.start()

    def v2(addresses: list[bytes]) -> bytes:
        return encode_ipv4(2, 51, 90, addresses, 1, src=PEER, dst=GROUP4,
                           auth_type=AUTH_PASS, auth_data=PASS)

    two = v2([VIP, bytes([10, 0, 0, 99])])
    miscounted = bytearray(v2([VIP]))
    miscounted[20 + 3] = 3  # Count IP Addrs 3, one address sent
    miscounted[20 + 6:20 + 8] = b"\0\0"  # resealed: only the count is wrong
    miscounted[20 + 6:20 + 8] = internet_checksum(bytes(miscounted[20:])).to_bytes(2, "big")
    for pkt in (v2([bytes([10, 0, 0, 99])]), two, bytes(miscounted), v2([VIP])):
        s._rx4(pkt)
    drops = {k: v for k, v in s.view({})["drops"].items() if v}
    assert drops == {"addr_list_err": 2, "packet_len_err": 1}
    assert inst.rejects == drops
    assert inst.counters["addr_list_err"] == 2 and inst.counters["packet_len_err"] == 1
    assert inst.counters["advert_rcvd"] == 1  # the good one


def test_the_destination_must_match_multicast_or_unicast() -> None:
    """As keepalived 2.2.7's vrrp_check_packet: a multicast instance drops a valid
    advert sent to a unicast address, a unicast instance one sent to the group, both
    as ``addr_list_err`` (on the socket and, through on_reject, the instance)."""
    for peers, bad_dst, good_dst in (((), SRC, GROUP4), ((PEER,), GROUP4, SRC)):
        s = fake_socket()
        got: list[str] = []
        rejected: list[str] = []
        cfg = tr.ChannelConfig(ifname="eth0", family=4, vrid=51, version=2, adver_int=1,
                               addresses=(VIP,), src=SRC, group=GROUP4, peers=peers,
                               auth_type=AUTH_PASS, auth_data=PASS)

        def taken(adv: Any, at: int | None, got: list[str] = got) -> None:
            got.append(adv.reason)

        def refused(reason: str, adv: Any, rejected: list[str] = rejected) -> None:
            rejected.append(reason)

        ch = tr.Channel(s, cfg, taken, refused)
        s.register(ch)
        for dst in (bad_dst, good_dst):
            s._rx4(encode_ipv4(2, 51, 200, [VIP], 1, src=PEER, dst=dst, auth_type=AUTH_PASS,
                               auth_data=PASS, unicast=bool(peers)))
        assert got == ["ok"] and rejected == ["addr_list_err"], peers
        assert {k: v for k, v in s.view({})["drops"].items() if v} == {"addr_list_err": 1}
