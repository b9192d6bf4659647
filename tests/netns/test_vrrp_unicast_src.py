"""Issue 14: check_unicast_src, a peer's min_ttl, unicast_ttl, on the wire (IPv4 and IPv6).

r1 runs one unicast VRRPv3 instance (peer r2, where nothing runs, so r1 becomes
MASTER alone); ``cl`` is a third host on the same bridge that forges adverts
with priority 200 straight to r1.  With ``check_unicast_src`` r1 stays MASTER
and counts every forged advert; without it the same adverts make it BACKUP (so
the test can fail).  A peer's ``min_ttl 255`` drops the peer's own address
spoofed with TTL 64 and lets TTL 255 through.  ``unicast_ttl`` is read off the
adverts r2 receives.  Each story runs against hafast's VRRP daemon and Debian's
keepalived 2.2.7 with the same configuration, asserting the same behaviour.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hafast._core.vrrp_codec import encode, encode_ipv4
from hafast.lab.netns import socket_in
from tests.conftest import require_root, require_tool
from tests.netns.vrrp_fixtures import ADDR4, ADDR6, KEEPALIVED, VIP4, VIP6, VrrpLab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

PREFIX = f"us{os.getpid() % 100000}"
KINDS = ["hafast", "keepalived"]
STARTUP_S = 6.0  # interpreter start + Master_Down_Interval at 0.3 s adverts
FORGE_S = 2.0  # > 6 advert intervals: long enough for a master to step down
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)


@pytest.fixture
def lab() -> Iterator[VrrpLab]:
    require_root()
    with VrrpLab(PREFIX) as built:
        yield built


def need(kind: str) -> None:
    if kind == "keepalived":
        require_tool(KEEPALIVED)


def unicast_conf(*, family: int = 4, peer_opts: str = "", check: bool = False,
                 ttl: int | None = None) -> str:
    """r1's config: the same text for hafast and keepalived."""
    addr, vip = (ADDR4, f"{VIP4}/24") if family == 4 else (ADDR6, f"{VIP6}/64")
    lines = ["global_defs {", "  router_id r1", "  vrrp_garp_master_delay 0", "}",
             "vrrp_instance VI_1 {", "  state BACKUP", "  interface eth0",
             "  virtual_router_id 51", "  priority 100", "  version 3", "  advert_int 0.3",
             f"  unicast_src_ip {addr['r1']}", "  unicast_peer {",
             f"    {addr['r2']} {peer_opts}".rstrip(), "  }"]
    if check:
        lines.append("  check_unicast_src")
    if ttl is not None:
        lines.append(f"  unicast_ttl {ttl}")
    lines += ["  virtual_ipaddress {", f"    {vip}", "  }", "}", ""]
    return "\n".join(lines)


class Forger(threading.Thread):
    """Adverts for VRID 51 at priority 200, from ``src`` with ``ttl``, sent by ``cl``
    to r1 every 50 ms until stopped.  IPv6: from cl's own address (the kernel will
    not send from another without IPV6_TRANSPARENT), the checksum over it."""

    def __init__(self, lab: VrrpLab, src: str, ttl: int = 255, family: int = 4) -> None:
        super().__init__(daemon=True)
        if family == 4:
            self.dst = ADDR4["r1"]
            self.packet = encode_ipv4(3, 51, 200, [socket.inet_aton(VIP4)], 30,
                                      src=socket.inet_aton(src),
                                      dst=socket.inet_aton(self.dst), ttl=ttl)
            # IPPROTO_RAW implies IP_HDRINCL: the forged source and TTL are ours.
            self.sock = socket_in(lab.ns("cl"), socket.AF_INET, socket.SOCK_RAW,
                                  socket.IPPROTO_RAW)
        else:
            self.dst = ADDR6["r1"]
            packed = [socket.inet_pton(socket.AF_INET6, a) for a in (VIP6, src, self.dst)]
            self.packet = encode(3, 51, 200, packed[:1], 30, family=6, src=packed[1],
                                 dst=packed[2])
            self.sock = socket_in(lab.ns("cl"), socket.AF_INET6, socket.SOCK_RAW, 112)
            self.sock.bind((src, 0))
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        self.halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        while not self.halt.is_set():
            self.sock.sendto(self.packet, (self.dst, 0))
            self.sent += 1
            self.halt.wait(0.05)

    def stop(self) -> int:
        self.halt.set()
        self.join(5)
        self.sock.close()
        return self.sent


def forge(lab: VrrpLab, src: str, ttl: int = 255, family: int = 4) -> tuple[bool, int]:
    """Forge for FORGE_S: (whether r1 held the VIP all along, adverts sent)."""
    f = Forger(lab, src, ttl, family)
    f.start()
    held = True
    try:
        deadline = time.monotonic() + FORGE_S
        while time.monotonic() < deadline:
            held = held and lab.has_vip("r1", VIP4 if family == 4 else VIP6)
            time.sleep(0.02)
    finally:
        sent = f.stop()
    return held, sent


