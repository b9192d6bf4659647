"""Gratuitous ARP / unsolicited NA for a VIP written "dev OTHER" goes out on that
interface, with its MAC, as keepalived 2.2.7 does (a VIP on each ifp is announced on
it).  Before, only the instance's own interface was announced: the real servers
behind a gateway VIP on another interface kept the dead master's MAC until their
neighbour entry went stale (tests/ipvs/test_syncd_failover.py, the gw-dev layout)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterator

import pytest

from hafast.config.model import VirtualAddress
from hafast.lab.netns import Registry, call_in, run_in
from hafast.vrrp.instance import PacketAnnouncer
from tests.conftest import require_root

pytestmark = [pytest.mark.root, pytest.mark.netns]

NS = f"hgl{os.getpid() % 100000}"
ETH_P_ARP = 0x0806


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    with Registry() as reg:
        reg.add_netns(NS)
        reg.add_netns(NS + "p")
        reg.add_veth(NS, "ext", NS + "p", "ext")
        reg.add_veth(NS, "int", NS + "p", "int")
        yield NS


def _mac(ns: str, dev: str) -> bytes:
    (link,) = json.loads(run_in(ns, ["ip", "-j", "link", "show", "dev", dev]).stdout)
    return bytes.fromhex(link["address"].replace(":", ""))


def _capture(dev: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    s.bind((dev, 0))
    s.settimeout(0.2)
    return s


def _garps(sock: socket.socket, seconds: float) -> list[tuple[bytes, bytes]]:
    """(sender MAC, sender IP) of every ARP frame seen for ``seconds``."""
    got: list[tuple[bytes, bytes]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            continue
        arp = frame[14:]
        got.append((arp[8:14], arp[14:18]))
    return got


def test_vip_on_another_interface_is_announced_there(ns: str) -> None:
    for dev in ("ext", "int"):
        run_in(ns, ["ip", "link", "set", dev, "up"])
    ext_mac, int_mac = _mac(ns, "ext"), _mac(ns, "int")
    caps = {dev: call_in(NS + "p", _capture, dev) for dev in ("ext", "int")}
    vips = (VirtualAddress("10.7.0.100", 24, 4),                   # the instance's own
            VirtualAddress("10.8.0.1", 24, 4, dev="int"))          # the gateway, elsewhere

    def announce() -> int:
        loop = asyncio.new_event_loop()
        try:
            ann = PacketAnnouncer(loop, "ext", ext_mac)
            ann.announce(vips, 1)
            ann.close()
            return ann.sent
        finally:
            loop.close()

    try:
        sent = call_in(ns, announce)
        on_ext, on_int = _garps(caps["ext"], 1.0), _garps(caps["int"], 0.5)
    finally:
        for s in caps.values():
            s.close()
    assert sent == 2
    assert (ext_mac, socket.inet_aton("10.7.0.100")) in on_ext
    assert (int_mac, socket.inet_aton("10.8.0.1")) in on_int
    assert all(ip != socket.inet_aton("10.8.0.1") for _, ip in on_ext)
    assert all(ip != socket.inet_aton("10.7.0.100") for _, ip in on_int)


def test_a_missing_interface_is_counted_not_fatal(ns: str) -> None:
    run_in(ns, ["ip", "link", "set", "ext", "up"])
    ext_mac = _mac(ns, "ext")

    def announce() -> tuple[int, int]:
        loop = asyncio.new_event_loop()
        try:
            ann = PacketAnnouncer(loop, "ext", ext_mac)
            ann.announce((VirtualAddress("10.7.0.100", 24, 4),
                          VirtualAddress("10.9.0.1", 24, 4, dev="nosuch0")), 1)
            ann.close()
            return ann.sent, ann.dropped
        finally:
            loop.close()

    assert call_in(ns, announce) == (1, 1)
