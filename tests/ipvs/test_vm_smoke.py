"""Smoke test of the real IPVS kernel, run INSIDE the IPVS VM.

The host test tests/netns/test_ipvs_vm_boot.py boots the VM (hafast.lab.ipvs_vm) and
runs ``pytest tests/ipvs`` in it; the guest sets ``HAFAST_IN_VM=1``. On the host
kernel (no IPVS) this module has nothing to test and is skipped as a whole: it is
covered there by the boot test, which fails in CI if anything in here failed.

What it proves: ip_vs is loaded, pyroute2 can add a TCP service with the rr
scheduler (which must autoload, the reason for switch_root), add NAT destinations,
change a weight, read everything back from the raw netlink attributes, and that
ipvsadm (the kernel's other client) sees exactly that; then that real LVS-NAT traffic
through namespaces made inside the guest follows the weights, and weight 0 drains.
"""

from __future__ import annotations

import collections
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from socket import AF_INET, IPPROTO_TCP
from typing import Any

import pytest

from tests.conftest import require, require_root, require_tool

if os.environ.get("HAFAST_IN_VM") != "1":
    pytest.skip("runs inside the IPVS VM (tests/netns/test_ipvs_vm_boot.py boots it)",
                allow_module_level=True)

pytestmark = pytest.mark.ipvs

VIP = "10.0.0.1"
VPORT = 80
REALS = ("192.168.50.2", "192.168.50.3")
RPORT = 8080
# include/uapi/linux/ip_vs.h: IP_VS_CONN_F_MASQ is 0 (NAT); pyroute2's IPVSDest
# defaults to 3 (direct routing), so NAT must be asked for.
IP_VS_CONN_F_MASQ = 0


@pytest.fixture
def ipvs() -> Iterator[Any]:
    require_root()
    require(Path("/proc/net/ip_vs").exists(), "ip_vs is not loaded (the VM's stage 2 "
                                               "runs modprobe ip_vs)")
    from pyroute2 import IPVS
    from pyroute2.netlink.generic.ipvs import IPVS_CMD_FLUSH

    sock = IPVS()
    sock.service(IPVS_CMD_FLUSH)
    try:
        yield sock
    finally:
        sock.service(IPVS_CMD_FLUSH)
        sock.close()


def _service_attrs(msg: Any) -> dict[str, Any]:
    svc = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
    names = ("AF", "PROTOCOL", "ADDR", "PORT", "SCHED_NAME", "FLAGS", "TIMEOUT", "NETMASK")
    return {n: svc.get_attr(f"IPVS_SVC_ATTR_{n}") for n in names}


def _dest_attrs(msg: Any) -> dict[str, Any]:
    dest = msg.get_attr("IPVS_CMD_ATTR_DEST")
    names = ("ADDR", "PORT", "FWD_METHOD", "WEIGHT", "ADDR_FAMILY", "U_THRESH", "L_THRESH")
    return {n: dest.get_attr(f"IPVS_DEST_ATTR_{n}") for n in names}