def stats(lab: VrrpLab) -> dict[str, Any]:
    """hafast's SIGUSR2 stats of r1."""
    path = lab.tmp / "r1.json"
    path.unlink(missing_ok=True)
    os.kill(lab.routers["r1"].proc.pid, signal.SIGUSR2)
    lab.wait_for(lambda: path.exists() and path.stat().st_size > 0, 3.0, "stats file")
    time.sleep(0.05)
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def drops(lab: VrrpLab, reason: str, family: int = 4) -> tuple[int, int]:
    """r1's count of ``reason``: (on its socket, on its instance)."""
    st = stats(lab)
    return (st["sockets"][f"eth0/v{family}"]["drops"][reason],
            st["instances"][0]["rejects"].get(reason, 0))


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("kind", KINDS)
def test_check_unicast_src_keeps_a_stranger_out(lab: VrrpLab, kind: str, family: int) -> None:
    need(kind)
    vip, addr = (VIP4, ADDR4) if family == 4 else (VIP6, ADDR6)
    lab.start("r1", kind, unicast_conf(family=family, check=True))
    lab.wait_holder("r1", STARTUP_S, vip)
    before = drops(lab, "unicast_src_err", family) if kind == "hafast" else (0, 0)
    held, sent = forge(lab, addr["cl"], family=family)
    assert held, f"{kind}: a stranger's advert took r1's mastership"
    assert sent >= 20
    if kind == "hafast":
        sock_n, inst_n = drops(lab, "unicast_src_err", family)
        assert sock_n - before[0] >= sent - 2 and inst_n - before[1] == sock_n - before[0]
    else:
        lab.wait_for(lambda: "not a unicast peer" in lab.routers["r1"].log_text(), 2.0,
                     "keepalived's log line")


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("kind", KINDS)
def test_without_the_check_the_same_adverts_win(lab: VrrpLab, kind: str, family: int) -> None:
    need(kind)
    vip, addr = (VIP4, ADDR4) if family == 4 else (VIP6, ADDR6)
    lab.start("r1", kind, unicast_conf(family=family))
    lab.wait_holder("r1", STARTUP_S, vip)
    held, _ = forge(lab, addr["cl"], family=family)
    assert not held, f"{kind}: a higher-priority advert did not make r1 BACKUP"


@pytest.mark.parametrize("kind", KINDS)
def test_peer_min_ttl_drops_a_spoofed_peer(lab: VrrpLab, kind: str) -> None:
    need(kind)
    # min_ttl alone turns check_unicast_src on (keepalived's vrrp_data.c).
    lab.start("r1", kind, unicast_conf(peer_opts="min_ttl 255"))
    lab.wait_holder("r1", STARTUP_S)
    held, sent = forge(lab, ADDR4["r2"], ttl=64)
    assert held, f"{kind}: an advert with TTL 64 passed min_ttl 255"
    if kind == "hafast":
        sock_n, inst_n = drops(lab, "ip_ttl_err")
        assert sock_n >= sent - 2 and inst_n == sock_n
    # The positive control: the same source at TTL 255 is the peer, and wins.
    held, _ = forge(lab, ADDR4["r2"], ttl=255)
    assert not held, f"{kind}: the peer's advert at TTL 255 was dropped"


def first_advert_ttl(lab: VrrpLab, family: int, timeout: float = STARTUP_S) -> int:
    """The TTL / hop limit of the first VRRP packet r2 receives from r1."""
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    s = socket_in(lab.ns("r2"), af, socket.SOCK_RAW, 112)
    try:
        s.settimeout(timeout)
        if family == 6:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        while True:
            data, anc, _flags, addr = s.recvmsg(2048, socket.CMSG_SPACE(4))
            if family == 4:
                if data[12:16] == socket.inet_aton(ADDR4["r1"]):
                    return data[8]
            elif str(addr[0]).split("%")[0] == ADDR6["r1"]:
                for level, kind, value in anc:
                    if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT:
                        return int(struct.unpack("i", value[:4])[0])
                raise AssertionError("no IPV6_HOPLIMIT on the received advert")
    finally:
        s.close()


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("kind", KINDS)
def test_unicast_ttl_on_the_wire(lab: VrrpLab, kind: str, family: int) -> None:
    need(kind)
    lab.start("r1", kind, unicast_conf(family=family, ttl=7))
    assert first_advert_ttl(lab, family) == 7


@pytest.mark.parametrize("kind", KINDS)
def test_unicast_ttl_default_ipv4(lab: VrrpLab, kind: str) -> None:
    need(kind)
    lab.start("r1", kind, unicast_conf())
    assert first_advert_ttl(lab, 4) == 255


@pytest.mark.parametrize(("kind", "hops"), [("hafast", 255), ("keepalived", 64)])
def test_unicast_hop_limit_default_ipv6(lab: VrrpLab, kind: str, hops: int) -> None:
    """A known difference: hafast sends 255 (RFC 5798 §5.1.2.3 says so); keepalived
    2.2.7 leaves IPv6 unicast to the kernel's default hop limit (64) when
    unicast_ttl is not given.  Neither side checks it on receive without min_ttl."""
    need(kind)
    lab.start("r1", kind, unicast_conf(family=6))
    assert first_advert_ttl(lab, 6) == hops