def _ipvsadm() -> str:
    ipvsadm = require_tool("ipvsadm")
    return subprocess.run([ipvsadm, "-Ln"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def test_kernel_has_ip_vs() -> None:
    assert Path("/proc/net/ip_vs").exists()
    assert "IP Virtual Server" in _ipvsadm()


def test_pyroute2_service_and_nat_dests_read_back(ipvs: Any) -> None:
    from pyroute2 import IPVSDest, IPVSService

    svc = IPVSService(addr=VIP, port=VPORT, protocol=IPPROTO_TCP, sched_name="rr")
    ipvs.service("add", service=svc)
    for addr in REALS:
        ipvs.dest("add", service=svc,
                  dest=IPVSDest(addr=addr, port=RPORT, fwd_method=IP_VS_CONN_F_MASQ, weight=1))
    ipvs.dest("set", service=svc,
              dest=IPVSDest(addr=REALS[1], port=RPORT, fwd_method=IP_VS_CONN_F_MASQ, weight=5))

    services = [_service_attrs(m) for m in ipvs.service("dump")]
    assert len(services) == 1
    got = services[0]
    assert (got["AF"], got["PROTOCOL"], got["ADDR"], got["PORT"]) == (
        AF_INET, IPPROTO_TCP, VIP, VPORT)
    assert got["SCHED_NAME"] == "rr"

    dests = sorted((_dest_attrs(m) for m in ipvs.dest("dump", service=svc)),
                   key=lambda d: d["ADDR"])
    assert [(d["ADDR"], d["PORT"], d["FWD_METHOD"], d["WEIGHT"]) for d in dests] == [
        (REALS[0], RPORT, IP_VS_CONN_F_MASQ, 1),
        (REALS[1], RPORT, IP_VS_CONN_F_MASQ, 5),
    ]
    assert all(d["ADDR_FAMILY"] == AF_INET for d in dests)

    # ipvsadm reads the same kernel table through the same netlink family.
    text = _ipvsadm()
    assert re.search(rf"^TCP\s+{re.escape(VIP)}:{VPORT}\s+rr\b", text, re.M), text
    for addr, weight in ((REALS[0], 1), (REALS[1], 5)):
        assert re.search(rf"->\s+{re.escape(addr)}:{RPORT}\s+Masq\s+{weight}\s", text), text

    ipvs.dest("del", service=svc, dest=IPVSDest(addr=REALS[0], port=RPORT))
    left = [_dest_attrs(m)["ADDR"] for m in ipvs.dest("dump", service=svc)]
    assert left == [REALS[1]]

    ipvs.service("del", service=svc)
    assert list(ipvs.service("dump")) == []
    assert not re.search(r"^(TCP|UDP)\s", _ipvsadm(), re.M)


def test_duplicate_and_missing_are_netlink_errors(ipvs: Any) -> None:
    from pyroute2 import IPVSService
    from pyroute2.netlink.exceptions import NetlinkError

    svc = IPVSService(addr=VIP, port=VPORT, protocol=IPPROTO_TCP, sched_name="rr")
    ipvs.service("add", service=svc)
    with pytest.raises(NetlinkError) as dup:
        ipvs.service("add", service=svc)
    assert dup.value.code == 17  # EEXIST
    ipvs.service("del", service=svc)
    with pytest.raises(NetlinkError) as gone:
        ipvs.service("del", service=svc)
    assert gone.value.code == 3  # ESRCH: the kernel's "no such service"


# -- LVS-NAT traffic: namespaces inside the guest ------------------------------
#
#   client netns --veth-- director (guest root ns, VIP) --veth-- real server netns x2
#
# The real servers route back through the director, as LVS-NAT needs (it rewrites
# the replies). Sockets are made inside each namespace with pyroute2's pushns/popns
# and served by threads, so no extra Python process starts (each costs seconds here).

PFX = f"hv{os.getpid() % 100000}"
CLIENT_NET = ("10.0.0.1", "10.0.0.2")  # director side (the VIP), client side
REAL_NETS = (("192.168.60.1", "192.168.60.2"), ("192.168.61.1", "192.168.61.2"))
RS_ADDRS = tuple(far for _, far in REAL_NETS)


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr.strip()}"


@pytest.fixture
def lvs_nat_lab(ipvs: Any) -> Iterator[dict[str, str]]:
    names = {"client": f"{PFX}cl", "rs0": f"{PFX}r0", "rs1": f"{PFX}r1"}
    try:
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
        links = [("client", CLIENT_NET)] + [(f"rs{i}", net) for i, net in enumerate(REAL_NETS)]
        for role, (near, far) in links:
            ns = names[role]
            _ip("netns", "add", ns)
            _ip("link", "add", f"{ns}d", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("addr", "add", f"{near}/24", "dev", f"{ns}d")
            _ip("link", "set", f"{ns}d", "up")
            _ip("-n", ns, "addr", "add", f"{far}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "route", "add", "default", "via", near)
        yield names
    finally:
        for ns in names.values():  # deleting a namespace deletes its veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)


def _serve(ns: str, addr: str, reply: bytes, stop: threading.Event) -> threading.Thread:
    from pyroute2.netns import popns, pushns

    pushns(ns)
    try:
        srv = socket.create_server((addr, RPORT))
    finally:
        popns()
    srv.settimeout(0.2)

    def loop() -> None:
        with srv:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.sendall(reply)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def _fetch_from_client(ns: str, count: int) -> collections.Counter[bytes]:
    from pyroute2.netns import popns, pushns

    seen: collections.Counter[bytes] = collections.Counter()
    pushns(ns)
    try:
        for _ in range(count):
            with socket.create_connection((VIP, VPORT), timeout=10) as conn:
                seen[conn.recv(64)] += 1
    finally:
        popns()
    return seen


def test_lvs_nat_spreads_by_weight_and_weight_zero_drains(
        ipvs: Any, lvs_nat_lab: dict[str, str]) -> None:
    from pyroute2 import IPVSDest, IPVSService

    stop = threading.Event()
    threads = [_serve(lvs_nat_lab[f"rs{i}"], addr, f"rs{i}".encode(), stop)
               for i, addr in enumerate(RS_ADDRS)]
    try:
        svc = IPVSService(addr=VIP, port=VPORT, protocol=IPPROTO_TCP, sched_name="wrr")
        ipvs.service("add", service=svc)
        for addr, weight in zip(RS_ADDRS, (1, 3), strict=True):
            ipvs.dest("add", service=svc, dest=IPVSDest(
                addr=addr, port=RPORT, fwd_method=IP_VS_CONN_F_MASQ, weight=weight))

        # wrr is deterministic: every 4 new connections go 1:3.
        assert _fetch_from_client(lvs_nat_lab["client"], 8) == {b"rs0": 2, b"rs1": 6}

        # Weight 0 takes rs1 out of scheduling for new connections (a drain).
        ipvs.dest("set", service=svc, dest=IPVSDest(
            addr=RS_ADDRS[1], port=RPORT, fwd_method=IP_VS_CONN_F_MASQ, weight=0))
        assert _fetch_from_client(lvs_nat_lab["client"], 4) == {b"rs0": 4}
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
